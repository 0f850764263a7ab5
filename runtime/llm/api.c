/*
 * runtime/llm: the public model, token and session API of <tinyai/llm.h>.
 * Validates arguments, owns allocation and cleanup; the math lives in
 * llama.c and the CPU device (offload/cpu).
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/error.h"
#include "kernels/kernels.h"
#include "offload/opencl/opencl.h"
#include "offload/plugin/plugin.h"
#include "runtime/mem/memory.h"
#include "runtime/mem/numa.h"
#include "runtime/llm/llm_internal.h"
#include "runtime/model/model.h"
#include "runtime/sched/sched.h"

#define MAX_THREADS 256
#define DEFAULT_CTX 4096
#define MAX_SESSIONS 1024

TinyAIModelConfig tinyaiCreateDefaultModelConfig(void) {
    TinyAIModelConfig c;
    memset(&c, 0, sizeof c);
    c.mode = TINYAI_EXEC_ADAPTIVE;
    c.ioEngine = TINYAI_IO_AUTO;
    c.cachePolicy = TINYAI_CACHE_BELADY;
    c.numaPolicy = TINYAI_NUMA_LOCAL;
    c.prefetchWindow = 1;
    c.maxSessions = 1;
    return c;
}

void tinyaiFree(void *p) { free(p); }

void tinyaiFreeModel(TinyAIModel *m) {
    if (!m) return;
    /* the cache's loaders finish before the devices and workspace go (the
     * file's tables go with the mapped model: its layer count first) */
    const int nf = m->file ? m->file->n_layers : 0;
    tai_profile_free(m); /* stops tracing before the cache goes */
    tai_cache_stats_free(m);
    if (m->owns_mm) tai_mapped_close(m->mm);
    for (int l = 0; m->dev_w && l < nf; l++)
        if (m->dev_w[l]) {
            tai_device *d = m->devs[m->dev_w_on[l]];
            d->ops->buf_free(d->ctx, m->dev_w[l]);
        }
    tai_dev_workspaces_free(m);
    for (int d = 1; d < m->n_devs; d++) tai_device_close(m->devs[d]);
    tai_device_close(m->dev);
    free(m->dev_w);
    free(m->dev_w_on);
    tai_model_place_free(m);
    free(m->kv_slot);
    tai_workspace_free(&m->ws);
    tai_tokenizer_free(m->tok);
    free(m->blocks);
    tai_mem_note(TAI_MEM_TABLES, -(int64_t)m->fixed_bytes);
    free(m);
}

/* The CPU kernel variant asked for, checked before anything is loaded. */
static TinyAIStatus check_variant(const char *cpu) {
    const int ok = tai_cpu_variant_supported(cpu);
    if (ok < 0)
        return tai_error(TINYAI_ERR_INVALID_ARG,
                         "unknown CPU kernel variant '%s' (auto, scalar, avx2, avx512)", cpu);
    if (ok == 0)
        return tai_error(TINYAI_ERR_UNSUPPORTED, "this CPU does not support the %s kernels", cpu);
    return TINYAI_OK;
}

static TinyAIStatus check_config(TinyAIModelConfig *cfg, int *threads) {
    *threads = cfg->threads;
    if (*threads == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        *threads = n < 1 ? 1 : n > MAX_THREADS ? MAX_THREADS : (int)n;
    }
    if (*threads < 1 || *threads > MAX_THREADS)
        return tai_error(TINYAI_ERR_INVALID_ARG, "threads must be 1..%d (0 = all cores), got %d",
                         MAX_THREADS, cfg->threads);
    if ((unsigned)cfg->mode > TINYAI_EXEC_ADAPTIVE)
        return tai_error(TINYAI_ERR_INVALID_ARG, "unknown execution mode %d", (int)cfg->mode);
    if (cfg->maxSessions == 0) cfg->maxSessions = 1;
    if (cfg->maxSessions < 1 || cfg->maxSessions > MAX_SESSIONS)
        return tai_error(TINYAI_ERR_INVALID_ARG, "maxSessions must be 1..%d, got %d", MAX_SESSIONS,
                         cfg->maxSessions);
    if (cfg->contextSize < 0)
        return tai_error(TINYAI_ERR_INVALID_ARG, "contextSize must be >= 0, got %d",
                         cfg->contextSize);
    if ((unsigned)cfg->kvCacheType > TINYAI_KV_Q8_0)
        return tai_error(TINYAI_ERR_INVALID_ARG,
                         "unknown KV cache type %d (TINYAI_KV_F32, TINYAI_KV_F16 or "
                         "TINYAI_KV_Q8_0)",
                         (int)cfg->kvCacheType);
    if (cfg->kvCacheType != TINYAI_KV_F32 && cfg->device && *cfg->device &&
        strcmp(cfg->device, "auto") && strcmp(cfg->device, "cpu"))
        return tai_error(TINYAI_ERR_UNSUPPORTED,
                         "an %s KV cache is read by the CPU kernels only: device '%s' cannot "
                         "run it (use the F32 cache there, or the CPU)",
                         cfg->kvCacheType == TINYAI_KV_F16 ? "F16" : "8-bit", cfg->device);
    if (cfg->prefetchWindow == 0) cfg->prefetchWindow = 1;
    if (cfg->prefetchWindow < -1 || cfg->prefetchWindow > 64)
        return tai_error(TINYAI_ERR_INVALID_ARG,
                         "prefetchWindow must be 1..64 (or -1: no read-ahead), got %d",
                         cfg->prefetchWindow);
    return TINYAI_OK;
}

/* Binds each of the CPU device's threads to its core (NUMA through hwloc);
 * where binding is not possible they just run unbound. */
typedef struct {
    tai_numa *numa;
    const int *cores;
} bind_job;

static void bind_worker(void *ctx, int i, int n) {
    const bind_job *j = ctx;
    (void)n;
    (void)tai_numa_bind_thread(j->numa, j->cores[i]);
}

/* Binds the CPU device's threads one to a core, with the topology the
 * mapped model already read (read again without one). */
static void bind_threads(const tai_device *cpu, const TinyAIMappedModel *mm) {
    tai_numa *own = NULL, *numa = tai_mapped_numa(mm);
    if (!numa && tai_numa_open(NULL, &own) != TINYAI_OK) return;
    if (!numa) numa = own;
    const int n = tai_cpu_device_threads(cpu);
    int *cores = calloc((size_t)n, sizeof *cores);
    if (cores && tai_numa_can_bind(numa) && tai_numa_thread_cores(numa, n, cores) == TINYAI_OK) {
        bind_job j = {numa, cores};
        tai_cpu_device_each_thread(cpu, bind_worker, &j);
    }
    free(cores);
    tai_numa_close(own);
    tinyaiClearError();
}

