/*
 * kernels/ops_ref.c: scalar reference versions of the non-matmul ops of a
 * Llama forward pass (layer: kernels): RMS norm, softmax, SwiGLU's
 * silu(gate) * up, rotary embedding, single-query attention, embedding rows.
 * All on float32 activations, contiguous unless a stride is given. Sums that
 * decide accuracy (norms, softmax denominators, attention scores) are kept in
 * double.
 */
#include <math.h>
#include <string.h>

#include "kernels/kernels.h"

/* out[i] = x[i] / sqrt(mean(x^2) + eps) * w[i]. Reads x[i] before writing
 * out[i], so out may alias x. The squares (exact in double) go into 8
 * partial sums, element i into sum i % 8, added pairwise at the end: 8
 * independent chains the compiler turns into vectors, where one chain
 * waited on each add's latency, and the same order on every machine. */
void tai_rmsnorm(float *out, const float *x, const float *w, int64_t n, float eps) {
    if (n <= 0) return;
    double p0 = 0, p1 = 0, p2 = 0, p3 = 0, p4 = 0, p5 = 0, p6 = 0, p7 = 0;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        p0 += (double)x[i] * x[i];
        p1 += (double)x[i + 1] * x[i + 1];
        p2 += (double)x[i + 2] * x[i + 2];
        p3 += (double)x[i + 3] * x[i + 3];
        p4 += (double)x[i + 4] * x[i + 4];
        p5 += (double)x[i + 5] * x[i + 5];
        p6 += (double)x[i + 6] * x[i + 6];
        p7 += (double)x[i + 7] * x[i + 7];
    }
    double t[8] = {p0, p1, p2, p3, p4, p5, p6, p7};
    for (int k = 0; i < n; i++, k++) t[k] += (double)x[i] * x[i];
    const double ss = ((t[0] + t[1]) + (t[2] + t[3])) + ((t[4] + t[5]) + (t[6] + t[7]));
    const float scale = (float)(1.0 / sqrt(ss / (double)n + (double)eps));
    /* 8 elements read before 8 are written: vectors even where out is x */
    for (i = 0; i + 8 <= n; i += 8) {
        float v[8];
        for (int k = 0; k < 8; k++) v[k] = x[i + k] * scale * w[i + k];
        for (int k = 0; k < 8; k++) out[i + k] = v[k];
    }
    for (; i < n; i++) out[i] = x[i] * scale * w[i];
}

/* x[i] = exp(x[i] - max) / sum_j exp(x[j] - max); subtracting the max keeps
 * every exp in (0, 1], so large logits cannot overflow. */
void tai_softmax(float *x, int64_t n) {
    if (n <= 0) return;
    float max = x[0];
    for (int64_t i = 1; i < n; i++)
        if (x[i] > max) max = x[i];
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++) {
        x[i] = expf(x[i] - max);
        sum += x[i];
    }
    float inv = (float)(1.0 / sum);
    for (int64_t i = 0; i < n; i++) x[i] *= inv;
}

/* silu(g) = g * sigmoid(g) = g / (1 + exp(-g)); exp(-g) may be inf for very
 * negative g, giving g / inf = -0, the right limit. */
int64_t tai_argmax(const float *x, int64_t n) {
    int64_t best = 0;
    for (int64_t i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

void tai_silu_mul(float *gate, const float *up, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        float g = gate[i];
        gate[i] = g / (1.0f + expf(-g)) * up[i];
    }
}

/* 8 elements an iteration, which GCC turns into vector additions at -O2
 * (the plain loop stays scalar there); each element's sum is the same. */
void tai_add(float *x, const float *d, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        float t[8];
        for (int k = 0; k < 8; k++) t[k] = x[i + k] + d[i + k];
        for (int k = 0; k < 8; k++) x[i + k] = t[k];
    }
    for (; i < n; i++) x[i] += d[i];
}

/* tanh form of GELU, as the Gemma models were trained with (and as
 * ggml's and PyTorch's "gelu_pytorch_tanh" compute it), written through
 * 1 + tanh(z) = 2 / (1 + e^-2z):
 *   gelu(g) = g / (1 + e^-2z),  z = sqrt(2 / pi) (g + 0.044715 g^3),
 * the form the vector versions compute (the same one as silu with another
 * argument): no cancellation in 1 + tanh(z) for negative g, where the
 * tanh form loses the low bits. e^-2z may be inf (g very negative, or g^3
 * overflowing): g / inf = -0, the right limit; g very large: e^-2z = 0. */
