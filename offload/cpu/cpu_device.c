/*
 * offload/cpu/cpu_device.c: the CPU device (layer: offload).
 *
 * Every op runs on the calling thread and the pool's workers, on host
 * memory: the device is unified, a tai_dref is a host address (buf NULL),
 * and ops are done when they return (sync has nothing to wait for). Work is
 * split the way the forward pass split it before devices existed: the
 * matrix products by the kernels' driver, attention over (column, kv head)
 * items, the per-column steps over columns once there are enough of them to
 * be worth a dispatch (decoding's single column runs inline).
 */
#include "offload/cpu/cpu.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/error.h"
#include "kernels/kernels.h"

_Static_assert(TAI_CPU_MAX_PREFETCH == TAI_TUNE_MAX_PREFETCH, "one limit");

typedef struct {
    const tai_kernels *k; /* &mix */
    /* the kernels in use: each family's from the table of its ISA */
    tai_kernels mix;
    tai_isa level;                      /* the cap */
    tai_kernel_tuning tune;             /* the products' own tuning, */
    bool own_tune;                      /* if set (else the process's) */
    bool enabled[TAI_CPU_FAMILIES];     /* false: the portable kernel */
    tai_pool *pool;
    int threads;
    char err[256];
} cpu_dev;

/* Columns from which a per-column step is split across the pool, and
 * elements from which an elementwise one is (below: inline, cheaper than a
 * dispatch). */
#define PAR_COLS 4
#define PAR_ELEMS 16384

static int fail(cpu_dev *c, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(cpu_dev *c, int rc, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err, sizeof c->err, fmt, ap);
    va_end(ap);
    return rc;
}

/* A host address; NULL for a dref into a device buffer (the CPU has none of
 * its own: buf_alloc gives host memory, named by its address). */
static void *H(tai_dref r) { return tai_dref_host_ptr(r); }

#define HOST(c, r, what)                                                  \
    do {                                                                  \
        if ((r).buf || !(r).off)                                          \
            return fail((c), -EINVAL, "%s is not a host address", what);  \
    } while (0)

/* ---- identity, memory ---- */

static void cpu_destroy(void *dev) {
    cpu_dev *c = dev;
    tai_pool_destroy(c->pool);
    free(c);
}

static int cpu_info(void *dev, tai_device_info *out) {
    cpu_dev *c = dev;
    memset(out, 0, sizeof *out);
    snprintf(out->name, sizeof out->name, "cpu");
    const char *sig = tai_cpu_signature();
    const char *dash = strchr(sig, '-');
    snprintf(out->vendor, sizeof out->vendor, "%.*s", dash ? (int)(dash - sig) : 0, sig);
    snprintf(out->version, sizeof out->version, "kernels %s, %d threads", tai_isa_name(c->k->isa),
             c->threads);
    snprintf(out->model, sizeof out->model, "%s", *tai_cpu_brand() ? tai_cpu_brand() : sig);
    out->kind = TAI_DEVICE_CPU;
    out->unified = 1;
    const long page = sysconf(_SC_PAGESIZE), all = sysconf(_SC_PHYS_PAGES),
               avail = sysconf(_SC_AVPHYS_PAGES);
    out->mem_total = page > 0 && all > 0 ? (uint64_t)page * (uint64_t)all : 0;
    out->mem_free = page > 0 && avail > 0 ? (uint64_t)page * (uint64_t)avail : 0;
    out->ops = TAI_OP_ALL;
    for (int t = 0; t < TAI_TYPE_COUNT; t++)
        if (tai_type_valid(t) && c->k->gemm[t]) out->types |= 1u << t;
    return 0;
}

static const char *cpu_last_error(void *dev) { return ((cpu_dev *)dev)->err; }

/* Buffers of a few MiB and more are asked for in huge pages, as the weight
 * cache's are: a buffer the products stream through then reads as the
 * model's weights do (with 4 KiB pages the TLB misses cost a tenth of the
 * rate, and the calibration, which measures in these buffers, would
 * predict the weights' products that much slower than they run). */
#define HUGE_BYTES ((size_t)2 << 20)

static int cpu_buf_alloc(void *dev, size_t bytes, tai_dbuf **out) {
    cpu_dev *c = dev;
    const bool huge = bytes >= 2 * HUGE_BYTES;
    const size_t align = huge ? HUGE_BYTES : 64, n = (bytes + align - 1) / align * align;
    void *p = n ? aligned_alloc(align, n) : NULL;
    if (!p) return fail(c, -ENOMEM, "cannot allocate %zu bytes", bytes);
#ifdef MADV_HUGEPAGE
    if (huge) (void)madvise(p, n, MADV_HUGEPAGE);
#endif
    *out = p; /* host memory: the buffer is its address */
    return 0;
}

static void cpu_buf_free(void *dev, tai_dbuf *b) {
    (void)dev;
    free(b);
}

static int cpu_upload(void *dev, tai_dref dst, const void *src, size_t bytes) {
    HOST((cpu_dev *)dev, dst, "upload destination");
    memmove(H(dst), src, bytes);
    return 0;
}

static int cpu_download(void *dev, void *dst, tai_dref src, size_t bytes) {
    HOST((cpu_dev *)dev, src, "download source");
    memmove(dst, H(src), bytes);
    return 0;
}

static int cpu_sync(void *dev) {
    (void)dev;
    return 0;
}

static int cpu_copy(void *dev, tai_dref dst, tai_dref src, size_t bytes) {
    cpu_dev *c = dev;
    HOST(c, dst, "copy destination");
    HOST(c, src, "copy source");
    memmove(H(dst), H(src), bytes);
    return 0;
}

/* ---- matrix products ---- */

static size_t cpu_matmul_scratch(void *dev, int type, int64_t n, int64_t ncols) {
    (void)dev;
    return tai_type_valid(type) ? tai_matmul_scratch_bytes((tai_type)type, n, ncols) : 0;
}

