/*
 * <tinyai/utils/simd.h>: which SIMD kernels a loaded model's CPU work
 * uses, per op family, and what this CPU has.
 *
 * Every CPU op has a portable kernel (plain C) and, where it takes real
 * time, AVX2 and AVX-512 ones. A model starts with the best this CPU runs
 * (or the variant TinyAIModelConfig.cpu names). The optimization level caps
 * the instruction set for all families (0: portable, 1: AVX2, 2: AVX-512;
 * above the CPU's best: its best); disabling a family makes it use the
 * portable kernel whatever the level. The variants compute the same
 * products; only the order of float additions differs. With float weights
 * the logits agree to rounding (1e-5 of their scale); with block-quantized
 * weights the activations are quantized to 8 bits as well, and a last-bit
 * difference at a rounding boundary moves one code by a step, so logits
 * differ by up to a few percent (3% measured on SmolLM2) while the chosen
 * tokens agree (tests/model/simd_test).
 *
 * The settings are the model's own (each model has its own CPU device) and
 * take effect on its next evaluation; change them only while no session
 * of the model is being evaluated. Where layers run on another device
 * (TinyAIModelConfig.device), only the CPU's share follows them.
 */
#ifndef TINYAI_UTILS_SIMD_H
#define TINYAI_UTILS_SIMD_H

#include <stdbool.h>

#include <tinyai/llm.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    TINYAI_SIMD_OP_MATRIX_MUL = 0, /* the matrix products and the quantization
                                      of their activations */
    TINYAI_SIMD_OP_CONV = 1,       /* convolutions: no TinyAI model has one;
                                      asking for it is an error */
    TINYAI_SIMD_OP_ACTIVATION = 2, /* SwiGLU (SiLU(gate) * up) */
    TINYAI_SIMD_OP_ATTENTION = 3,  /* attention over the KV cache */
} TinyAISIMDOpType;

/* What this CPU has (and the OS enables) of what the kernels use. */
typedef struct {
    bool sse42, avx, avx2, fma, f16c;
    bool avx512f, avx512bw, avx512vl, avx512dq, avx512vnni;
    bool amxInt8;          /* AMX tiles, used by the AVX-512 block-type
                              products where Linux grants them */
    int maxLevel;          /* the highest level this CPU runs: 0, 1 or 2 */
    const char *levelNames[3]; /* "scalar", "avx2", "avx512" */
    int levelVectorBits[3];    /* 0 (portable C), 256, 512 */
    char cpu[64];          /* the CPU's name ("" if it gives none) */
} TinyAISIMDCapabilities;

TinyAISIMDCapabilities tinyaiGetSIMDCapabilities(void);

/* Enables or disables the SIMD kernels of one op family of the model.
 * false (with tinyaiLastErrorMessage saying why) for a NULL model, an
 * unknown family or TINYAI_SIMD_OP_CONV. */
bool tinyaiEnableSIMD(TinyAIModel *model, TinyAISIMDOpType op_type, bool enable);

/* Caps the instruction set of every family: 0 portable, 1 AVX2, 2
 * AVX-512; a level above the CPU's best is its best. A negative level (or
 * a NULL model) changes nothing and sets tinyaiLastErrorMessage. */
void tinyaiSetSIMDOptimizationLevel(TinyAIModel *model, int level);

/* What the model uses now. */
typedef struct {
    int level;             /* the cap in effect */
    bool enabled[4];       /* per TinyAISIMDOpType (CONV: false) */
    const char *kernel[4]; /* the variant each family runs: "scalar",
                              "avx2", "avx512"; NULL for CONV */
} TinyAISIMDState;

TinyAIStatus tinyaiGetSIMDState(const TinyAIModel *model, TinyAISIMDState *out);

#ifdef __cplusplus
}
#endif

#endif /* TINYAI_UTILS_SIMD_H */
