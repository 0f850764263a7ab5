/*
 * runtime/sched/placement.c: which device each layer of a model runs on
 * (layer: runtime). The devices are opened here; the decision is the cost
 * model's (offload/cost.h).
 *
 * `auto` places the layers once per batch bucket (powers of two, 1 to 512
 * columns and up): a GPU that loses to the CPU at batch 1 (launch and sync
 * bound) can win a prompt by a wide margin, so decoding and prompts may run
 * on different devices. Calibrations come from cacheDir/devices.json and
 * are measured there the first time a device is seen (and the OpenCL
 * devices enumerated once and recorded, so that later loads open only the
 * devices a plan uses: an OpenCL platform costs tens of milliseconds to
 * start even where nothing runs on it). A calibration file that is corrupt
 * or foreign is replaced by a new calibration, which the model's info says.
 * OpenCL CPU devices (PoCL) are not candidates: they share the CPU
 * device's cores. Loaded plugins' devices are candidates too (calibrated the same way the
 * first time); a device gets only the layers whose ops and weight types it
 * claims.
 */
#include <math.h>
#include <stdbool.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "offload/cost.h"
#include "offload/cpu/cpu.h"
#include "offload/opencl/opencl.h"
#include "offload/plugin/plugin.h"
#include "runtime/model/model.h"
#include "runtime/sched/sched.h"

const int tai_plan_cols[TAI_PLANS] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512};

/* Whether file layer l holds a block-sparse (pruned) matrix: such layers
 * run on the CPU, the one device with that product (device.h's optional
 * slots; no OpenCL kernel or plugin has it yet). */
static bool layer_sparse(const TinyAIModel *m, int l) {
    if (l < 1 || l > m->hp.n_layer) return false;
    const tai_block *b = &m->blocks[l - 1];
    return b->wq.keep || b->wk.keep || b->wv.keep || b->wo.keep || b->w_gate.keep ||
           b->w_up.keep || b->w_down.keep;
}

int tai_plan_bucket(const TinyAIModel *m, int n) {
    int k = 0;
    while (k + 1 < m->n_plans && tai_plan_cols[k + 1] <= n) k++;
    return k;
}
#define NB TAI_PLANS
#define MAX_CL 7
#define CTX_MODEL 256 /* positions attended, on average, for the predictions */

void tai_model_place_free(TinyAIModel *m) {
    free(m->dev_cal);
    m->dev_cal = NULL;
    m->have_cal = 0;
    for (int b = 0; b < NB; b++) {
        free(m->plans[b]);
        free(m->plan_pred[b]);
        free(m->plan_meas[b]);
        free(m->plan_runs[b]);
        m->plans[b] = NULL;
    }
}

/* "cpu" -> -1, "opencl" -> 0, "opencl:N" -> N; -2 for anything else. */
static int opencl_index(const char *name) {
    if (!strcmp(name, "cpu")) return -1;
    if (!strcmp(name, "opencl")) return 0;
    if (strncmp(name, "opencl:", 7) != 0 || !name[7]) return -2;
    char *end = NULL;
    const long v = strtol(name + 7, &end, 10);
    return *end || v < 0 || v > 1000 ? -2 : (int)v;
}

/* A device that is not the CPU: OpenCL device `index`, or device `index`
 * of a plugin. */
typedef struct {
    tai_plugin *pl; /* NULL: OpenCL */
    int index;
} dev_ref;

static TinyAIStatus open_ref(dev_ref r, const char *cache_dir, tai_device **out) {
    return r.pl ? tai_plugin_device_open(r.pl, r.index, out)
                : tai_opencl_device_open(r.index, cache_dir, out);
}

/* The ops a block and the head run (the embedding stays on the CPU). */
#define BLOCK_OPS                                                                      \
    (TAI_OP_MATMUL | TAI_OP_RMSNORM | TAI_OP_ADD | TAI_OP_ROPE | TAI_OP_ATTENTION |   \
     TAI_OP_SWIGLU | TAI_OP_COPY)
#define HEAD_OPS (TAI_OP_MATMUL | TAI_OP_RMSNORM)