/* The prompt products' (cpu_matmul_prompt): the tiles' where they run,
 * else the int8 product's. */
static size_t cpu_matmul_prompt_scratch(void *dev, int type, int64_t n, int64_t ncols) {
    const cpu_dev *c = dev;
    if (!tai_type_valid(type)) return 0;
    const size_t int8 = tai_matmul_scratch_bytes((tai_type)type, n, ncols);
    const size_t bf16 = c->k->isa == TAI_ISA_AVX512 && tai_bf16_ready()
                            ? tai_matmul_bf16_scratch_bytes(n, ncols, c->threads)
                            : 0;
    return int8 > bf16 ? int8 : bf16;
}

/* A product's arguments checked: a kernel for the type, host memory, a
 * shape the packing knows. 0 when they are fine. */
static int check_product(cpu_dev *c, int type, tai_dref w, int64_t rows, int64_t n, tai_dref x,
                         tai_dref y, int64_t ncols) {
    if (!tai_type_valid(type) || !c->k->gemm[type])
        return fail(c, -ENOTSUP, "no %s kernel", tai_type_name(type));
    HOST(c, w, "weights");
    HOST(c, x, "input");
    HOST(c, y, "output");
    if (rows <= 0 || ncols <= 0 || tai_pack_bytes((tai_type)type, rows, n) == 0)
        return fail(c, -EINVAL, "bad shape %lld x %lld x %lld columns (%s)", (long long)rows,
                    (long long)n, (long long)ncols, tai_type_name(type));
    return 0;
}

static int cpu_matmul(void *dev, int type, tai_dref w, int64_t rows, int64_t n, tai_dref x,
                      tai_dref y, int64_t ncols, tai_dref scratch) {
    cpu_dev *c = dev;
    const int rc = check_product(c, type, w, rows, n, x, y, ncols);
    if (rc) return rc;
    tai_matmul(c->k, c->pool, (tai_type)type, H(w), rows, n, H(x), H(y), ncols, H(scratch));
    return 0;
}

/* A prompt's columns: on AMX-BF16 tiles for the types that have them
 * (kernels.h, tai_matmul_bf16: twice the int8 product's speed at a few
 * hundred columns), else as cpu_matmul; which one depends only on the
 * machine and the type. */
static int cpu_matmul_prompt(void *dev, int type, tai_dref w, int64_t rows, int64_t n, tai_dref x,
                             tai_dref y, int64_t ncols, tai_dref scratch) {
    cpu_dev *c = dev;
    const int rc = check_product(c, type, w, rows, n, x, y, ncols);
    if (rc) return rc;
    if (c->k->isa != TAI_ISA_AVX512 ||
        !tai_matmul_bf16(c->pool, (tai_type)type, H(w), rows, n, H(x), H(y), ncols, H(scratch)))
        tai_matmul(c->k, c->pool, (tai_type)type, H(w), rows, n, H(x), H(y), ncols, H(scratch));
    return 0;
}

_Static_assert(TAI_DEV_MATMUL_MANY == TAI_MATMUL_MANY, "the device's limit is the kernels'");

static int cpu_matmul_many(void *dev, int n_mats, const int *types, const tai_dref *w,
                           const int64_t *rows, int64_t n, tai_dref x, const tai_dref *y,
                           int64_t ncols, tai_dref scratch) {
    cpu_dev *c = dev;
    if (n_mats < 1 || n_mats > TAI_DEV_MATMUL_MANY)
        return fail(c, -EINVAL, "%d products of one input", n_mats);
    tai_type t[TAI_MATMUL_MANY];
    const void *wp[TAI_MATMUL_MANY];
    float *yp[TAI_MATMUL_MANY];
    for (int m = 0; m < n_mats; m++) {
        const int rc = check_product(c, types[m], w[m], rows[m], n, x, y[m], ncols);
        if (rc) return rc;
        t[m] = (tai_type)types[m];
        wp[m] = H(w[m]);
        yp[m] = H(y[m]);
    }
    if (!tai_matmul_many(c->k, c->pool, n_mats, t, wp, rows, n, H(x), yp, ncols, H(scratch)))
        for (int m = 0; m < n_mats; m++) /* the types prepare x differently */
            tai_matmul(c->k, c->pool, t[m], wp[m], rows[m], n, H(x), yp[m], ncols, H(scratch));
    return 0;
}

static size_t cpu_matmul_sparse_scratch(void *dev, int type, int64_t n, int64_t keep,
                                        int64_t ncols) {
    cpu_dev *c = dev;
    return tai_type_valid(type) ? tai_matmul_sparse_scratch_bytes((tai_type)type, n, keep, ncols,
                                                                  tai_pool_size(c->pool))
                                : 0;
}

static int cpu_matmul_sparse(void *dev, int type, tai_dref w, int64_t rows, int64_t n,
                             int64_t keep, tai_dref x, tai_dref y, int64_t ncols,
                             tai_dref scratch) {
    cpu_dev *c = dev;
    if (!tai_type_valid(type) || !c->k->gemm[type])
        return fail(c, -ENOTSUP, "no %s kernel", tai_type_name(type));
    HOST(c, w, "weights");
    HOST(c, x, "input");
    HOST(c, y, "output");
    if (rows <= 0 || ncols <= 0 || tai_sparse_bytes((tai_type)type, rows, n, keep) == 0)
        return fail(c, -EINVAL, "bad block-sparse shape %lld x %lld, %lld blocks kept, %lld "
                    "columns (%s)", (long long)rows, (long long)n, (long long)keep,
                    (long long)ncols, tai_type_name(type));
    tai_matmul_sparse(c->k, c->pool, (tai_type)type, H(w), rows, n, keep, H(x), H(y), ncols,
                      H(scratch));
    return 0;
}

/* ---- per-column and elementwise steps ---- */

