/*
 * plugins/cuda: NVIDIA GPUs through the CUDA runtime (layer: plugins).
 * Written only against <tinyai/plugin.h>; the CUDA runtime is linked
 * statically, so the plugin needs nothing from the CUDA toolkit where it
 * runs, only the driver (libcuda.so.1). Without a driver or a GPU it loads
 * and reports no devices, logging why.
 *
 * Every op runs on the device's own stream (or the caller's); errors of
 * asynchronous work surface at synchronize. Weights are TinyAI's packed
 * panels (docs/PLUGINS.md "Weights"), read in place: a panel's 16 rows are
 * 64-byte lines, so 16 adjacent threads of a warp, one per row, load a
 * line together. Block-type products multiply 8-bit codes with __dp4a
 * against activations quantized per 32 values as TinyAI's CPU does
 * (quant_q8), so results match the CPU's to the order of float sums.
 *
 * Kernels, by op:
 *   matvec      one column: a block of 16 rows x 16 K-slices per panel,
 *               slices summed in shared memory;
 *   matmul      columns in groups of 8: a thread per (row, group), the
 *               row's codes decoded once per block for the 8 columns;
 *   attention   a block per (column, head): 4 warps over interleaved
 *               positions with an online softmax each, merged at the end;
 *   the rest    elementwise or a block per column.
 */
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tinyai/plugin.h>

#include "plugins/common/panels.h"

#define NCOL 8   /* columns per thread of matmul */
#define KS 16    /* K-slices of matvec */
#define ATT_WARPS 4
#define MAX_HEAD_DIM 256
#define ATT_MAX_COLS 64 /* columns per attention call (TinyAI slices to this) */

struct TinyAIPluginBuffer {
    void *ptr;
    uint64_t bytes;
    TinyAIPluginBuffer *prev, *next; /* the device's list: close frees what is left */
};
struct TinyAIPluginStream {
    cudaStream_t s;
};
struct TinyAIPluginEvent {
    cudaEvent_t e;
};

struct Plugin {
    TinyAIPluginHost host;
    int n_devices;
    char err[256];
};

struct Device {
    Plugin *p;
    int index;
    cudaStream_t stream;
    TinyAIPluginBuffer *buffers;
    int *ids; /* token ids of embed, on the device */
    size_t ids_cap;
    char err[512];
};

/* ---- errors ------------------------------------------------------------- */

static int32_t fail(Device *d, int32_t rc, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d->err, sizeof d->err, fmt, ap);
    va_end(ap);
    return rc;
}

static int32_t cuda_fail(Device *d, cudaError_t e, const char *what) {
    cudaGetLastError(); /* clear a non-sticky error so that the device stays usable */
    return fail(d, e == cudaErrorMemoryAllocation ? -ENOMEM : -EIO, "%s: %s", what,
                cudaGetErrorString(e));
}

#define CK(d, call, what)                                    \
    do {                                                     \
        cudaError_t e_ = (call);                             \
        if (e_ != cudaSuccess) return cuda_fail(d, e_, what); \
    } while (0)

/* After a launch: a bad configuration is reported now, a fault later. */
#define LAUNCHED(d, what) CK(d, cudaGetLastError(), what)

static int32_t enter(Device *d) {
    d->err[0] = 0;
    CK(d, cudaSetDevice(d->index), "cudaSetDevice");
    return 0;
}

#define ENTER(d)                        \
    do {                                \
        const int32_t rc_ = enter(d);   \
        if (rc_) return rc_;            \
    } while (0)

static cudaStream_t S(Device *d, TinyAIPluginStream *s) { return s ? s->s : d->stream; }

/* The bytes at r, checked against its buffer; NULL (and the error set) if
 * they overrun it. */
static char *at(Device *d, TinyAIPluginRef r, uint64_t bytes, const char *what, int32_t *rc) {
    if (!r.buffer) {
        *rc = fail(d, -EINVAL, "%s: not a buffer of this device", what);
        return NULL;
    }
    if (r.offset > r.buffer->bytes || bytes > r.buffer->bytes - r.offset) {
        *rc = fail(d, -EINVAL, "%s: %llu bytes at offset %llu overrun a buffer of %llu", what,
                   (unsigned long long)bytes, (unsigned long long)r.offset,
                   (unsigned long long)r.buffer->bytes);
        return NULL;
    }
    return (char *)r.buffer->ptr + r.offset;
}

#define AT(var, type, ref, bytes, what)                                     \
    type *var = (type *)at(d, ref, (uint64_t)(bytes), what, &rc);           \
    if (!var) return rc

/* ---- the packed layout --------------------------------------------------- */

__device__ static inline float half_at(const unsigned char *p) {
    return __half2float(__ushort_as_half(*(const unsigned short *)p));
}

/* Block b of row rr in the panel at pw: the codes as 8 words of 4 signed
 * bytes each, in element order (Q8_0: bias removed; Q4: 0..15), scale and
 * minimum. Word j holds elements 4j .. 4j+3. */