/* Adds a device to the model; its index in m->devs. */
static TinyAIStatus add_device(TinyAIModel *m, dev_ref r, const char *cache_dir, int *idx) {
    if (m->n_devs == TAI_MAX_DEVICES)
        return tai_error(TINYAI_ERR_UNSUPPORTED, "more than %d devices", TAI_MAX_DEVICES);
    tai_device *d = NULL;
    TinyAIStatus st = open_ref(r, cache_dir, &d);
    if (st != TINYAI_OK) return st;
    *idx = m->n_devs++;
    m->devs[*idx] = d;
    m->dws[*idx].dev = d;
    return TINYAI_OK;
}

/* What file layer l computes (0: the embedding, a lookup). */
static void layer_cost(const TinyAIModel *m, int l, tai_layer_cost *c) {
    const tai_hparams *hp = &m->hp;
    const int64_t E = hp->n_embd, F = hp->n_ff, kvd = (int64_t)hp->n_head_kv * hp->head_dim;
    memset(c, 0, sizeof *c);
    c->weight_bytes = tai_mapped_image_bytes(m->mm, l);
    c->act_floats = E;
    if (l >= 1 && l <= hp->n_layer) {
        const tai_block *b = &m->blocks[l - 1];
        const tai_wref *w[7] = {&b->wq, &b->wk, &b->wv, &b->wo, &b->w_gate, &b->w_up, &b->w_down};
        c->n_mats = 7;
        for (int i = 0; i < 7; i++) {
            c->type[i] = w[i]->type;
            c->rows[i] = w[i]->rows;
            c->n[i] = w[i]->n;
        }
        c->n_ops = 10; /* 2 norms, 2 ropes, 2 copies, attention, swiglu, 2 adds */
        c->elem_floats = 10 * E + 3 * F + 4 * kvd;
        c->kv_floats = 2 * kvd;
    } else if (l == hp->n_layer + 1) {
        c->n_mats = 1;
        c->type[0] = m->output.type;
        c->rows[0] = m->output.rows;
        c->n[0] = m->output.n;
        c->n_ops = 1;
        c->elem_floats = 2 * E;
        c->out_floats = hp->n_vocab;
        if (m->tied) c->weight_bytes += tai_mapped_image_bytes(m->mm, 0);
    }
}

/* Reads the entry for device d's key, or measures and saves it. *note
 * receives what happened to a bad file. */
static TinyAIStatus calib_of(tai_device *d, const char *path, tai_calib *c, char *note,
                             size_t note_cap) {
    char key[384];
    tai_calib_key(d, key, sizeof key);
    TinyAIStatus st = tai_calib_load(path, key, c);
    /* an older calibration lists only the types it measured: the device,
     * open here, says which it multiplies */
    if (st == TINYAI_OK && (d->info.ops & TAI_OP_MATMUL)) c->types |= d->info.types;
    if (st == TINYAI_OK) return st;
    if (st == TINYAI_ERR_FORMAT && !note[0])
        snprintf(note, note_cap, "%s; measured again", tinyaiLastErrorMessage());
    st = tai_calibrate(d, c);
    if (st != TINYAI_OK) return st;
    if (tai_calib_save(path, c) != TINYAI_OK && !note[0])
        snprintf(note, note_cap, "calibration not saved: %s", tinyaiLastErrorMessage());
    tinyaiClearError();
    return TINYAI_OK;
}

static TinyAIStatus alloc_plans(TinyAIModel *m) {
    const int nf = m->file->n_layers;
    m->n_plans = NB;
    for (int b = 0; b < NB; b++) {
        m->plans[b] = calloc((size_t)nf, 1);
        m->plan_pred[b] = calloc((size_t)nf, sizeof(double));
        m->plan_meas[b] = calloc((size_t)nf, sizeof(double));
        m->plan_runs[b] = calloc((size_t)nf, sizeof(int));
        if (!m->plans[b] || !m->plan_pred[b] || !m->plan_meas[b] || !m->plan_runs[b])
            return tai_error(TINYAI_ERR_NOMEM, "out of memory");
    }
    m->layer_dev = m->plans[0];
    return TINYAI_OK;
}

