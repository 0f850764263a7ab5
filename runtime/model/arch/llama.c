/* Llama (and Mistral, SmolLM, TinyLlama: the same block): the forward pass
 * as llama.c writes it, with no variation. */
#include "runtime/model/arch.h"

const tai_arch tai_arch_llama = {"llama", 0, NULL};