typedef struct {
    int op; /* 0 rmsnorm, 1 rope, 2 rope (NeoX pairs), 3 add, 4 swiglu, 5 geglu, 6 bias */
    const tai_kernels *k;
    float *out, *x;
    const float *w;
    int64_t n, ncols, stride;
    float eps;
    int n_heads, head_dim, rot_dim;
} step_job;

/* ops 0..2 split the columns across threads, 3.. the elements */
#define STEP_ELEMS 3

static void step_range(const step_job *j, int64_t a, int64_t b) {
    switch (j->op) {
    case 0:
        for (int64_t c = a; c < b; c++) tai_rmsnorm(j->out + c * j->n, j->x + c * j->n, j->w, j->n, j->eps);
        break;
    case 1:
        for (int64_t c = a; c < b; c++)
            tai_rope_apply(j->x + c * j->stride, j->n_heads, j->head_dim, j->rot_dim,
                           j->w + c * j->rot_dim);
        break;
    case 2:
        for (int64_t c = a; c < b; c++)
            tai_rope_apply_neox(j->x + c * j->stride, j->n_heads, j->head_dim, j->rot_dim,
                                j->w + c * j->rot_dim);
        break;
    case 3: j->k->add(j->x + a, j->w + a, b - a); break;
    case 4: j->k->silu_mul(j->x + a, j->w + a, b - a); break;
    case 5: j->k->gelu_mul(j->x + a, j->w + a, b - a); break;
    case 6: { /* element i of the n * ncols: bias element i % n, one run
               * of whole or partial columns at a time (no division per
               * element) */
        float *restrict x = j->x;
        const float *restrict bias = j->w;
        const int64_t n = j->stride;
        for (int64_t i = a; i < b;) {
            const int64_t k = i % n, run = n - k < b - i ? n - k : b - i;
            for (int64_t e = 0; e < run; e++) x[i + e] += bias[k + e];
            i += run;
        }
        break;
    }
    }
}

static void step_worker(void *ctx, int ti, int nth) {
    const step_job *j = ctx;
    const int64_t len = j->op >= STEP_ELEMS ? j->n : j->ncols;
    step_range(j, len * ti / nth, len * (ti + 1) / nth);
}

static void step(cpu_dev *c, const step_job *j) {
    const bool par = j->op >= STEP_ELEMS ? j->n >= PAR_ELEMS : j->ncols >= PAR_COLS;
    if (par && c->threads > 1)
        tai_pool_run(c->pool, step_worker, (void *)j);
    else
        step_range(j, 0, j->op >= STEP_ELEMS ? j->n : j->ncols);
}

static int cpu_rmsnorm(void *dev, tai_dref out, tai_dref x, tai_dref w, int64_t n, int64_t ncols,
                       float eps) {
    cpu_dev *c = dev;
    HOST(c, out, "output");
    HOST(c, x, "input");
    HOST(c, w, "weights");
    step_job j = {.op = 0, .out = H(out), .x = H(x), .w = H(w), .n = n, .ncols = ncols, .eps = eps};
    step(c, &j);
    return 0;
}

static int cpu_add(void *dev, tai_dref x, tai_dref d, int64_t n) {
    cpu_dev *c = dev;
    HOST(c, x, "x");
    HOST(c, d, "addend");
    step_job j = {.op = 3, .k = c->k, .x = H(x), .w = H(d), .n = n};
    step(c, &j);
    return 0;
}

static int rope_op(cpu_dev *c, int op, tai_dref x, int64_t ncols, int64_t col_stride,
                   int n_heads, int head_dim, int rot_dim, tai_dref cs) {
    HOST(c, x, "x");
    HOST(c, cs, "angles");
    if (rot_dim <= 0 || rot_dim > head_dim || rot_dim % 2)
        return fail(c, -EINVAL, "rope: rotation of %d dimensions in heads of %d", rot_dim, head_dim);
    step_job j = {.op = op, .x = H(x), .w = H(cs), .ncols = ncols, .stride = col_stride,
                  .n_heads = n_heads, .head_dim = head_dim, .rot_dim = rot_dim};
    step(c, &j);
    return 0;
}

static int cpu_rope(void *dev, tai_dref x, int64_t ncols, int64_t col_stride, int n_heads,
                    int head_dim, int rot_dim, tai_dref cs) {
    return rope_op(dev, 1, x, ncols, col_stride, n_heads, head_dim, rot_dim, cs);
}

static int cpu_rope_neox(void *dev, tai_dref x, int64_t ncols, int64_t col_stride, int n_heads,
                         int head_dim, int rot_dim, tai_dref cs) {
    return rope_op(dev, 2, x, ncols, col_stride, n_heads, head_dim, rot_dim, cs);
}

static int glu_op(cpu_dev *c, int op, tai_dref gate, tai_dref up, int64_t n) {
    HOST(c, gate, "gate");
    HOST(c, up, "up");
    step_job j = {.op = op, .k = c->k, .x = H(gate), .w = H(up), .n = n};
    step(c, &j);
    return 0;
}

static int cpu_swiglu(void *dev, tai_dref gate, tai_dref up, int64_t n) {
    return glu_op(dev, 4, gate, up, n);
}

static int cpu_geglu(void *dev, tai_dref gate, tai_dref up, int64_t n) {
    return glu_op(dev, 5, gate, up, n);
}

static int cpu_add_bias(void *dev, tai_dref x, tai_dref b, int64_t n, int64_t ncols) {
    cpu_dev *c = dev;
    HOST(c, x, "x");
    HOST(c, b, "bias");
    if (n <= 0 || ncols < 0) return fail(c, -EINVAL, "bias of %lld floats", (long long)n);
    step_job j = {.op = 6, .x = H(x), .w = H(b), .n = n * ncols, .stride = n};
    step(c, &j);
    return 0;
}

/* ---- attention ---- */

/* Work item = (column, kv head): the query heads of one group against that
 * group's K/V columns of the column's own cache. Interleaved across
 * threads: later columns attend over more positions. */