/* The cost-model placement over the CPU and the recorded OpenCL devices. */
static TinyAIStatus place_auto(TinyAIModel *m, const char *cache_dir) {
    char path[4096];
    snprintf(path, sizeof path, "%s/devices.json", cache_dir);
    tai_calib cal[1 + MAX_CL];
    dev_ref cand[1 + MAX_CL];
    uint32_t cand_ops[1 + MAX_CL];
    int nd = 1;
    m->placement_note[0] = 0;
    TinyAIStatus st = calib_of(m->dev, path, &cal[0], m->placement_note, sizeof m->placement_note);
    if (st != TINYAI_OK) return st;
    cand[0].pl = NULL;
    cand[0].index = -1;
    cand_ops[0] = m->dev->info.ops;
    /* the OpenCL devices: as recorded, else enumerated (and each measured) */
    char keys[MAX_CL][384];
    int nk = 0;
    if (tai_calib_opencl_list(path, keys, MAX_CL, &nk) != TINYAI_OK) {
        tinyaiClearError();
        nk = 0;
        const int n = tai_opencl_count();
        for (int i = 0; i < n && nk < MAX_CL; i++) {
            tai_device *d = NULL;
            if (tai_opencl_device_open(i, cache_dir, &d) != TINYAI_OK) {
                tinyaiClearError(); /* a device that does not open takes no layers */
                continue;
            }
            if (d->info.kind == TAI_DEVICE_CPU) {
                /* an OpenCL CPU device runs on the cores the CPU device
                 * already uses: it adds no compute or memory, so it is not
                 * a candidate (not measured, not recorded); a measured
                 * "win" could only be noise, as it was on a busy 2-core VM
                 * where PoCL timed faster at small batches */
                tai_device_close(d);
                continue;
            }
            tai_calib c;
            if (calib_of(d, path, &c, m->placement_note, sizeof m->placement_note) == TINYAI_OK)
                tai_calib_key(d, keys[nk++], sizeof keys[0]);
            tai_device_close(d);
            tinyaiClearError();
        }
        (void)tai_calib_set_opencl_list(path, keys, nk);
        tinyaiClearError();
    }
    for (int k = 0; k < nk && nd < 1 + MAX_CL; k++) {
        const char *bar = strchr(keys[k], '|');
        char name[64];
        snprintf(name, sizeof name, "%.*s", bar ? (int)(bar - keys[k]) : 0, keys[k]);
        const int cl = opencl_index(name);
        if (cl < 0 || tai_calib_load(path, keys[k], &cal[nd]) != TINYAI_OK) {
            tinyaiClearError();
            continue;
        }
        cand[nd].pl = NULL;
        cand[nd].index = cl;
        cand_ops[nd++] = TAI_OP_ALL | TAI_OP_EXT_ALL; /* the OpenCL device has every slot */
    }
    /* every loaded plugin's devices (opened to be named and measured) */
    for (int i = 0; i < tai_plugin_devices() && nd < 1 + MAX_CL; i++) {
        dev_ref r;
        tai_device *d = NULL;
        if (tai_plugin_device_at(i, &r.pl, &r.index) != TINYAI_OK ||
            tai_plugin_device_open(r.pl, r.index, &d) != TINYAI_OK) {
            tinyaiClearError(); /* a device that does not open takes no layers */
            continue;
        }
        if (calib_of(d, path, &cal[nd], m->placement_note, sizeof m->placement_note) == TINYAI_OK) {
            cand[nd] = r;
            cand_ops[nd++] = d->info.ops;
        }
        tai_device_close(d);
        tinyaiClearError();
    }
    /* the problem, per bucket */
    const int L = m->file->n_layers;
    double *cost = malloc((size_t)L * nd * sizeof *cost);
    double *trans = malloc((size_t)L * nd * nd * sizeof *trans);
    double tail[1 + MAX_CL];
    uint64_t *mem = malloc((size_t)L * nd * sizeof *mem), cap[1 + MAX_CL];
    int *dev = malloc((size_t)L * sizeof *dev);
    unsigned char used[1 + MAX_CL] = {0};
    used[0] = 1;
    if (!cost || !trans || !mem || !dev) st = tai_error(TINYAI_ERR_NOMEM, "out of memory");
    for (int d = 0; d < nd; d++)
        cap[d] = d == 0 || cal[d].mem_bytes == 0 ? UINT64_MAX : cal[d].mem_bytes / 10 * 8;
    /* the weights a device would read per pass: all of them, at most */
    const uint64_t model_bytes = tai_mapped_total_image_bytes(m->mm);
    for (int b = 0; st == TINYAI_OK && b < NB; b++) {
        const int n = tai_plan_cols[b];
        for (int l = 0; l < L; l++) {
            tai_layer_cost lc;
            layer_cost(m, l, &lc);
            const uint32_t needs = l == L - 1 ? HEAD_OPS : BLOCK_OPS | m->hp.ext_ops;
            for (int d = 0; d < nd; d++) {
                /* the embedding lookup stays on the CPU; a device runs only
                 * the layers whose ops it has */
                cost[l * nd + d] = (l == 0 && d > 0) || (cand_ops[d] & needs) != needs ||
                                           (d > 0 && layer_sparse(m, l))
                                       ? INFINITY
                                       : tai_cost_compute(&cal[d], &lc, n, CTX_MODEL, model_bytes);
                mem[l * nd + d] = d == 0 ? 0 : lc.weight_bytes;
                for (int f = 0; f < nd; f++)
                    trans[((size_t)l * nd + f) * nd + d] =
                        f == d ? 0
                               : tai_cost_transfer(&cal[f], lc.act_floats, n, 0) +
                                     tai_cost_transfer(&cal[d], lc.act_floats, n, 1);
            }
        }
        /* the head's logits come back for the last column */
        tai_layer_cost head;
        layer_cost(m, L - 1, &head);
        for (int d = 0; d < nd; d++) tail[d] = tai_cost_transfer(&cal[d], head.out_floats, 1, 0);
        const tai_place_problem p = {L, nd, cost, trans, tail, mem, cap};
        double total = 0;
        if (tai_place_solve(&p, dev, &total) != 0) {
            for (int l = 0; l < L; l++) dev[l] = 0; /* cannot fail with the CPU unbounded */
        }
        for (int l = 0; l < L; l++) {
            m->plans[b][l] = (unsigned char)dev[l];
            used[dev[l]] = 1;
            const int prev = l == 0 ? 0 : dev[l - 1];
            m->plan_pred[b][l] = cost[l * nd + dev[l]] + trans[((size_t)l * nd + prev) * nd + dev[l]];
        }
    }
    /* open what the plans use; renumber to the model's device indices */
    int map[1 + MAX_CL] = {0};
    for (int d = 1; st == TINYAI_OK && d < nd; d++)
        if (used[d]) st = add_device(m, cand[d], cache_dir, &map[d]);
    for (int b = 0; st == TINYAI_OK && b < NB; b++)
        for (int l = 0; l < L; l++) m->plans[b][l] = (unsigned char)map[m->plans[b][l]];
    /* the figures of the devices the model uses, for later predictions */
    if (st == TINYAI_OK && (m->dev_cal = calloc(TAI_MAX_DEVICES, sizeof *m->dev_cal)) != NULL) {
        for (int d = 0; d < nd; d++)
            if (used[d]) m->dev_cal[map[d]] = cal[d];
        m->have_cal = 1;
    }
    free(cost);
    free(trans);
    free(mem);
    free(dev);
    return st;
}

