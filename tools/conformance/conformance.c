/*
 * tools/conformance/conformance.c: the plugin conformance suite (see
 * conformance.h). Every op runs on the plugin's device and on TinyAI's
 * scalar reference (the CPU device with the portable kernels) on the same
 * inputs; outputs are compared by normalised RMS error with a tolerance per
 * weight type. Around every output on the plugin's device lie guard bytes:
 * the output is filled with a pattern no op can produce (all bits set, a
 * NaN) before the op, and afterwards every word of it must have been
 * written and every guard byte must be intact.
 */
#include "tools/conformance/conformance.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <tinyai/llm.h>
#include <tinyai/plugin.h>

#include "core/error.h"
#include "core/types.h"
#include "offload/cpu/cpu.h"
#include "offload/host.h"
#include "offload/offload.h"
#include "offload/plugin/plugin.h"

#define GUARD 256 /* bytes after every output */

/* ---- the report ------------------------------------------------------------ */

static void add(tai_conf_report *r, const char *group, const char *name, const char *type,
                tai_conf_result res, const char *fmt, ...) {
    if (r->n == r->cap) {
        const int cap = r->cap ? 2 * r->cap : 64;
        tai_conf_case *c = realloc(r->cases, (size_t)cap * sizeof *c);
        if (!c) return;
        r->cases = c;
        r->cap = cap;
    }
    tai_conf_case *c = &r->cases[r->n++];
    memset(c, 0, sizeof *c);
    snprintf(c->group, sizeof c->group, "%s", group);
    snprintf(c->name, sizeof c->name, "%s", name);
    snprintf(c->type, sizeof c->type, "%s", type ? type : "");
    c->result = res;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->detail, sizeof c->detail, fmt, ap);
    va_end(ap);
}

void tai_conf_free(tai_conf_report *r) {
    if (!r) return;
    free(r->cases);
    memset(r, 0, sizeof *r);
}

int tai_conf_count(const tai_conf_report *r, tai_conf_result which) {
    int n = 0;
    for (int i = 0; i < r->n; i++) n += r->cases[i].result == which;
    return n;
}

/* ---- buffers on a device ------------------------------------------------------ */

typedef struct {
    tai_device *d;
    tai_dbuf *b;
    size_t bytes; /* usable, before the guard */
} dbuf;

static tai_dref ref_of(const dbuf *b, size_t off) {
    if (b->d->info.unified) return tai_dref_host((const char *)(void *)b->b + off);
    tai_dref r = {b->b, off};
    return r;
}

static int dalloc(tai_device *d, size_t bytes, dbuf *o) {
    o->d = d;
    o->b = NULL;
    o->bytes = bytes;
    return d->ops->buf_alloc(d->ctx, bytes + GUARD, &o->b) == 0 ? 0 : -1;
}

static void dfree(dbuf *b) {
    if (b->b) b->d->ops->buf_free(b->d->ctx, b->b);
    b->b = NULL;
}

static int put(dbuf *b, const void *src, size_t bytes, size_t off) {
    return tai_dev_upload(b->d, ref_of(b, off), src, bytes) == TINYAI_OK ? 0 : -1;
}

static int get(dbuf *b, void *dst, size_t bytes, size_t off) {
    if (tai_dev_sync(b->d) != TINYAI_OK) return -1;
    return tai_dev_download(b->d, dst, ref_of(b, off), bytes) == TINYAI_OK ? 0 : -1;
}

/* Fills the whole buffer, guard included, with the pattern. */
static int poison(dbuf *b) {
    unsigned char *p = malloc(b->bytes + GUARD);
    if (!p) return -1;
    memset(p, 0xff, b->bytes + GUARD);
    const int rc = put(b, p, b->bytes + GUARD, 0);
    free(p);
    return rc;
}

/* After an op: the first `bytes` must be written (no all-ones word left)
 * and the guard intact. "" or what is wrong. */
static const char *guard_check(dbuf *b, size_t bytes, char *why, size_t cap) {
    unsigned char *p = malloc(b->bytes + GUARD);
    why[0] = 0;
    if (!p) return "out of memory";
    if (get(b, p, b->bytes + GUARD, 0) != 0) {
        snprintf(why, cap, "download failed: %s", tinyaiLastErrorMessage());
    } else {
        for (size_t i = 0; i + 4 <= bytes; i += 4)
            if (!memcmp(p + i, "\xff\xff\xff\xff", 4)) {
                snprintf(why, cap, "output word %zu was not written", i / 4);
                break;
            }
        for (size_t i = b->bytes; !why[0] && i < b->bytes + GUARD; i++)
            if (p[i] != 0xff) snprintf(why, cap, "wrote past the output (byte %zu)", i - b->bytes);
    }
    free(p);
    return why;
}

/* ---- comparisons ------------------------------------------------------------- */

static uint32_t rng_state = 12345u;
static float frand(void) { /* xorshift32 in [-1, 1) */
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 17;
    rng_state ^= rng_state << 5;
    return (float)(rng_state >> 8) / 8388608.0f - 1.0f;
}

static double nrmse(const float *a, const float *ref, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        const double d = (double)a[i] - ref[i];
        if (!isfinite(a[i])) return INFINITY;
        num += d * d;
        den += (double)ref[i] * ref[i];
    }
    return den == 0 ? (num == 0 ? 0 : INFINITY) : sqrt(num / den);
}

