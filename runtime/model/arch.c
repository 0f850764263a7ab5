/*
 * runtime/model/arch.c: the table of architectures (arch.h).
 */
#include "runtime/model/arch.h"

#include <string.h>

static const tai_arch *const kArchs[] = {
    &tai_arch_llama,
    &tai_arch_qwen2,
    &tai_arch_qwen3,
    &tai_arch_gemma3,
};

const tai_arch *tai_arch_find(const char *name) {
    for (size_t i = 0; name && i < sizeof kArchs / sizeof *kArchs; i++)
        if (strcmp(kArchs[i]->name, name) == 0) return kArchs[i];
    return NULL;
}

const char *tai_arch_names(void) { return "llama, qwen2, qwen3, gemma3"; }
