/* offload/cost.c: calibration, the cost model and exact placement (layer:
 * offload); see cost.h. */
#include "offload/cost.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/cpuload.h"
#include "core/error.h"
#include "core/pages.h"
#include "core/thread.h"
#include "offload/host.h"

#define MB ((size_t)1 << 20)

/* the types measured; the others a device claims take a measured one's
 * rates (stand_in) */
static const tai_type kTypes[] = {TAI_TYPE_F32, TAI_TYPE_F16, TAI_TYPE_Q8_0, TAI_TYPE_Q4_0,
                                  TAI_TYPE_Q4_1, TAI_TYPE_Q4_K, TAI_TYPE_Q6_K};
#define NTYPES (sizeof kTypes / sizeof *kTypes)

void tai_calib_key(const tai_device *d, char *buf, size_t cap) {
    snprintf(buf, cap, "%s|%s|%s", d->info.name, d->info.model, d->info.version);
}

/* ---- calibration ---- */

typedef struct {
    tai_device *d;
    tai_dbuf *b[80];
    int n;
} bufs;

static TinyAIStatus get(bufs *B, size_t bytes, tai_dref *out) {
    if (B->n == (int)(sizeof B->b / sizeof *B->b))
        return tai_error(TINYAI_ERR_INTERNAL, "calibration: too many buffers");
    tai_dbuf *b = NULL;
    const int rc = B->d->ops->buf_alloc(B->d->ctx, bytes ? bytes : 64, &b);
    if (rc != 0) return tai_dev_fail(B->d, "buf_alloc (calibration)", rc);
    B->b[B->n++] = b;
    if (B->d->info.unified) {
        *out = tai_dref_host(b);
    } else {
        out->buf = b;
        out->off = 0;
    }
    return TINYAI_OK;
}

static void put_all(bufs *B) {
    for (int i = 0; i < B->n; i++) B->d->ops->buf_free(B->d->ctx, B->b[i]);
    B->n = 0;
}

static TinyAIStatus upload(tai_device *d, tai_dref r, const void *src, size_t bytes) {
    TinyAIStatus st = tai_dev_upload(d, r, src, bytes);
    return st == TINYAI_OK ? tai_dev_sync(d) : st;
}

/* Packed weights of type t, rows x n, of small random values. The values
 * repeat every 61 rows (as the pattern does), so only the first 61 rows are
 * quantized and the rest copied: a K-quant's search for its scales over a
 * whole 4096 x 4096 matrix took most of a second per type. */
static unsigned char *packed(tai_type t, int64_t rows, int64_t n) {
    const size_t rb = tai_type_row_bytes(t, n), pb = tai_pack_bytes(t, rows, n);
    unsigned char *rm = malloc(rb * (size_t)rows), *pk = aligned_alloc(64, (pb + 63) / 64 * 64);
    float *row = malloc((size_t)n * sizeof *row);
    if (!rm || !pk || !row) {
        free(rm);
        free(pk);
        free(row);
        return NULL;
    }
    for (int64_t r = 0; r < rows; r++) {
        if (r >= 61) {
            memcpy(rm + (size_t)r * rb, rm + (size_t)(r % 61) * rb, rb);
            continue;
        }
        for (int64_t k = 0; k < n; k++) row[k] = (float)((r * 131 + k * 71) % 61) / 61.0f - 0.5f;
        tai_quantize_row(t, row, rm + (size_t)r * rb, n);
    }
    tai_host_pack_matrix(NULL, t, rm, rows, n, pk);
    free(rm);
    free(row);
    return pk;
}

/* Runs fn once untimed (a first run over the budget counts as a sample),
 * then timed until `budget` seconds have passed, at most 9 times and at
 * least 3 while they take under 4 x budget (one slow run, a moment of
 * other load, must not be the figure); the median seconds of one run, or
 * < 0. A first run over twice the budget is the figure itself. */
typedef TinyAIStatus (*run_fn)(void *ctx);
static double timed(run_fn fn, void *ctx, double budget) {
    const double t0 = tai_now_s();
    if (fn(ctx) != TINYAI_OK) return -1;
    /* a slow device (a scalar plugin, an FPGA): its first run, well over
     * the budget, is the figure; repeating it would take seconds */
    const double first = tai_now_s() - t0;
    if (first > 2 * budget) return first;
    double v[9];
    int k = 0;
    /* a first run over the budget (a slow device) is one of the samples:
     * repeating it only to discard it cost a fifth of a slow device's
     * calibration; the median of three stands a slow first run */
    if (first > budget) v[k++] = first;
    const double start = tai_now_s();
    while (k < 9 && (k == 0 || tai_now_s() - start < (k < 3 ? 4 * budget : budget))) {
        const double t0 = tai_now_s();
        if (fn(ctx) != TINYAI_OK) return -1;
        v[k++] = tai_now_s() - t0;
    }
    for (int i = 1; i < k; i++)
        for (int j = i; j > 0 && v[j] < v[j - 1]; j--) {
            const double x = v[j];
            v[j] = v[j - 1];
            v[j - 1] = x;
        }
    return v[k / 2];
}