static const tai_type kTypes[5] = {TAI_TYPE_F32, TAI_TYPE_F16, TAI_TYPE_Q8_0, TAI_TYPE_Q4_0,
                                   TAI_TYPE_Q4_1};
/* Matrix products: a plugin may multiply block types in float (about 1%
 * from TinyAI's 8-bit activations), so their tolerance allows it. */
static double type_tol(tai_type t) {
    return t == TAI_TYPE_F32 ? 1e-5 : t == TAI_TYPE_F16 ? 1e-4 : 3e-2;
}

/* A packed rows x n matrix of type t made from random floats. */
static unsigned char *packed_random(tai_type t, int64_t rows, int64_t n, size_t *bytes) {
    const size_t rb = tai_type_row_bytes(t, n);
    *bytes = tai_pack_bytes(t, rows, n);
    float *row = malloc((size_t)n * sizeof *row);
    /* packed panels are written with aligned 64-byte stores */
    const size_t alloc = (*bytes + 63) / 64 * 64;
    unsigned char *raw = malloc(rb * (size_t)rows), *pk = aligned_alloc(64, alloc ? alloc : 64);
    if (!row || !raw || !pk) {
        free(row);
        free(raw);
        free(pk);
        return NULL;
    }
    for (int64_t r = 0; r < rows; r++) {
        for (int64_t k = 0; k < n; k++) row[k] = frand();
        tai_quantize_row(t, row, raw + (size_t)r * rb, n);
    }
    tai_host_pack_matrix(NULL, t, raw, rows, n, pk);
    free(row);
    free(raw);
    return pk;
}

/* An op run on both devices: the plugin's output (with guard) and the
 * reference's. */
typedef struct {
    tai_device *dev, *ref;
    tai_conf_report *r;
} suite;

/* ---- ops ---------------------------------------------------------------------- */

static void check_matmul(suite *s, tai_type t) {
    const char *tn = tai_type_name(t);
    if (!(s->dev->info.ops & TAI_OP_MATMUL)) {
        add(s->r, "op", "matmul", tn, TAI_CONF_SKIP, "matmul not claimed");
        return;
    }
    if (!(s->dev->info.types & (1u << t))) {
        add(s->r, "op", "matmul", tn, TAI_CONF_SKIP, "%s weights not claimed", tn);
        return;
    }
    static const int64_t shapes[][3] = {{16, 32, 1},  {17, 64, 1},  {33, 96, 3}, {100, 160, 9},
                                        {48, 256, 17}, {20, 32, 8}, {21, 7, 1},  {13, 5, 3}};
    double worst = 0;
    char why[200] = "";
    int ran = 0;
    for (size_t k = 0; k < sizeof shapes / sizeof *shapes && !why[0]; k++) {
        const int64_t rows = shapes[k][0], n = shapes[k][1], nc = shapes[k][2];
        if (n % tai_type_block_elems(t)) continue;
        size_t wb = 0;
        unsigned char *w = packed_random(t, rows, n, &wb);
        float *x = malloc((size_t)(n * nc) * 4), *y = malloc((size_t)(rows * nc) * 4),
              *yr = malloc((size_t)(rows * nc) * 4);
        dbuf bw[2] = {{0}}, bx[2] = {{0}}, by[2] = {{0}}, bs[2] = {{0}};
        if (!w || !x || !y || !yr) {
            snprintf(why, sizeof why, "out of memory");
            goto next;
        }
        for (int64_t i = 0; i < n * nc; i++) x[i] = frand();
        for (int side = 0; side < 2 && !why[0]; side++) {
            tai_device *d = side ? s->ref : s->dev;
            const size_t sb = tai_dev_matmul_scratch(d, t, n, nc);
            if (dalloc(d, wb, &bw[side]) || dalloc(d, (size_t)(n * nc) * 4, &bx[side]) ||
                dalloc(d, (size_t)(rows * nc) * 4, &by[side]) || dalloc(d, sb, &bs[side]) ||
                put(&bw[side], w, wb, 0) || put(&bx[side], x, (size_t)(n * nc) * 4, 0) ||
                (side == 0 && poison(&by[side])) ||
                tai_dev_matmul(d, t, ref_of(&bw[side], 0), rows, n, ref_of(&bx[side], 0),
                               ref_of(&by[side], 0), nc, ref_of(&bs[side], 0)) != TINYAI_OK ||
                get(&by[side], side ? yr : y, (size_t)(rows * nc) * 4, 0)) {
                snprintf(why, sizeof why, "%lld x %lld, %lld columns: %s", (long long)rows,
                         (long long)n, (long long)nc, tinyaiLastErrorMessage());
            }
        }
        if (!why[0] && *guard_check(&by[0], (size_t)(rows * nc) * 4, why, sizeof why))
            snprintf(why + strlen(why), sizeof why - strlen(why), " (%lld x %lld, %lld columns)",
                     (long long)rows, (long long)n, (long long)nc);
        if (!why[0]) {
            const double e = nrmse(y, yr, (size_t)(rows * nc));
            if (e > worst) worst = e;
            if (!(e <= type_tol(t)))
                snprintf(why, sizeof why, "%lld x %lld, %lld columns: error %.3g > %.0e",
                         (long long)rows, (long long)n, (long long)nc, e, type_tol(t));
            ran++;
        }
    next:
        for (int side = 0; side < 2; side++) {
            dfree(&bw[side]);
            dfree(&bx[side]);
            dfree(&by[side]);
            dfree(&bs[side]);
        }
        free(w);
        free(x);
        free(y);
        free(yr);
    }
    if (why[0]) add(s->r, "op", "matmul", tn, TAI_CONF_FAIL, "%s", why);
    else add(s->r, "op", "matmul", tn, TAI_CONF_PASS, "%d shapes, error <= %.2g (tolerance %.0e)",
             ran, worst, type_tol(t));
}

