/*
 * offload/opencl/kernels.cl: the OpenCL C 1.2 kernels of the OpenCL device
 * (layer: offload). Portable: no cl_khr_fp16 (fp16 scales and F16 weights
 * are read with vload_half, core in 1.2), no sub-groups, no assumption on
 * the work-group size beyond what the host asks for.
 *
 * Weights are in the packed panel layout of core/types.h: panel p holds
 * rows [16p, 16p + 16) and is `panel_bytes` long; inside it
 *   F32/F16: element (r, k) at k * 16 + r;
 *   block types: blocks in pairs, a pair = [codes b][codes b+1][16 fp16 d of
 *   b][16 d of b+1][16 fp16 m of b][16 m of b+1] (m: Q4_1 only); codes of a
 *   block: Q8_0 uint8 [8 g][16 r][4 t] = q(r, 32b + 4g + t) + 128; Q4_0/Q4_1
 *   uint8 [4 j][16 r][4 t], low nibble q(r, 32b + 8j + t), high nibble
 *   q(r, 32b + 8j + 4 + t).
 * Adjacent work-items take adjacent rows, so a panel's 16 rows read as
 * 64-byte rows: coalesced on a GPU, vectorisable on a CPU.
 *
 * Activations are float32, column-major (column c of an [n] x ncols tensor
 * at c * n). Offsets are in elements of the buffer's type, passed apart
 * from the buffer (a sub-buffer would need an aligned origin).
 *
 * Products of block-type weights multiply integers, as the CPU device
 * does: the activations are first quantized per 32 values to 8-bit codes
 * with a scale (quant_q8, the CPU's quantizer), so a sequence's results do
 * not depend on which device ran a layer beyond the order of float sums.
 */

/* Columns one work-item of a product computes: the weights it reads serve
 * that many columns. */
#define NCOL 8

#define PAIR_Q8 1088 /* 2 * 512 + 64 */
#define PAIR_Q4_0 576 /* 2 * 256 + 64 */
#define PAIR_Q4_1 640 /* 2 * 256 + 128 */

/* F32 and F16 weights (is_half): one value per (row, k) of the panel. */
inline void matmul_float(__global const uchar *w, ulong w_off, long panel_bytes, int rows, int n,
                         __global const float *x, ulong x_off, __global float *y, ulong y_off,
                         int ncols, int is_half) {
    const int r = get_global_id(0), c0 = get_global_id(1) * NCOL;
    if (r >= rows) return;
    __global const uchar *pw = w + w_off + (long)(r / 16) * panel_bytes;
    const int rr = r % 16, nc = min(NCOL, ncols - c0);
    float acc[NCOL];
    for (int j = 0; j < NCOL; j++) acc[j] = 0.0f;
    __global const float *xc = x + x_off + (long)c0 * n;
    for (int k = 0; k < n; k++) {
        const long at = (long)k * 16 + rr;
        const float wv = is_half ? vload_half(at, (__global const half *)pw)
                                 : ((__global const float *)pw)[at];
        for (int j = 0; j < nc; j++) acc[j] += wv * xc[(long)j * n + k];
    }
    for (int j = 0; j < nc; j++) y[y_off + (long)(c0 + j) * rows + r] = acc[j];
}

/* The 32 weights of row rr (within its panel at pw) in block b, for a
 * block type: Q8_0 (8) d * (q - 128); Q4_0 (2) d * (q - 8); Q4_1 (3)
 * d * q + m. Exactly the host's dequantization (tai_dequantize_row). */