/* A named device with memory of its own must hold the weights of every
 * layer placed on it (the blocks and the head) and, where the config plans
 * sessions (contextSize), their KV caches: checked at load, so that a
 * model too large for it is an error naming the device, not a failure in
 * the middle of a pass. */
static TinyAIStatus check_fits(const TinyAIModel *m, int idx) {
    const tai_device *d = m->devs[idx];
    if (d->info.unified || d->info.mem_total == 0) return TINYAI_OK;
    const tai_hparams *hp = &m->hp;
    uint64_t need = 0;
    for (int l = 1; l < m->file->n_layers; l++) need += tai_mapped_image_bytes(m->mm, l);
    if (m->tied) need += tai_mapped_image_bytes(m->mm, 0);
    const int ctx = m->cfg.contextSize > 0 ? m->cfg.contextSize : 0;
    const int seqs = m->cfg.maxSessions > 0 ? m->cfg.maxSessions : 1;
    need += 2ull * (uint64_t)hp->n_layer * (uint64_t)ctx * (uint64_t)seqs *
            (uint64_t)hp->n_head_kv * (uint64_t)hp->head_dim * sizeof(float);
    if (need <= d->info.mem_total) return TINYAI_OK;
    return tai_error(TINYAI_ERR_NOMEM,
                     "device %s has %.2f GiB of memory; the model's layers and KV caches need "
                     "%.2f GiB there (use --device auto, which places what fits, or cpu)",
                     d->info.name, (double)d->info.mem_total / (1u << 30),
                     (double)need / (1u << 30));
}