int tinyaiDeviceCount(void) { return 1 + tai_opencl_count() + tai_plugin_devices(); }

TinyAIStatus tinyaiLoadPlugin(const char *path, const char *options) {
    return tai_plugin_load(path, options, NULL);
}

void tinyaiUnloadPlugins(void) { tai_plugin_unload_all(); }

int tinyaiPluginCount(void) { return tai_plugin_count(); }

TinyAIStatus tinyaiGetPluginInfo(int index, TinyAIPluginInfo *out) {
    if (!out) return tai_error(TINYAI_ERR_INVALID_ARG, "tinyaiGetPluginInfo: out is NULL");
    const tai_plugin *p = tai_plugin_at(index);
    if (!p) return tai_error(TINYAI_ERR_RANGE, "no plugin %d (%d loaded)", index, tai_plugin_count());
    out->name = tai_plugin_name(p);
    out->path = tai_plugin_path(p);
    tai_plugin_abi(p, &out->abiMajor, &out->abiMinor);
    out->devices = tai_plugin_device_count(p);
    out->lastLog = tai_plugin_last_log(p);
    return TINYAI_OK;
}

TinyAIStatus tinyaiGetDeviceInfo(int index, TinyAIDeviceInfo *out) {
    if (!out) return tai_error(TINYAI_ERR_INVALID_ARG, "tinyaiGetDeviceInfo: out is NULL");
    memset(out, 0, sizeof *out);
    tai_device_info in;
    if (index == 0) {
        snprintf(in.name, sizeof in.name, "cpu");
        snprintf(in.model, sizeof in.model, "%s", *tai_cpu_name() ? tai_cpu_name() : tai_cpu_id());
        snprintf(in.vendor, sizeof in.vendor, "%s", tai_cpu_id());
        char *dash = strchr(in.vendor, '-');
        if (dash) *dash = 0;
        snprintf(in.version, sizeof in.version, "kernels %s", tai_cpu_best_variant());
        in.kind = TAI_DEVICE_CPU;
        const long page = sysconf(_SC_PAGESIZE), all = sysconf(_SC_PHYS_PAGES);
        in.mem_total = page > 0 && all > 0 ? (uint64_t)page * (uint64_t)all : 0;
    } else if (index > tai_opencl_count() && index < tinyaiDeviceCount()) {
        tai_plugin *p = NULL;
        int i = 0;
        tai_device *d = NULL;
        TinyAIStatus st = tai_plugin_device_at(index - 1 - tai_opencl_count(), &p, &i);
        if (st == TINYAI_OK) st = tai_plugin_device_open(p, i, &d);
        if (st != TINYAI_OK) return st;
        in = d->info;
        tai_device_close(d);
    } else if (index < 0 || tai_opencl_query(index - 1, &in) != 0) {
        return tai_error(TINYAI_ERR_RANGE, "no device %d (this machine has %d)", index,
                         tinyaiDeviceCount());
    }
    snprintf(out->name, sizeof out->name, "%s", in.name);
    snprintf(out->model, sizeof out->model, "%s", in.model);
    snprintf(out->vendor, sizeof out->vendor, "%s", in.vendor);
    snprintf(out->version, sizeof out->version, "%s", in.version);
    out->kind = in.kind;
    out->memoryBytes = in.mem_total;
    return TINYAI_OK;
}

const char *tinyaiLayerDevice(const TinyAIModel *m, int layer) {
    if (!m || layer < 0 || layer >= m->file->n_layers) return NULL;
    return m->devs[m->plans[0][layer]]->info.name;
}

TinyAIStatus tinyaiGetLayerPlacement(const TinyAIModel *m, int columns, int layer,
                                     TinyAILayerPlacement *out) {
    if (!m || !out) return tai_error(TINYAI_ERR_INVALID_ARG, "tinyaiGetLayerPlacement: NULL argument");
    if (layer < 0 || layer >= m->file->n_layers || columns < 1)
        return tai_error(TINYAI_ERR_RANGE, "layer %d of %d, %d columns", layer, m->file->n_layers,
                         columns);
    const int b = tai_plan_bucket(m, columns);
    out->device = m->devs[m->plans[b][layer]]->info.name;
    out->bucketColumns = tai_plan_cols[b];
    out->predictedSeconds = m->plan_pred[b][layer];
    out->passes = m->plan_runs[b][layer];
    out->measuredSeconds = out->passes ? m->plan_meas[b][layer] / out->passes : 0;
    return TINYAI_OK;
}

void tinyaiResetLayerTimes(TinyAIModel *m) {
    if (!m) return;
    for (int b = 0; b < m->n_plans; b++) {
        memset(m->plan_meas[b], 0, (size_t)m->file->n_layers * sizeof(double));
        memset(m->plan_runs[b], 0, (size_t)m->file->n_layers * sizeof(int));
    }
}

/* The tokenizer, and the tables' memory noted (they are the model's memory
 * too and count against its limit); the header's pages they were copied
 * from then leave the resident set. */
static TinyAIStatus load_tokenizer(TinyAIModel *m) {
    TinyAIStatus st = tai_tokenizer_load(m->file, &m->tok);
    if (st != TINYAI_OK) {
        tai_error_prefix("%s", m->file->path);
        return st;
    }
    const size_t tb = tai_tokenizer_memory_bytes(m->tok);
    m->fixed_bytes += tb;
    if (m->planned) m->min_bytes += tb;
    tai_mem_note(TAI_MEM_TABLES, (int64_t)tb);
    tai_model_file_release_header(m->file);
    return TINYAI_OK;
}

TinyAIStatus tai_model_finish(TinyAIModel *m) {
    if (!m->threads_bound) bind_threads(m->dev, m->mm);
    m->threads_bound = 1;
    return m->tok ? TINYAI_OK : load_tokenizer(m);
}