static void check_embed(suite *s, tai_type t) {
    const char *tn = tai_type_name(t);
    if (!(s->dev->info.ops & TAI_OP_EMBED)) {
        add(s->r, "op", "embed", tn, TAI_CONF_SKIP, "embed not claimed");
        return;
    }
    const int64_t rows = 40, n = 64, nc = 4;
    const int32_t tokens[4] = {0, 17, 39, 16};
    size_t wb = 0;
    unsigned char *w = packed_random(t, rows, n, &wb);
    float y[4 * 64], yr[4 * 64];
    dbuf bw[2] = {{0}}, by[2] = {{0}};
    char why[200] = "";
    for (int side = 0; side < 2 && w && !why[0]; side++) {
        tai_device *d = side ? s->ref : s->dev;
        if (dalloc(d, wb, &bw[side]) || dalloc(d, sizeof y, &by[side]) || put(&bw[side], w, wb, 0) ||
            (side == 0 && poison(&by[side])) ||
            tai_dev_embed(d, t, ref_of(&bw[side], 0), rows, n, tokens, nc, ref_of(&by[side], 0)) !=
                TINYAI_OK ||
            get(&by[side], side ? yr : y, sizeof y, 0))
            snprintf(why, sizeof why, "%s", tinyaiLastErrorMessage());
    }
    if (!w) snprintf(why, sizeof why, "out of memory");
    if (!why[0]) guard_check(&by[0], sizeof y, why, sizeof why);
    if (!why[0] && memcmp(y, yr, sizeof y) != 0)
        snprintf(why, sizeof why, "rows differ from the reference's dequantization (exact)");
    for (int side = 0; side < 2; side++) {
        dfree(&bw[side]);
        dfree(&by[side]);
    }
    free(w);
    if (why[0]) add(s->r, "op", "embed", tn, TAI_CONF_FAIL, "%s", why);
    else add(s->r, "op", "embed", tn, TAI_CONF_PASS, "4 rows of a 40 x 64 table, exact");
}

/* The float ops: each case fills its inputs on both devices, runs, and
 * compares one output. */
typedef struct {
    const char *name;
    uint32_t bit;
    double tol;
} float_op;

/* rmsnorm (n x ncols; out separate), add, swiglu, rope (strided columns),
 * copy, attention (per-column caches at scattered offsets). */
static TinyAIStatus run_float_op(tai_device *d, int op, dbuf *in, dbuf *out, size_t *out_floats,
                                 int shape) {
    switch (op) {
    case 0: { /* rmsnorm: in = [x | w] */
        const int64_t n = shape ? 96 : 7, nc = shape ? 3 : 1;
        *out_floats = (size_t)(n * nc);
        return tai_dev_rmsnorm(d, ref_of(out, 0), ref_of(in, 0), ref_of(in, (size_t)(n * nc) * 4),
                               n, nc, 1e-5f);
    }
    case 1: { /* add: out += in */
        const int64_t n = shape ? 4099 : 1;
        *out_floats = (size_t)n;
        return tai_dev_add(d, ref_of(out, 0), ref_of(in, 0), n);
    }
    case 2: { /* swiglu: out = silu(out) * in */
        const int64_t n = shape ? 4099 : 3;
        *out_floats = (size_t)n;
        return tai_dev_swiglu(d, ref_of(out, 0), ref_of(in, 0), n);
    }
    case 3: { /* rope on out (3 columns of 4 heads of 16, stride 72), angles in in */
        const int rot = shape ? 16 : 8;
        *out_floats = 3 * 72;
        return tai_dev_rope(d, ref_of(out, 0), 3, 72, 4, 16, rot, ref_of(in, 0));
    }
    case 4: { /* copy 1000 bytes of in to out at an offset */
        *out_floats = 300;
        return tai_dev_copy(d, ref_of(out, 4 * 17), ref_of(in, 4 * 3), 1000);
    }
    default: { /* attention: q = in[0..3*64), caches in in from 1024 on */
        const int32_t pos[3] = {0, 5, shape ? 40 : 12};
        tai_dref k[3], v[3];
        for (int c = 0; c < 3; c++) {
            k[c] = ref_of(in, 4 * (1024 + (size_t)c * 2000));
            v[c] = ref_of(in, 4 * (1024 + (size_t)c * 2000 + 1000));
        }
        *out_floats = 3 * 64;
        const size_t sb = tai_dev_attention_scratch(d, 64, 4);
        dbuf scratch;
        if (dalloc(d, sb, &scratch)) return tai_error(TINYAI_ERR_NOMEM, "scratch");
        const TinyAIStatus st = tai_dev_attention(d, ref_of(out, 0), ref_of(in, 0), 3, k, v, pos, 4,
                                                  2, 16, ref_of(&scratch, 0), sb);
        if (st == TINYAI_OK) tai_dev_sync(d);
        dfree(&scratch);
        return st;
    }
    }
}