typedef struct {
    tai_device *d;
    tai_type t;
    const tai_dref *w;
    int copies;
    int64_t rows, n, ncols;
    tai_dref x, y, s, a, b;
    int ops;
    int64_t elems;
    void *host;
    size_t bytes;
} job;

static TinyAIStatus run_matmul(void *ctx) {
    job *j = ctx;
    for (int c = 0; c < j->copies; c++) {
        TinyAIStatus st = tai_dev_matmul(j->d, j->t, j->w[c], j->rows, j->n, j->x, j->y, j->ncols, j->s);
        if (st != TINYAI_OK) return st;
    }
    return tai_dev_sync(j->d);
}

static TinyAIStatus run_adds(void *ctx) {
    job *j = ctx;
    for (int i = 0; i < j->ops; i++) {
        TinyAIStatus st = tai_dev_add(j->d, j->a, j->b, j->elems);
        if (st != TINYAI_OK) return st;
    }
    return tai_dev_sync(j->d);
}

static TinyAIStatus run_sync(void *ctx) { return tai_dev_sync(((job *)ctx)->d); }

static TinyAIStatus run_up(void *ctx) {
    job *j = ctx;
    return upload(j->d, j->a, j->host, j->bytes);
}

static TinyAIStatus run_down(void *ctx) {
    job *j = ctx;
    return tai_dev_download(j->d, j->host, j->a, j->bytes);
}

#define MAX_COPIES 128

/* Faults [p, p + n) in from every core at once. A fresh region's first
 * touch is the slow part of the calibration where the hypervisor backs
 * guest memory lazily (seconds per GiB for huge pages on one thread); the
 * faults scale with the threads. */
typedef struct {
    unsigned char *p;
    size_t n;
} fault_part;

static void *fault_worker(void *arg) {
    const fault_part *f = arg;
    if (tai_populate_write(f->p, f->n) != 0) /* an older kernel: touch */
        for (size_t i = 0; i < f->n; i += 4096) f->p[i] = 0;
    return NULL;
}

static void fault_parallel(unsigned char *p, size_t n) {
    long nt = sysconf(_SC_NPROCESSORS_ONLN);
    if (nt < 1) nt = 1;
    if (nt > 16) nt = 16;
    /* parts of whole 2 MiB (huge) pages; the region starts on one */
    size_t part = (n / (size_t)nt + (2 * MB - 1)) / (2 * MB) * (2 * MB);
    if (part == 0) part = 2 * MB;
    pthread_t th[16];
    fault_part fp[16];
    bool started[16] = {false};
    int np = 0;
    for (size_t off = 0; off < n && np < 16; off += part, np++) {
        fp[np] = (fault_part){p + off, off + part > n ? n - off : part};
        started[np] = np > 0 && tai_thread_create(&th[np], fault_worker, &fp[np]) == 0;
        if (np > 0 && !started[np]) fault_worker(&fp[np]);
    }
    if (np > 0) fault_worker(&fp[0]);
    for (int i = 1; i < np; i++)
        if (started[i]) pthread_join(th[i], NULL);
}

static size_t weight_total(const tai_device *d) {
    if (!d->info.unified) return 128 * MB; /* above a GPU's L2 */
    /* the CPU: more than its last-level cache, as decoding reads the weights */
    long l3 = sysconf(_SC_LEVEL3_CACHE_SIZE);
    const size_t twice = l3 > 0 ? 2 * (size_t)l3 : 0;
    return twice > 256 * MB ? twice : 256 * MB;
}