TinyAIStatus tai_model_create(TinyAIMappedModel *mm, int owns, const TinyAIModelConfig *config,
                              bool later, TinyAIModel **out) {
    *out = NULL;
    TinyAIModelConfig cfg = config ? *config : tinyaiCreateDefaultModelConfig();
    int threads = 0;
    TinyAIStatus st = check_config(&cfg, &threads);
    if (st == TINYAI_OK) st = check_variant(cfg.cpu);
    if (st != TINYAI_OK) {
        if (owns) tai_mapped_close(mm);
        return st;
    }
    TinyAIModel *m = calloc(1, sizeof *m);
    if (!m) {
        if (owns) tai_mapped_close(mm);
        return tai_error(TINYAI_ERR_NOMEM, "out of memory");
    }
    m->mm = mm;
    m->owns_mm = owns;
    m->file = tai_mapped_file(mm);
    m->cfg = cfg;
    st = tai_llama_bind(m);
    if (st == TINYAI_OK && cfg.kvCacheType == TINYAI_KV_Q8_0 &&
        (m->hp.head_dim % 32 != 0 || m->hp.head_dim > TAI_ATT_Q8_MAX_HEAD))
        st = tai_error(TINYAI_ERR_UNSUPPORTED,
                       "an 8-bit KV cache quantizes heads in blocks of 32 values, up to %d: this "
                       "model's heads have %d (use the F16 or F32 cache)",
                       TAI_ATT_Q8_MAX_HEAD, m->hp.head_dim);
    if (st != TINYAI_OK) goto fail;
    st = tai_cpu_device_open(cfg.cpu, threads, &m->dev);
    m->cfg.cpu = NULL; /* not kept: the caller's string */
    if (st != TINYAI_OK) goto fail;
    if (!later) { /* before the placement, which may time the devices */
        bind_threads(m->dev, m->mm);
        m->threads_bound = 1;
    }
    /* an F16 or 8-bit cache: every layer on the CPU (check_config refused
     * any other named device; "auto" means the CPU) */
    st = tai_model_place(m, cfg.kvCacheType != TINYAI_KV_F32 ? "cpu" : cfg.device, cfg.cacheDir);
    m->cfg.device = m->cfg.cacheDir = NULL;
    if (st != TINYAI_OK) goto fail;
    const char *name = NULL;
    if (tai_model_file_find_kv(m->file, "general.name") &&
        tai_kv_get_str(m->file, "general.name", &name) == TINYAI_OK)
        snprintf(m->name, sizeof m->name, "%s", name);
    m->fixed_bytes = sizeof *m + tai_model_file_memory_bytes(m->file);
    tai_mem_note(TAI_MEM_TABLES, (int64_t)m->fixed_bytes);
    if (!later) st = tai_model_finish(m);
    if (st != TINYAI_OK) goto fail;
    *out = m;
    return TINYAI_OK;
fail:
    tinyaiFreeModel(m);
    return st;
}

/* cachestat(2) (Linux 6.5): the file's pages in the page cache, in one
 * call, where mincore needs a mapping of the whole file and a byte per page
 * (1.5 ms for a 0.6 GB file). Not in every libc's headers yet. */
#ifndef __NR_cachestat
#define __NR_cachestat 451
#endif
struct tai_cachestat_range {
    uint64_t off, len;
};
struct tai_cachestat {
    uint64_t nr_cache, nr_dirty, nr_writeback, nr_evicted, nr_recently_evicted;
};

/* Whether at least 90% of the file's pages are in the page cache
 * (cachestat, or mincore over a read-only mapping where the kernel lacks
 * it; false whenever that cannot be told). */
static bool file_in_page_cache(const char *path) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    struct stat sb;
    bool cached = false;
    const size_t page = (size_t)sysconf(_SC_PAGESIZE);
    struct tai_cachestat_range range = {0, 0}; /* len 0: to the end */
    struct tai_cachestat cs;
    if (fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode) && sb.st_size > 0 &&
        syscall(__NR_cachestat, fd, &range, &cs, 0) == 0) {
        const uint64_t pages = ((uint64_t)sb.st_size + page - 1) / page;
        cached = cs.nr_cache * 10 >= pages * 9;
    } else if (fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode) && sb.st_size > 0) {
        const size_t len = (size_t)sb.st_size;
        const size_t pages = (len + page - 1) / page;
        void *p = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
        unsigned char *vec = p == MAP_FAILED ? NULL : malloc(pages);
        if (vec && mincore(p, len, vec) == 0) {
            size_t in = 0;
            for (size_t i = 0; i < pages; i++) in += vec[i] & 1;
            cached = in * 10 >= pages * 9;
        }
        free(vec);
        if (p != MAP_FAILED) munmap(p, len);
    }
    close(fd);
    return cached;
}

static int default_ctx(const TinyAIModel *m) {
    return m->hp.n_ctx_train < DEFAULT_CTX ? m->hp.n_ctx_train : DEFAULT_CTX;
}

TinyAIStatus tinyaiLoadModel(const char *path, const TinyAIModelConfig *config,
                             TinyAIModel **out) {
    if (!out) return tai_error(TINYAI_ERR_INVALID_ARG, "tinyaiLoadModel: out is NULL");
    *out = NULL;
    if (!path || !*path) return tai_error(TINYAI_ERR_INVALID_ARG, "tinyaiLoadModel: no path");
    TinyAIModelConfig cfg = config ? *config : tinyaiCreateDefaultModelConfig();
    int threads = 0;
    TinyAIStatus st = check_config(&cfg, &threads);
    if (st != TINYAI_OK) return st;
    TinyAIMmapConfig mc = tinyaiCreateDefaultMmapConfig();
    mc.ioEngine = cfg.ioEngine;
    /* Without a limit every layer is read once, now. From a file the page
     * cache already holds, copying from the cache through a mapping beats
     * reading the device again with O_DIRECT (which bypasses the cache). */
    if (cfg.ioEngine == TINYAI_IO_AUTO && cfg.memoryLimit == 0 && file_in_page_cache(path))
        mc.ioEngine = TINYAI_IO_MMAP;
    /* ... and with a loader per core (up to 4), so that reading, repacking
     * and faulting in the memory run on every core; under a limit one
     * loader streams (its staging buffer counts against the limit). */
    if (cfg.memoryLimit == 0) {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        mc.prefetchThreads = cores < 1 ? 1 : cores > 4 ? 4 : (int)cores;
    }
    mc.cachePolicy = cfg.cachePolicy;
    mc.numaPolicy = cfg.numaPolicy;
    mc.verifyEveryLoad = cfg.verifyChecksums;
    mc.prefetchWindow = cfg.prefetchWindow < 0 ? 0 : cfg.prefetchWindow;
    tai_mapped_options opt = {NULL, true, threads, 0};
    TinyAIMappedModel *mm = NULL;
    st = tai_mapped_open(path, &mc, &opt, &mm);
    if (st != TINYAI_OK) return st;
    TinyAIModel *m = NULL;
    /* Without a limit every layer is read now and stays resident: the
     * reads start before the tokenizer is built and the threads are bound,
     * which then happen while they run. With a limit, the first session
     * makes the plan (it knows the context size). */
    st = tai_model_create(mm, 1, &cfg, cfg.memoryLimit == 0, &m);
    if (st != TINYAI_OK) return st;
    if (cfg.memoryLimit == 0) {
        int ctx = cfg.contextSize > 0 ? cfg.contextSize : default_ctx(m);
        st = tai_model_plan(m, ctx, cfg.maxSessions);
        if (st == TINYAI_OK) st = tai_model_finish(m);
        if (st != TINYAI_OK) {
            tinyaiFreeModel(m);
            return st;
        }
    }
    m->loaded_ns = tai_now_ns();
    *out = m;
    return TINYAI_OK;
}