static void check_float_ops(suite *s) {
    static const float_op ops[] = {{"rmsnorm", TAI_OP_RMSNORM, 1e-5}, {"add", TAI_OP_ADD, 1e-6},
                                   {"swiglu", TAI_OP_SWIGLU, 1e-5},  {"rope", TAI_OP_ROPE, 1e-5},
                                   {"copy", TAI_OP_COPY, 0},         {"attention", TAI_OP_ATTENTION, 1e-4}};
    const size_t in_floats = 8192, out_floats_max = 4200;
    float *in = malloc(in_floats * 4), *o0 = malloc(out_floats_max * 4),
          *got = malloc(out_floats_max * 4), *want = malloc(out_floats_max * 4);
    for (int op = 0; op < 6; op++) {
        if (!(s->dev->info.ops & ops[op].bit)) {
            add(s->r, "op", ops[op].name, "", TAI_CONF_SKIP, "%s not claimed", ops[op].name);
            continue;
        }
        char why[200] = "";
        double worst = 0;
        for (int shape = 0; shape < 2 && !why[0] && in && o0 && got && want; shape++) {
            for (size_t i = 0; i < in_floats; i++) in[i] = frand();
            for (size_t i = 0; i < out_floats_max; i++) o0[i] = frand();
            if (op == 3) /* angles: (cos, sin) pairs */
                for (int i = 0; i < 3 * 16; i += 2) {
                    const float a = 3.0f * frand();
                    in[i] = cosf(a);
                    in[i + 1] = sinf(a);
                }
            size_t nf = 0;
            for (int side = 0; side < 2 && !why[0]; side++) {
                tai_device *d = side ? s->ref : s->dev;
                dbuf bi = {0}, bo = {0};
                if (dalloc(d, in_floats * 4, &bi) || dalloc(d, out_floats_max * 4, &bo) ||
                    put(&bi, in, in_floats * 4, 0) || (side == 0 && poison(&bo)) ||
                    put(&bo, o0, out_floats_max * 4, 0) ||
                    run_float_op(d, op, &bi, &bo, &nf, shape) != TINYAI_OK ||
                    get(&bo, side ? want : got, nf * 4, 0))
                    snprintf(why, sizeof why, "%s", tinyaiLastErrorMessage());
                /* the guard: nothing written past the output's floats */
                if (!why[0] && side == 0) {
                    unsigned char *g = malloc(GUARD);
                    if (g && get(&bo, g, GUARD, out_floats_max * 4) == 0)
                        for (int i = 0; i < GUARD && !why[0]; i++)
                            if (g[i] != 0xff) snprintf(why, sizeof why, "wrote past the output");
                    free(g);
                }
                dfree(&bi);
                dfree(&bo);
            }
            if (!why[0]) {
                const double e = nrmse(got, want, nf);
                if (e > worst) worst = e;
                if (!(e <= ops[op].tol))
                    snprintf(why, sizeof why, "shape %d: error %.3g > %.0e", shape, e, ops[op].tol);
            }
        }
        if (!in || !o0 || !got || !want) snprintf(why, sizeof why, "out of memory");
        if (why[0]) add(s->r, "op", ops[op].name, "", TAI_CONF_FAIL, "%s", why);
        else add(s->r, "op", ops[op].name, "", TAI_CONF_PASS, "2 shapes, error <= %.2g", worst);
    }
    free(in);
    free(o0);
    free(got);
    free(want);
}

/* ---- buffers ---------------------------------------------------------------- */