TinyAIStatus tai_calibrate(tai_device *d, tai_calib *out) {
    memset(out, 0, sizeof *out);
    tai_calib_key(d, out->key, sizeof out->key);
    const tai_cpu_mark load0 = tai_cpu_mark_now();
    out->types = d->info.ops & TAI_OP_MATMUL ? d->info.types : 0;
    out->unified = d->info.unified;
    out->mem_bytes = d->info.unified ? 0 : d->info.mem_total;
    const long l3 = d->info.unified ? sysconf(_SC_LEVEL3_CACHE_SIZE) : 0;
    out->llc_bytes = l3 > 0 ? (uint64_t)l3 : 0;
    bufs B = {d, {0}, 0};
    TinyAIStatus st = TINYAI_OK;
    const int64_t R = 4096, N = 4096, S = 1024, C = 64, CB = 512;
    float *host = calloc((size_t)(N * C > 16 * MB ? N * C : 16 * MB), sizeof(float));
    if (!host) return tai_error(TINYAI_ERR_NOMEM, "calibration: out of memory");
    for (size_t i = 0; i < 16 * MB; i++) host[i] = (float)(i % 13) * 0.01f;
    /* On a device that shares the host's memory, the copies of every type
     * live in one region allocated (and faulted in, in huge pages) once:
     * faulting a fresh gigabyte for each type took seconds. */
    bufs RB = {d, {0}, 0};
    const size_t total = weight_total(d);
    unsigned char *region = NULL;
    if (d->info.unified && (d->info.ops & TAI_OP_MATMUL)) {
        tai_dref r;
        st = get(&RB, total, &r);
        if (st == TINYAI_OK) {
            region = tai_dref_host_ptr(r);
            fault_parallel(region, total);
        }
    }
    for (size_t ti = 0; st == TINYAI_OK && ti < NTYPES; ti++) {
        const tai_type t = kTypes[ti];
        if (!(d->info.types & (1u << t)) || !(d->info.ops & TAI_OP_MATMUL)) continue;
        /* batch 1: copies of a 4096 x 4096 matrix read in turn */
        const size_t pb = tai_pack_bytes(t, R, N), stride = (pb + 4095) / 4096 * 4096;
        int copies = (int)(region ? total / stride : (total + pb - 1) / pb);
        if (copies > MAX_COPIES) copies = MAX_COPIES;
        if (copies < 1) copies = 1;
        unsigned char *w = packed(t, R, N);
        tai_dref wr[MAX_COPIES], x, y, s;
        if (!w) st = tai_error(TINYAI_ERR_NOMEM, "calibration: out of memory");
        for (int c = 0; st == TINYAI_OK && c < copies; c++) {
            if (region) {
                wr[c] = tai_dref_host(region + (size_t)c * stride);
                memcpy(region + (size_t)c * stride, w, pb);
            } else {
                st = get(&B, pb, &wr[c]);
                if (st == TINYAI_OK) st = upload(d, wr[c], w, pb);
            }
        }
        free(w);
        const size_t sb = tai_dev_matmul_scratch(d, t, N, C);
        if (st == TINYAI_OK) st = get(&B, (size_t)(N * C) * 4, &x);
        if (st == TINYAI_OK) st = upload(d, x, host, (size_t)(N * C) * 4);
        if (st == TINYAI_OK) st = get(&B, (size_t)(R * C) * 4, &y);
        if (st == TINYAI_OK) st = get(&B, sb, &s);
        if (st == TINYAI_OK) {
            job j = {d, t, wr, copies, R, N, 1, x, y, s, {0}, {0}, 0, 0, NULL, 0};
            const double sec = timed(run_matmul, &j, 0.08);
            if (sec <= 0) st = tai_error(TINYAI_ERR_DEVICE, "calibration of %s failed", d->info.name);
            else out->mv_gbs[t] = (double)pb * copies / sec / 1e9;
            /* the same over copies that fit a quarter of the LLC (a
             * device with no known LLC never uses it: the streamed rate
             * stands for it, unmeasured) */
            int small = out->llc_bytes ? (int)(out->llc_bytes / 4 / pb) : 0;
            if (small < 1) small = 1;
            if (small > copies) small = copies;
            j.copies = small;
            const double sec2 = st == TINYAI_OK && out->llc_bytes ? timed(run_matmul, &j, 0.05) : 0;
            if (st == TINYAI_OK && !out->llc_bytes)
                out->mv_llc_gbs[t] = out->mv_gbs[t];
            else if (st == TINYAI_OK && sec2 <= 0)
                st = tai_error(TINYAI_ERR_DEVICE, "calibration of %s failed", d->info.name);
            else if (st == TINYAI_OK)
                out->mv_llc_gbs[t] = (double)pb * small / sec2 / 1e9;
        }
        put_all(&B);
        /* 64 and 512 columns on a 1024 x 1024 matrix: compute */
        w = st == TINYAI_OK ? packed(t, S, S) : NULL;
        const size_t qb = tai_pack_bytes(t, S, S), sb2 = tai_dev_matmul_scratch(d, t, S, CB);
        if (st == TINYAI_OK && !w) st = tai_error(TINYAI_ERR_NOMEM, "calibration: out of memory");
        if (st == TINYAI_OK) st = get(&B, qb, &wr[0]);
        if (st == TINYAI_OK) st = upload(d, wr[0], w, qb);
        free(w);
        if (st == TINYAI_OK) st = get(&B, (size_t)(S * CB) * 4, &x);
        if (st == TINYAI_OK) st = upload(d, x, host, (size_t)(S * CB) * 4);
        if (st == TINYAI_OK) st = get(&B, (size_t)(S * CB) * 4, &y);
        if (st == TINYAI_OK) st = get(&B, sb2, &s);
        for (int big = 0; st == TINYAI_OK && big < 2; big++) {
            const int64_t cols = big ? CB : C;
            /* where 64 columns took over a tenth of a second, 512 would
             * take a second: the rate at 64 stands for both */
            if (big && 2.0 * (double)S * S * C / (out->mm_gflops[t] * 1e9) > 0.1) {
                out->mm_big_gflops[t] = out->mm_gflops[t];
                break;
            }
            job j = {d, t, wr, 1, S, S, cols, x, y, s, {0}, {0}, 0, 0, NULL, 0};
            const double sec = timed(run_matmul, &j, 0.05);
            if (sec <= 0) {
                st = tai_error(TINYAI_ERR_DEVICE, "calibration of %s failed", d->info.name);
            } else {
                const double r = 2.0 * (double)S * S * cols / sec / 1e9;
                if (big) out->mm_big_gflops[t] = r;
                else out->mm_gflops[t] = r;
            }
        }
        put_all(&B);
    }
    put_all(&RB);
    /* the fixed cost of a matrix product: 64 products of a 64 x 256
     * matrix (a few KiB, cached) at batch 1, per product */
    for (size_t ti = 0; st == TINYAI_OK && ti < NTYPES; ti++) {
        const tai_type t = kTypes[ti];
        if (!(d->info.types & (1u << t)) || !(d->info.ops & TAI_OP_MATMUL)) continue;
        const int64_t r = 64, k = 256;
        unsigned char *w = packed(t, r, k);
        const size_t pb = tai_pack_bytes(t, r, k), sb = tai_dev_matmul_scratch(d, t, k, 1);
        tai_dref wr[64], x, y, s;
        if (!w) st = tai_error(TINYAI_ERR_NOMEM, "calibration: out of memory");
        if (st == TINYAI_OK) st = get(&B, pb, &wr[0]);
        if (st == TINYAI_OK) st = upload(d, wr[0], w, pb);
        free(w);
        for (int c = 1; c < 64; c++) wr[c] = wr[0];
        if (st == TINYAI_OK) st = get(&B, (size_t)k * 4, &x);
        if (st == TINYAI_OK) st = upload(d, x, host, (size_t)k * 4);
        if (st == TINYAI_OK) st = get(&B, (size_t)r * 4, &y);
        if (st == TINYAI_OK) st = get(&B, sb ? sb : 64, &s);
        if (st == TINYAI_OK) {
            job j = {d, t, wr, 64, r, k, 1, x, y, s, {0}, {0}, 0, 0, NULL, 0};
            const double sec = timed(run_matmul, &j, 0.02);
            if (sec <= 0) st = tai_error(TINYAI_ERR_DEVICE, "calibration of %s failed", d->info.name);
            else out->mm_op_us = sec / 64 * 1e6;
        }
        put_all(&B);
        break;
    }
    /* synchronisation, small ops, elementwise bandwidth, transfers */
    tai_dref a, b;
    const int64_t big = 16 * (int64_t)MB / 4; /* 4M floats: 16 MB */
    if (st == TINYAI_OK) st = get(&B, (size_t)big * 4, &a);
    if (st == TINYAI_OK) st = get(&B, (size_t)big * 4, &b);
    if (st == TINYAI_OK) st = upload(d, a, host, (size_t)big * 4);
    if (st == TINYAI_OK) st = upload(d, b, host, (size_t)big * 4);
    if (st == TINYAI_OK) {
        job j = {d, 0, NULL, 0, 0, 0, 0, {0}, {0}, {0}, a, b, 1, 256, host, 0};
        const double sync = timed(run_sync, &j, 0.02);
        /* a device without `add` (a plugin may run only some ops) never
         * runs a layer's small ops: their figures stay nominal */
        const bool adds = (d->info.ops & TAI_OP_ADD) != 0;
        const double one = adds ? timed(run_adds, &j, 0.05) : 0;
        j.ops = 64;
        const double many = adds ? timed(run_adds, &j, 0.1) : 0;
        j.ops = 4;
        j.elems = big;
        const double ew = adds ? timed(run_adds, &j, 0.1) : 1;
        if (sync < 0 || one < 0 || many < 0 || ew < 0) {
            st = tai_error(TINYAI_ERR_DEVICE, "calibration of %s failed", d->info.name);
        } else {
            out->sync_us = sync * 1e6;
            out->op_us = adds ? (many - one) / 63.0 * 1e6 : 1.0;
            if (out->op_us < 0.1) out->op_us = 0.1;
            out->elem_gbs = adds ? 3.0 * 4.0 * (double)big * 4 / ew / 1e9 : 1e-3;
        }
        if (st == TINYAI_OK && !d->info.unified) {
            j.bytes = (size_t)big * 4;
            const double up = timed(run_up, &j, 0.1), down = timed(run_down, &j, 0.1);
            j.bytes = 4096;
            const double small = timed(run_up, &j, 0.02);
            if (up < 0 || down < 0 || small < 0) {
                st = tai_error(TINYAI_ERR_DEVICE, "calibration of %s failed", d->info.name);
            } else {
                out->h2d_gbs = (double)big * 4 / up / 1e9;
                out->d2h_gbs = (double)big * 4 / down / 1e9;
                out->xfer_us = small * 1e6;
            }
        }
    }
    put_all(&B);
    free(host);
    out->other_cores = tai_cpu_other_cores(load0, tai_cpu_mark_now());
    return st;
}