typedef struct {
    const tai_kernels *k;
    float *out;
    const float *q;
    const tai_dref *kc, *vc;
    const tai_dref *ks, *vs; /* an 8-bit cache's scales (kind 2) */
    const int32_t *pos;
    int64_t ncols;
    int n_head, n_kv_head, head_dim;
    float *scratch;
    int64_t per_thread; /* floats of scratch per thread */
    int window;         /* > 0: the last `window` positions only */
    int kind;           /* the caches hold floats (0), binary16 values (1) or
                         * 8-bit codes with their scales (2) */
    int split;          /* query heads of a kv head per item (a divisor of
                         * the group; see att_split) */
} att_job;

/* Query heads per (column, kv head) item: the whole group, unless there
 * are several threads and fewer than two items per thread, then one head
 * per item. A head's
 * result is the same bits alone or with its group (every kernel computes
 * each query head on its own; the group shares only reads), so this only
 * spreads the work: Gemma 3 270M's single kv head ran one column's
 * attention on one thread, SmolLM2's three kv heads 2:1 on two. */
static int att_split(int64_t ncols, int n_head, int n_kv_head, int nth) {
    const int grp = n_head / n_kv_head;
    return nth == 1 || ncols * n_kv_head >= 2 * (int64_t)nth ? grp : 1;
}

/* Whether a job runs column by column (all of a column's heads in one
 * call, its rows swept once, a thread's columns its own): with a column
 * per thread or more, and the scratch for it. The same results bit for bit
 * as (column, kv head) items, which spread one column over the threads. */
static int att_by_column(const att_job *j, int nth) {
    if (j->ncols < nth) return 0;
    for (int64_t t = 0; t < j->ncols; t++)
        if (tai_attention_all_scratch((int64_t)j->pos[t] + 1, j->n_head, j->head_dim) >
            j->per_thread)
            return 0;
    return 1;
}

/* The fewest positions a group's first query sees for attention_multi. */
#define ATT_MULTI_MIN_GROUP 64

/* Column t's attention, all its heads in one call (att: the thread's
 * scratch). */
static void one_column(const att_job *j, int64_t t, float *att) {
    const int hd = j->head_dim;
    const int64_t qd = (int64_t)j->n_head * hd, kvd = (int64_t)j->n_kv_head * hd;
    const int64_t end = (int64_t)j->pos[t] + 1;
    const int64_t start = j->window > 0 && end > j->window ? end - j->window : 0;
    if (j->kind == 2)
        j->k->attention_q8_all(j->out + t * qd, j->q + t * qd, (const int8_t *)H(j->kc[t]) + start * kvd,
                               (const float *)H(j->ks[t]) + start * kvd / 32,
                               (const int8_t *)H(j->vc[t]) + start * kvd,
                               (const float *)H(j->vs[t]) + start * kvd / 32, end - start, kvd,
                               j->n_head, j->n_kv_head, hd, att);
    else if (j->kind)
        j->k->attention_f16_all(j->out + t * qd, j->q + t * qd, (const uint16_t *)H(j->kc[t]) + start * kvd,
                                (const uint16_t *)H(j->vc[t]) + start * kvd, end - start, kvd,
                                j->n_head, j->n_kv_head, hd, att);
    else
        j->k->attention_all(j->out + t * qd, j->q + t * qd, (const float *)H(j->kc[t]) + start * kvd,
                            (const float *)H(j->vc[t]) + start * kvd, end - start, kvd, j->n_head,
                            j->n_kv_head, hd, att);
}

/* The furthest position of the job's columns. */
static int32_t last_position(const att_job *j) {
    int32_t m = 0;
    for (int64_t t = 0; t < j->ncols; t++)
        if (j->pos[t] > m) m = j->pos[t];
    return m;
}

static void att_worker(void *ctx, int ti, int nth) {
    const att_job *j = ctx;
    const int hd = j->head_dim, grp = j->n_head / j->n_kv_head;
    const int64_t qd = (int64_t)j->n_head * hd, kvd = (int64_t)j->n_kv_head * hd;
    float *att = j->scratch + (int64_t)ti * j->per_thread;
    if (att_by_column(j, nth) && j->kind != 2 && j->window == 0 && j->k->attention_multi) {
        /* runs of consecutive positions of one sequence (a prompt's
         * columns) in groups read the cache once (attention_multi: the
         * same bits as column by column); the groups dealt out in turn,
         * those seeing fewer than ATT_MULTI_MIN_GROUP positions run column
         * by column (there the group's loops cost more than the reads they
         * share: 0.89-0.98x under 20 positions) */
        int64_t need = tai_attention_all_scratch((int64_t)last_position(j) + 1, j->n_head, hd);
        need = (need + 15) / 16 * 16;
        int cap = (int)(j->per_thread / need);
        if (cap > TAI_ATT_MULTI_MAX) cap = TAI_ATT_MULTI_MAX;
        int64_t gi = 0;
        for (int64_t t = 0; t < j->ncols; gi++) {
            int nq = 1;
            while (nq < cap && t + nq < j->ncols && H(j->kc[t + nq]) == H(j->kc[t]) &&
                   j->pos[t + nq] == j->pos[t] + nq)
                nq++;
            if (gi % nth == ti) {
                if (nq == 1 || j->pos[t] + 1 < ATT_MULTI_MIN_GROUP)
                    for (int i = 0; i < nq; i++) one_column(j, t + i, att);
                else
                    j->k->attention_multi(j->out + t * qd, j->q + t * qd, qd, H(j->kc[t]), H(j->vc[t]),
                                          j->kind, (int64_t)j->pos[t] + 1, nq, kvd, j->n_head,
                                          j->n_kv_head, hd, att, need);
            }
            t += nq;
        }
        return;
    }
    if (att_by_column(j, nth)) {
        for (int64_t t = ti; t < j->ncols; t += nth) one_column(j, t, att);
        return;
    }
    const int per = j->split, subs = grp / per;
    const int64_t items = j->ncols * j->n_kv_head * subs;
    for (int64_t it = ti; it < items; it += nth) {
        const int64_t t = it / ((int64_t)j->n_kv_head * subs);
        const int g = (int)(it / subs % j->n_kv_head), h0 = (int)(it % subs) * per;
        const int64_t end = (int64_t)j->pos[t] + 1;
        const int64_t start = j->window > 0 && end > j->window ? end - j->window : 0;
        float *o = j->out + t * qd + ((int64_t)g * grp + h0) * hd;
        const float *q = j->q + t * qd + ((int64_t)g * grp + h0) * hd;
        const int64_t at = start * kvd + (int64_t)g * hd; /* elements in */
        if (j->kind == 2)
            j->k->attention_q8(o, q, (const int8_t *)H(j->kc[t]) + at,
                               (const float *)H(j->ks[t]) + at / 32,
                               (const int8_t *)H(j->vc[t]) + at, (const float *)H(j->vs[t]) + at / 32,
                               end - start, kvd, per, 1, hd, att);
        else if (j->kind)
            j->k->attention_f16(o, q, (const uint16_t *)H(j->kc[t]) + at,
                                (const uint16_t *)H(j->vc[t]) + at, end - start, kvd, per, 1, hd,
                                att);
        else
            j->k->attention(o, q, (const float *)H(j->kc[t]) + at, (const float *)H(j->vc[t]) + at,
                            end - start, kvd, per, 1, hd, att);
    }
}