static void check_buffers(suite *s) {
    tai_device *d = s->dev;
    tai_dbuf *b = NULL;
    int rc = d->ops->buf_alloc(d->ctx, 0, &b);
    if (rc == 0) d->ops->buf_free(d->ctx, b);
    add(s->r, "buffer", "zero-size buffer", "", rc == 0 ? TAI_CONF_PASS : TAI_CONF_FAIL,
        rc == 0 ? "allocated and freed" : "buffer_alloc(0) failed: %s", d->ops->last_error(d->ctx));
    d->ops->buf_free(d->ctx, NULL);
    /* more than the device has: an error, then it works again */
    if (d->info.unified || d->info.mem_total == 0) {
        add(s->r, "buffer", "out of memory", "", TAI_CONF_SKIP, "the device reports no memory size");
    } else {
        b = NULL;
        rc = d->ops->buf_alloc(d->ctx, (size_t)d->info.mem_total * 2 + 4096, &b);
        if (rc == 0) {
            d->ops->buf_free(d->ctx, b);
            add(s->r, "buffer", "out of memory", "", TAI_CONF_FAIL,
                "an allocation of twice the device's memory succeeded");
        } else {
            dbuf ok;
            const char msg[] = "recovered";
            char back[sizeof msg] = "";
            const int fine = dalloc(d, 4096, &ok) == 0 && put(&ok, msg, sizeof msg, 0) == 0 &&
                             get(&ok, back, sizeof back, 0) == 0 && !memcmp(back, msg, sizeof msg);
            dfree(&ok);
            add(s->r, "buffer", "out of memory", "", fine ? TAI_CONF_PASS : TAI_CONF_FAIL,
                fine ? "refused (%d), then a small buffer round-trips" : "after refusing (%d) it "
                                                                        "no longer works",
                rc);
        }
    }
    /* round trips of every type's packed bytes, at an odd offset */
    for (int i = 0; i < 5; i++) {
        size_t wb = 0;
        unsigned char *w = packed_random(kTypes[i], 33, 96, &wb), *back = malloc(wb ? wb : 1);
        dbuf bb;
        const int fine = w && back && dalloc(d, wb + 12, &bb) == 0 && put(&bb, w, wb, 12) == 0 &&
                         get(&bb, back, wb, 12) == 0 && !memcmp(w, back, wb);
        if (w && back) dfree(&bb);
        add(s->r, "buffer", "round trip", tai_type_name(kTypes[i]),
            fine ? TAI_CONF_PASS : TAI_CONF_FAIL, fine ? "%zu bytes at offset 12" : "%zu bytes "
                                                                                   "differ or failed",
            wb);
        free(w);
        free(back);
    }
}

/* ---- lifecycle and concurrency ------------------------------------------------- */

/* A small F32 product on d, checked against its own definition. */
static int quick_product(tai_device *d) {
    const int64_t rows = 16, n = 32;
    float w[16 * 32], x[32], y[16];
    for (int i = 0; i < rows * n; i++) w[i] = (float)((i * 7) % 13) * 0.125f - 0.75f;
    for (int i = 0; i < n; i++) x[i] = (float)(i % 5) * 0.25f - 0.5f;
    size_t pb = tai_pack_bytes(TAI_TYPE_F32, rows, n);
    unsigned char *pk = aligned_alloc(64, (pb + 63) / 64 * 64);
    if (!pk) return -1;
    tai_host_pack_matrix(NULL, TAI_TYPE_F32, w, rows, n, pk);
    dbuf bw, bx, by, bs;
    const size_t sb = tai_dev_matmul_scratch(d, TAI_TYPE_F32, n, 1);
    int ok = dalloc(d, pb, &bw) == 0 && dalloc(d, sizeof x, &bx) == 0 &&
             dalloc(d, sizeof y, &by) == 0 && dalloc(d, sb, &bs) == 0 && put(&bw, pk, pb, 0) == 0 &&
             put(&bx, x, sizeof x, 0) == 0 &&
             tai_dev_matmul(d, TAI_TYPE_F32, ref_of(&bw, 0), rows, n, ref_of(&bx, 0),
                            ref_of(&by, 0), 1, ref_of(&bs, 0)) == TINYAI_OK &&
             get(&by, y, sizeof y, 0) == 0;
    for (int r = 0; ok && r < rows; r++) {
        double acc = 0;
        for (int k = 0; k < n; k++) acc += (double)w[r * n + k] * x[k];
        if (fabs(acc - y[r]) > 1e-4) ok = 0;
    }
    dfree(&bw);
    dfree(&bx);
    dfree(&by);
    dfree(&bs);
    free(pk);
    return ok ? 0 : -1;
}

typedef struct {
    tai_device *d;
    int rounds, failed;
} worker;

static void *work(void *arg) {
    worker *w = arg;
    for (int i = 0; i < w->rounds; i++) w->failed += quick_product(w->d) != 0;
    return NULL;
}