bool tai_calib_busy(const tai_calib *c, long ncpu) {
    return c->other_cores > 0.3 + 0.1 * (double)(ncpu > 0 ? ncpu : 1);
}

/* ---- the file ---- */

#define FILE_TAG "tinyai_device_calibration"
#define FILE_VERSION 1

static cJSON *read_json(const char *path, TinyAIStatus *st) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        *st = tai_error(TINYAI_ERR_IO, "%s: %s", path, strerror(errno));
        return NULL;
    }
    char *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len + 4096 + 1 > cap) {
            cap = cap ? cap * 2 : 65536;
            if (cap > (16u << 20)) break; /* no calibration is this large */
            char *nb = realloc(buf, cap);
            if (!nb) break;
            buf = nb;
        }
        const size_t got = fread(buf + len, 1, cap - len - 1, f);
        len += got;
        if (got == 0) break;
    }
    fclose(f);
    if (!buf) {
        *st = tai_error(TINYAI_ERR_NOMEM, "%s: out of memory", path);
        return NULL;
    }
    buf[len] = 0;
    cJSON *j = cJSON_ParseWithLength(buf, len);
    free(buf);
    cJSON *tag = j ? cJSON_GetObjectItemCaseSensitive(j, FILE_TAG) : NULL;
    if (!j || !cJSON_IsNumber(tag) || tag->valueint != FILE_VERSION ||
        !cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(j, "devices"))) {
        cJSON_Delete(j);
        *st = tai_error(TINYAI_ERR_FORMAT, "%s: not a TinyAI device calibration (version %d)",
                        path, FILE_VERSION);
        return NULL;
    }
    *st = TINYAI_OK;
    return j;
}