/* A named device must run every op of the blocks and the head. */
static TinyAIStatus check_ops(const TinyAIModel *m, int idx) {
    const tai_device *d = m->devs[idx];
    const uint32_t miss = (BLOCK_OPS | m->hp.ext_ops) & ~d->info.ops;
    for (int l = 1; !miss && l <= m->hp.n_layer; l++)
        if (layer_sparse(m, l) && !tai_dev_has_sparse(m->devs[idx]))
            return tai_error(TINYAI_ERR_UNSUPPORTED,
                             "device %s has no product of block-sparse (pruned) matrices, which "
                             "this model has (--device cpu or auto runs it)", d->info.name);
    if (!miss) {
        const tai_block *b = &m->blocks[0];
        const tai_wref *w[8] = {&b->wq, &b->wk, &b->wv, &b->wo, &b->w_gate, &b->w_up,
                                &b->w_down, &m->output};
        for (int i = 0; i < 8; i++)
            if (!(d->info.types & (1u << w[i]->type)))
                return tai_error(TINYAI_ERR_UNSUPPORTED,
                                 "device %s has no matrix product of %s weights, which this "
                                 "model has (--device auto runs such layers elsewhere)",
                                 d->info.name, tai_type_name(w[i]->type));
        return TINYAI_OK;
    }
    static const char *const names[] = {"matmul", "rmsnorm", "add",    "rope",
                                        "attention", "swiglu", "embed", "copy",
                                        "rope_neox", "geglu", "add_bias", "attention_window"};
    char list[192] = "";
    for (int i = 0; i < 12; i++)
        if (miss & (1u << i))
            snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", list[0] ? ", " : "",
                     names[i]);
    return tai_error(TINYAI_ERR_UNSUPPORTED,
                     "device %s does not run %s, which a block needs (--device auto gives it "
                     "only layers it can run)",
                     d->info.name, list);
}

/* For a named device, the cost model's prediction of each layer where the
 * calibrations of the model's devices are in cache_dir (never measured
 * here: naming a device skips the cost model's start-up cost). */
static void predict_named(TinyAIModel *m, const char *cache_dir) {
    char path[4096];
    snprintf(path, sizeof path, "%s/devices.json", cache_dir);
    tai_calib cal[TAI_MAX_DEVICES];
    for (int d = 0; d < m->n_devs; d++) {
        char key[384];
        tai_calib_key(m->devs[d], key, sizeof key);
        if (tai_calib_load(path, key, &cal[d]) != TINYAI_OK) {
            tinyaiClearError();
            return;
        }
        if (m->devs[d]->info.ops & TAI_OP_MATMUL) cal[d].types |= m->devs[d]->info.types;
    }
    if ((m->dev_cal = calloc(TAI_MAX_DEVICES, sizeof *m->dev_cal)) != NULL) {
        memcpy(m->dev_cal, cal, (size_t)m->n_devs * sizeof *cal);
        m->have_cal = 1;
    }
    const uint64_t model_bytes = tai_mapped_total_image_bytes(m->mm);
    for (int b = 0; b < NB; b++) {
        const int n = tai_plan_cols[b];
        for (int l = 0; l < m->file->n_layers; l++) {
            tai_layer_cost lc;
            layer_cost(m, l, &lc);
            const int d = m->plans[b][l], prev = l == 0 ? 0 : m->plans[b][l - 1];
            double t = tai_cost_compute(&cal[d], &lc, n, CTX_MODEL, model_bytes);
            if (prev != d)
                t += tai_cost_transfer(&cal[prev], lc.act_floats, n, 0) +
                     tai_cost_transfer(&cal[d], lc.act_floats, n, 1);
            m->plan_pred[b][l] = t;
        }
    }
}