void tai_gelu_mul(float *gate, const float *up, int64_t n) {
    const float k2 = 2.0f * 0.7978845608028654f; /* 2 sqrt(2 / pi) */
    for (int64_t i = 0; i < n; i++) {
        const float g = gate[i];
        gate[i] = g / (1.0f + expf(-k2 * (g + 0.044715f * g * g * g))) * up[i];
    }
}

/* Per head, pair i = (x[2i], x[2i+1]) for 2i < rot_dim is rotated by
 * angle = pos * theta_base^(-2i / rot_dim):
 *   x'[2i]   = x[2i] cos - x[2i+1] sin
 *   x'[2i+1] = x[2i] sin + x[2i+1] cos
 * The angle and its sine/cosine are computed in double: pos can be large
 * (long contexts) and a float angle would lose the low bits of the phase;
 * the rotation itself is in float. */
void tai_rope_angles(float *cs, int rot_dim, int64_t pos, float theta_base) {
    for (int i = 0; 2 * i + 1 < rot_dim; i++) {
        double freq = pow((double)theta_base, -2.0 * i / (double)rot_dim);
        double angle = (double)pos * freq;
        cs[2 * i] = (float)cos(angle);
        cs[2 * i + 1] = (float)sin(angle);
    }
}

void tai_rope_apply(float *x, int n_heads, int head_dim, int rot_dim, const float *cs) {
    if (rot_dim > head_dim) rot_dim = head_dim;
    for (int h = 0; h < n_heads; h++) {
        float *p = x + (int64_t)h * head_dim;
        for (int i = 0; 2 * i + 1 < rot_dim; i++) {
            const float c = cs[2 * i], s = cs[2 * i + 1];
            const float x0 = p[2 * i], x1 = p[2 * i + 1];
            p[2 * i] = x0 * c - x1 * s;
            p[2 * i + 1] = x0 * s + x1 * c;
        }
    }
}

/* Pair i = (x[i], x[i + rot_dim / 2]), same angles. */
void tai_rope_apply_neox(float *x, int n_heads, int head_dim, int rot_dim, const float *cs) {
    if (rot_dim > head_dim) rot_dim = head_dim;
    const int half = rot_dim / 2;
    for (int h = 0; h < n_heads; h++) {
        float *p = x + (int64_t)h * head_dim;
        for (int i = 0; i < half; i++) {
            const float c = cs[2 * i], s = cs[2 * i + 1];
            const float x0 = p[i], x1 = p[i + half];
            p[i] = x0 * c - x1 * s;
            p[i + half] = x0 * s + x1 * c;
        }
    }
}

void tai_rope(float *x, int n_heads, int head_dim, int rot_dim, int64_t pos,
              float theta_base) {
    if (rot_dim > head_dim) rot_dim = head_dim;
    float cs[1024]; /* rot_dim <= head_dim; heads wider than 1024 are not a thing */
    if (rot_dim > 1024) rot_dim = 1024;
    tai_rope_angles(cs, rot_dim, pos, theta_base);
    tai_rope_apply(x, n_heads, head_dim, rot_dim, cs);
}

/* For each query head h (kv head g = h / (n_head / n_kv_head)):
 *   att[p] = q_h . k[p][g] / sqrt(head_dim)   for p < n_pos
 *   att = softmax(att)
 *   out_h = sum_p att[p] * v[p][g]
 * k[p][g] is at k_cache + p * kv_stride + g * head_dim (same for v). */
/* Element i of a cache of floats (kind 0), of binary16 values (1) or of
 * 8-bit codes with a scale per 32 (2: code[i] * scale[i / 32]). */
static inline float kv_elem(const void *cache, const float *scale, int64_t i, int kind) {
    if (kind == 2) return (float)((const int8_t *)cache)[i] * scale[i >> 5];
    return kind ? tai_fp16_to_fp32(((const uint16_t *)cache)[i]) : ((const float *)cache)[i];
}

