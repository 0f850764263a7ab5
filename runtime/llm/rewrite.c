/*
 * runtime/llm/rewrite.c: what the rewrites of a model's weights (mixed
 * precision, quantize.c; pruning, prune.c) share: opening a source file to
 * convert, and replacing a loaded model's weights through an unlinked file
 * (llm_internal.h).
 */
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/error.h"
#include "runtime/llm/llm_internal.h"
#include "runtime/model/model.h"

TinyAIStatus tai_model_open_source(const char *in, const char *out, TinyAIModel **m) {
    *m = NULL;
    struct stat si, so;
    if (stat(in, &si) == 0 && stat(out, &so) == 0 && si.st_dev == so.st_dev &&
        si.st_ino == so.st_ino)
        return tai_error(TINYAI_ERR_INVALID_ARG, "%s: the output is the input file", out);
    /* Loaded as a model first, so that only files TinyAI can run are
     * converted and problems are reported against the input; a limit defers
     * the memory plan (no layer is read into a cache). */
    TinyAIModelConfig mc = tinyaiCreateDefaultModelConfig();
    mc.threads = 1;
    mc.memoryLimit = 1;
    TinyAIStatus st = tinyaiLoadModel(in, &mc, m);
    for (int l = 0; st == TINYAI_OK && l < (*m)->file->n_layers; l++)
        st = tai_model_file_verify_layer((*m)->file, l);
    if (st != TINYAI_OK) {
        tinyaiFreeModel(*m);
        *m = NULL;
    }
    return st;
}

TinyAIStatus tai_model_rewrite(TinyAIModel *m, const char *temp_dir, const char *what,
                               TinyAIStatus (*write)(const tai_model_file *mf, const char *path,
                                                     const void *ctx),
                               const void *ctx) {
    if (m->n_sessions > 0)
        return tai_error(TINYAI_ERR_INVALID_ARG, "%s: the model has %d live session(s); free "
                         "them first", what, m->n_sessions);
    if (!m->owns_mm)
        return tai_error(TINYAI_ERR_INVALID_ARG,
                         "%s: the model runs on a TinyAIMappedModel the caller owns; convert "
                         "its file instead", what);
    char dir[PATH_MAX], path[PATH_MAX];
    if (temp_dir) {
        snprintf(dir, sizeof dir, "%s", temp_dir);
    } else {
        char copy[PATH_MAX];
        snprintf(copy, sizeof copy, "%s", m->file->path);
        snprintf(dir, sizeof dir, "%s", dirname(copy));
    }
    if (snprintf(path, sizeof path, "%s/.tinyai-rewrite-XXXXXX", dir) >= (int)sizeof path)
        return tai_error(TINYAI_ERR_INVALID_ARG, "%s: path too long", dir);
    int fd = mkstemp(path);
    if (fd < 0)
        return tai_error(TINYAI_ERR_IO, "%s: cannot create the converted weights' file in %s: %s",
                         what, dir, strerror(errno));
    close(fd);
    TinyAIStatus st = write(m->file, path, ctx);
    TinyAIModel *nm = NULL;
    if (st == TINYAI_OK) {
        TinyAIModelConfig mc = m->cfg;
        st = tinyaiLoadModel(path, &mc, &nm);
    }
    /* the new model holds the file open; its name goes now, so that the
     * space is returned when the model is freed, whatever happens */
    unlink(path);
    if (st != TINYAI_OK) return st;
    struct TinyAIModel tmp = *m;
    *m = *nm;
    *nm = tmp;
    tinyaiFreeModel(nm);
    return TINYAI_OK;
}