static bool num(const cJSON *o, const char *name, double lo, double hi, double *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= lo && v->valuedouble <= hi)) return false;
    *out = v->valuedouble;
    return true;
}

TinyAIStatus tai_calib_load(const char *path, const char *key, tai_calib *out) {
    TinyAIStatus st;
    cJSON *j = read_json(path, &st);
    if (!j) return st;
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "devices"), key);
    if (!e) {
        cJSON_Delete(j);
        return tai_error(TINYAI_ERR_IO, "%s: no calibration of %s", path, key);
    }
    memset(out, 0, sizeof *out);
    snprintf(out->key, sizeof out->key, "%s", key);
    bool ok = cJSON_IsObject(e);
    const cJSON *mv = cJSON_GetObjectItemCaseSensitive(e, "mv_gbs"),
                *mm = cJSON_GetObjectItemCaseSensitive(e, "mm_gflops"),
                *mb = cJSON_GetObjectItemCaseSensitive(e, "mm_512_gflops"),
                *ml = cJSON_GetObjectItemCaseSensitive(e, "mv_llc_gbs");
    ok = ok && cJSON_IsObject(mv) && cJSON_IsObject(mm) && cJSON_IsObject(mb) && cJSON_IsObject(ml);
    int have = 0;
    for (size_t i = 0; ok && i < NTYPES; i++) {
        const char *tn = tai_type_name(kTypes[i]);
        double a = 0, b = 0, c = 0, dd = 0;
        const bool ha = num(mv, tn, 1e-6, 1e6, &a), hb = num(mm, tn, 1e-6, 1e8, &b),
                   hc = num(mb, tn, 1e-6, 1e8, &c), hd = num(ml, tn, 1e-6, 1e6, &dd);
        if (ha != hb || ha != hc || ha != hd) ok = false;
        if (ha && hb && hc && hd) {
            out->mv_gbs[kTypes[i]] = a;
            out->mv_llc_gbs[kTypes[i]] = dd;
            out->mm_gflops[kTypes[i]] = b;
            out->mm_big_gflops[kTypes[i]] = c;
            have++;
        }
    }
    double mem = 0, uni = 0, llc = 0, types = 0;
    /* a calibration from before the type list: the types measured */
    if (ok && !cJSON_GetObjectItemCaseSensitive(e, "types")) {
        for (size_t i = 0; i < NTYPES; i++)
            if (out->mv_gbs[kTypes[i]] > 0) out->types |= 1u << kTypes[i];
    } else if (ok && num(e, "types", 0, 4294967295.0, &types)) {
        out->types = (uint32_t)types;
    } else {
        ok = false;
    }
    ok = ok && have > 0 && num(e, "op_us", 0, 1e6, &out->op_us) &&
         num(e, "sync_us", 0, 1e7, &out->sync_us) && num(e, "elem_gbs", 1e-6, 1e6, &out->elem_gbs) &&
         num(e, "h2d_gbs", 0, 1e6, &out->h2d_gbs) && num(e, "d2h_gbs", 0, 1e6, &out->d2h_gbs) &&
         num(e, "xfer_us", 0, 1e7, &out->xfer_us) && num(e, "mem_bytes", 0, 1e18, &mem) &&
         num(e, "llc_bytes", 0, 1e15, &llc) &&
         num(e, "unified", 0, 1, &uni);
    ok = ok && (uni == 1 || (out->h2d_gbs > 0 && out->d2h_gbs > 0));
    /* a calibration from before mm_op_us was measured: the small op's cost */
    if (ok && !cJSON_GetObjectItemCaseSensitive(e, "mm_op_us")) out->mm_op_us = out->op_us;
    else ok = ok && num(e, "mm_op_us", 0, 1e6, &out->mm_op_us);
    /* recorded since the other load was measured: optional */
    if (!num(e, "other_cores", 0, 1e4, &out->other_cores)) out->other_cores = -1;
    cJSON_Delete(j);
    if (!ok)
        return tai_error(TINYAI_ERR_FORMAT, "%s: the calibration of %s has missing or impossible figures",
                         path, key);
    out->mem_bytes = (uint64_t)mem;
    out->llc_bytes = (uint64_t)llc;
    out->unified = uni == 1;
    return TINYAI_OK;
}