static inline __attribute__((always_inline)) void attention_ref(
    float *out, const float *q, const void *k_cache, const float *k_scale, const void *v_cache,
    const float *v_scale, int64_t n_pos, int64_t kv_stride, int n_head, int n_kv_head,
    int head_dim, float *att, int kind) {
    if (n_head <= 0 || n_kv_head <= 0 || head_dim <= 0 || n_head % n_kv_head != 0) return;
    if (kind == 2 && (head_dim % 32 != 0 || kv_stride % 32 != 0 || head_dim > TAI_ATT_Q8_MAX_HEAD))
        return;
    int group = n_head / n_kv_head;
    double scale = 1.0 / sqrt((double)head_dim);
    const float scale_f = 1.0f / sqrtf((float)head_dim);
    for (int h = 0; h < n_head; h++) {
        const float *qh = q + (int64_t)h * head_dim;
        int64_t kv_off = (int64_t)(h / group) * head_dim;
        float *oh = out + (int64_t)h * head_dim;
        for (int d = 0; d < head_dim; d++) oh[d] = 0.0f;
        if (n_pos <= 0) continue;
        if (kind == 2) { /* scores on the query's codes (tai_attention_q8) */
            tai_block_q8a qq[TAI_ATT_Q8_MAX_HEAD / 32];
            tai_quantize_row_q8a(qh, qq, head_dim);
            const int8_t *codes = k_cache;
            for (int64_t p = 0; p < n_pos; p++) {
                const int64_t kp = p * kv_stride + kv_off;
                float sum = 0.0f;
                for (int b = 0; b < head_dim / 32; b++) {
                    int32_t dot = 0;
                    for (int i = 0; i < 32; i++) dot += (int32_t)qq[b].qs[i] * codes[kp + 32 * b + i];
                    sum = fmaf((float)dot, qq[b].d * k_scale[(kp >> 5) + b], sum);
                }
                att[p] = sum * scale_f;
            }
        } else {
            for (int64_t p = 0; p < n_pos; p++) {
                const int64_t kp = p * kv_stride + kv_off;
                double dot = 0.0;
                for (int d = 0; d < head_dim; d++)
                    dot += (double)qh[d] * kv_elem(k_cache, k_scale, kp + d, kind);
                att[p] = (float)(dot * scale);
            }
        }
        if (kind == 2) { /* an 8-bit cache: V's sums on integers (tai_attention_q8) */
            float mx = -INFINITY, sum = 0.0f;
            for (int64_t p = 0; p < n_pos; p++) mx = fmaxf(mx, att[p]);
            for (int64_t p = 0; p < n_pos; p++) sum += att[p] = expf(att[p] - mx);
            float acc[TAI_ATT_Q8_MAX_HEAD];
            for (int d = 0; d < head_dim; d++) acc[d] = 0.0f;
            const int8_t *codes = v_cache;
            for (int64_t c0 = 0; c0 < n_pos; c0 += TAI_ATT_Q8_VCHUNK) {
                const int64_t c1 = n_pos - c0 < TAI_ATT_Q8_VCHUNK ? n_pos : c0 + TAI_ATT_Q8_VCHUNK;
                for (int b = 0; b < head_dim / 32; b++) {
                    float m = 0.0f;
                    for (int64_t p = c0; p < c1; p++)
                        m = fmaxf(m, att[p] * v_scale[((p * kv_stride + kv_off) >> 5) + b]);
                    const float inv = m > 0.0f ? 32767.0f / m : 0.0f, dq = m > 0.0f ? m / 32767.0f : 0.0f;
                    int32_t s32[32] = {0};
                    for (int64_t p = c0; p < c1; p++) {
                        const float w = att[p] * v_scale[((p * kv_stride + kv_off) >> 5) + b];
                        /* NaN (from NaN inputs) to 0, as the vector kernels' conversion */
                        const float r = nearbyintf(w * inv);
                        const int32_t qw = r >= 0.0f && r <= 32767.0f ? (int32_t)r : 0;
                        for (int i = 0; i < 32; i++) s32[i] += qw * codes[p * kv_stride + kv_off + 32 * b + i];
                    }
                    for (int i = 0; i < 32; i++) acc[32 * b + i] = fmaf((float)s32[i], dq, acc[32 * b + i]);
                }
            }
            const float inv = 1.0f / sum;
            for (int d = 0; d < head_dim; d++) oh[d] = acc[d] * inv;
            continue;
        }
        tai_softmax(att, n_pos);
        for (int64_t p = 0; p < n_pos; p++) {
            const int64_t vp = p * kv_stride + kv_off;
            float a = att[p];
            for (int d = 0; d < head_dim; d++) oh[d] += a * kv_elem(v_cache, v_scale, vp + d, kind);
        }
    }
}