/* Contexts from which a prompt's columns go through attention in groups
 * (attention_multi), each thread's scratch holding up to TAI_ATT_MULTI_MAX
 * columns' scores: below it a sequence's float cache stays in L2 and the
 * groups gained at most 14% in the kernel (SmolLM2's heads, 8 queries of
 * 100 positions), not worth the scratch under a memory limit (from 1024 on:
 * 1.2-1.9x in the kernel, pp1024 1.08x, pp2048 1.27x). */
#define ATT_MULTI_MIN_POS 1024

/* Per thread: the scores of all heads of a column (of up to
 * TAI_ATT_MULTI_MAX columns, for calls of that many from
 * ATT_MULTI_MIN_POS positions on) and their V sums (the column-by-column
 * sweep) for heads of up to 256 values, but at most 4 MiB (past that,
 * fewer columns a group, then long contexts run head by head: the same
 * bits); the head-by-head kernel uses the first max_pos floats. */
static size_t cpu_attention_scratch_cols(void *dev, int64_t max_pos, int n_head, int64_t ncols) {
    const cpu_dev *c = dev;
    if (max_pos <= 0) return 0;
    int64_t per = tai_attention_all_scratch(max_pos, n_head > 0 ? n_head : 1, 256);
    if (c->k->attention_multi && max_pos >= ATT_MULTI_MIN_POS && ncols > 1)
        per = (per + 15) / 16 * 16 * (ncols < TAI_ATT_MULTI_MAX ? ncols : TAI_ATT_MULTI_MAX);
    if (per > ((int64_t)1 << 20)) per = (int64_t)1 << 20;
    if (per < max_pos) per = max_pos;
    return (size_t)c->threads * (size_t)per * sizeof(float);
}

static size_t cpu_attention_scratch(void *dev, int64_t max_pos, int n_head) {
    return cpu_attention_scratch_cols(dev, max_pos, n_head, 1);
}

static int attention_op(void *dev, tai_dref out, tai_dref q, int64_t ncols, const tai_dref *k,
                        const tai_dref *v, const tai_dref *ks, const tai_dref *vs,
                        const int32_t *pos, int n_head, int n_kv_head, int head_dim, int window,
                        int kind, tai_dref scratch, size_t scratch_bytes) {
    cpu_dev *c = dev;
    HOST(c, out, "output");
    HOST(c, q, "queries");
    HOST(c, scratch, "scratch");
    if (n_kv_head <= 0 || n_head % n_kv_head)
        return fail(c, -EINVAL, "attention: %d query heads over %d kv heads", n_head, n_kv_head);
    if (kind == 2 && head_dim % 32)
        return fail(c, -EINVAL, "attention: an 8-bit cache needs heads of a multiple of 32 values, "
                    "not %d", head_dim);
    const int64_t per = (int64_t)(scratch_bytes / sizeof(float) / (size_t)c->threads);
    for (int64_t t = 0; t < ncols; t++) {
        HOST(c, k[t], "key cache");
        HOST(c, v[t], "value cache");
        if (kind == 2) {
            HOST(c, ks[t], "key scales");
            HOST(c, vs[t], "value scales");
        }
        if (pos[t] < 0 || pos[t] >= per)
            return fail(c, -EINVAL, "attention: position %d past the scratch's %lld", pos[t],
                        (long long)per);
    }
    att_job j = {c->k,      H(out),     H(q),     k,    v,         ks,  vs,
                 pos,       ncols,      n_head,   n_kv_head, head_dim, H(scratch), per,
                 window,    kind,      att_split(ncols, n_head, n_kv_head, c->threads)};
    if (ncols * n_head > 1 && c->threads > 1)
        tai_pool_run(c->pool, att_worker, &j);
    else
        att_worker(&j, 0, 1);
    return 0;
}

static int cpu_attention(void *dev, tai_dref out, tai_dref q, int64_t ncols, const tai_dref *k,
                         const tai_dref *v, const int32_t *pos, int n_head, int n_kv_head,
                         int head_dim, tai_dref scratch, size_t scratch_bytes) {
    return attention_op(dev, out, q, ncols, k, v, NULL, NULL, pos, n_head, n_kv_head, head_dim, 0,
                        0, scratch, scratch_bytes);
}