inline void block_weights(int type, __global const uchar *pw, int b, int rr, float *wv) {
    if (type == 8) {
        __global const uchar *pair = pw + (long)(b >> 1) * PAIR_Q8;
        __global const uchar *codes = pair + (b & 1) * 512;
        const float d = vload_half(rr, (__global const half *)(pair + 1024 + (b & 1) * 32));
        for (int g = 0; g < 8; g++) {
            const uchar4 q = vload4(0, codes + g * 64 + rr * 4);
            wv[4 * g + 0] = d * (float)((int)q.s0 - 128);
            wv[4 * g + 1] = d * (float)((int)q.s1 - 128);
            wv[4 * g + 2] = d * (float)((int)q.s2 - 128);
            wv[4 * g + 3] = d * (float)((int)q.s3 - 128);
        }
        return;
    }
    const int has_min = type == 3;
    __global const uchar *pair = pw + (long)(b >> 1) * (has_min ? PAIR_Q4_1 : PAIR_Q4_0);
    __global const uchar *codes = pair + (b & 1) * 256;
    const float d = vload_half(rr, (__global const half *)(pair + 512 + (b & 1) * 32));
    const float m = has_min ? vload_half(rr, (__global const half *)(pair + 576 + (b & 1) * 32)) : 0.0f;
    for (int jj = 0; jj < 4; jj++) {
        const uchar4 q = vload4(0, codes + jj * 64 + rr * 4);
        const int c[8] = {q.s0 & 15, q.s1 & 15, q.s2 & 15, q.s3 & 15, q.s0 >> 4, q.s1 >> 4, q.s2 >> 4, q.s3 >> 4};
        /* Q4_0 without an added 0: d * (q - 8) may be -0, as on the host */
        for (int t = 0; t < 8; t++)
            wv[8 * jj + t] = has_min ? d * (float)c[t] + m : d * (float)(c[t] - 8);
    }
}

/* The 32 integer codes of row rr in block b, bias removed (Q8_0 q - 128,
 * Q4_0 q - 8, Q4_1 q), and the block's scale d and minimum m (Q4_1). */
inline void block_codes(int type, __global const uchar *pw, int b, int rr, int *wq, float *d,
                        float *m) {
    if (type == 8) {
        __global const uchar *pair = pw + (long)(b >> 1) * PAIR_Q8;
        __global const uchar *codes = pair + (b & 1) * 512;
        *d = vload_half(rr, (__global const half *)(pair + 1024 + (b & 1) * 32));
        *m = 0.0f;
        for (int g = 0; g < 8; g++) {
            const int4 q = convert_int4(vload4(0, codes + g * 64 + rr * 4)) - 128;
            wq[4 * g + 0] = q.s0;
            wq[4 * g + 1] = q.s1;
            wq[4 * g + 2] = q.s2;
            wq[4 * g + 3] = q.s3;
        }
        return;
    }
    const int has_min = type == 3;
    __global const uchar *pair = pw + (long)(b >> 1) * (has_min ? PAIR_Q4_1 : PAIR_Q4_0);
    __global const uchar *codes = pair + (b & 1) * 256;
    *d = vload_half(rr, (__global const half *)(pair + 512 + (b & 1) * 32));
    *m = has_min ? vload_half(rr, (__global const half *)(pair + 576 + (b & 1) * 32)) : 0.0f;
    const int bias = has_min ? 0 : 8;
    for (int jj = 0; jj < 4; jj++) {
        const int4 q = convert_int4(vload4(0, codes + jj * 64 + rr * 4));
        wq[8 * jj + 0] = (q.s0 & 15) - bias;
        wq[8 * jj + 1] = (q.s1 & 15) - bias;
        wq[8 * jj + 2] = (q.s2 & 15) - bias;
        wq[8 * jj + 3] = (q.s3 & 15) - bias;
        wq[8 * jj + 4] = (q.s0 >> 4) - bias;
        wq[8 * jj + 5] = (q.s1 >> 4) - bias;
        wq[8 * jj + 6] = (q.s2 >> 4) - bias;
        wq[8 * jj + 7] = (q.s3 >> 4) - bias;
    }
}

/* Activations for the block types, as the CPU device quantizes them
 * (tai_quantize_row_q8a): per block of 32 values of a column, d = amax /
 * 127 and q = x * (1 / d) to the nearest integer, ties to even (x / d
 * where 1 / d overflows); qd[c * nb + b] = (d, d * sum(q)), the codes at
 * qs[(c * nb + b) * 32]. Global (blocks per column, columns). */