__device__ static inline void block_words(int t, const unsigned char *pw, int b, int rr, int *w,
                                          float *dd, float *mm) {
    const unsigned char *pair = pw + (size_t)(b >> 1) * pair_bytes(t);
    const unsigned char *codes = pair + (b & 1) * code_bytes(t);
    const unsigned char *scales = pair + 2 * code_bytes(t) + (b & 1) * 32;
    *dd = half_at(scales + 2 * rr);
    *mm = t == TINYAI_PLUGIN_Q4_1 ? half_at(scales + 64 + 2 * rr) : 0.0f;
    if (t == TINYAI_PLUGIN_Q8_0) {
#pragma unroll
        for (int g = 0; g < 8; g++) /* u8 + 128 -> s8: flip the top bit */
            w[g] = (int)(*(const unsigned int *)(codes + g * 64 + rr * 4) ^ 0x80808080u);
        return;
    }
#pragma unroll
    for (int j = 0; j < 4; j++) {
        const unsigned int u = *(const unsigned int *)(codes + j * 64 + rr * 4);
        w[2 * j] = (int)(u & 0x0f0f0f0fu);            /* elements 8j .. 8j+3 */
        w[2 * j + 1] = (int)((u >> 4) & 0x0f0f0f0fu); /* elements 8j+4 .. 8j+7 */
    }
}

/* One block of a row against one column's quantized block. */
__device__ static inline float block_dot(int t, const int *w, float dd, float mm, const int *xq,
                                         float2 xd) {
    int isum = 0, xsum = 0;
#pragma unroll
    for (int j = 0; j < 8; j++) {
        isum = __dp4a(w[j], xq[j], isum);
        if (t == TINYAI_PLUGIN_Q4_0) xsum = __dp4a(0x01010101, xq[j], xsum);
    }
    if (t == TINYAI_PLUGIN_Q4_0) isum -= 8 * xsum;
    return dd * xd.x * (float)isum + mm * xd.y;
}

/* ---- kernels -------------------------------------------------------------- */

/* Activations for the block types, as TinyAI's CPU quantizes them: per
 * block of 32 values of a column, d = amax / 127 and q = round(x / d).
 * A warp per block. */
__global__ void k_quant_q8(const float *x, int n, float2 *qd, signed char *qs) {
    const int nb = n / QK, b = blockIdx.x, c = blockIdx.y, lane = threadIdx.x;
    const float v = x[(size_t)c * n + b * QK + lane];
    float amax = fabsf(v);
    for (int o = 16; o > 0; o >>= 1) amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, o));
    const float dd = amax / 127.0f;
    int q = 0;
    if (dd != 0.0f) {
        const float r = roundf(v / dd);
        q = r > 127.0f ? 127 : r < -127.0f ? -127 : (int)r;
    }
    qs[((size_t)c * nb + b) * QK + lane] = (signed char)q;
    int sum = q;
    for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
    if (lane == 0) qd[(size_t)c * nb + b] = make_float2(dd, dd * (float)sum);
}

/* One column: block (16 rows, KS slices) per panel. */
__global__ void k_matvec(int t, const unsigned char *w, size_t pb, int rows, int n, const float *x,
                         const float2 *qd, const signed char *qs, float *y) {
    __shared__ float part[KS][PANEL];
    const int rr = threadIdx.x, s = threadIdx.y, r = blockIdx.x * PANEL + rr;
    const unsigned char *pw = w + (size_t)blockIdx.x * pb;
    float acc = 0.0f;
    if (t == TINYAI_PLUGIN_F32) {
        for (int k = s; k < n; k += KS) acc += ((const float *)pw)[(size_t)k * PANEL + rr] * x[k];
    } else if (t == TINYAI_PLUGIN_F16) {
        for (int k = s; k < n; k += KS) acc += half_at(pw + 2 * ((size_t)k * PANEL + rr)) * x[k];
    } else {
        for (int b = s; b < n / QK; b += KS) {
            int wq[8];
            float dd, mm;
            block_words(t, pw, b, rr, wq, &dd, &mm);
            acc += block_dot(t, wq, dd, mm, (const int *)(qs + (size_t)b * QK), qd[b]);
        }
    }
    part[s][rr] = acc;
    __syncthreads();
    for (int h = KS / 2; h > 0; h >>= 1) {
        if (s < h) part[s][rr] += part[s + h][rr];
        __syncthreads();
    }
    if (s == 0 && r < rows) y[r] = part[0][rr];
}

/* Columns in groups of NCOL: a thread per (row, group). */
__global__ void k_matmul(int t, const unsigned char *w, size_t pb, int rows, int n, const float *x,
                         const float2 *qd, const signed char *qs, float *y, int ncols) {
    const int r = blockIdx.x * blockDim.x + threadIdx.x, c0 = (blockIdx.y * blockDim.y + threadIdx.y) * NCOL;
    if (r >= rows || c0 >= ncols) return;
    const int rr = r % PANEL, nc = min(NCOL, ncols - c0), nb = n / QK;
    const unsigned char *pw = w + (size_t)(r / PANEL) * pb;
    float acc[NCOL];
#pragma unroll
    for (int j = 0; j < NCOL; j++) acc[j] = 0.0f;
    if (t == TINYAI_PLUGIN_F32 || t == TINYAI_PLUGIN_F16) {
        for (int k = 0; k < n; k++) {
            const float wv = t == TINYAI_PLUGIN_F32 ? ((const float *)pw)[(size_t)k * PANEL + rr]
                                                    : half_at(pw + 2 * ((size_t)k * PANEL + rr));
#pragma unroll
            for (int j = 0; j < NCOL; j++)
                if (j < nc) acc[j] += wv * x[(size_t)(c0 + j) * n + k];
        }
    } else {
        for (int b = 0; b < nb; b++) {
            int wq[8];
            float dd, mm;
            block_words(t, pw, b, rr, wq, &dd, &mm);
#pragma unroll
            for (int j = 0; j < NCOL; j++)
                if (j < nc) {
                    const size_t at = (size_t)(c0 + j) * nb + b;
                    acc[j] += block_dot(t, wq, dd, mm, (const int *)(qs + at * QK), qd[at]);
                }
        }
    }
    for (int j = 0; j < nc; j++) y[(size_t)(c0 + j) * rows + r] = acc[j];
}