static int cpu_attention_window(void *dev, tai_dref out, tai_dref q, int64_t ncols,
                                const tai_dref *k, const tai_dref *v, const int32_t *pos,
                                int n_head, int n_kv_head, int head_dim, int window,
                                tai_dref scratch, size_t scratch_bytes) {
    if (window < 1) return fail(dev, -EINVAL, "attention: window of %d positions", window);
    return attention_op(dev, out, q, ncols, k, v, NULL, NULL, pos, n_head, n_kv_head, head_dim,
                        window, 0, scratch, scratch_bytes);
}

static int cpu_attention_f16(void *dev, tai_dref out, tai_dref q, int64_t ncols,
                             const tai_dref *k, const tai_dref *v, const int32_t *pos,
                             int n_head, int n_kv_head, int head_dim, int window,
                             tai_dref scratch, size_t scratch_bytes) {
    if (window < 0) return fail(dev, -EINVAL, "attention: window of %d positions", window);
    return attention_op(dev, out, q, ncols, k, v, NULL, NULL, pos, n_head, n_kv_head, head_dim,
                        window, 1, scratch, scratch_bytes);
}

static int cpu_attention_q8(void *dev, tai_dref out, tai_dref q, int64_t ncols, const tai_dref *k,
                            const tai_dref *v, const tai_dref *ks, const tai_dref *vs,
                            const int32_t *pos, int n_head, int n_kv_head, int head_dim,
                            int window, tai_dref scratch, size_t scratch_bytes) {
    if (window < 0) return fail(dev, -EINVAL, "attention: window of %d positions", window);
    return attention_op(dev, out, q, ncols, k, v, ks, vs, pos, n_head, n_kv_head, head_dim,
                        window, 2, scratch, scratch_bytes);
}

/* Runs of conversions into a cache, split across the threads by 32
 * values (a quantized block, which is converted alone: the same codes and
 * scales whichever thread converts it). */
typedef struct {
    const tai_kernels *k;
    int kind, n_runs;
    const tai_dref *dst, *dsc, *src;
    const int64_t *count;
    int64_t units; /* 32-value units in all */
} conv_job;

static void conv_worker(void *ctx, int ti, int nth) {
    const conv_job *j = ctx;
    const int64_t u0 = j->units * ti / nth, u1 = j->units * (ti + 1) / nth;
    int64_t base = 0; /* units of the runs before r */
    for (int r = 0; r < j->n_runs && base < u1; r++) {
        const int64_t ur = (j->count[r] + 31) / 32;
        const int64_t a = u0 > base ? u0 - base : 0, e = u1 - base < ur ? u1 - base : ur;
        if (a < e) {
            const float *src = (const float *)H(j->src[r]) + a * 32;
            const int64_t n = (e * 32 < j->count[r] ? e * 32 : j->count[r]) - a * 32;
            if (j->kind == 2)
                tai_f32_to_q8_row(j->k->quantize_q8a, src, (int8_t *)H(j->dst[r]) + a * 32,
                                  (float *)H(j->dsc[r]) + a, n);
            else
                j->k->f32_to_f16(src, (uint16_t *)H(j->dst[r]) + a * 32, n);
        }
        base += ur;
    }
}

static int cpu_to_cache_many(void *dev, int kind, int n_runs, const tai_dref *dst,
                             const tai_dref *dst_scale, const tai_dref *src, const int64_t *count) {
    cpu_dev *c = dev;
    if (kind != 1 && kind != 2) return fail(c, -EINVAL, "cache conversion of kind %d", kind);
    if (n_runs < 0) return fail(c, -EINVAL, "%d cache conversions", n_runs);
    int64_t units = 0;
    for (int r = 0; r < n_runs; r++) {
        HOST(c, dst[r], "destination");
        HOST(c, src[r], "source");
        if (kind == 2) HOST(c, dst_scale[r], "scales' destination");
        if (count[r] < 0 || (kind == 2 && count[r] % 32))
            return fail(c, -EINVAL, "%s conversion of %lld floats%s",
                        kind == 2 ? "8-bit" : "binary16", (long long)count[r],
                        kind == 2 ? " (a multiple of 32)" : "");
        units += (count[r] + 31) / 32;
    }
    conv_job j = {c->k, kind, n_runs, dst, dst_scale, src, count, units};
    /* a pool run costs about a microsecond: worth it from a few dozen
     * blocks on (a 16-sequence step's K and V of a layer: 192) */
    if (units >= 64 && c->threads > 1)
        tai_pool_run(c->pool, conv_worker, &j);
    else
        conv_worker(&j, 0, 1);
    return 0;
}

/* One run each (the new positions' K or V of one sequence). */
static int cpu_to_f16(void *dev, tai_dref dst, tai_dref src, int64_t n) {
    return cpu_to_cache_many(dev, 1, 1, &dst, &dst, &src, &n);
}

static int cpu_to_q8(void *dev, tai_dref dst, tai_dref dst_scale, tai_dref src, int64_t n) {
    return cpu_to_cache_many(dev, 2, 1, &dst, &dst_scale, &src, &n);
}

/* ---- embedding ---- */

static int cpu_embed(void *dev, int type, tai_dref table, int64_t rows, int64_t n,
                     const int32_t *tokens, int64_t ncols, tai_dref out) {
    cpu_dev *c = dev;
    HOST(c, table, "table");
    HOST(c, out, "output");
    if (!tai_type_valid(type) || tai_pack_bytes((tai_type)type, rows, n) == 0)
        return fail(c, -EINVAL, "embedding table %s %lld x %lld", tai_type_name(type),
                    (long long)rows, (long long)n);
    for (int64_t t = 0; t < ncols; t++) {
        if (tokens[t] < 0 || tokens[t] >= rows)
            return fail(c, -EINVAL, "token id %d out of range (0..%lld)", tokens[t],
                        (long long)rows - 1);
        tai_packed_row((tai_type)type, H(table), rows, n, tokens[t], (float *)H(out) + t * n);
    }
    return 0;
}