/* The file's JSON, or a new empty one where there is none or it is not
 * ours (it will be replaced). */
static cJSON *open_or_new(const char *path) {
    TinyAIStatus st;
    cJSON *j = read_json(path, &st);
    if (j) return j;
    tinyaiClearError();
    j = cJSON_CreateObject();
    if (!j || !cJSON_AddNumberToObject(j, FILE_TAG, FILE_VERSION) ||
        !cJSON_AddObjectToObject(j, "devices")) {
        cJSON_Delete(j);
        return NULL;
    }
    return j;
}

static TinyAIStatus write_json(const char *path, cJSON *j) {
    char *text = cJSON_Print(j);
    if (!text) return tai_error(TINYAI_ERR_NOMEM, "out of memory");
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.%ld.tmp", path, (long)getpid());
    FILE *f = fopen(tmp, "wb");
    TinyAIStatus st = TINYAI_OK;
    if (!f) {
        st = tai_error(TINYAI_ERR_IO, "cannot write %s: %s", tmp, strerror(errno));
    } else {
        const size_t n = strlen(text);
        const bool wrote = fwrite(text, 1, n, f) == n && fputc('\n', f) != EOF;
        if (fclose(f) != 0 || !wrote || rename(tmp, path) != 0) {
            st = tai_error(TINYAI_ERR_IO, "cannot write %s: %s", path, strerror(errno));
            unlink(tmp);
        }
    }
    cJSON_free(text);
    return st;
}

TinyAIStatus tai_calib_opencl_list(const char *path, char (*keys)[384], int max, int *n) {
    TinyAIStatus st;
    cJSON *j = read_json(path, &st);
    if (!j) return st;
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(j, "opencl_devices");
    if (!a) {
        cJSON_Delete(j);
        return tai_error(TINYAI_ERR_IO, "%s: no OpenCL devices recorded", path);
    }
    *n = 0;
    const cJSON *e;
    bool ok = cJSON_IsArray(a);
    cJSON_ArrayForEach(e, a) {
        if (!ok) break;
        if (!cJSON_IsString(e) || *n >= max) {
            ok = false;
            break;
        }
        snprintf(keys[(*n)++], 384, "%s", e->valuestring);
    }
    cJSON_Delete(j);
    return ok ? TINYAI_OK : tai_error(TINYAI_ERR_FORMAT, "%s: malformed OpenCL device list", path);
}

TinyAIStatus tai_calib_set_opencl_list(const char *path, char (*keys)[384], int n) {
    cJSON *j = open_or_new(path);
    if (!j) return tai_error(TINYAI_ERR_NOMEM, "out of memory");
    cJSON_DeleteItemFromObjectCaseSensitive(j, "opencl_devices");
    cJSON *a = cJSON_AddArrayToObject(j, "opencl_devices");
    bool ok = a != NULL;
    for (int i = 0; ok && i < n; i++) {
        cJSON *s = cJSON_CreateString(keys[i]);
        ok = s && cJSON_AddItemToArray(a, s);
    }
    TinyAIStatus st = ok ? write_json(path, j) : tai_error(TINYAI_ERR_NOMEM, "out of memory");
    cJSON_Delete(j);
    return st;
}