static void check_lifecycle_and_concurrency(suite *s, tai_plugin *pl, int index) {
    const int can = (s->dev->info.ops & TAI_OP_MATMUL) && (s->dev->info.types & 1u << TAI_TYPE_F32);
    if (!can) {
        add(s->r, "lifecycle", "two handles of one device", "", TAI_CONF_SKIP,
            "needs F32 matrix products");
        add(s->r, "concurrency", "two threads", "", TAI_CONF_SKIP, "needs F32 matrix products");
        return;
    }
    tai_device *second = NULL;
    const TinyAIStatus st = tai_plugin_device_open(pl, index, &second);
    const int p2 = st == TINYAI_OK && quick_product(second) == 0, p1 = quick_product(s->dev) == 0;
    int fine = p1 && p2;
    add(s->r, "lifecycle", "two handles of one device", "", fine ? TAI_CONF_PASS : TAI_CONF_FAIL,
        fine ? "both compute" : "%s%s", st != TINYAI_OK ? "opening a second handle: " : "",
        st != TINYAI_OK ? tinyaiLastErrorMessage()
                        : "a 16 x 32 F32 product on one of the handles failed or was wrong");
    if (second) {
        worker a = {s->dev, 20, 0}, b = {second, 20, 0};
        pthread_t ta, tb;
        const int started = pthread_create(&ta, NULL, work, &a) == 0;
        const int started2 = started && pthread_create(&tb, NULL, work, &b) == 0;
        if (started) pthread_join(ta, NULL);
        if (started2) pthread_join(tb, NULL);
        fine = started2 && a.failed == 0 && b.failed == 0;
        add(s->r, "concurrency", "two threads", "", fine ? TAI_CONF_PASS : TAI_CONF_FAIL,
            "20 products on each of two handles at once: %d and %d failed", a.failed, b.failed);
        tai_device_close(second);
    }
    /* two devices of one plugin, computing at once */
    if (tai_plugin_device_count(pl) < 2) {
        add(s->r, "lifecycle", "two devices of the plugin", "", TAI_CONF_SKIP,
            "the plugin has one device");
    } else {
        tai_device *other = NULL;
        const int oi = index == 0 ? 1 : 0;
        const TinyAIStatus ost = tai_plugin_device_open(pl, oi, &other);
        worker a = {s->dev, 10, 0}, b = {other, 10, 0};
        pthread_t ta, tb;
        const int started = ost == TINYAI_OK && pthread_create(&ta, NULL, work, &a) == 0;
        const int started2 = started && pthread_create(&tb, NULL, work, &b) == 0;
        if (started) pthread_join(ta, NULL);
        if (started2) pthread_join(tb, NULL);
        const int ok2 = started2 && a.failed == 0 && b.failed == 0;
        if (ost != TINYAI_OK)
            add(s->r, "lifecycle", "two devices of the plugin", "", TAI_CONF_FAIL,
                "opening device %d: %s", oi, tinyaiLastErrorMessage());
        else
            add(s->r, "lifecycle", "two devices of the plugin", "", ok2 ? TAI_CONF_PASS : TAI_CONF_FAIL,
                "devices %d and %d, 10 products each at once: %d and %d failed", index, oi,
                a.failed, b.failed);
        tai_device_close(other);
    }
    /* two streams joined by an event (ABI 1.1) */
    const TinyAIPluginDeviceOps *o = NULL;
    void *dev = NULL;
    if (tai_plugin_device_raw(s->dev, &o, &dev) != TINYAI_OK ||
        o->struct_size < offsetof(TinyAIPluginDeviceOps, event_synchronize) + sizeof(void *) ||
        !o->stream_create || !o->event_create || !o->event_record || !o->stream_wait ||
        !o->event_synchronize || !o->stream_destroy || !o->event_destroy) {
        add(s->r, "concurrency", "two streams and an event", "", TAI_CONF_SKIP,
            "the device has no streams (ABI 1.0, or one queue)");
        return;
    }
    if (!(s->dev->info.ops & TAI_OP_COPY)) {
        add(s->r, "concurrency", "two streams and an event", "", TAI_CONF_SKIP, "needs copy");
        return;
    }
    TinyAIPluginStream *s1 = NULL, *s2 = NULL;
    TinyAIPluginEvent *e = NULL;
    char why[200] = "";
    float src[64], dst[64];
    for (int i = 0; i < 64; i++) src[i] = (float)i;
    dbuf a, b;
    const int bufs = dalloc(s->dev, sizeof src, &a) == 0 && dalloc(s->dev, sizeof src, &b) == 0;
    if (!bufs || o->stream_create(dev, &s1) || o->stream_create(dev, &s2) || o->event_create(dev, &e)) {
        snprintf(why, sizeof why, "creating streams and an event failed: %s", o->last_error(dev));
    } else {
        const TinyAIPluginRef ra = {(TinyAIPluginBuffer *)a.b, 0}, rb = {(TinyAIPluginBuffer *)b.b, 0};
        if (o->upload(dev, s1, ra, src, sizeof src) || o->event_record(dev, s1, e) ||
            o->stream_wait(dev, s2, e) || o->copy(dev, s2, rb, ra, sizeof src) ||
            o->synchronize(dev, s2) || o->event_synchronize(dev, e) ||
            o->download(dev, NULL, dst, rb, sizeof dst))
            snprintf(why, sizeof why, "%s", o->last_error(dev));
        else if (memcmp(src, dst, sizeof src))
            snprintf(why, sizeof why, "the copy on the second stream did not see the upload on the first");
    }
    if (e) o->event_destroy(dev, e);
    if (s1) o->stream_destroy(dev, s1);
    if (s2) o->stream_destroy(dev, s2);
    if (bufs) {
        dfree(&a);
        dfree(&b);
    }
    add(s->r, "concurrency", "two streams and an event", "", why[0] ? TAI_CONF_FAIL : TAI_CONF_PASS,
        "%s", why[0] ? why : "upload on one stream, copy on another after the event");
}

/* ---- end to end ---------------------------------------------------------------- */