/* A block per column; sums of squares in double, as TinyAI's reference. */
__global__ void k_rmsnorm(float *out, const float *x, const float *w, int n, float eps) {
    __shared__ double part[256];
    const int c = blockIdx.x;
    const float *xc = x + (size_t)c * n;
    double ss = 0.0;
    for (int i = threadIdx.x; i < n; i += blockDim.x) ss += (double)xc[i] * xc[i];
    part[threadIdx.x] = ss;
    __syncthreads();
    for (int h = blockDim.x / 2; h > 0; h >>= 1) {
        if (threadIdx.x < h) part[threadIdx.x] += part[threadIdx.x + h];
        __syncthreads();
    }
    const float scale = (float)(1.0 / sqrt(part[0] / (double)n + (double)eps));
    for (int i = threadIdx.x; i < n; i += blockDim.x)
        out[(size_t)c * n + i] = __fmul_rn(__fmul_rn(xc[i], scale), w[i]);
}

__global__ void k_add(float *x, const float *d, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x)
        x[i] += d[i];
}

__global__ void k_swiglu(float *g, const float *u, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        const float v = g[i];
        g[i] = v / (1.0f + expf(-v)) * u[i];
    }
}

/* A block per (column, head), a thread per pair. */
__global__ void k_rope(float *x, int64_t col_stride, int head_dim, int rot, const float *cs) {
    const int c = blockIdx.x, h = blockIdx.y;
    float *p = x + (size_t)c * col_stride + (size_t)h * head_dim;
    const float *a = cs + (size_t)c * rot;
    const int rd = rot > head_dim ? head_dim : rot;
    for (int i = threadIdx.x; 2 * i + 1 < rd; i += blockDim.x) {
        const float co = a[2 * i], si = a[2 * i + 1], x0 = p[2 * i], x1 = p[2 * i + 1];
        p[2 * i] = __fsub_rn(__fmul_rn(x0, co), __fmul_rn(x1, si));
        p[2 * i + 1] = __fadd_rn(__fmul_rn(x0, si), __fmul_rn(x1, co));
    }
}

struct AttCols {
    const float *k[ATT_MAX_COLS], *v[ATT_MAX_COLS];
    int pos[ATT_MAX_COLS];
};

/* A block of ATT_WARPS warps per (column, head). Each warp takes every
 * ATT_WARPS-th position with its own online softmax (running max m, sum
 * l, weighted values acc; a lane holds head_dim / 32 of them); the warps
 * merge at the end. */
__global__ void k_attention(float *out, const float *q, AttCols cols, int n_head, int n_kv_head,
                            int head_dim) {
    __shared__ float sm[ATT_WARPS], sl[ATT_WARPS], sacc[ATT_WARPS][MAX_HEAD_DIM];
    const int c = blockIdx.x, h = blockIdx.y, warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int width = n_head * head_dim, kvw = n_kv_head * head_dim;
    const int kv = (h / (n_head / n_kv_head)) * head_dim;
    const float *qh = q + (size_t)c * width + (size_t)h * head_dim;
    const float scale = rsqrtf((float)head_dim);
    const int per = (head_dim + 31) / 32; /* <= MAX_HEAD_DIM / 32 */
    float qv[MAX_HEAD_DIM / 32], acc[MAX_HEAD_DIM / 32];
    for (int j = 0; j < per; j++) {
        const int i = lane + 32 * j;
        qv[j] = i < head_dim ? qh[i] : 0.0f;
        acc[j] = 0.0f;
    }
    float m = -INFINITY, l = 0.0f;
    const int np = cols.pos[c] + 1;
    for (int p = warp; p < np; p += ATT_WARPS) {
        const float *kp = cols.k[c] + (size_t)p * kvw + kv, *vp = cols.v[c] + (size_t)p * kvw + kv;
        float dot = 0.0f;
        for (int j = 0; j < per; j++) {
            const int i = lane + 32 * j;
            if (i < head_dim) dot += qv[j] * kp[i];
        }
        for (int o = 16; o > 0; o >>= 1) dot += __shfl_xor_sync(0xffffffffu, dot, o);
        const float s = dot * scale, nm = fmaxf(m, s);
        const float old = expf(m - nm), e = expf(s - nm);
        l = l * old + e;
        for (int j = 0; j < per; j++) {
            const int i = lane + 32 * j;
            acc[j] = acc[j] * old + (i < head_dim ? e * vp[i] : 0.0f);
        }
        m = nm;
    }
    if (lane == 0) {
        sm[warp] = m;
        sl[warp] = l;
    }
    for (int j = 0; j < per; j++) {
        const int i = lane + 32 * j;
        if (i < head_dim) sacc[warp][i] = acc[j];
    }
    __syncthreads();
    if (warp != 0) return;
    float M = -INFINITY;
    for (int w = 0; w < ATT_WARPS; w++) M = fmaxf(M, sm[w]);
    float L = 0.0f;
    for (int w = 0; w < ATT_WARPS; w++) L += sm[w] == -INFINITY ? 0.0f : sl[w] * expf(sm[w] - M);
    float *oh = out + (size_t)c * width + (size_t)h * head_dim;
    for (int j = 0; j < per; j++) {
        const int i = lane + 32 * j;
        if (i >= head_dim) continue;
        float v = 0.0f;
        for (int w = 0; w < ATT_WARPS; w++)
            if (sm[w] != -INFINITY) v += sacc[w][i] * expf(sm[w] - M);
        oh[i] = v / L;
    }
}

