/* Qwen3 (dense): no biases; q and k RMS-normed per head before RoPE (NeoX
 * layout). Its head size (attention.key_length) need not be
 * n_embd / n_head. */
#include "runtime/model/arch.h"

const tai_arch tai_arch_qwen3 = {"qwen3", TAI_ARCH_QK_NORM | TAI_ARCH_NEOX, NULL};