TinyAIStatus tinyaiWaitModelLoaded(TinyAIModel *m) {
    if (!m) return tai_error(TINYAI_ERR_INVALID_ARG, "tinyaiWaitModelLoaded: NULL model");
    return tai_mapped_pin_wait(m->mm, NULL);
}

TinyAIStatus tinyaiGetModelInfo(const TinyAIModel *m, TinyAIModelInfo *out) {
    if (!m || !out) return tai_error(TINYAI_ERR_INVALID_ARG, "tinyaiGetModelInfo: NULL argument");
    memset(out, 0, sizeof *out);
    snprintf(out->architecture, sizeof out->architecture, "%s", m->hp.arch ? m->hp.arch->name : "llama");
    snprintf(out->name, sizeof out->name, "%s", m->name);
    const tai_hparams *hp = &m->hp;
    if (hp->flags & TAI_ARCH_SWA) {
        out->slidingWindow = hp->ap.swa_window;
        for (int l = 0; l < hp->n_layer; l++) out->slidingBlocks += tai_hp_swa(hp, l);
        out->slidingRopeFreqBase = hp->ap.swa_rope_base;
    }
    snprintf(out->kvCacheType, sizeof out->kvCacheType, "%s",
             m->cfg.kvCacheType == TINYAI_KV_Q8_0  ? "q8_0"
             : m->cfg.kvCacheType == TINYAI_KV_F16 ? "f16"
                                                   : "f32");
    out->bf16Prompts = m->cfg.bf16Prompts;
    out->nVocab = hp->n_vocab;
    out->nCtxTrain = hp->n_ctx_train;
    out->nEmbd = hp->n_embd;
    out->nFF = hp->n_ff;
    out->nHead = hp->n_head;
    out->nHeadKV = hp->n_head_kv;
    out->nLayer = hp->n_layer;
    out->headDim = hp->head_dim;
    out->ropeFreqBase = hp->rope_base;
    out->rmsEps = hp->rms_eps;
    out->tiedOutput = m->tied != 0;
    uint64_t by_type[TAI_TYPE_COUNT] = {0};
    for (int64_t i = 0; i < m->file->n_tensors; i++) {
        const tai_tensor *t = &m->file->tensors[i];
        out->weightBytes += t->size;
        out->nParams += (uint64_t)(t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3]);
        const bool block = t->layer >= 1 && t->layer <= hp->n_layer;
        if (block && t->n_dims >= 2 && (int)t->type >= 0 && (int)t->type < TAI_TYPE_COUNT)
            by_type[t->type] += t->size;
    }
    int main_type = -1;
    for (int k = 0; k < TAI_TYPE_COUNT; k++)
        if (by_type[k] && (main_type < 0 || by_type[k] > by_type[main_type])) main_type = k;
    snprintf(out->weightType, sizeof out->weightType, "%s",
             main_type >= 0 ? tai_type_name((tai_type)main_type) : "?");
    out->isa = tai_cpu_device_variant(m->dev);
    out->threads = tai_cpu_device_threads(m->dev);
    out->packedBytes = tai_mapped_total_image_bytes(m->mm);
    double bg = 0;
    out->repackSeconds = tai_mapped_pin_pending(m->mm, &bg) ? 0 : m->load_seconds + bg;
    snprintf(out->fileFormat, sizeof out->fileFormat, "%s",
             m->file->kind == TAI_FILE_TMAI ? "tmai" : "gguf");
    const char *tm = NULL;
    if (tai_model_file_find_kv(m->file, "tokenizer.ggml.model") &&
        tai_kv_get_str(m->file, "tokenizer.ggml.model", &tm) == TINYAI_OK)
        snprintf(out->tokenizerModel, sizeof out->tokenizerModel, "%s", tm);
    out->bosToken = tai_tokenizer_bos(m->tok);
    out->eosToken = tai_tokenizer_eos(m->tok);
    out->addBosToken = tai_tokenizer_add_bos(m->tok);
    out->nFileLayers = m->file->n_layers;
    size_t off = 0;
    for (int b = 0; b < m->n_plans && off < sizeof out->devices; b++) {
        if (b > 0 && !memcmp(m->plans[b], m->plans[b - 1], (size_t)m->file->n_layers)) continue;
        bool split = false;
        for (int k = 1; k < m->n_plans; k++)
            split |= memcmp(m->plans[0], m->plans[k], (size_t)m->file->n_layers) != 0;
        if (split) {
            /* the buckets this plan covers: b .. e */
            int e = b;
            while (e + 1 < m->n_plans &&
                   !memcmp(m->plans[e + 1], m->plans[b], (size_t)m->file->n_layers))
                e++;
            if (e + 1 == m->n_plans)
                off += (size_t)snprintf(out->devices + off, sizeof out->devices - off,
                                        "%s%d+ columns: ", off ? "; " : "", tai_plan_cols[b]);
            else if (e == b && tai_plan_cols[b] == 1)
                off += (size_t)snprintf(out->devices + off, sizeof out->devices - off,
                                        "%s1 column: ", off ? "; " : "");
            else
                off += (size_t)snprintf(out->devices + off, sizeof out->devices - off,
                                        "%s%d-%d columns: ", off ? "; " : "", tai_plan_cols[b],
                                        tai_plan_cols[e + 1] - 1);
        }
        bool first = true;
        for (int d = m->n_devs - 1; d >= 0 && off < sizeof out->devices; d--) {
            int n = 0;
            for (int l = 0; l < m->file->n_layers; l++) n += m->plans[b][l] == d;
            if (n == 0) continue;
            const tai_device_info *in = &m->devs[d]->info;
            if (d == 0)
                off += (size_t)snprintf(out->devices + off, sizeof out->devices - off, "%scpu",
                                        first ? "" : ", ");
            else
                off += (size_t)snprintf(out->devices + off, sizeof out->devices - off,
                                        "%s%s (%s) for %d of %d layers", first ? "" : ", ",
                                        in->name, in->model, n, m->file->n_layers);
            first = false;
        }
    }
    snprintf(out->placementNote, sizeof out->placementNote, "%s", m->placement_note);
    return TINYAI_OK;
}

