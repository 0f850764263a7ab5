/*
 * runtime/format/arch_flags.h: the ways an architecture's block differs from
 * Llama's (runtime/model/arch.h describes each; the synthetic writer,
 * synth.h, writes the tensors and keys they need).
 */
#ifndef TAI_RUNTIME_FORMAT_ARCH_FLAGS_H
#define TAI_RUNTIME_FORMAT_ARCH_FLAGS_H

enum {
    TAI_ARCH_QKV_BIAS = 1u << 0,
    TAI_ARCH_QK_NORM = 1u << 1,
    TAI_ARCH_POST_NORMS = 1u << 2,
    TAI_ARCH_GEGLU = 1u << 3,
    TAI_ARCH_NEOX = 1u << 4,
    TAI_ARCH_EMB_SCALE = 1u << 5,
    TAI_ARCH_SWA = 1u << 6,
};

#endif