/* Rows of a packed table, dequantized exactly as TinyAI's CPU does (no
 * fused multiply-adds: d * q + m rounds twice there). */
__global__ void k_embed(int t, const unsigned char *w, size_t pb, int n, const int *tokens,
                        float *out) {
    const int c = blockIdx.x, row = tokens[c], rr = row % PANEL;
    const unsigned char *pw = w + (size_t)(row / PANEL) * pb;
    for (int k = threadIdx.x; k < n; k += blockDim.x) {
        float v;
        if (t == TINYAI_PLUGIN_F32) {
            v = ((const float *)pw)[(size_t)k * PANEL + rr];
        } else if (t == TINYAI_PLUGIN_F16) {
            v = half_at(pw + 2 * ((size_t)k * PANEL + rr));
        } else {
            const int b = k / QK, e = k % QK;
            const unsigned char *pair = pw + (size_t)(b >> 1) * pair_bytes(t);
            const unsigned char *codes = pair + (b & 1) * code_bytes(t);
            const unsigned char *scales = pair + 2 * code_bytes(t) + (b & 1) * 32;
            const float dd = half_at(scales + 2 * rr);
            if (t == TINYAI_PLUGIN_Q8_0) {
                v = __fmul_rn(dd, (float)((int)codes[(e / 4) * 64 + rr * 4 + e % 4] - 128));
            } else {
                const int j = e / 8, hi = (e % 8) >= 4, tt = e % 4;
                const int q = hi ? codes[j * 64 + rr * 4 + tt] >> 4 : codes[j * 64 + rr * 4 + tt] & 15;
                v = t == TINYAI_PLUGIN_Q4_1
                        ? __fadd_rn(__fmul_rn(dd, (float)q), half_at(scales + 64 + 2 * rr))
                        : __fmul_rn(dd, (float)(q - 8));
            }
        }
        out[(size_t)c * n + k] = v;
    }
}

/* ---- identity, memory ----------------------------------------------------- */

static void dev_close(void *dev) {
    Device *d = (Device *)dev;
    const bool ok = cudaSetDevice(d->index) == cudaSuccess;
    if (ok && d->stream) cudaStreamSynchronize(d->stream);
    while (d->buffers) {
        TinyAIPluginBuffer *b = d->buffers;
        d->buffers = b->next;
        if (ok) cudaFree(b->ptr);
        free(b);
    }
    if (ok && d->ids) cudaFree(d->ids);
    if (ok && d->stream) cudaStreamDestroy(d->stream);
    free(d);
}

static const char *dev_last_error(void *dev) { return ((Device *)dev)->err; }

static int32_t dev_info(void *dev, TinyAIPluginDeviceInfo *out) {
    Device *d = (Device *)dev;
    ENTER(d);
    if (!out || out->struct_size < offsetof(TinyAIPluginDeviceInfo, memory_free) + 8)
        return fail(d, -EINVAL, "info: a struct of %u bytes", out ? out->struct_size : 0);
    cudaDeviceProp prop;
    CK(d, cudaGetDeviceProperties(&prop, d->index), "cudaGetDeviceProperties");
    size_t free_b = 0, total = 0;
    CK(d, cudaMemGetInfo(&free_b, &total), "cudaMemGetInfo");
    int drv = 0, rt = 0;
    cudaDriverGetVersion(&drv);
    cudaRuntimeGetVersion(&rt);
    TinyAIPluginDeviceInfo i;
    memset(&i, 0, sizeof i);
    i.struct_size = out->struct_size;
    i.kind = TINYAI_PLUGIN_DEVICE_GPU;
    snprintf(i.name, sizeof i.name, "cuda%d", d->index);
    snprintf(i.vendor, sizeof i.vendor, "NVIDIA");
    snprintf(i.version, sizeof i.version, "CUDA driver %d.%d, runtime %d.%d, sm_%d%d", drv / 1000,
             drv % 1000 / 10, rt / 1000, rt % 1000 / 10, prop.major, prop.minor);
    snprintf(i.model, sizeof i.model, "%s", prop.name);
    i.unified = 0;
    i.ops = TINYAI_PLUGIN_OP_MATMUL | TINYAI_PLUGIN_OP_RMSNORM | TINYAI_PLUGIN_OP_ADD |
            TINYAI_PLUGIN_OP_ROPE | TINYAI_PLUGIN_OP_ATTENTION | TINYAI_PLUGIN_OP_SWIGLU |
            TINYAI_PLUGIN_OP_EMBED | TINYAI_PLUGIN_OP_COPY;
    i.types = 1u << TINYAI_PLUGIN_F32 | 1u << TINYAI_PLUGIN_F16 | 1u << TINYAI_PLUGIN_Q4_0 |
              1u << TINYAI_PLUGIN_Q4_1 | 1u << TINYAI_PLUGIN_Q8_0;
    i.memory_total = total;
    i.memory_free = free_b;
    const uint32_t size = out->struct_size < sizeof i ? out->struct_size : (uint32_t)sizeof i;
    memcpy(out, &i, size);
    return 0;
}

