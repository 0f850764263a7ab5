/*
 * kernels/unit_traits.h: what a unit-packed type's units hold (core/types.h
 * "Unit-packed weights"), as constants once the type is: the SIMD files'
 * loops are instantiated per type and these fold away. Internal to kernels/.
 */
#ifndef TAI_KERNELS_UNIT_TRAITS_H
#define TAI_KERNELS_UNIT_TRAITS_H

#include "kernels/kernels_internal.h"

#define TAI_UNIT_INLINE static inline __attribute__((always_inline))

TAI_UNIT_INLINE int u_codes(int T) {
    return T == TAI_TYPE_Q2_K || T == TAI_TYPE_Q3_K ? TAI_UNIT_TWO
           : T == TAI_TYPE_Q8_K                     ? TAI_UNIT_BYTE
                                                    : TAI_UNIT_NIB;
}
TAI_UNIT_INLINE int u_high(int T) {
    return T == TAI_TYPE_Q6_K ? 2
           : T == TAI_TYPE_Q5_0 || T == TAI_TYPE_Q5_1 || T == TAI_TYPE_Q5_K || T == TAI_TYPE_Q3_K
               ? 1
               : 0;
}
TAI_UNIT_INLINE int u_scales(int T) {
    return T == TAI_TYPE_Q4_K || T == TAI_TYPE_Q5_K ? TAI_UNIT_SC_K4
           : T == TAI_TYPE_Q2_K                     ? TAI_UNIT_SC_U8
           : T == TAI_TYPE_Q6_K || T == TAI_TYPE_Q3_K ? TAI_UNIT_SC_I8
                                                      : TAI_UNIT_SC_NONE;
}
TAI_UNIT_INLINE int u_bias(int T) {
    return T == TAI_TYPE_Q5_0 ? 16
           : T == TAI_TYPE_Q3_K ? 4
           : T == TAI_TYPE_Q6_K ? 32
           : T == TAI_TYPE_Q8_K || T == TAI_TYPE_IQ4_NL ? 128
                                                        : 0;
}
TAI_UNIT_INLINE int u_min(int T) {
    return T == TAI_TYPE_Q5_1 || T == TAI_TYPE_Q2_K || T == TAI_TYPE_Q4_K || T == TAI_TYPE_Q5_K;
}
/* Blocks of 32 with q8a activations (Q5_0, Q5_1, IQ4_NL), else a K-quant. */
TAI_UNIT_INLINE int u_k(int T) {
    return !(T == TAI_TYPE_Q5_0 || T == TAI_TYPE_Q5_1 || T == TAI_TYPE_IQ4_NL);
}

#endif