TinyAIStatus tai_calib_save(const char *path, const tai_calib *c) {
    TinyAIStatus st;
    cJSON *j = open_or_new(path);
    if (!j) return tai_error(TINYAI_ERR_NOMEM, "out of memory");
    cJSON *devs = cJSON_GetObjectItemCaseSensitive(j, "devices");
    cJSON_DeleteItemFromObjectCaseSensitive(devs, c->key);
    cJSON *e = cJSON_AddObjectToObject(devs, c->key);
    cJSON *mv = e ? cJSON_AddObjectToObject(e, "mv_gbs") : NULL;
    cJSON *mm = e ? cJSON_AddObjectToObject(e, "mm_gflops") : NULL;
    cJSON *mb = e ? cJSON_AddObjectToObject(e, "mm_512_gflops") : NULL;
    cJSON *ml = e ? cJSON_AddObjectToObject(e, "mv_llc_gbs") : NULL;
    bool ok = mv && mm && mb && ml;
    for (size_t i = 0; ok && i < NTYPES; i++)
        if (c->mv_gbs[kTypes[i]] > 0)
            ok = cJSON_AddNumberToObject(mv, tai_type_name(kTypes[i]), c->mv_gbs[kTypes[i]]) &&
                 cJSON_AddNumberToObject(mm, tai_type_name(kTypes[i]), c->mm_gflops[kTypes[i]]) &&
                 cJSON_AddNumberToObject(mb, tai_type_name(kTypes[i]), c->mm_big_gflops[kTypes[i]]) &&
                 cJSON_AddNumberToObject(ml, tai_type_name(kTypes[i]), c->mv_llc_gbs[kTypes[i]]);
    ok = ok && cJSON_AddNumberToObject(e, "op_us", c->op_us) &&
         cJSON_AddNumberToObject(e, "mm_op_us", c->mm_op_us) &&
         cJSON_AddNumberToObject(e, "sync_us", c->sync_us) &&
         cJSON_AddNumberToObject(e, "elem_gbs", c->elem_gbs) &&
         cJSON_AddNumberToObject(e, "h2d_gbs", c->h2d_gbs) &&
         cJSON_AddNumberToObject(e, "d2h_gbs", c->d2h_gbs) &&
         cJSON_AddNumberToObject(e, "xfer_us", c->xfer_us) &&
         cJSON_AddNumberToObject(e, "mem_bytes", (double)c->mem_bytes) &&
         cJSON_AddNumberToObject(e, "llc_bytes", (double)c->llc_bytes) &&
         cJSON_AddNumberToObject(e, "unified", c->unified ? 1 : 0) &&
         cJSON_AddNumberToObject(e, "types", (double)c->types) &&
         (c->other_cores < 0 || cJSON_AddNumberToObject(e, "other_cores", c->other_cores));
    st = ok ? write_json(path, j) : tai_error(TINYAI_ERR_NOMEM, "out of memory");
    cJSON_Delete(j);
    return st;
}

/* ---- the model ---- */

/* The measured type whose rates stand for t's on this device: t itself
 * where measured, else the nearest kind (the unit-packed types: a
 * K-quant's, else a block type's; BF16: F16's), or -1. */
static int stand_in(const tai_calib *c, tai_type t) {
    if (c->mv_gbs[t] > 0) return (int)t;
    static const tai_type unit[] = {TAI_TYPE_Q4_K, TAI_TYPE_Q6_K, TAI_TYPE_Q4_0, TAI_TYPE_Q8_0,
                                    TAI_TYPE_Q4_1};
    static const tai_type half[] = {TAI_TYPE_F16, TAI_TYPE_F32};
    const tai_type *list = tai_type_is_unit(t) ? unit : t == TAI_TYPE_BF16 ? half : NULL;
    const int n = tai_type_is_unit(t) ? 5 : 2;
    for (int i = 0; list && i < n; i++)
        if (c->mv_gbs[list[i]] > 0) return (int)list[i];
    return -1;
}

double tai_cost_compute(const tai_calib *c, const tai_layer_cost *l, int n, int ctx,
                        uint64_t working_set) {
    double t = c->sync_us * 1e-6;
    /* the weights stay in the LLC between passes when they take at most
     * half of it (the activations and the rest of the process share it) */
    const bool cached = c->llc_bytes > 0 && working_set <= c->llc_bytes / 2;
    for (int i = 0; i < l->n_mats; i++) {
        if (!(c->types & (1u << l->type[i]))) return INFINITY;
        const int sty = stand_in(c, l->type[i]);
        if (sty < 0) return INFINITY;
        const tai_type ty = (tai_type)sty;
        const double bytes = (double)tai_pack_bytes(l->type[i], l->rows[i], l->n[i]);
        const double flops = 2.0 * (double)l->rows[i] * (double)l->n[i] * n;
        /* the rate for n columns: 64's below 64, 512's above 512, between
         * them in log n */
        double rate = c->mm_gflops[ty];
        if (n >= 512) rate = c->mm_big_gflops[ty];
        else if (n > 64) rate += (c->mm_big_gflops[ty] - rate) * log2((double)n / 64) / 3.0;
        const double bw = cached && c->mv_llc_gbs[ty] > 0 ? c->mv_llc_gbs[ty] : c->mv_gbs[ty];
        const double read = bytes / (bw * 1e9), comp = flops / (rate * 1e9);
        t += (read > comp ? read : comp) + c->mm_op_us * 1e-6;
    }
    t += l->n_ops * c->op_us * 1e-6;
    t += (double)l->elem_floats * n * 4.0 / (c->elem_gbs * 1e9);
    t += (double)l->kv_floats * ctx * n * 4.0 / (c->elem_gbs * 1e9);
    return t;
}