__kernel void quant_q8(__global const float *x, ulong x_off, int n, __global float2 *qd,
                       ulong qd_off, __global char *qs, ulong qs_off) {
    const int b = get_global_id(0), c = get_global_id(1), nb = n / 32;
    if (b >= nb) return;
    __global const float *xb = x + x_off + (long)c * n + b * 32;
    float amax = 0.0f;
    for (int i = 0; i < 32; i++) amax = fmax(amax, fabs(xb[i]));
    const float d = amax / 127.0f, iv = d != 0.0f ? 1.0f / d : 0.0f;
    __global char *q = qs + qs_off + ((long)c * nb + b) * 32;
    int sum = 0;
    for (int i = 0; i < 32; i++) {
        const float r = rint(isinf(iv) ? xb[i] / d : xb[i] * iv);
        const int v = d != 0.0f ? clamp((int)r, -127, 127) : 0;
        q[i] = (char)v;
        sum += v;
    }
    qd[qd_off + (long)c * nb + b] = (float2)(d, d * (float)sum);
}

/* One block of a row against one column's quantized block: the integer
 * sum scaled, plus the minimum against the column's sum (Q4_1). */
inline float block_dot(const int *wq, float d, float m, __global const char *q, float2 dx) {
    int isum = 0;
    for (int i = 0; i < 32; i++) isum += wq[i] * (int)q[i];
    return d * dx.x * (float)isum + m * dx.y;
}

/* Block types: per block, the row's codes are decoded once and used for
 * every column of the work-item. */
inline void matmul_block(int type, __global const uchar *w, ulong w_off, long panel_bytes,
                         int rows, int n, __global const float2 *qd, __global const char *qs,
                         __global float *y, ulong y_off, int ncols) {
    const int r = get_global_id(0), c0 = get_global_id(1) * NCOL;
    if (r >= rows) return;
    __global const uchar *pw = w + w_off + (long)(r / 16) * panel_bytes;
    const int rr = r % 16, nc = min(NCOL, ncols - c0), nb = n / 32;
    float acc[NCOL];
    for (int j = 0; j < NCOL; j++) acc[j] = 0.0f;
    for (int b = 0; b < nb; b++) {
        int wq[32];
        float d, m;
        block_codes(type, pw, b, rr, wq, &d, &m);
        for (int j = 0; j < nc; j++) {
            const long at = (long)(c0 + j) * nb + b;
            acc[j] += block_dot(wq, d, m, qs + at * 32, qd[at]);
        }
    }
    for (int j = 0; j < nc; j++) y[y_off + (long)(c0 + j) * rows + r] = acc[j];
}

/* The product of any weight type (F32 0, F16 1, Q4_0 2, Q4_1 3, Q8_0 8):
 * global (rows rounded up to 16, column groups of NCOL). The block types
 * read the activations quant_q8 made (qd, qs), the float types x. */
__kernel void matmul(int type, __global const uchar *w, ulong w_off, long panel_bytes, int rows,
                     int n, __global const float *x, ulong x_off, __global float *y, ulong y_off,
                     __global const float2 *qd, ulong qd_off, __global const char *qs,
                     ulong qs_off, int ncols) {
    if (type <= 1)
        matmul_float(w, w_off, panel_bytes, rows, n, x, x_off, y, y_off, ncols, type);
    else
        matmul_block(type, w, w_off, panel_bytes, rows, n, qd + qd_off, qs + qs_off, y, y_off,
                     ncols);
}

/* Matrix-vector (one column): a work-group per 16-row panel, its 16 x KS
 * work-items splitting K into KS interleaved slices (so that a small
 * matrix still fills a GPU: 2048 rows are 128 groups of 256 items, where
 * one item per row would leave most of it idle), summed in local memory.
 * Local size (16, KS); global (panels * 16, KS). Rows past the matrix's end
 * read the panel's zero padding and store nothing. */