static const tai_device_ops cpu_ops = {
    .abi = TAI_DEVICE_ABI,
    .size = sizeof(tai_device_ops),
    .destroy = cpu_destroy,
    .info = cpu_info,
    .last_error = cpu_last_error,
    .buf_alloc = cpu_buf_alloc,
    .buf_free = cpu_buf_free,
    .upload = cpu_upload,
    .download = cpu_download,
    .sync = cpu_sync,
    .matmul_scratch = cpu_matmul_scratch,
    .matmul = cpu_matmul,
    .rmsnorm = cpu_rmsnorm,
    .add = cpu_add,
    .rope = cpu_rope,
    .swiglu = cpu_swiglu,
    .attention = cpu_attention,
    .attention_scratch = cpu_attention_scratch,
    .attention_scratch_cols = cpu_attention_scratch_cols,
    .embed = cpu_embed,
    .copy = cpu_copy,
    .matmul_sparse_scratch = cpu_matmul_sparse_scratch,
    .matmul_sparse = cpu_matmul_sparse,
    .rope_neox = cpu_rope_neox,
    .geglu = cpu_geglu,
    .add_bias = cpu_add_bias,
    .attention_window = cpu_attention_window,
    .attention_f16 = cpu_attention_f16,
    .to_f16 = cpu_to_f16,
    .attention_q8 = cpu_attention_q8,
    .to_q8 = cpu_to_q8,
    .matmul_many = cpu_matmul_many,
    .to_cache_many = cpu_to_cache_many,
    .matmul_prompt = cpu_matmul_prompt,
    .matmul_prompt_scratch = cpu_matmul_prompt_scratch,
};

/* ---- the runtime's side ---- */

static int variant_of(const char *name, tai_isa *out) {
    if (!name || !*name || !strcmp(name, "auto")) {
        *out = tai_isa_best(TAI_ISA_COUNT - 1);
        return 1;
    }
    const int isa = tai_isa_parse(name);
    if (isa < 0) return -1;
    *out = (tai_isa)isa;
    return tai_isa_supported((tai_isa)isa) ? 1 : 0;
}

/* The ISA family f runs: the best the CPU has under the cap, or the
 * portable kernels where the family is disabled. */
static tai_isa family_isa(const cpu_dev *c, int f) {
    return c->enabled[f] ? tai_isa_best(c->level) : TAI_ISA_SCALAR;
}

static void compose(cpu_dev *c) {
    const tai_kernels *mm = tai_kernels_get(family_isa(c, TAI_CPU_MATMUL));
    c->mix = *mm; /* the products and their activations' quantizer */
    c->mix.silu_mul = tai_kernels_get(family_isa(c, TAI_CPU_ACTIVATION))->silu_mul;
    c->mix.gelu_mul = tai_kernels_get(family_isa(c, TAI_CPU_ACTIVATION))->gelu_mul;
    c->mix.add = tai_kernels_get(family_isa(c, TAI_CPU_ACTIVATION))->add;
    c->mix.attention = tai_kernels_get(family_isa(c, TAI_CPU_ATTENTION))->attention;
    c->mix.attention_f16 = tai_kernels_get(family_isa(c, TAI_CPU_ATTENTION))->attention_f16;
    c->mix.attention_f16_all =
        tai_kernels_get(family_isa(c, TAI_CPU_ATTENTION))->attention_f16_all;
    c->mix.attention_all = tai_kernels_get(family_isa(c, TAI_CPU_ATTENTION))->attention_all;
    c->mix.attention_multi = tai_kernels_get(family_isa(c, TAI_CPU_ATTENTION))->attention_multi;
    c->mix.attention_q8 = tai_kernels_get(family_isa(c, TAI_CPU_ATTENTION))->attention_q8;
    c->mix.attention_q8_all = tai_kernels_get(family_isa(c, TAI_CPU_ATTENTION))->attention_q8_all;
    c->mix.f32_to_f16 = tai_kernels_get(family_isa(c, TAI_CPU_ATTENTION))->f32_to_f16;
    c->mix.tuning = c->own_tune ? &c->tune : NULL;
    c->k = &c->mix;
}

TinyAIStatus tai_cpu_device_open(const char *variant, int threads, tai_device **out) {
    *out = NULL;
    tai_isa isa = TAI_ISA_SCALAR;
    const int ok = variant_of(variant, &isa);
    if (ok < 0)
        return tai_error(TINYAI_ERR_INVALID_ARG,
                         "unknown CPU kernel variant '%s' (auto, scalar, avx2, avx512)", variant);
    if (ok == 0)
        return tai_error(TINYAI_ERR_UNSUPPORTED, "this CPU does not support the %s kernels",
                         variant);
    if (threads < 1 || threads > 256)
        return tai_error(TINYAI_ERR_INVALID_ARG, "CPU threads must be 1..256, got %d", threads);
    cpu_dev *c = calloc(1, sizeof *c);
    if (!c) return tai_error(TINYAI_ERR_NOMEM, "out of memory");
    c->level = isa;
    for (int f = 0; f < TAI_CPU_FAMILIES; f++) c->enabled[f] = true;
    compose(c);
    c->threads = threads;
    const int rc = tai_pool_create(threads, &c->pool);
    if (rc != 0) {
        free(c);
        return tai_error(TINYAI_ERR_NOMEM, "cannot start %d CPU threads: %s", threads,
                         strerror(-rc));
    }
    return tai_device_wrap(&cpu_ops, c, out);
}

static const cpu_dev *as_cpu(const tai_device *d) {
    return d && d->ops == &cpu_ops ? (const cpu_dev *)d->ctx : NULL;
}

const char *tai_cpu_device_variant(const tai_device *d) {
    const cpu_dev *c = as_cpu(d);
    return c ? tai_isa_name(c->k->isa) : NULL;
}

static cpu_dev *as_cpu_mut(tai_device *d) {
    return d && d->ops == &cpu_ops ? (cpu_dev *)d->ctx : NULL;
}