double tai_cost_transfer(const tai_calib *c, int64_t floats, int n, int to_device) {
    if (c->unified || floats <= 0) return 0;
    const double bw = to_device ? c->h2d_gbs : c->d2h_gbs;
    return c->xfer_us * 1e-6 + (double)floats * n * 4.0 / (bw * 1e9);
}

/* ---- placement ---- */

typedef struct {
    double cost;
    int prev;  /* label of the previous layer, -1 for the first */
    int dev;
} label;

int tai_place_solve(const tai_place_problem *p, int *dev, double *total) {
    const int L = p->n_layers, D = p->n_devs;
    if (L <= 0 || D <= 0 || D > 16) return -1;
    /* memory used per capped device, per label: mem[label][D] */
    size_t cap_labels = 1024, n = 0;
    label *lab = malloc(cap_labels * sizeof *lab);
    uint64_t *mem = malloc(cap_labels * (size_t)D * sizeof *mem);
    int *start = malloc(((size_t)L * D + 1) * sizeof *start); /* labels of (l, d): [start, end) */
    int *end = malloc(((size_t)L * D) * sizeof *end);
    int rc = 0;
    if (!lab || !mem || !start || !end) rc = -ENOMEM;
    const size_t MAX_LABELS = (size_t)1 << 22;
    for (int l = 0; rc == 0 && l < L; l++) {
        for (int d = 0; rc == 0 && d < D; d++) {
            const int cell = l * D + d;
            start[cell] = (int)n;
            const double c = p->cost[cell];
            const uint64_t m = p->mem[cell];
            if (!(c < INFINITY) || m > p->cap[d]) {
                end[cell] = (int)n;
                continue;
            }
            /* candidates: from every label of the previous layer (or the host) */
            const int from_n = l == 0 ? 1 : D;
            for (int f = 0; rc == 0 && f < from_n; f++) {
                const int pf = l == 0 ? 0 : f;
                const int a = l == 0 ? -1 : start[(l - 1) * D + f], b = l == 0 ? 0 : end[(l - 1) * D + f];
                for (int k = l == 0 ? -1 : a; k < b; k++) {
                    if (l > 0 && k < 0) continue;
                    double cost = (k >= 0 ? lab[k].cost : 0) + c +
                                  p->trans[((size_t)l * D + pf) * D + d];
                    if (l == L - 1) cost += p->tail[d];
                    uint64_t mv[16];
                    bool fits = true;
                    for (int q = 0; q < D; q++) {
                        mv[q] = (k >= 0 ? mem[(size_t)k * D + q] : 0) + (q == d ? m : 0);
                        if (mv[q] > p->cap[q]) fits = false;
                    }
                    if (!fits) continue;
                    /* dominated by a label of this cell? */
                    bool dom = false;
                    for (int o = start[cell]; o < (int)n && !dom; o++) {
                        if (lab[o].cost > cost) continue;
                        bool all = true;
                        for (int q = 0; q < D && all; q++)
                            if (p->cap[q] != UINT64_MAX && mem[(size_t)o * D + q] > mv[q]) all = false;
                        dom = all;
                    }
                    if (dom) continue;
                    /* drop the labels it dominates (swap-remove inside the cell) */
                    for (int o = start[cell]; o < (int)n;) {
                        bool all = lab[o].cost >= cost;
                        for (int q = 0; q < D && all; q++)
                            if (p->cap[q] != UINT64_MAX && mem[(size_t)o * D + q] < mv[q]) all = false;
                        if (all) {
                            n--;
                            lab[o] = lab[n];
                            memcpy(&mem[(size_t)o * D], &mem[n * (size_t)D], (size_t)D * sizeof *mem);
                        } else {
                            o++;
                        }
                    }
                    if (n == cap_labels) {
                        if (cap_labels >= MAX_LABELS) {
                            rc = -ENOMEM;
                            break;
                        }
                        cap_labels *= 2;
                        label *nl = realloc(lab, cap_labels * sizeof *lab);
                        uint64_t *nm = nl ? realloc(mem, cap_labels * (size_t)D * sizeof *mem) : NULL;
                        if (nl) lab = nl;
                        if (nm) mem = nm;
                        if (!nl || !nm) {
                            rc = -ENOMEM;
                            break;
                        }
                    }
                    lab[n].cost = cost;
                    lab[n].prev = k;
                    lab[n].dev = d;
                    memcpy(&mem[n * (size_t)D], mv, (size_t)D * sizeof *mem);
                    n++;
                }
            }
            end[cell] = (int)n;
        }
    }
    int best = -1;
    for (int d = 0; rc == 0 && d < D; d++)
        for (int k = start[(L - 1) * D + d]; k < end[(L - 1) * D + d]; k++)
            if (best < 0 || lab[k].cost < lab[best].cost) best = k;
    if (rc == 0 && best < 0) rc = -1;
    if (rc == 0) {
        *total = lab[best].cost;
        for (int l = L - 1, k = best; l >= 0; l--, k = lab[k].prev) dev[l] = lab[k].dev;
    }
    free(lab);
    free(mem);
    free(start);
    free(end);
    return rc;
}