static int32_t buffer_alloc(void *dev, uint64_t bytes, TinyAIPluginBuffer **out) {
    Device *d = (Device *)dev;
    ENTER(d);
    if (!out) return fail(d, -EINVAL, "buffer_alloc: NULL output");
    *out = NULL;
    TinyAIPluginBuffer *b = (TinyAIPluginBuffer *)calloc(1, sizeof *b);
    if (!b) return fail(d, -ENOMEM, "buffer_alloc: out of host memory");
    const cudaError_t e = cudaMalloc(&b->ptr, bytes ? bytes : 1);
    if (e != cudaSuccess) {
        free(b);
        return cuda_fail(d, e, "cudaMalloc");
    }
    b->bytes = bytes;
    b->next = d->buffers;
    if (d->buffers) d->buffers->prev = b;
    d->buffers = b;
    *out = b;
    return 0;
}

static void buffer_free(void *dev, TinyAIPluginBuffer *b) {
    Device *d = (Device *)dev;
    if (!b) return;
    if (cudaSetDevice(d->index) == cudaSuccess) {
        /* ops still reading it must finish first */
        cudaStreamSynchronize(d->stream);
        cudaFree(b->ptr);
    }
    if (b->prev) b->prev->next = b->next;
    else d->buffers = b->next;
    if (b->next) b->next->prev = b->prev;
    free(b);
}

static int32_t upload(void *dev, TinyAIPluginStream *s, TinyAIPluginRef dst, const void *src,
                      uint64_t bytes) {
    Device *d = (Device *)dev;
    ENTER(d);
    int32_t rc = 0;
    AT(p, char, dst, bytes, "upload destination");
    if (bytes && !src) return fail(d, -EINVAL, "upload: NULL source");
    if (bytes) CK(d, cudaMemcpyAsync(p, src, bytes, cudaMemcpyHostToDevice, S(d, s)), "upload");
    return 0;
}

static int32_t download(void *dev, TinyAIPluginStream *s, void *dst, TinyAIPluginRef src,
                        uint64_t bytes) {
    Device *d = (Device *)dev;
    ENTER(d);
    int32_t rc = 0;
    AT(p, const char, src, bytes, "download source");
    if (bytes && !dst) return fail(d, -EINVAL, "download: NULL destination");
    if (bytes) CK(d, cudaMemcpyAsync(dst, p, bytes, cudaMemcpyDeviceToHost, S(d, s)), "download");
    CK(d, cudaStreamSynchronize(S(d, s)), "download");
    return 0;
}

static int32_t synchronize(void *dev, TinyAIPluginStream *s) {
    Device *d = (Device *)dev;
    ENTER(d);
    CK(d, cudaStreamSynchronize(S(d, s)), "synchronize");
    return 0;
}

/* ---- ops ------------------------------------------------------------------ */

static uint64_t matmul_scratch(void *dev, int32_t type, int64_t n, int64_t ncols) {
    (void)dev;
    if (!block_type(type) || n <= 0 || ncols <= 0) return 0;
    return (uint64_t)(n / QK) * (uint64_t)ncols * (sizeof(float2) + QK);
}

static int32_t matmul(void *dev, TinyAIPluginStream *s, int32_t type, TinyAIPluginRef w,
                      int64_t rows, int64_t n, TinyAIPluginRef x, TinyAIPluginRef y, int64_t ncols,
                      TinyAIPluginRef scratch) {
    Device *d = (Device *)dev;
    ENTER(d);
    const uint64_t pb = panel_bytes(type, n);
    if (pb == 0 || rows <= 0 || ncols <= 0 || rows > (1 << 30) || ncols > (1 << 24) || n > (1 << 30))
        return fail(d, -EINVAL, "matmul: type %d, %lld x %lld, %lld columns", (int)type,
                    (long long)rows, (long long)n, (long long)ncols);
    int32_t rc = 0;
    AT(pw, const unsigned char, w, matrix_bytes(type, rows, n), "matmul weights");
    AT(px, const float, x, (uint64_t)n * ncols * 4, "matmul input");
    AT(py, float, y, (uint64_t)rows * ncols * 4, "matmul output");
    const cudaStream_t st = S(d, s);
    float2 *qd = NULL;
    signed char *qs = NULL;
    if (block_type(type)) {
        const uint64_t nb = (uint64_t)(n / QK);
        AT(sc, char, scratch, matmul_scratch(dev, type, n, ncols), "matmul scratch");
        if (((uintptr_t)sc) % 8) return fail(d, -EINVAL, "matmul: scratch is not 8-byte aligned");
        qd = (float2 *)sc;
        qs = (signed char *)(sc + nb * ncols * sizeof(float2));
        k_quant_q8<<<dim3((unsigned)nb, (unsigned)ncols), 32, 0, st>>>(px, (int)n, qd, qs);
        LAUNCHED(d, "matmul (quantizing activations)");
    }
    const unsigned panels = (unsigned)((rows + PANEL - 1) / PANEL);
    if (ncols == 1) {
        k_matvec<<<panels, dim3(PANEL, KS), 0, st>>>(type, pw, pb, (int)rows, (int)n, px, qd, qs, py);
    } else {
        const unsigned groups = (unsigned)((ncols + NCOL - 1) / NCOL);
        const dim3 block(64, 4);
        const dim3 grid((unsigned)((rows + 63) / 64), (groups + 3) / 4);
        k_matmul<<<grid, block, 0, st>>>(type, pw, pb, (int)rows, (int)n, px, qd, qs, py, (int)ncols);
    }
    LAUNCHED(d, "matmul");
    return 0;
}