static void check_model(suite *s, const char *device_name, tai_type t) {
    const char *type = tai_type_name(t);
    const uint32_t block = TAI_OP_MATMUL | TAI_OP_RMSNORM | TAI_OP_ADD | TAI_OP_ROPE |
                           TAI_OP_ATTENTION | TAI_OP_SWIGLU | TAI_OP_COPY;
    if ((s->dev->info.ops & block) != block || !(s->dev->info.types & (1u << t))) {
        add(s->r, "model", "generation", type, TAI_CONF_SKIP,
            "the device does not claim every op and type of a block");
        return;
    }
    char path[] = "/tmp/tinyai-conformance-XXXXXX";
    const int fd = mkstemp(path);
    if (fd < 0) {
        add(s->r, "model", "generation", type, TAI_CONF_FAIL, "no temporary file: %s", strerror(errno));
        return;
    }
    close(fd);
    TinyAISynthConfig sc = tinyaiCreateDefaultSynthConfig();
    sc.nVocab = 320;
    sc.nEmbd = 128;
    sc.nFF = 320;
    sc.nHead = 4;
    sc.nHeadKV = 2;
    sc.nLayer = 4;
    sc.nCtx = 128;
    sc.weightType = type;
    sc.embeddingType = type;
    sc.seed = 5;
    char why[240] = "";
    TinyAIModel *m[2] = {NULL, NULL};
    TinyAISession *ss[2] = {NULL, NULL};
    int32_t toks[2][24];
    double err = 0;
    if (tinyaiWriteSyntheticModel(&sc, path) != TINYAI_OK) {
        snprintf(why, sizeof why, "%s", tinyaiLastErrorMessage());
    } else {
        const int32_t prompt[6] = {1, 45, 200, 7, 99, 3};
        float *l0 = malloc(320 * 4);
        for (int side = 0; side < 2 && !why[0]; side++) {
            TinyAIModelConfig mc = tinyaiCreateDefaultModelConfig();
            mc.device = side ? device_name : "cpu";
            mc.threads = 2;
            if (tinyaiLoadModel(path, &mc, &m[side]) != TINYAI_OK ||
                tinyaiCreateSession(m[side], 64, &ss[side]) != TINYAI_OK ||
                tinyaiEval(ss[side], prompt, 6) != TINYAI_OK) {
                snprintf(why, sizeof why, "%s", tinyaiLastErrorMessage());
                break;
            }
            if (side == 0 && l0) memcpy(l0, tinyaiGetLogits(ss[0]), 320 * 4);
            if (side == 1 && l0) err = nrmse(tinyaiGetLogits(ss[1]), l0, 320);
            for (int i = 0; i < 24 && !why[0]; i++) { /* greedy */
                const float *l = tinyaiGetLogits(ss[side]);
                int best = 0;
                for (int k = 1; k < 320; k++)
                    if (l[k] > l[best]) best = k;
                toks[side][i] = best;
                if (tinyaiEval(ss[side], &toks[side][i], 1) != TINYAI_OK)
                    snprintf(why, sizeof why, "%s", tinyaiLastErrorMessage());
            }
        }
        free(l0);
    }
    const double tol = t == TAI_TYPE_F32 ? 1e-4 : 3e-2;
    if (!why[0] && !(err <= tol)) snprintf(why, sizeof why, "logits differ: %.3g > %.0e", err, tol);
    if (!why[0] && memcmp(toks[0], toks[1], sizeof toks[0]))
        snprintf(why, sizeof why, "greedy tokens differ from the CPU's (logits error %.3g)", err);
    for (int side = 0; side < 2; side++) {
        tinyaiFreeSession(ss[side]);
        tinyaiFreeModel(m[side]);
    }
    unlink(path);
    if (why[0]) add(s->r, "model", "generation", type, TAI_CONF_FAIL, "%s", why);
    else add(s->r, "model", "generation", type, TAI_CONF_PASS,
             "4-layer synthetic model: logits within %.2g of the CPU's, 24 greedy tokens identical",
             err);
}

/* ---- the run ---------------------------------------------------------------------- */

TinyAIStatus tai_conf_run(const char *plugin_path, const char *options, int device,
                          tai_conf_report *out) {
    memset(out, 0, sizeof *out);
    rng_state = 12345u;
    tai_plugin *pl = NULL;
    TinyAIStatus st = tai_plugin_load(plugin_path, options, &pl);
    if (st != TINYAI_OK) return st;
    snprintf(out->plugin, sizeof out->plugin, "%s", tai_plugin_name(pl));
    tai_plugin_abi(pl, &out->abi_major, &out->abi_minor);
    add(out, "abi", "version", "", TAI_CONF_PASS, "built for %d.%d; this suite speaks %d.%d",
        out->abi_major, out->abi_minor, TINYAI_PLUGIN_ABI_MAJOR, TINYAI_PLUGIN_ABI_MINOR);
    if (device < 0 || device >= tai_plugin_device_count(pl)) {
        const int n = tai_plugin_device_count(pl);
        tai_plugin_unload(pl);
        return tai_error(TINYAI_ERR_RANGE, "plugin %s has %d devices, not device %d", out->plugin,
                         n, device);
    }
    suite s = {NULL, NULL, out};
    st = tai_plugin_device_open(pl, device, &s.dev);
    if (st == TINYAI_OK) st = tai_cpu_device_open("scalar", 1, &s.ref);
    if (st != TINYAI_OK) {
        add(out, "lifecycle", "open", "", TAI_CONF_FAIL, "%s", tinyaiLastErrorMessage());
        tai_device_close(s.dev);
        tai_plugin_unload(pl);
        return TINYAI_OK;
    }
    snprintf(out->device, sizeof out->device, "%s", s.dev->info.name);
    snprintf(out->model, sizeof out->model, "%s", s.dev->info.model);
    /* the table a plugin of its minor version must have */
    const TinyAIPluginDeviceOps *o = NULL;
    void *raw = NULL;
    tai_plugin_device_raw(s.dev, &o, &raw);
    const uint32_t need = out->abi_minor >= 1 ? offsetof(TinyAIPluginDeviceOps, event_synchronize) + 8
                                               : offsetof(TinyAIPluginDeviceOps, copy) + 8;
    add(out, "abi", "table size", "", o->struct_size >= need ? TAI_CONF_PASS : TAI_CONF_FAIL,
        "device table of %u bytes (ABI %d.%d needs %u)", o->struct_size, out->abi_major,
        out->abi_minor, need);
    for (int i = 0; i < 5; i++) check_matmul(&s, kTypes[i]);
    for (int i = 0; i < 5; i++) check_embed(&s, kTypes[i]);
    check_float_ops(&s);
    check_buffers(&s);
    check_lifecycle_and_concurrency(&s, pl, device);
    check_model(&s, s.dev->info.name, TAI_TYPE_F32);
    check_model(&s, s.dev->info.name, TAI_TYPE_Q4_0);
    tai_device_close(s.dev);
    tai_device_close(s.ref);
    /* shutdown and reload */
    st = tai_plugin_unload(pl);
    tai_device *again = NULL;
    if (st == TINYAI_OK) st = tai_plugin_load(plugin_path, options, &pl);
    if (st == TINYAI_OK) st = tai_plugin_device_open(pl, device, &again);
    const int fine = st == TINYAI_OK;
    add(out, "lifecycle", "shutdown and reload", "", fine ? TAI_CONF_PASS : TAI_CONF_FAIL,
        fine ? "unloaded, loaded again, device opened" : "%s", tinyaiLastErrorMessage());
    tai_device_close(again);
    if (st == TINYAI_OK || pl) tai_plugin_unload(pl);
    tinyaiClearError();
    return TINYAI_OK;
}