TinyAIStatus tai_model_place(TinyAIModel *m, const char *device, const char *cache_dir) {
    const int nl = m->hp.n_layer, nf = m->file->n_layers;
    m->devs[0] = m->dev;
    m->n_devs = 1;
    m->dws[0].dev = m->dev;
    m->dev_w = calloc((size_t)nf, sizeof *m->dev_w);
    m->dev_w_on = calloc((size_t)nf, 1);
    m->kv_slot = calloc((size_t)nl, sizeof *m->kv_slot);
    if (!m->dev_w || !m->dev_w_on || !m->kv_slot) return tai_error(TINYAI_ERR_NOMEM, "out of memory");
    TinyAIStatus st = alloc_plans(m);
    if (st != TINYAI_OK) return st;
    if (!device || !*device || !strcmp(device, "auto")) {
        if (cache_dir && *cache_dir) st = place_auto(m, cache_dir);
        m->auto_placed = 1;
    } else {
        int cl = opencl_index(device);
        dev_ref r = {NULL, cl};
        if (cl == -2) {
            const int pr = tai_plugin_resolve(device, &r.pl, &r.index);
            if (pr == -2)
                return tai_error(TINYAI_ERR_INVALID_ARG, "no device '%s': plugin %s has %d",
                                 device, tai_plugin_name(r.pl), tai_plugin_device_count(r.pl));
            if (pr != 0)
                return tai_error(TINYAI_ERR_INVALID_ARG,
                                 "unknown device '%s' (auto, cpu, opencl, opencl:N, or a loaded "
                                 "plugin's NAME:N)",
                                 device);
            cl = 0; /* a device to add */
        }
        if (cl >= 0) {
            int idx = 0;
            st = add_device(m, r, cache_dir, &idx);
            if (st == TINYAI_OK) st = check_ops(m, idx);
            if (st == TINYAI_OK) st = check_fits(m, idx);
            for (int b = 0; st == TINYAI_OK && b < NB; b++)
                for (int l = 1; l < nf; l++) m->plans[b][l] = (unsigned char)idx;
        }
        if (st == TINYAI_OK && cache_dir && *cache_dir) predict_named(m, cache_dir);
    }
    if (st != TINYAI_OK) return st;
    /* each non-CPU device some plan uses holds a KV slot per block (block
     * l in slot l): a block may run there in one bucket and not another */
    for (int l = 0; l < nl; l++) m->kv_slot[l] = l;
    for (int d = 1; d < m->n_devs; d++) m->kv_slots[d] = nl;
    return TINYAI_OK;
}

double tai_sched_predict_pass(const TinyAIModel *m, int n, int ctx) {
    if (!m->have_cal || !m->dev_cal || n < 1) return -1;
    const int b = tai_plan_bucket(m, n), L = m->file->n_layers;
    const uint64_t model_bytes = tai_mapped_total_image_bytes(m->mm);
    double t = 0;
    for (int l = 0; l < L; l++) {
        tai_layer_cost lc;
        layer_cost(m, l, &lc);
        const int d = m->plans[b][l], prev = l == 0 ? 0 : m->plans[b][l - 1];
        t += tai_cost_compute(&m->dev_cal[d], &lc, n, ctx, model_bytes);
        if (prev != d)
            t += tai_cost_transfer(&m->dev_cal[prev], lc.act_floats, n, 0) +
                 tai_cost_transfer(&m->dev_cal[d], lc.act_floats, n, 1);
    }
    return t;
}

static void to_public(const tai_calib *c, TinyAIDeviceCalibration *out) {
    static const tai_type order[5] = {TAI_TYPE_F32, TAI_TYPE_F16, TAI_TYPE_Q8_0, TAI_TYPE_Q4_0,
                                      TAI_TYPE_Q4_1};
    for (int i = 0; i < 5; i++) {
        out->matvecGBs[i] = c->mv_gbs[order[i]];
        out->matmulGFlops[i] = c->mm_gflops[order[i]];
        out->matmulBigGFlops[i] = c->mm_big_gflops[order[i]];
    }
    out->opMicros = c->op_us;
    out->matmulOpMicros = c->mm_op_us;
    out->syncMicros = c->sync_us;
    out->elementwiseGBs = c->elem_gbs;
    out->hostToDeviceGBs = c->h2d_gbs;
    out->deviceToHostGBs = c->d2h_gbs;
    out->transferMicros = c->xfer_us;
    out->memoryBytes = c->mem_bytes;
    out->otherLoadCores = c->other_cores;
    out->measuredUnderLoad = tai_calib_busy(c, sysconf(_SC_NPROCESSORS_ONLN));
}