TinyAIStatus tinyaiGetMemoryInfo(const TinyAIModel *m, TinyAIMemoryInfo *out) {
    if (!m || !out) return tai_error(TINYAI_ERR_INVALID_ARG, "tinyaiGetMemoryInfo: NULL argument");
    memset(out, 0, sizeof *out);
    out->mode = m->planned ? m->mode : TINYAI_EXEC_NORMAL;
    snprintf(out->modeReason, sizeof out->modeReason, "%s", m->mode_reason);
    out->planned = m->planned != 0;
    out->memoryLimit = m->cfg.memoryLimit;
    out->cacheBytes = m->cache_budget;
    out->sessionBytes = m->ws.bytes + m->sessions_bytes;
    out->stagingBytes = tai_mapped_staging_bytes(m->mm);
    out->fixedBytes = m->fixed_bytes;
    out->modelBytes = tai_mapped_total_image_bytes(m->mm);
    out->largestLayerBytes = tai_mapped_largest_image_bytes(m->mm);
    out->minimumBytes = m->min_bytes;
    out->currentBytes = tai_model_current_bytes(m);
    out->peakBytes = m->peak_bytes;
    TinyAIMappedModelStats s;
    if (tinyaiGetMappedModelStats(m->mm, &s)) {
        out->hits = s.hits;
        out->misses = s.misses;
        out->loads = s.loads;
        out->evictions = s.evictions;
        out->prefetches = s.prefetches;
        out->bytesRead = s.bytesRead;
        out->loadSeconds = s.loadSeconds;
        out->ioEngine = s.ioEngine;
        out->ioFallback = s.ioFallback;
        out->cachePolicy = s.policy;
    }
    out->stallSeconds = (double)m->stall_ns * 1e-9;
    out->hugePagesPending = tai_mapped_collapse_pending(m->mm);
    return TINYAI_OK;
}

void tinyaiResetMemoryStats(TinyAIModel *m) {
    if (!m) return;
    tinyaiResetMappedModelStats(m->mm);
    m->stall_ns = 0;
}

/* ---- Tokens ------------------------------------------------------------ */

/* text encoded after BOS (if addBos and the model has one): control
 * tokens matched where parseSpecial, with `lit` (n_lit > 0) outside those
 * spans only (tai_tokenize_spans). */
static TinyAIStatus encode_text(const TinyAIModel *m, const char *text, bool addBos,
                                bool parseSpecial, const tai_text_span *lit, size_t n_lit,
                                int32_t *ids, size_t cap, size_t *nOut) {
    size_t pre = 0;
    int32_t bos = tai_tokenizer_bos(m->tok);
    if (addBos && bos >= 0) {
        if (cap > 0) ids[0] = bos;
        pre = 1;
    }
    int32_t *rest = cap > pre ? ids + pre : NULL;
    const size_t room = cap > pre ? cap - pre : 0;
    size_t n = 0;
    TinyAIStatus st = n_lit ? tai_tokenize_spans(m->tok, text, strlen(text), lit, n_lit, rest, room, &n)
                            : tai_tokenize(m->tok, text, strlen(text), parseSpecial, rest, room, &n);
    *nOut = n + pre;
    if (st == TINYAI_OK && n + pre > cap)
        st = tai_error(TINYAI_ERR_RANGE, "tokenize: %zu tokens do not fit in %zu", n + pre, cap);
    return st;
}

TinyAIStatus tinyaiTokenize(const TinyAIModel *m, const char *text, bool addBos,
                            bool parseSpecial, int32_t *ids, size_t cap, size_t *nOut) {
    if (!m || !text || !nOut || (cap > 0 && !ids))
        return tai_error(TINYAI_ERR_INVALID_ARG, "tinyaiTokenize: NULL argument");
    return encode_text(m, text, addBos, parseSpecial, NULL, 0, ids, cap, nOut);
}

const char *tinyaiTokenPiece(const TinyAIModel *m, int32_t id, size_t *len) {
    if (!m || !len) {
        tai_error(TINYAI_ERR_INVALID_ARG, "tinyaiTokenPiece: NULL argument");
        return NULL;
    }
    const char *p = tai_token_piece(m->tok, id, false, len);
    if (!p) tai_error(TINYAI_ERR_INVALID_ARG, "token id %d out of range", (int)id);
    return p;
}

bool tinyaiTokenIsEndOfGeneration(const TinyAIModel *m, int32_t id) {
    return m && tai_tokenizer_is_eog(m->tok, id);
}

TinyAIStatus tinyaiApplyChatTemplate(const TinyAIModel *m, const TinyAIChatMessage *msgs,
                                     size_t n, bool addAssistant, char **out) {
    if (!m || !out || (n > 0 && !msgs))
        return tai_error(TINYAI_ERR_INVALID_ARG, "tinyaiApplyChatTemplate: NULL argument");
    for (size_t i = 0; i < n; i++)
        if (!msgs[i].role || !msgs[i].content)
            return tai_error(TINYAI_ERR_INVALID_ARG, "chat message %zu has no role or content", i);
    /* TinyAIChatMessage and tai_chat_message have the same layout. */
    _Static_assert(sizeof(TinyAIChatMessage) == sizeof(tai_chat_message), "chat message layout");
    return tai_chat_apply(m->file, m->tok, (const tai_chat_message *)msgs, n, addAssistant, out);
}

TinyAIStatus tinyaiTokenizeChat(const TinyAIModel *m, const TinyAIChatMessage *msgs, size_t n,
                                bool addAssistant, bool addBos, int32_t *ids, size_t cap,
                                size_t *nOut) {
    if (nOut) *nOut = 0;
    if (!m || !nOut || (n > 0 && !msgs) || (cap > 0 && !ids))
        return tai_error(TINYAI_ERR_INVALID_ARG, "tinyaiTokenizeChat: NULL argument");
    for (size_t i = 0; i < n; i++)
        if (!msgs[i].role || !msgs[i].content)
            return tai_error(TINYAI_ERR_INVALID_ARG, "chat message %zu has no role or content", i);
    char *text = NULL;
    tai_text_span *spans = NULL;
    size_t n_spans = 0;
    TinyAIStatus st = tai_chat_apply_spans(m->file, m->tok, (const tai_chat_message *)msgs, n,
                                           addAssistant, &text, &spans, &n_spans);
    if (st != TINYAI_OK) return st;
    /* no spans (empty contents): the text is the template's alone */
    st = encode_text(m, text, addBos, true, spans, n_spans, ids, cap, nOut);
    free(text);
    free(spans);
    return st;
}

/* ---- Sessions ---------------------------------------------------------- */

void tinyaiFreeSession(TinyAISession *s) {
    if (!s) return;
    if (s->model) {
        s->model->n_sessions--;
        s->model->sessions_bytes -= s->bytes;
        tai_session_dev_free(s);
    }
    tai_mem_free(s->k_cache);
    tai_mem_free(s->v_cache);
    tai_mem_free(s->logits);
    free(s);
}

