/*
 * kernels/registry.c: the one table of kernel variants per ISA, and how
 * activations are prepared for each weight type (layer: kernels).
 *
 * Adding a variant means adding its row here and nowhere else. Which table
 * is used is decided once by the caller (tai_isa_best at start-up), never per
 * call in a hot loop.
 */
#include <stdatomic.h>
#include <string.h>

#include "kernels/kernels_internal.h"

/* The tuning, as two relaxed atomics: a kernel reading one while another
 * thread sets both may see one old value, which is harmless (each value is
 * valid on its own, and results never depend on them). */
static atomic_int tune_l1 = 0, tune_l2 = 0, tune_kslice = 0;
/* a product's own tuning on the thread running it (tai_kernels_tuning_scope) */
static _Thread_local const tai_kernel_tuning *scoped;

tai_kernel_tuning tai_kernels_tuning(void) {
    if (scoped) return *scoped;
    tai_kernel_tuning t = {atomic_load_explicit(&tune_l1, memory_order_relaxed),
                           atomic_load_explicit(&tune_l2, memory_order_relaxed),
                           atomic_load_explicit(&tune_kslice, memory_order_relaxed)};
    return t;
}

void tai_kernels_tuning_scope(const tai_kernel_tuning *t) { scoped = t; }

static int prefetch_ok(int b) { return b >= 0 && b <= TAI_TUNE_MAX_PREFETCH && b % 64 == 0; }

int tai_kernels_tuning_valid(const tai_kernel_tuning *t) {
    return t != NULL && prefetch_ok(t->prefetch_l1) && prefetch_ok(t->prefetch_l2) &&
           t->k_slice >= 0 && t->k_slice <= TAI_TUNE_MAX_K_SLICE && t->k_slice % 32 == 0;
}

int tai_kernels_set_tuning(const tai_kernel_tuning *t) {
    if (!tai_kernels_tuning_valid(t)) return -1;
    atomic_store_explicit(&tune_l1, t->prefetch_l1, memory_order_relaxed);
    atomic_store_explicit(&tune_l2, t->prefetch_l2, memory_order_relaxed);
    atomic_store_explicit(&tune_kslice, t->k_slice, memory_order_relaxed);
    return 0;
}

tai_kernel_tuning tai_kernel_tuning_default(void) {
    tai_kernel_tuning t = {0, 0, 0};
    return t;
}

#define GEMM_ROW(isa)                               \
    {                                               \
        [TAI_TYPE_F32] = tai_k_gemm_f32_##isa,      \
        [TAI_TYPE_F16] = tai_k_gemm_f16_##isa,      \
        [TAI_TYPE_Q4_0] = tai_k_gemm_q4_0_##isa,    \
        [TAI_TYPE_Q4_1] = tai_k_gemm_q4_1_##isa,    \
        [TAI_TYPE_Q8_0] = tai_k_gemm_q8_0_##isa,    \
        [TAI_TYPE_Q5_0] = tai_k_gemm_q5_0_##isa,    \
        [TAI_TYPE_Q5_1] = tai_k_gemm_q5_1_##isa,    \
        [TAI_TYPE_IQ4_NL] = tai_k_gemm_iq4_nl_##isa,\
        [TAI_TYPE_Q2_K] = tai_k_gemm_q2_k_##isa,    \
        [TAI_TYPE_Q3_K] = tai_k_gemm_q3_k_##isa,    \
        [TAI_TYPE_Q4_K] = tai_k_gemm_q4_k_##isa,    \
        [TAI_TYPE_Q5_K] = tai_k_gemm_q5_k_##isa,    \
        [TAI_TYPE_Q6_K] = tai_k_gemm_q6_k_##isa,    \
        [TAI_TYPE_Q8_K] = tai_k_gemm_q8_k_##isa,    \
        [TAI_TYPE_BF16] = tai_k_gemm_bf16_##isa,    \
    }