static int32_t rmsnorm(void *dev, TinyAIPluginStream *s, TinyAIPluginRef out, TinyAIPluginRef x,
                       TinyAIPluginRef w, int64_t n, int64_t ncols, float eps) {
    Device *d = (Device *)dev;
    ENTER(d);
    if (n <= 0 || ncols <= 0 || n > (1 << 30) || ncols > (1 << 24))
        return fail(d, -EINVAL, "rmsnorm: %lld x %lld", (long long)n, (long long)ncols);
    int32_t rc = 0;
    AT(po, float, out, (uint64_t)n * ncols * 4, "rmsnorm output");
    AT(px, const float, x, (uint64_t)n * ncols * 4, "rmsnorm input");
    AT(pw, const float, w, (uint64_t)n * 4, "rmsnorm weights");
    k_rmsnorm<<<(unsigned)ncols, 256, 0, S(d, s)>>>(po, px, pw, (int)n, eps);
    LAUNCHED(d, "rmsnorm");
    return 0;
}

static unsigned grid_for(int64_t n) {
    const int64_t g = (n + 255) / 256;
    return (unsigned)(g < 1 ? 1 : g > 65535 ? 65535 : g);
}

static int32_t add(void *dev, TinyAIPluginStream *s, TinyAIPluginRef x, TinyAIPluginRef dx, int64_t n) {
    Device *d = (Device *)dev;
    ENTER(d);
    if (n < 0) return fail(d, -EINVAL, "add: n = %lld", (long long)n);
    int32_t rc = 0;
    AT(px, float, x, (uint64_t)n * 4, "add x");
    AT(pd, const float, dx, (uint64_t)n * 4, "add operand");
    if (n == 0) return 0;
    k_add<<<grid_for(n), 256, 0, S(d, s)>>>(px, pd, n);
    LAUNCHED(d, "add");
    return 0;
}

static int32_t swiglu(void *dev, TinyAIPluginStream *s, TinyAIPluginRef gate, TinyAIPluginRef up,
                      int64_t n) {
    Device *d = (Device *)dev;
    ENTER(d);
    if (n < 0) return fail(d, -EINVAL, "swiglu: n = %lld", (long long)n);
    int32_t rc = 0;
    AT(pg, float, gate, (uint64_t)n * 4, "swiglu gate");
    AT(pu, const float, up, (uint64_t)n * 4, "swiglu up");
    if (n == 0) return 0;
    k_swiglu<<<grid_for(n), 256, 0, S(d, s)>>>(pg, pu, n);
    LAUNCHED(d, "swiglu");
    return 0;
}

static int32_t rope(void *dev, TinyAIPluginStream *s, TinyAIPluginRef x, int64_t ncols,
                    int64_t col_stride, int32_t n_heads, int32_t head_dim, int32_t rot_dim,
                    TinyAIPluginRef cs) {
    Device *d = (Device *)dev;
    ENTER(d);
    if (ncols <= 0 || n_heads <= 0 || head_dim <= 0 || rot_dim < 0 || n_heads > 65535 ||
        ncols > (1 << 24) || col_stride < (int64_t)n_heads * head_dim)
        return fail(d, -EINVAL, "rope: bad shape");
    int32_t rc = 0;
    AT(px, float, x, ((uint64_t)(ncols - 1) * col_stride + (uint64_t)n_heads * head_dim) * 4, "rope x");
    AT(pc, const float, cs, (uint64_t)ncols * rot_dim * 4, "rope angles");
    k_rope<<<dim3((unsigned)ncols, (unsigned)n_heads), 64, 0, S(d, s)>>>(px, col_stride, head_dim,
                                                                           rot_dim, pc);
    LAUNCHED(d, "rope");
    return 0;
}

static uint64_t attention_scratch(void *dev, int64_t max_pos, int32_t n_head) {
    (void)dev, (void)max_pos, (void)n_head;
    return 0; /* the online softmax keeps no scores */
}

static int32_t attention(void *dev, TinyAIPluginStream *s, TinyAIPluginRef out, TinyAIPluginRef q,
                         int64_t ncols, const TinyAIPluginRef *k, const TinyAIPluginRef *v,
                         const int32_t *pos, int32_t n_head, int32_t n_kv_head, int32_t head_dim,
                         TinyAIPluginRef scratch, uint64_t scratch_bytes) {
    Device *d = (Device *)dev;
    ENTER(d);
    (void)scratch, (void)scratch_bytes;
    if (ncols <= 0 || n_head <= 0 || n_kv_head <= 0 || head_dim <= 0 || head_dim > MAX_HEAD_DIM ||
        n_head % n_kv_head || n_head > 65535 || !k || !v || !pos)
        return fail(d, -EINVAL, "attention: bad shape or NULL arrays (head_dim <= %d)", MAX_HEAD_DIM);
    const uint64_t width = (uint64_t)n_head * head_dim, kvw = (uint64_t)n_kv_head * head_dim;
    int32_t rc = 0;
    AT(po, float, out, ncols * width * 4, "attention output");
    AT(pq, const float, q, ncols * width * 4, "attention query");
    for (int64_t c0 = 0; c0 < ncols; c0 += ATT_MAX_COLS) {
        const int64_t nc = ncols - c0 < ATT_MAX_COLS ? ncols - c0 : ATT_MAX_COLS;
        AttCols cols;
        for (int64_t c = 0; c < nc; c++) {
            if (pos[c0 + c] < 0) return fail(d, -EINVAL, "attention: position %d", (int)pos[c0 + c]);
            const uint64_t np = (uint64_t)pos[c0 + c] + 1;
            AT(kc, const float, k[c0 + c], np * kvw * 4, "attention keys");
            AT(vc, const float, v[c0 + c], np * kvw * 4, "attention values");
            cols.k[c] = kc;
            cols.v[c] = vc;
            cols.pos[c] = pos[c0 + c];
        }
        k_attention<<<dim3((unsigned)nc, (unsigned)n_head), 32 * ATT_WARPS, 0, S(d, s)>>>(
            po + c0 * width, pq + c0 * width, cols, n_head, n_kv_head, head_dim);
        LAUNCHED(d, "attention");
    }
    return 0;
}