#define KS 16
__kernel void matvec(int type, __global const uchar *w, ulong w_off, long panel_bytes, int rows,
                     int n, __global const float *x, ulong x_off, __global float *y, ulong y_off,
                     __global const float2 *qd, ulong qd_off, __global const char *qs,
                     ulong qs_off, __local float *part) {
    const int rr = get_local_id(0), s = get_local_id(1);
    const int r = get_group_id(0) * 16 + rr;
    __global const uchar *pw = w + w_off + (long)get_group_id(0) * panel_bytes;
    __global const float *xv = x + x_off;
    float acc = 0.0f;
    if (type == 0) {
        for (int k = s; k < n; k += KS) acc += ((__global const float *)pw)[(long)k * 16 + rr] * xv[k];
    } else if (type == 1) {
        for (int k = s; k < n; k += KS) acc += vload_half((long)k * 16 + rr, (__global const half *)pw) * xv[k];
    } else {
        for (int b = s; b < n / 32; b += KS) {
            int wq[32];
            float d, m;
            block_codes(type, pw, b, rr, wq, &d, &m);
            acc += block_dot(wq, d, m, qs + qs_off + (long)b * 32, qd[qd_off + b]);
        }
    }
    part[s * 16 + rr] = acc;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int h = KS / 2; h > 0; h /= 2) {
        if (s < h) part[s * 16 + rr] += part[(s + h) * 16 + rr];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    if (s == 0 && r < rows) y[y_off + r] = part[rr];
}

/* Embedding: out column c, element k = row tokens[c] of the packed table,
 * dequantized exactly as the host does (d * q products in float). */
__kernel void embed(int type, __global const uchar *w, ulong w_off, long panel_bytes, int n,
                    __global const int *tokens, __global float *out, ulong out_off) {
    const int k = get_global_id(0), c = get_global_id(1);
    if (k >= n) return;
    const int row = tokens[c], rr = row % 16;
    __global const uchar *pw = w + w_off + (long)(row / 16) * panel_bytes;
    float v;
    if (type == 0) {
        v = ((__global const float *)pw)[(long)k * 16 + rr];
    } else if (type == 1) {
        v = vload_half((long)k * 16 + rr, (__global const half *)pw);
    } else {
        float wv[32];
        block_weights(type, pw, k / 32, rr, wv);
        v = wv[k % 32];
    }
    out[out_off + (long)c * n + k] = v;
}

/* RMSNorm: one work-group of `get_local_size(0)` items per column, summing
 * squares in local memory (a power of two, at most 256). */
__kernel void rmsnorm(__global float *out, ulong out_off, __global const float *x, ulong x_off,
                      __global const float *w, ulong w_off, int n, float eps,
                      __local float *part) {
    const int c = get_group_id(1), l = get_local_id(0), ls = get_local_size(0);
    __global const float *xc = x + x_off + (long)c * n;
    float s = 0.0f;
    for (int i = l; i < n; i += ls) s += xc[i] * xc[i];
    part[l] = s;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int h = ls / 2; h > 0; h /= 2) {
        if (l < h) part[l] += part[l + h];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    const float scale = 1.0f / sqrt(part[0] / (float)n + eps);
    __global float *oc = out + out_off + (long)c * n;
    for (int i = l; i < n; i += ls) oc[i] = xc[i] * scale * w[w_off + i];
}

__kernel void add(__global float *x, ulong x_off, __global const float *d, ulong d_off, long n) {
    const long i = get_global_id(0);
    if (i < n) x[x_off + i] += d[d_off + i];
}

__kernel void swiglu(__global float *g, ulong g_off, __global const float *u, ulong u_off,
                     long n) {
    const long i = get_global_id(0);
    if (i >= n) return;
    const float a = g[g_off + i];
    g[g_off + i] = a / (1.0f + exp(-a)) * u[u_off + i];
}

/* gate = gelu(gate) * up, GELU's tanh form (Gemma's GeGLU), written as
 * the CPU's tai_gelu_mul: a / (1 + e^-2z), z = sqrt(2 / pi) (a + 0.044715 a^3). */
__kernel void geglu(__global float *g, ulong g_off, __global const float *u, ulong u_off,
                    long n) {
    const long i = get_global_id(0);
    if (i >= n) return;
    const float a = g[g_off + i];
    g[g_off + i] = a / (1.0f + exp(-1.5957691216057308f * (a + 0.044715f * a * a * a))) *
                   u[u_off + i];
}

/* x[c][i] += b[i]: one work-item per element of the ncols columns of n. */
__kernel void add_bias(__global float *x, ulong x_off, __global const float *b, ulong b_off,
                       long n, long total) {
    const long i = get_global_id(0);
    if (i < total) x[x_off + i] += b[b_off + i % n];
}

