/* Qwen2 and Qwen2.5: Llama's block with biases on q, k and v, and RoPE in
 * the NeoX layout (the q/k weights as trained). */
#include "runtime/model/arch.h"

const tai_arch tai_arch_qwen2 = {"qwen2", TAI_ARCH_QKV_BIAS | TAI_ARCH_NEOX, NULL};