TinyAIStatus tinyaiCreateSession(TinyAIModel *m, int nCtx, TinyAISession **out) {
    if (!out) return tai_error(TINYAI_ERR_INVALID_ARG, "tinyaiCreateSession: out is NULL");
    *out = NULL;
    if (!m) return tai_error(TINYAI_ERR_INVALID_ARG, "tinyaiCreateSession: model is NULL");
    const tai_hparams *hp = &m->hp;
    if (nCtx == 0) nCtx = default_ctx(m);
    if (nCtx < 1 || nCtx > hp->n_ctx_train)
        return tai_error(TINYAI_ERR_INVALID_ARG, "context size must be 1..%d, got %d",
                         hp->n_ctx_train, nCtx);
    TinyAIStatus st;
    if (!m->planned) {
        int ctx = m->cfg.contextSize > nCtx ? m->cfg.contextSize : nCtx;
        if (ctx > hp->n_ctx_train) ctx = hp->n_ctx_train;
        st = tai_model_plan(m, ctx, m->cfg.maxSessions);
        if (st != TINYAI_OK) return st;
    }
    if (m->cfg.memoryLimit > 0) {
        if (nCtx > m->plan_ctx)
            return tai_error(TINYAI_ERR_RANGE,
                             "a session of %d tokens exceeds the memory plan (sessions of at most "
                             "%d tokens; set contextSize)",
                             nCtx, m->plan_ctx);
        if (m->n_sessions >= m->plan_seqs)
            return tai_error(TINYAI_ERR_RANGE,
                             "the memory plan is for %d session(s) and that many exist (set "
                             "maxSessions)",
                             m->plan_seqs);
    } else if (nCtx > m->ws.att_ctx) {
        /* no limit: the workspace grows to the longest context */
        st = tai_workspace_alloc(m, m->ws.n_ubatch, nCtx, m->ws.n_seq);
        if (st != TINYAI_OK) return st;
    }
    TinyAISession *s = calloc(1, sizeof *s);
    if (!s) return tai_error(TINYAI_ERR_NOMEM, "out of memory");
    const size_t kv = tai_kv_cache_bytes(m, nCtx); /* an 8-bit cache's scales included */
    s->n_ctx = nCtx;
    /* a session's memory is TinyAI's KV memory (runtime/mem/memory.h) */
    s->k_cache = tai_mem_alloc(TAI_MEM_KV, kv ? kv : 1, 64, true);
    s->v_cache = tai_mem_alloc(TAI_MEM_KV, kv ? kv : 1, 64, true);
    s->logits = tai_mem_alloc(TAI_MEM_KV, (size_t)hp->n_vocab * sizeof(float), 64, true);
    s->bytes = tai_session_bytes(m, nCtx);
    if (!s->k_cache || !s->v_cache || !s->logits) {
        /* the allocator's message says why (a full static arena, ...) */
        tinyaiFreeSession(s);
        tai_error_prefix("a %d-token session", nCtx);
        return TINYAI_ERR_NOMEM;
    }
    s->model = m;
    m->n_sessions++;
    m->sessions_bytes += s->bytes;
    st = tai_session_dev_alloc(s);
    if (st != TINYAI_OK) {
        tinyaiFreeSession(s);
        return st;
    }
    tai_model_current_bytes(m);
    *out = s;
    return TINYAI_OK;
}

static TinyAIStatus check_tokens(const TinyAISession *s, const int32_t *tokens, size_t n) {
    const int32_t nv = s->model->hp.n_vocab;
    for (size_t i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= nv)
            return tai_error(TINYAI_ERR_INVALID_ARG, "token id %d at %zu outside the vocabulary (0..%d)",
                             (int)tokens[i], i, nv - 1);
    return TINYAI_OK;
}

TinyAIStatus tinyaiEval(TinyAISession *s, const int32_t *tokens, size_t n) {
    if (!s || (n > 0 && !tokens)) return tai_error(TINYAI_ERR_INVALID_ARG, "tinyaiEval: NULL argument");
    if (n == 0) return TINYAI_OK;
    if (n > (size_t)(s->n_ctx - s->pos))
        return tai_error(TINYAI_ERR_RANGE,
                         "%zu tokens do not fit in the context: %d of %d positions used", n,
                         s->pos, s->n_ctx);
    TinyAIStatus st = check_tokens(s, tokens, n);
    if (st != TINYAI_OK) return st;
    TinyAIModel *m = s->model;
    const int ub = m->ws.n_ubatch;
    TinyAISession **seq = malloc((size_t)ub * sizeof *seq);
    int *pos = malloc((size_t)ub * sizeof *pos);
    if (!seq || !pos) {
        free(seq);
        free(pos);
        return tai_error(TINYAI_ERR_NOMEM, "out of memory");
    }
    for (int i = 0; i < ub; i++) seq[i] = s;
    for (size_t done = 0; done < n;) {
        int chunk = (int)(n - done < (size_t)ub ? n - done : (size_t)ub);
        for (int t = 0; t < chunk; t++) pos[t] = s->pos + t;
        /* two tokens or more: a prompt, whatever its chunks */
        tai_batch b = {m, chunk, tokens + done, seq, pos, n >= 2 ? 0 : chunk};
        st = tai_sched_forward(&b);
        if (st != TINYAI_OK) {
            s->have_logits = 0;
            break;
        }
        done += (size_t)chunk;
    }
    free(seq);
    free(pos);
    return st;
}

TinyAIStatus tinyaiEvalBatch(TinyAISession *const *sessions, const int32_t *tokens, size_t n) {
    if (!sessions || (n > 0 && !tokens))
        return tai_error(TINYAI_ERR_INVALID_ARG, "tinyaiEvalBatch: NULL argument");
    if (n == 0) return TINYAI_OK;
    TinyAIModel *m = sessions[0] ? sessions[0]->model : NULL;
    if (!m) return tai_error(TINYAI_ERR_INVALID_ARG, "tinyaiEvalBatch: session 0 is NULL");
    if (n > (size_t)m->ws.n_ubatch || (n > 1 && n > (size_t)m->ws.n_seq))
        return tai_error(TINYAI_ERR_RANGE,
                         "a batch of %zu sessions exceeds the plan (%d; set maxSessions)", n,
                         m->ws.n_seq);
    int *pos = malloc(n * sizeof *pos);
    if (!pos) return tai_error(TINYAI_ERR_NOMEM, "out of memory");
    TinyAIStatus st = TINYAI_OK;
    for (size_t i = 0; i < n && st == TINYAI_OK; i++) {
        const TinyAISession *s = sessions[i];
        if (!s || s->model != m)
            st = tai_error(TINYAI_ERR_INVALID_ARG, "session %zu is NULL or of another model", i);
        else if (s->pos >= s->n_ctx)
            st = tai_error(TINYAI_ERR_RANGE, "session %zu is full (%d tokens)", i, s->n_ctx);
        else
            st = check_tokens(s, tokens + i, 1);
        for (size_t j = 0; j < i && st == TINYAI_OK; j++)
            if (sessions[j] == s)
                st = tai_error(TINYAI_ERR_INVALID_ARG, "session %zu appears twice in the batch", i);
        if (st == TINYAI_OK) pos[i] = s->pos;
    }
    if (st == TINYAI_OK) {
        tai_batch b = {m, (int)n, tokens, sessions, pos, (int)n}; /* a token each: generated */
        st = tai_sched_forward(&b);
        if (st != TINYAI_OK)
            for (size_t i = 0; i < n; i++) sessions[i]->have_logits = 0;
    }
    free(pos);
    return st;
}