void tai_attention(float *out, const float *q, const float *k_cache,
                   const float *v_cache, int64_t n_pos, int64_t kv_stride,
                   int n_head, int n_kv_head, int head_dim, float *att) {
    attention_ref(out, q, k_cache, NULL, v_cache, NULL, n_pos, kv_stride, n_head, n_kv_head,
                  head_dim, att, 0);
}

void tai_attention_f16(float *out, const float *q, const uint16_t *k_cache,
                       const uint16_t *v_cache, int64_t n_pos, int64_t kv_stride,
                       int n_head, int n_kv_head, int head_dim, float *att) {
    attention_ref(out, q, k_cache, NULL, v_cache, NULL, n_pos, kv_stride, n_head, n_kv_head,
                  head_dim, att, 1);
}

void tai_attention_q8(float *out, const float *q, const int8_t *k_cache, const float *k_scale,
                      const int8_t *v_cache, const float *v_scale, int64_t n_pos,
                      int64_t kv_stride, int n_head, int n_kv_head, int head_dim, float *att) {
    attention_ref(out, q, k_cache, k_scale, v_cache, v_scale, n_pos, kv_stride, n_head,
                  n_kv_head, head_dim, att, 2);
}

void tai_attention_q8_all(float *out, const float *q, const int8_t *k_cache,
                          const float *k_scale, const int8_t *v_cache, const float *v_scale,
                          int64_t n_pos, int64_t kv_stride, int n_head, int n_kv_head,
                          int head_dim, float *att) {
    tai_attention_q8(out, q, k_cache, k_scale, v_cache, v_scale, n_pos, kv_stride, n_head,
                     n_kv_head, head_dim, att);
}

void tai_f32_to_q8_row(tai_quantize_q8a_fn quantize, const float *src, int8_t *codes,
                       float *scales, int64_t n) {
    if (n <= 0 || n % TAI_QK != 0) return;
    if (!quantize) quantize = tai_quantize_row_q8a;
    enum { RUN = 32 }; /* blocks quantized in one call */
    tai_block_q8a run[RUN];
    for (int64_t b0 = 0; b0 < n / TAI_QK; b0 += RUN) {
        const int64_t nb = n / TAI_QK - b0 < RUN ? n / TAI_QK - b0 : RUN;
        quantize(src + b0 * TAI_QK, run, nb * TAI_QK);
        for (int64_t b = 0; b < nb; b++) {
            memcpy(codes + (b0 + b) * TAI_QK, run[b].qs, TAI_QK);
            scales[b0 + b] = run[b].d;
        }
    }
}

void tai_attention_all(float *out, const float *q, const float *k_cache, const float *v_cache,
                       int64_t n_pos, int64_t kv_stride, int n_head, int n_kv_head, int head_dim,
                       float *att) {
    tai_attention(out, q, k_cache, v_cache, n_pos, kv_stride, n_head, n_kv_head, head_dim, att);
}

void tai_attention_f16_all(float *out, const float *q, const uint16_t *k_cache,
                           const uint16_t *v_cache, int64_t n_pos, int64_t kv_stride,
                           int n_head, int n_kv_head, int head_dim, float *att) {
    tai_attention_f16(out, q, k_cache, v_cache, n_pos, kv_stride, n_head, n_kv_head, head_dim, att);
}

void tai_f32_to_f16_row(const float *src, uint16_t *dst, int64_t n) {
    for (int64_t i = 0; i < n; i++) dst[i] = tai_fp32_to_fp16(src[i]);
}

void tai_embedding_row(tai_type t, const void *table, int64_t row, int64_t n,
                       float *out) {
    size_t rb = tai_type_row_bytes(t, n);
    if (rb == 0 || row < 0) return;
    tai_dequantize_row(t, (const char *)table + (size_t)row * rb, out, n);
}