static int32_t embed(void *dev, TinyAIPluginStream *s, int32_t type, TinyAIPluginRef table,
                     int64_t rows, int64_t n, const int32_t *tokens, int64_t ncols,
                     TinyAIPluginRef out) {
    Device *d = (Device *)dev;
    ENTER(d);
    const uint64_t pb = panel_bytes(type, n);
    if (pb == 0 || rows <= 0 || ncols <= 0 || !tokens || ncols > (1 << 24))
        return fail(d, -EINVAL, "embed: bad shape");
    int32_t rc = 0;
    AT(pt, const unsigned char, table, matrix_bytes(type, rows, n), "embed table");
    AT(po, float, out, (uint64_t)n * ncols * 4, "embed output");
    for (int64_t c = 0; c < ncols; c++)
        if (tokens[c] < 0 || tokens[c] >= rows)
            return fail(d, -EINVAL, "embed: token %d of %lld rows", (int)tokens[c], (long long)rows);
    /* the ids go to the device through a buffer kept for them */
    const cudaStream_t st = S(d, s);
    if ((size_t)ncols > d->ids_cap) {
        CK(d, cudaStreamSynchronize(st), "embed");
        if (d->ids) cudaFree(d->ids);
        d->ids = NULL;
        d->ids_cap = 0;
        CK(d, cudaMalloc((void **)&d->ids, (size_t)ncols * sizeof(int)), "embed");
        d->ids_cap = (size_t)ncols;
    }
    /* from pageable memory: the call returns once the ids are staged */
    CK(d, cudaMemcpyAsync(d->ids, tokens, (size_t)ncols * sizeof(int), cudaMemcpyHostToDevice, st),
       "embed");
    k_embed<<<(unsigned)ncols, 256, 0, st>>>(type, pt, pb, (int)n, d->ids, po);
    LAUNCHED(d, "embed");
    return 0;
}

static int32_t copy(void *dev, TinyAIPluginStream *s, TinyAIPluginRef dst, TinyAIPluginRef src,
                    uint64_t bytes) {
    Device *d = (Device *)dev;
    ENTER(d);
    int32_t rc = 0;
    AT(pd, char, dst, bytes, "copy destination");
    AT(ps, const char, src, bytes, "copy source");
    if (bytes) CK(d, cudaMemcpyAsync(pd, ps, bytes, cudaMemcpyDeviceToDevice, S(d, s)), "copy");
    return 0;
}

/* ---- streams and events ---------------------------------------------------- */

static int32_t stream_create(void *dev, TinyAIPluginStream **out) {
    Device *d = (Device *)dev;
    ENTER(d);
    if (!out) return fail(d, -EINVAL, "stream_create: NULL output");
    TinyAIPluginStream *s = (TinyAIPluginStream *)calloc(1, sizeof *s);
    if (!s) return fail(d, -ENOMEM, "stream_create: out of memory");
    const cudaError_t e = cudaStreamCreateWithFlags(&s->s, cudaStreamNonBlocking);
    if (e != cudaSuccess) {
        free(s);
        return cuda_fail(d, e, "cudaStreamCreate");
    }
    *out = s;
    return 0;
}

static void stream_destroy(void *dev, TinyAIPluginStream *s) {
    Device *d = (Device *)dev;
    if (!s) return;
    if (cudaSetDevice(d->index) == cudaSuccess) {
        cudaStreamSynchronize(s->s);
        cudaStreamDestroy(s->s);
    }
    free(s);
}

static int32_t event_create(void *dev, TinyAIPluginEvent **out) {
    Device *d = (Device *)dev;
    ENTER(d);
    if (!out) return fail(d, -EINVAL, "event_create: NULL output");
    TinyAIPluginEvent *e = (TinyAIPluginEvent *)calloc(1, sizeof *e);
    if (!e) return fail(d, -ENOMEM, "event_create: out of memory");
    const cudaError_t ce = cudaEventCreateWithFlags(&e->e, cudaEventDisableTiming);
    if (ce != cudaSuccess) {
        free(e);
        return cuda_fail(d, ce, "cudaEventCreate");
    }
    *out = e;
    return 0;
}

static void event_destroy(void *dev, TinyAIPluginEvent *e) {
    Device *d = (Device *)dev;
    if (!e) return;
    if (cudaSetDevice(d->index) == cudaSuccess) cudaEventDestroy(e->e);
    free(e);
}

static int32_t event_record(void *dev, TinyAIPluginStream *s, TinyAIPluginEvent *e) {
    Device *d = (Device *)dev;
    ENTER(d);
    if (!e) return fail(d, -EINVAL, "event_record: NULL event");
    CK(d, cudaEventRecord(e->e, S(d, s)), "cudaEventRecord");
    return 0;
}