/* tinyaiEvalStep and tinyaiEvalStepAll (all: NULL, or per session whether
 * it wants the logits of each of its tokens); fn names the caller. */
static TinyAIStatus eval_step(TinyAISession *const *sessions, const int32_t *const *tokens,
                              const size_t *counts, const int *all, size_t n, const char *fn) {
    if (!sessions || !tokens || !counts)
        return tai_error(TINYAI_ERR_INVALID_ARG, "%s: NULL argument", fn);
    if (n == 0) return TINYAI_OK;
    TinyAIModel *m = sessions[0] ? sessions[0]->model : NULL;
    if (!m) return tai_error(TINYAI_ERR_INVALID_ARG, "%s: session 0 is NULL", fn);
    size_t total = 0, rows = 0;
    TinyAIStatus st = TINYAI_OK;
    for (size_t i = 0; i < n && st == TINYAI_OK; i++) {
        const TinyAISession *s = sessions[i];
        if (!s || s->model != m)
            st = tai_error(TINYAI_ERR_INVALID_ARG, "session %zu is NULL or of another model", i);
        else if (counts[i] == 0 || !tokens[i])
            st = tai_error(TINYAI_ERR_INVALID_ARG, "session %zu has no tokens", i);
        else if (counts[i] > (size_t)(s->n_ctx - s->pos))
            st = tai_error(TINYAI_ERR_RANGE,
                           "session %zu: %zu tokens do not fit in the context: %d of %d "
                           "positions used",
                           i, counts[i], s->pos, s->n_ctx);
        else
            st = check_tokens(s, tokens[i], counts[i]);
        for (size_t j = 0; j < i && st == TINYAI_OK; j++)
            if (sessions[j] == s)
                st = tai_error(TINYAI_ERR_INVALID_ARG, "session %zu appears twice in the step", i);
        total += counts[i];
        rows += all && all[i] ? counts[i] : 1;
    }
    if (st != TINYAI_OK) return st;
    /* the workspace holds n_ubatch columns and a row of logits per planned
     * session: one per session, or one per token of a session that asks
     * for them all (so rows >= n) */
    if (total > (size_t)m->ws.n_ubatch || rows > (size_t)m->ws.n_seq)
        return tai_error(TINYAI_ERR_RANGE,
                         "%s: a step of %zu tokens of %zu sessions, %zu rows of logits, exceeds "
                         "the plan (%d tokens, %d sessions; see tinyaiStepCapacity)",
                         fn, total, n, rows, m->ws.n_ubatch, m->ws.n_seq);
    int32_t *tok = malloc(total * sizeof *tok);
    int *pos = malloc(total * sizeof *pos);
    TinyAISession **seq = malloc(total * sizeof *seq);
    if (!tok || !pos || !seq) st = tai_error(TINYAI_ERR_NOMEM, "out of memory");
    /* the sessions that bring one token (a generated one) first, those that
     * bring more (a prompt's) after them, each group in the caller's order:
     * the prompts' columns go through the prompt products (tai_batch) */
    size_t t = 0, ones = 0;
    for (int pass = 0; pass < 2 && st == TINYAI_OK; pass++)
        for (size_t i = 0; i < n; i++) {
            if ((counts[i] == 1) != (pass == 0)) continue;
            for (size_t k = 0; k < counts[i]; k++, t++) {
                tok[t] = tokens[i][k];
                pos[t] = sessions[i]->pos + (int)k;
                seq[t] = sessions[i];
            }
            if (pass == 0) ones++;
        }
    if (st == TINYAI_OK) {
        for (size_t i = 0; i < n; i++) sessions[i]->want_all = all && all[i];
        tai_batch b = {m, (int)total, tok, seq, pos, (int)ones};
        st = tai_sched_forward(&b);
        for (size_t i = 0; i < n; i++) {
            TinyAISession *s = sessions[i];
            if (st != TINYAI_OK) s->have_logits = 0;
            s->all_step = st == TINYAI_OK && s->want_all ? m->steps : 0;
            s->want_all = 0;
        }
    }
    free(tok);
    free(pos);
    free(seq);
    return st;
}

TinyAIStatus tinyaiEvalStep(TinyAISession *const *sessions, const int32_t *const *tokens,
                            const size_t *counts, size_t n) {
    return eval_step(sessions, tokens, counts, NULL, n, "tinyaiEvalStep");
}

TinyAIStatus tinyaiEvalStepAll(TinyAISession *const *sessions, const int32_t *const *tokens,
                               const size_t *counts, const int *all, size_t n) {
    return eval_step(sessions, tokens, counts, all, n, "tinyaiEvalStepAll");
}

const float *tinyaiGetStepLogits(const TinyAISession *s, int k) {
    if (!s || !s->all_step || s->all_step != s->model->steps || k < 0 || k >= s->all_n) return NULL;
    if (s->all_row < 0) return s->logits;
    return s->model->ws.batch_logits + ((int64_t)s->all_row + k) * s->model->hp.n_vocab;
}

TinyAIStatus tinyaiStepCapacity(const TinyAIModel *m, int *tokens, int *sessions) {
    if (!m || !tokens || !sessions)
        return tai_error(TINYAI_ERR_INVALID_ARG, "tinyaiStepCapacity: NULL argument");
    if (!m->planned)
        return tai_error(TINYAI_ERR_INVALID_ARG,
                         "tinyaiStepCapacity: no session yet (the first one makes the plan)");
    *tokens = m->ws.n_ubatch;
    *sessions = m->ws.n_seq;
    return TINYAI_OK;
}

const float *tinyaiGetLogits(const TinyAISession *s) {
    return s && s->have_logits ? s->logits : NULL;
}