/* RoPE with the NeoX pairs (i, i + rot_dim / 2). */
__kernel void rope_neox(__global float *x, ulong x_off, long col_stride, int head_dim, int rot_dim,
                        __global const float *cs, ulong cs_off) {
    const int i = get_global_id(0), h = get_global_id(1), c = get_global_id(2);
    const int hr = rot_dim / 2; /* ("half" is OpenCL's 16-bit float type) */
    if (i >= hr) return;
    __global float *p = x + x_off + (long)c * col_stride + (long)h * head_dim;
    const float co = cs[cs_off + (long)c * rot_dim + 2 * i], si = cs[cs_off + (long)c * rot_dim + 2 * i + 1];
    const float a = p[i], b = p[i + hr];
    p[i] = a * co - b * si;
    p[i + hr] = a * si + b * co;
}

/* RoPE: one work-item per (pair i, head h, column c). */
__kernel void rope(__global float *x, ulong x_off, long col_stride, int head_dim, int rot_dim,
                   __global const float *cs, ulong cs_off) {
    const int i = get_global_id(0), h = get_global_id(1), c = get_global_id(2);
    if (2 * i >= rot_dim) return;
    __global float *p = x + x_off + (long)c * col_stride + (long)h * head_dim + 2 * i;
    const float co = cs[cs_off + (long)c * rot_dim + 2 * i], si = cs[cs_off + (long)c * rot_dim + 2 * i + 1];
    const float a = p[0], b = p[1];
    p[0] = a * co - b * si;
    p[1] = a * si + b * co;
}

/* Attention in three steps over scratch s[c][h][p] (stride max_pos):
 * scores, softmax, weighted sum; columns [c0, c0 + gridsize) whose caches
 * are k, v (from k_off, v_off), positions pos[c]; window > 0: only the
 * last `window` positions up to pos[c] (sliding-window attention). */
int att_first(int pos, int window) { return window > 0 && pos + 1 > window ? pos + 1 - window : 0; }

__kernel void att_scores(__global float *s, int max_pos, __global const float *q, ulong q_off,
                         __global const float *k, ulong k_off, __global const int *pos, int c0,
                         int n_head, int n_kv_head, int head_dim, int window) {
    const int p = get_global_id(0), h = get_global_id(1), cl = get_global_id(2);
    const int c = c0 + cl;
    if (p > pos[c] || p < att_first(pos[c], window)) return;
    const int g = h / (n_head / n_kv_head);
    __global const float *qh = q + q_off + ((long)c * n_head + h) * head_dim;
    __global const float *kp = k + k_off + ((long)p * n_kv_head + g) * head_dim;
    float d = 0.0f;
    for (int i = 0; i < head_dim; i++) d += qh[i] * kp[i];
    s[((long)c * n_head + h) * max_pos + p] = d / sqrt((float)head_dim);
}

__kernel void att_softmax(__global float *s, int max_pos, __global const int *pos, int c0,
                          int n_head, int window) {
    const int h = get_global_id(0), c = c0 + get_global_id(1);
    __global float *sh = s + ((long)c * n_head + h) * max_pos;
    const int np = pos[c] + 1, p0 = att_first(pos[c], window);
    float mx = -INFINITY;
    for (int p = p0; p < np; p++) mx = fmax(mx, sh[p]);
    float z = 0.0f;
    for (int p = p0; p < np; p++) {
        const float e = exp(sh[p] - mx);
        sh[p] = e;
        z += e;
    }
    const float inv = 1.0f / z;
    for (int p = p0; p < np; p++) sh[p] *= inv;
}

__kernel void att_values(__global float *out, ulong out_off, __global const float *s, int max_pos,
                         __global const float *v, ulong v_off, __global const int *pos, int c0,
                         int n_head, int n_kv_head, int head_dim, int window) {
    const int i = get_global_id(0), h = get_global_id(1), c = c0 + get_global_id(2);
    if (i >= head_dim) return;
    const int g = h / (n_head / n_kv_head);
    __global const float *sh = s + ((long)c * n_head + h) * max_pos;
    float o = 0.0f;
    for (int p = att_first(pos[c], window); p <= pos[c]; p++) o += sh[p] * v[v_off + ((long)p * n_kv_head + g) * head_dim + i];
    out[out_off + ((long)c * n_head + h) * head_dim + i] = o;
}