static int32_t stream_wait(void *dev, TinyAIPluginStream *s, TinyAIPluginEvent *e) {
    Device *d = (Device *)dev;
    ENTER(d);
    if (!e) return fail(d, -EINVAL, "stream_wait: NULL event");
    CK(d, cudaStreamWaitEvent(S(d, s), e->e, 0), "cudaStreamWaitEvent");
    return 0;
}

static int32_t event_synchronize(void *dev, TinyAIPluginEvent *e) {
    Device *d = (Device *)dev;
    ENTER(d);
    if (!e) return fail(d, -EINVAL, "event_synchronize: NULL event");
    CK(d, cudaEventSynchronize(e->e), "cudaEventSynchronize");
    return 0;
}

static TinyAIPluginDeviceOps make_ops() {
    TinyAIPluginDeviceOps o;
    memset(&o, 0, sizeof o);
    o.struct_size = sizeof o;
    o.close = dev_close;
    o.info = dev_info;
    o.last_error = dev_last_error;
    o.buffer_alloc = buffer_alloc;
    o.buffer_free = buffer_free;
    o.upload = upload;
    o.download = download;
    o.synchronize = synchronize;
    o.matmul_scratch = matmul_scratch;
    o.matmul = matmul;
    o.rmsnorm = rmsnorm;
    o.add = add;
    o.rope = rope;
    o.swiglu = swiglu;
    o.attention = attention;
    o.attention_scratch = attention_scratch;
    o.embed = embed;
    o.copy = copy;
    o.stream_create = stream_create;
    o.stream_destroy = stream_destroy;
    o.event_create = event_create;
    o.event_destroy = event_destroy;
    o.event_record = event_record;
    o.stream_wait = stream_wait;
    o.event_synchronize = event_synchronize;
    return o;
}

static const TinyAIPluginDeviceOps kOps = make_ops();

/* ---- the plugin -------------------------------------------------------------- */

static int32_t device_count(void *pl) { return ((Plugin *)pl)->n_devices; }

static int32_t device_open(void *pl, int32_t index, const TinyAIPluginDeviceOps **ops, void **dev) {
    Plugin *p = (Plugin *)pl;
    if (!ops || !dev) {
        snprintf(p->err, sizeof p->err, "device_open: NULL output");
        return -EINVAL;
    }
    if (index < 0 || index >= p->n_devices) {
        snprintf(p->err, sizeof p->err, "device_open: no device %d (%d here)", (int)index, p->n_devices);
        return -ENODEV;
    }
    Device *d = (Device *)calloc(1, sizeof *d);
    if (!d) {
        snprintf(p->err, sizeof p->err, "device_open: out of memory");
        return -ENOMEM;
    }
    d->p = p;
    d->index = index;
    cudaError_t e = cudaSetDevice(index);
    if (e == cudaSuccess) e = cudaStreamCreateWithFlags(&d->stream, cudaStreamNonBlocking);
    if (e != cudaSuccess) {
        snprintf(p->err, sizeof p->err, "device_open: %s", cudaGetErrorString(e));
        cudaGetLastError();
        free(d);
        return -EIO;
    }
    *ops = &kOps;
    *dev = d;
    return 0;
}

static const char *plugin_last_error(void *pl) { return ((Plugin *)pl)->err; }

static void shutdown_plugin(void *pl) { free(pl); }

extern "C" __attribute__((visibility("default"))) int32_t tinyai_plugin_entry(
    const TinyAIPluginHost *host, TinyAIPlugin *out) {
    if (!host || !out || host->struct_size < offsetof(TinyAIPluginHost, options) + 8 ||
        out->struct_size < offsetof(TinyAIPlugin, shutdown) + 8)
        return -EINVAL;
    char line[300];
    if (host->abi_major != TINYAI_PLUGIN_ABI_MAJOR) {
        snprintf(line, sizeof line, "cuda plugin: built for ABI %d.%d, TinyAI speaks %u.%u",
                 TINYAI_PLUGIN_ABI_MAJOR, TINYAI_PLUGIN_ABI_MINOR, host->abi_major, host->abi_minor);
        if (host->log) host->log(host->host, TINYAI_PLUGIN_LOG_ERROR, line);
        return -ENOTSUP;
    }
    if (host->options && *host->options) {
        snprintf(line, sizeof line, "cuda plugin: takes no options, got '%.200s'", host->options);
        if (host->log) host->log(host->host, TINYAI_PLUGIN_LOG_ERROR, line);
        return -EINVAL;
    }
    Plugin *p = (Plugin *)calloc(1, sizeof *p);
    if (!p) return -ENOMEM;
    p->host = *host;
    int n = 0;
    const cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
        /* no driver or no GPU: a valid plugin with no devices */
        snprintf(line, sizeof line, "cuda plugin: no CUDA device: %s", cudaGetErrorString(e));
        if (host->log) host->log(host->host, TINYAI_PLUGIN_LOG_INFO, line);
        cudaGetLastError();
        n = 0;
    }
    p->n_devices = n;
    TinyAIPlugin t;
    memset(&t, 0, sizeof t);
    t.struct_size = sizeof t;
    t.abi_major = TINYAI_PLUGIN_ABI_MAJOR;
    t.abi_minor = TINYAI_PLUGIN_ABI_MINOR;
    t.name = "cuda";
    t.version = "1.0";
    t.plugin = p;
    t.device_count = device_count;
    t.device_open = device_open;
    t.last_error = plugin_last_error;
    t.shutdown = shutdown_plugin;
    memcpy(out, &t, out->struct_size < sizeof t ? out->struct_size : sizeof t);
    return 0;
}