int tinyaiSessionPosition(const TinyAISession *s) { return s ? s->pos : 0; }
int tinyaiSessionContextSize(const TinyAISession *s) { return s ? s->n_ctx : 0; }
uint64_t tinyaiSessionMemoryBytes(const TinyAISession *s) { return s ? s->bytes : 0; }

void tinyaiResetSession(TinyAISession *s) {
    if (!s) return;
    s->pos = 0;
    s->have_logits = 0;
}

TinyAIStatus tinyaiSessionRewind(TinyAISession *s, int position) {
    if (!s) return tai_error(TINYAI_ERR_INVALID_ARG, "tinyaiSessionRewind: NULL session");
    if (position < 0 || position > s->pos)
        return tai_error(TINYAI_ERR_RANGE, "tinyaiSessionRewind: position %d outside 0..%d",
                         position, s->pos);
    /* the KV caches keep positions [0, position): every device's copy is
     * overwritten from there as the next tokens are stored (store_kv) */
    s->pos = position;
    s->have_logits = 0;
    return TINYAI_OK;
}

/* The first n positions' rows (row bytes each) of every layer, from the
 * region of a source cache that starts soff bytes in to the destination's
 * that starts doff bytes in. */
static void copy_rows(const TinyAIModel *m, void *dst, int dst_ctx, size_t doff, const void *src,
                      int src_ctx, size_t soff, int n, size_t row) {
    for (int l = 0; l < m->hp.n_layer; l++)
        memcpy((char *)dst + doff + (size_t)l * (size_t)dst_ctx * row,
               (const char *)src + soff + (size_t)l * (size_t)src_ctx * row, (size_t)n * row);
}

TinyAIStatus tinyaiSessionCopyPrefix(TinyAISession *dst, const TinyAISession *src, int n) {
    if (!dst || !src) return tai_error(TINYAI_ERR_INVALID_ARG, "tinyaiSessionCopyPrefix: NULL session");
    if (dst->model != src->model)
        return tai_error(TINYAI_ERR_INVALID_ARG,
                         "tinyaiSessionCopyPrefix: the sessions belong to different models");
    if (n < 0 || n > src->pos || n > dst->n_ctx)
        return tai_error(TINYAI_ERR_RANGE,
                         "tinyaiSessionCopyPrefix: %d tokens outside 0..%d (held by the source) "
                         "or past the destination's context of %d",
                         n, src->pos, dst->n_ctx);
    const TinyAIModel *m = dst->model;
    const size_t kvd = (size_t)m->hp.n_head_kv * (size_t)m->hp.head_dim;
    if (dst != src && n > 0) {
        const size_t vrow = kvd * tai_kv_elem(m), srow = kvd / 32 * sizeof(float);
        const size_t ds = tai_kv_scale_offset(m, dst->n_ctx), ss = tai_kv_scale_offset(m, src->n_ctx);
        copy_rows(m, dst->k_cache, dst->n_ctx, 0, src->k_cache, src->n_ctx, 0, n, vrow);
        copy_rows(m, dst->v_cache, dst->n_ctx, 0, src->v_cache, src->n_ctx, 0, n, vrow);
        if (m->cfg.kvCacheType == TINYAI_KV_Q8_0) { /* an 8-bit cache's scales */
            copy_rows(m, dst->k_cache, dst->n_ctx, ds, src->k_cache, src->n_ctx, ss, n, srow);
            copy_rows(m, dst->v_cache, dst->n_ctx, ds, src->v_cache, src->n_ctx, ss, n, srow);
        }
    }
    /* the host's copy is whole; other devices' copies are made again from
     * it when a layer placed there needs them */
    if (dst != src)
        for (int d = 1; d < TAI_MAX_DEVICES; d++)
            if (dst->dev_valid[d])
                for (int l = 0; l < m->hp.n_layer; l++) dst->dev_valid[d][l] = 0;
    dst->pos = n;
    dst->have_logits = 0;
    return TINYAI_OK;
}

/* ---- Layer table, conversion, synthetic models ------------------------- */

const char *tinyaiCpuVariants(void) { return tai_cpu_variants(); }

TinyAIStatus tinyaiGetCpuInfo(TinyAICpuInfo *out) {
    if (!out) return tai_error(TINYAI_ERR_INVALID_ARG, "tinyaiGetCpuInfo: out is NULL");
    memset(out, 0, sizeof *out);
    snprintf(out->model, sizeof out->model, "%s", tai_cpu_name());
    snprintf(out->features, sizeof out->features, "%s", tai_cpu_feature_list());
    snprintf(out->variants, sizeof out->variants, "%s", tinyaiCpuVariants());
    out->chosen = tai_cpu_best_variant();
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    out->onlineCores = n < 1 ? 1 : (int)n;
    snprintf(out->signature, sizeof out->signature, "%s", tai_cpu_id());
    return TINYAI_OK;
}

TinyAIStatus tinyaiGetModelLayerInfo(const TinyAIModel *m, int index, TinyAILayerInfo *out) {
    if (!m || !out) return tai_error(TINYAI_ERR_INVALID_ARG, "tinyaiGetModelLayerInfo: NULL argument");
    if (index < 0 || index >= m->file->n_layers)
        return tai_error(TINYAI_ERR_INVALID_ARG, "layer %d out of range (0..%d)", index,
                         m->file->n_layers - 1);
    const tai_layer_entry *e = &m->file->layers[index];
    out->index = e->index;
    out->offset = e->offset;
    out->size = e->size;
    out->precision = e->precision;
    out->nTensors = e->n_tensors;
    out->checksum = e->checksum;
    return TINYAI_OK;
}

TinyAIStatus tinyaiConvertModel(const char *inPath, const char *outPath) {
    if (!inPath || !outPath || !*inPath || !*outPath)
        return tai_error(TINYAI_ERR_INVALID_ARG, "tinyaiConvertModel: missing path");
    /* Load it as a model first, so that only files TinyAI can run are
     * converted and every problem is reported against the input. */
    TinyAIModelConfig cfg = tinyaiCreateDefaultModelConfig();
    cfg.threads = 1;
    /* a limit defers the memory plan: no layer is read into a cache, the
     * writer reads the file itself */
    cfg.memoryLimit = 1;
    TinyAIModel *m = NULL;
    TinyAIStatus st = tinyaiLoadModel(inPath, &cfg, &m);
    if (st != TINYAI_OK) return st;
    for (int l = 0; st == TINYAI_OK && l < m->file->n_layers; l++)
        st = tai_model_file_verify_layer(m->file, l);
    if (st == TINYAI_OK) st = tai_tmai_write(m->file, outPath);
    tinyaiFreeModel(m);
    return st;
}