static const tai_kernels k_scalar = {
    .isa = TAI_ISA_SCALAR,
    .gemm = GEMM_ROW(scalar),
    .attention = tai_attention,
    .attention_all = tai_attention_all,
    .attention_f16 = tai_attention_f16,
    .attention_f16_all = tai_attention_f16_all,
    .attention_q8 = tai_attention_q8,
    .attention_q8_all = tai_attention_q8_all,
    .f32_to_f16 = tai_f32_to_f16_row,
    .silu_mul = tai_silu_mul,
    .gelu_mul = tai_gelu_mul,
    .add = tai_add,
    .argmax = tai_argmax,
    .quantize_q8a = tai_quantize_row_q8a,
    .quantize_q8k = tai_quantize_row_q8k,
};
#if defined(__x86_64__)
static const tai_kernels k_avx2 = {
    .isa = TAI_ISA_AVX2,
    .gemm = GEMM_ROW(avx2),
    .attention = tai_k_attention_avx2,
    .attention_all = tai_k_attention_avx2,
    .attention_f16 = tai_k_attention_f16_avx2,
    .attention_f16_all = tai_k_attention_f16_avx2,
    .attention_q8 = tai_attention_q8, /* the reference: no AVX2 version */
    .attention_q8_all = tai_attention_q8_all,
    .f32_to_f16 = tai_k_f32_to_f16_avx2,
    .silu_mul = tai_k_silu_mul_avx2,
    .gelu_mul = tai_k_gelu_mul_avx2,
    .add = tai_k_add_avx2,
    .argmax = tai_argmax,
    .quantize_q8a = tai_k_quantize_q8a_avx2,
    .quantize_q8k = tai_quantize_row_q8k,
};
static const tai_kernels k_avx512 = {
    .isa = TAI_ISA_AVX512,
    .gemm = GEMM_ROW(avx512),
    .attention = tai_k_attention_avx512,
    .attention_all = tai_k_attention_all_avx512,
    .attention_f16 = tai_k_attention_f16_avx512,
    .attention_f16_all = tai_k_attention_f16_all_avx512,
    .attention_multi = tai_k_attention_multi_avx512,
    .attention_q8 = tai_k_attention_q8_avx512,
    .attention_q8_all = tai_k_attention_q8_all_avx512,
    .f32_to_f16 = tai_k_f32_to_f16_avx512,
    .silu_mul = tai_k_silu_mul_avx512,
    .gelu_mul = tai_k_gelu_mul_avx512,
    .add = tai_k_add_avx512,
    .argmax = tai_k_argmax_avx512,
    .quantize_q8a = tai_k_quantize_q8a_avx512,
    .quantize_q8k = tai_k_quantize_q8k_avx512,
};
#endif

/* Indexed by tai_isa; NULL where this build has no such variant (every
 * x86 slot on other architectures, where tai_isa_supported is 0 anyway). */
static const tai_kernels *const tables[TAI_ISA_COUNT] = {
    [TAI_ISA_SCALAR] = &k_scalar,
#if defined(__x86_64__)
    [TAI_ISA_AVX2] = &k_avx2,
    [TAI_ISA_AVX512] = &k_avx512,
#endif
};

const tai_kernels *tai_kernels_get(tai_isa isa) {
    if ((int)isa < 0 || isa >= TAI_ISA_COUNT || tables[isa] == NULL ||
        !tai_isa_supported(isa))
        return &k_scalar;
    return tables[isa];
}

tai_rows_fn tai_rows_ref(tai_type t) {
    switch (t) {
    case TAI_TYPE_F32: return tai_k_rows_f32_ref;
    case TAI_TYPE_F16: return tai_k_rows_f16_ref;
    case TAI_TYPE_Q4_0: return tai_k_rows_q4_0_ref;
    case TAI_TYPE_Q4_1: return tai_k_rows_q4_1_ref;
    case TAI_TYPE_Q8_0: return tai_k_rows_q8_0_ref;
    case TAI_TYPE_Q5_0: return tai_k_rows_q5_0_ref;
    case TAI_TYPE_Q5_1: return tai_k_rows_q5_1_ref;
    case TAI_TYPE_IQ4_NL: return tai_k_rows_iq4_nl_ref;
    case TAI_TYPE_Q2_K: return tai_k_rows_q2_k_ref;
    case TAI_TYPE_Q3_K: return tai_k_rows_q3_k_ref;
    case TAI_TYPE_Q4_K: return tai_k_rows_q4_k_ref;
    case TAI_TYPE_Q5_K: return tai_k_rows_q5_k_ref;
    case TAI_TYPE_Q6_K: return tai_k_rows_q6_k_ref;
    case TAI_TYPE_Q8_K: return tai_k_rows_q8_k_ref;
    case TAI_TYPE_BF16: return tai_k_rows_bf16_ref;
    default: return NULL;
    }
}

tai_prep tai_prep_for(tai_type t) {
    if (t == TAI_TYPE_F32 || t == TAI_TYPE_F16 || t == TAI_TYPE_BF16) return TAI_PREP_F32;
    return tai_type_block_elems(t) == TAI_QK_K ? TAI_PREP_Q8K : TAI_PREP_Q8A;
}

/* 0 when n is not a valid length (negative, or not whole blocks for q8a). */
size_t tai_prep_col_bytes(tai_prep p, int64_t n) {
    if (n < 0) return 0;
    if (p == TAI_PREP_F32) {
        if ((uint64_t)n > SIZE_MAX / sizeof(float)) return 0;
        return (size_t)n * sizeof(float);
    }
    if (p == TAI_PREP_Q8K) {
        if (n % TAI_QK_K != 0 || (uint64_t)(n / TAI_QK_K) > SIZE_MAX / sizeof(tai_block_q8_k)) return 0;
        return (size_t)(n / TAI_QK_K) * sizeof(tai_block_q8_k);
    }
    if (n % TAI_QK != 0) return 0;
    if ((uint64_t)(n / TAI_QK) > SIZE_MAX / sizeof(tai_block_q8a)) return 0;
    return (size_t)(n / TAI_QK) * sizeof(tai_block_q8a);
}

void tai_prep_col(tai_prep p, const float *src, void *dst, int64_t n) {
    if (n <= 0) return;
    if (p == TAI_PREP_F32)
        memcpy(dst, src, (size_t)n * sizeof(float));
    else if (p == TAI_PREP_Q8K)
        tai_quantize_row_q8k(src, dst, n);
    else
        tai_quantize_row_q8a(src, dst, n);
}