static int all_cores(int threads) {
    if (threads > 0) return threads;
    const long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > 256 ? 256 : (int)n;
}

TinyAIStatus tinyaiGetDeviceCalibration(const char *cacheDir, int index, int threads,
                                        TinyAIDeviceCalibration *out) {
    if (!cacheDir || !*cacheDir || !out)
        return tai_error(TINYAI_ERR_INVALID_ARG, "tinyaiGetDeviceCalibration: NULL argument");
    char path[4096], key[384];
    snprintf(path, sizeof path, "%s/devices.json", cacheDir);
    if (index == 0) {
        tai_device *d = NULL;
        TinyAIStatus st = tai_cpu_device_open(NULL, all_cores(threads), &d);
        if (st != TINYAI_OK) return st;
        tai_calib_key(d, key, sizeof key);
        tai_device_close(d);
    } else if (index <= tai_opencl_count()) {
        tai_device dev;
        memset(&dev, 0, sizeof dev);
        if (tai_opencl_query(index - 1, &dev.info) != 0)
            return tai_error(TINYAI_ERR_RANGE, "no device %d", index);
        tai_calib_key(&dev, key, sizeof key);
    } else {
        dev_ref r;
        tai_device *d = NULL;
        TinyAIStatus st = tai_plugin_device_at(index - 1 - tai_opencl_count(), &r.pl, &r.index);
        if (st == TINYAI_OK) st = open_ref(r, cacheDir, &d);
        if (st != TINYAI_OK) return st;
        tai_calib_key(d, key, sizeof key);
        tai_device_close(d);
    }
    tai_calib c;
    TinyAIStatus st = tai_calib_load(path, key, &c);
    if (st == TINYAI_OK) to_public(&c, out);
    return st;
}

TinyAIStatus tinyaiCalibrateDevice(const char *cacheDir, int index, int threads,
                                   TinyAIDeviceCalibration *out) {
    if (!cacheDir || !*cacheDir || !out)
        return tai_error(TINYAI_ERR_INVALID_ARG, "tinyaiCalibrateDevice: NULL argument");
    char path[4096];
    snprintf(path, sizeof path, "%s/devices.json", cacheDir);
    tai_device *d = NULL;
    const int ncl = tai_opencl_count();
    TinyAIStatus st;
    if (index == 0) {
        st = tai_cpu_device_open(NULL, all_cores(threads), &d);
    } else if (index <= ncl) {
        st = tai_opencl_device_open(index - 1, cacheDir, &d);
    } else {
        dev_ref r;
        st = tai_plugin_device_at(index - 1 - ncl, &r.pl, &r.index);
        if (st == TINYAI_OK) st = open_ref(r, cacheDir, &d);
    }
    if (st != TINYAI_OK) return st;
    tai_calib c;
    st = tai_calibrate(d, &c);
    if (st == TINYAI_OK) st = tai_calib_save(path, &c);
    if (st == TINYAI_OK && index > 0 && index <= ncl) {
        /* record (or add to) the machine's OpenCL list */
        char keys[MAX_CL][384];
        int nk = 0;
        if (tai_calib_opencl_list(path, keys, MAX_CL, &nk) != TINYAI_OK) nk = 0;
        tinyaiClearError();
        bool have = false;
        for (int k = 0; k < nk; k++) have |= !strcmp(keys[k], c.key);
        if (!have && nk < MAX_CL) snprintf(keys[nk++], sizeof keys[0], "%s", c.key);
        st = tai_calib_set_opencl_list(path, keys, nk);
    }
    tai_device_close(d);
    if (st != TINYAI_OK) return st;
    to_public(&c, out);
    return TINYAI_OK;
}