TinyAIStatus tai_cpu_device_set_family(tai_device *d, int family, bool enabled) {
    cpu_dev *c = as_cpu_mut(d);
    if (!c) return tai_error(TINYAI_ERR_INVALID_ARG, "not a CPU device");
    if (family < 0 || family >= TAI_CPU_FAMILIES)
        return tai_error(TINYAI_ERR_INVALID_ARG, "unknown CPU op family %d", family);
    c->enabled[family] = enabled;
    compose(c);
    return TINYAI_OK;
}

TinyAIStatus tai_cpu_device_set_level(tai_device *d, int level) {
    cpu_dev *c = as_cpu_mut(d);
    if (!c) return tai_error(TINYAI_ERR_INVALID_ARG, "not a CPU device");
    if (level < 0)
        return tai_error(TINYAI_ERR_INVALID_ARG, "SIMD level %d: 0 (portable), 1 (AVX2) or 2 (AVX-512)",
                         level);
    c->level = tai_isa_best(level >= TAI_ISA_COUNT ? (tai_isa)(TAI_ISA_COUNT - 1) : (tai_isa)level);
    compose(c);
    return TINYAI_OK;
}

TinyAIStatus tai_cpu_device_set_tuning(tai_device *d, bool own, int prefetch_l1, int prefetch_l2,
                                       int k_slice) {
    cpu_dev *c = as_cpu_mut(d);
    if (!c) return tai_error(TINYAI_ERR_INVALID_ARG, "not a CPU device");
    const tai_kernel_tuning t = {prefetch_l1, prefetch_l2, k_slice};
    if (own && !tai_kernels_tuning_valid(&t))
        return tai_error(TINYAI_ERR_INVALID_ARG,
                         "kernel tuning out of range: prefetch %d/%d bytes (multiples of 64 up "
                         "to %d), K slice %d (a multiple of 32 up to %d)",
                         prefetch_l1, prefetch_l2, TAI_TUNE_MAX_PREFETCH, k_slice,
                         TAI_TUNE_MAX_K_SLICE);
    c->own_tune = own;
    if (own) c->tune = t;
    compose(c);
    return TINYAI_OK;
}

void tai_cpu_device_tuning(const tai_device *d, bool *own, int *prefetch_l1, int *prefetch_l2,
                           int *k_slice) {
    const cpu_dev *c = as_cpu(d);
    const tai_kernel_tuning t = c && c->own_tune ? c->tune : tai_kernels_tuning();
    if (own) *own = c && c->own_tune;
    *prefetch_l1 = t.prefetch_l1;
    *prefetch_l2 = t.prefetch_l2;
    *k_slice = t.k_slice;
}

int tai_cpu_device_level(const tai_device *d) {
    const cpu_dev *c = as_cpu(d);
    return c ? (int)c->level : -1;
}

const char *tai_cpu_device_family_variant(const tai_device *d, int family) {
    const cpu_dev *c = as_cpu(d);
    if (!c || family < 0 || family >= TAI_CPU_FAMILIES) return NULL;
    return tai_isa_name(family_isa(c, family));
}

bool tai_cpu_device_family_enabled(const tai_device *d, int family) {
    const cpu_dev *c = as_cpu(d);
    return c && family >= 0 && family < TAI_CPU_FAMILIES && c->enabled[family];
}

int tai_cpu_device_threads(const tai_device *d) {
    const cpu_dev *c = as_cpu(d);
    return c ? c->threads : 0;
}

tai_pool *tai_cpu_device_pool(const tai_device *d) {
    const cpu_dev *c = as_cpu(d);
    return c ? c->pool : NULL;
}

void tai_cpu_device_each_thread(const tai_device *d, void (*fn)(void *ctx, int i, int n),
                                void *ctx) {
    const cpu_dev *c = as_cpu(d);
    if (c) tai_pool_run(c->pool, fn, ctx);
}

static char variants[64];
static pthread_once_t variants_once = PTHREAD_ONCE_INIT;

static void list_variants(void) {
    size_t off = 0;
    for (int i = 0; i < TAI_ISA_COUNT; i++)
        if (tai_isa_supported((tai_isa)i))
            off += (size_t)snprintf(variants + off, sizeof variants - off, "%s%s", off ? " " : "",
                                    tai_isa_name((tai_isa)i));
}

const char *tai_cpu_variants(void) {
    pthread_once(&variants_once, list_variants);
    return variants;
}

const char *tai_cpu_best_variant(void) { return tai_isa_name(tai_isa_best(TAI_ISA_COUNT - 1)); }

int tai_cpu_variant_supported(const char *name) {
    tai_isa isa;
    return variant_of(name, &isa);
}

const char *tai_cpu_name(void) { return tai_cpu_brand(); }
const char *tai_cpu_feature_list(void) { return tai_cpu_features(); }
const char *tai_cpu_id(void) { return tai_cpu_signature(); }

void tai_cpu_tuning(int *prefetch_l1, int *prefetch_l2) {
    const tai_kernel_tuning t = tai_kernels_tuning();
    *prefetch_l1 = t.prefetch_l1;
    *prefetch_l2 = t.prefetch_l2;
}

int tai_cpu_set_tuning(int prefetch_l1, int prefetch_l2) {
    tai_kernel_tuning t = tai_kernels_tuning();
    t.prefetch_l1 = prefetch_l1;
    t.prefetch_l2 = prefetch_l2;
    return tai_kernels_set_tuning(&t);
}

int tai_cpu_tune(int *prefetch_l1, int *prefetch_l2, double *gain) {
    tai_kernel_tuning t;
    const int rc = tai_kernels_tune(tai_isa_best(TAI_ISA_COUNT - 1), 0, 0, &t, gain);
    if (rc != 0) return rc;
    *prefetch_l1 = t.prefetch_l1;
    *prefetch_l2 = t.prefetch_l2;
    return 0;
}