/* ---- writing the report ------------------------------------------------------------ */

static const char *mark(tai_conf_result r) {
    return r == TAI_CONF_PASS ? "pass" : r == TAI_CONF_FAIL ? "FAIL" : "skip";
}

int tai_conf_write_markdown(const tai_conf_report *r, FILE *f) {
    fprintf(f, "# Conformance: plugin %s (ABI %d.%d), device %s (%s)\n\n", r->plugin, r->abi_major,
            r->abi_minor, r->device, r->model);
    /* op x type */
    static const char *const ops[] = {"matmul", "embed"};
    fprintf(f, "| op | F32 | F16 | Q8_0 | Q4_0 | Q4_1 |\n| --- | --- | --- | --- | --- | --- |\n");
    for (int k = 0; k < 2; k++) {
        fprintf(f, "| %s |", ops[k]);
        for (int t = 0; t < 5; t++) {
            const char *cell = "-";
            for (int i = 0; i < r->n; i++)
                if (!strcmp(r->cases[i].name, ops[k]) &&
                    !strcmp(r->cases[i].type, tai_type_name(kTypes[t])))
                    cell = mark(r->cases[i].result);
            fprintf(f, " %s |", cell);
        }
        fprintf(f, "\n");
    }
    fprintf(f, "\n| check | type | result | detail |\n| --- | --- | --- | --- |\n");
    for (int i = 0; i < r->n; i++) {
        const tai_conf_case *c = &r->cases[i];
        fprintf(f, "| %s: %s | %s | %s | %s |\n", c->group, c->name, c->type[0] ? c->type : "-",
                mark(c->result), c->detail);
    }
    fprintf(f, "\n%d passed, %d failed, %d skipped\n", tai_conf_count(r, TAI_CONF_PASS),
            tai_conf_count(r, TAI_CONF_FAIL), tai_conf_count(r, TAI_CONF_SKIP));
    return ferror(f) ? -1 : 0;
}

static void json_str(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') fprintf(f, "\\%c", *s);
        else if ((unsigned char)*s < 0x20) fprintf(f, "\\u%04x", (unsigned char)*s);
        else fputc(*s, f);
    }
    fputc('"', f);
}

int tai_conf_write_json(const tai_conf_report *r, FILE *f) {
    fprintf(f, "{\"plugin\": ");
    json_str(f, r->plugin);
    fprintf(f, ", \"abi\": \"%d.%d\", \"device\": ", r->abi_major, r->abi_minor);
    json_str(f, r->device);
    fprintf(f, ", \"model\": ");
    json_str(f, r->model);
    fprintf(f, ", \"passed\": %d, \"failed\": %d, \"skipped\": %d, \"cases\": [",
            tai_conf_count(r, TAI_CONF_PASS), tai_conf_count(r, TAI_CONF_FAIL),
            tai_conf_count(r, TAI_CONF_SKIP));
    for (int i = 0; i < r->n; i++) {
        const tai_conf_case *c = &r->cases[i];
        fprintf(f, "%s\n  {\"group\": ", i ? "," : "");
        json_str(f, c->group);
        fprintf(f, ", \"name\": ");
        json_str(f, c->name);
        fprintf(f, ", \"type\": ");
        json_str(f, c->type);
        fprintf(f, ", \"result\": \"%s\", \"detail\": ", mark(c->result));
        json_str(f, c->detail);
        fprintf(f, "}");
    }
    fprintf(f, "\n]}\n");
    return ferror(f) ? -1 : 0;
}
