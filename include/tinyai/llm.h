/*
 * TinyAI public API: loading a Llama-family model, tokenizing, evaluating
 * tokens against a KV cache and sampling.
 *
 * Objects:
 *   TinyAIModel    the weights (read layer by layer from a .gguf or .tmai
 *                  file into a weight cache: all of them, or as many as a
 *                  memory limit allows), tokenizer, hyperparameters and a
 *                  CPU thread pool.
 *   TinyAISession  one sequence: its KV cache, position and logits. Uses its
 *                  model's thread pool, so sessions of one model must not
 *                  evaluate at the same time from several threads.
 *   TinyAISampler  turns logits into a token id (greedy, temperature, top-k,
 *                  top-p, repetition penalty), deterministic from its seed.
 *
 * Errors: functions return TinyAIStatus (or NULL/false where noted) and
 * tinyaiLastErrorMessage() explains the failure in one line.
 */
#ifndef TINYAI_LLM_H
#define TINYAI_LLM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <tinyai/status.h>
#include <tinyai/utils/forward_scheduler.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct TinyAIModel TinyAIModel;
typedef struct TinyAISession TinyAISession;
typedef struct TinyAISampler TinyAISampler;

/* ---- Model ---------------------------------------------------------------- */

/* What a session's KV cache holds per value. F16 halves the cache (twice
 * the context or the sessions in the same memory, half the bytes attention
 * reads per token) at a relative rounding of at most 2^-11 per value; the
 * logits move by about 1e-3 relative against F32. The CPU kernels read it:
 * a model with an F16 cache runs on the CPU (device "auto" means the CPU;
 * any other named device is refused). */
typedef enum {
    TINYAI_KV_F32 = 0, /* the default: exact */
    TINYAI_KV_F16 = 1, /* IEEE binary16, rounded to nearest even */
    /* 8-bit: per 32 values of a head, a float scale (max |x| / 127) and
     * codes x * (1 / scale) rounded to the nearest, ties to even (the
     * activations' quantizer; llama.cpp's q8_0 cache also multiplies by
     * 1 / scale); 36 bytes a 32 (0.28x the F32 cache, 0.56x the F16
     * one). Models whose heads are a multiple of 32 values (others are refused);
     * the CPU kernels read it, as the F16 cache. */
    TINYAI_KV_Q8_0 = 2,
} TinyAIKVCacheType;

typedef struct {
    int threads;          /* CPU threads for the matrix products; 0 = one per
                             online core. 1..256. */
    const char *cpu;      /* kernel variant: NULL or "auto" = best the CPU has,
                             or "scalar", "avx2", "avx512" to force one (an
                             unsupported one is an error). */
    bool verifyChecksums; /* .tmai: verify every layer's checksum on every
                             load (each layer is verified on its first load
                             anyway). */
    /* Memory. With memoryLimit 0 every layer is read at load and stays
     * resident. With a limit, the weight cache, the sessions (KV cache,
     * activations) and scratch stay under it; the split is planned when the
     * first session is created, for maxSessions sessions of that session's
     * context size (or contextSize if larger), and creating it fails with the
     * minimum in the message if the model cannot run in the limit. */
    size_t memoryLimit;          /* bytes; 0 = no limit */
    TinyAIExecutionMode mode;    /* default TINYAI_EXEC_ADAPTIVE */
    TinyAIIOEngine ioEngine;     /* default TINYAI_IO_AUTO: io_uring, but for a
                                    model read whole at load (no limit) from a
                                    file the page cache holds: mmap */
    TinyAICachePolicy cachePolicy; /* default TINYAI_CACHE_BELADY */
    TinyAINumaPolicy numaPolicy; /* default TINYAI_NUMA_LOCAL */
    int prefetchWindow;          /* layers read ahead, 1..64 (default 1); -1:
                                    none, layers are read only when the
                                    forward pass needs them (reads that do
                                    not depend on timing, for measuring) */
    int maxSessions;             /* sessions planned within the limit, 1..1024
                                    (default 1) */
    int contextSize;             /* tokens per session planned for; 0 = the
                                    first session's */
    /* Where the layers run: NULL or "auto" (per layer and per batch size,
     * the device the cost model picks among the CPU and the OpenCL devices,
     * from the calibrations kept in cacheDir, measured there the first
     * time; without a cacheDir, the CPU), "cpu", "opencl" (OpenCL device 0)
     * or "opencl:N". With a device other than the CPU, every transformer
     * block and the head run on it (the embedding lookup stays on the CPU),
     * its weights uploaded on first use and kept in its memory; a device
     * whose memory cannot hold them (and the KV caches of maxSessions
     * sessions of contextSize tokens) fails the load with
     * TINYAI_ERR_NOMEM. A name that is no device here is
     * TINYAI_ERR_INVALID_ARG. Not kept after loading. */
    const char *device;
    /* A folder for what is measured or built once per machine and kept
     * (OpenCL program binaries, devices.json: the devices' calibrations);
     * NULL: nothing kept. Not kept after loading. */
    const char *cacheDir;
    TinyAIKVCacheType kvCacheType; /* default TINYAI_KV_F32 */
    /* Without a memory limit every layer is read at load. false (default):
     * tinyaiLoadModel returns once all are in (a failed read fails it).
     * true: it returns once the reads have started, and a forward pass
     * meanwhile runs each layer as soon as its weights are in, so the first
     * token comes while the rest is still read; a read that fails then
     * fails that pass (the next pass reads the layer again), and
     * tinyaiWaitModelLoaded waits for the whole load and gives its
     * outcome. Ignored under a limit (layers are read as passes need
     * them). */
    bool loadInBackground;
    /* A prompt's products (the tokens of a session that brings two or more
     * to an evaluation) in bfloat16 on AMX-BF16 tiles, where the CPU has
     * them and the weights are Q4_0, Q4_1 or Q8_0: 1.5-2x the default
     * products' speed on prompts of a hundred tokens or more, results
     * within ~1% of them. A generated token (one a session) is computed as
     * by default, so a request's text still does not depend on what shares
     * its steps; but a prompt no longer equals its tokens evaluated one by
     * one, and other devices and plugins compute prompts the default way.
     * false (default): every product the default way. */
    bool bf16Prompts;
} TinyAIModelConfig;

TinyAIModelConfig tinyaiCreateDefaultModelConfig(void);

/* Waits until a load started with TinyAIModelConfig.loadInBackground has
 * read every layer: TINYAI_OK, or the failure of the first layer that
 * could not be read (its message in tinyaiLastErrorMessage). At once for a
 * model loaded otherwise. */
TinyAIStatus tinyaiWaitModelLoaded(TinyAIModel *model);

/* The CPU kernel variants this machine supports, best last, space separated
 * ("scalar avx2 avx512"). Static text. */
const char *tinyaiCpuVariants(void);

/* What TinyAI sees of this CPU and which kernel variant it uses. */
typedef struct {
    char model[64];      /* CPU name ("" if the CPU does not say) */
    char features[160];  /* features the kernels use: "avx2 fma f16c avx512f ..." */
    char variants[64];   /* supported kernel variants, as tinyaiCpuVariants */
    const char *chosen;  /* the variant a model uses by default */
    int onlineCores;
    char signature[64];  /* "GenuineIntel-6-143-8": vendor, family, model,
                            stepping, which tell generations apart where the
                            name does not ("Intel(R) Xeon(R) Processor") */
} TinyAICpuInfo;

TinyAIStatus tinyaiGetCpuInfo(TinyAICpuInfo *out);

/* ---- Kernel tuning (per machine) -----------------------------------------
 *
 * How far ahead the streaming kernels prefetch depends on the CPU
 * generation: none is best on some cores, two levels of it are worth up to
 * a third more speed on others. The tuning is process-wide (it belongs to
 * the machine, not to a model), never changes a result, and starts at the
 * CPU's default; a tuning run measures the best setting for this machine
 * once, and a file keeps it (`tinyai` keeps it in its cache folder, one file
 * per CPU signature, and runs the measurement the first time it meets a
 * CPU). */
typedef struct {
    int prefetchL1Bytes; /* bytes ahead prefetched into L1: 0 (none) or a
                            multiple of 64 up to 65536 */
    int prefetchL2Bytes; /* likewise into L2 */
} TinyAIKernelTuning;

TinyAIKernelTuning tinyaiGetKernelTuning(void);
/* TINYAI_ERR_INVALID_ARG (nothing changed) for values out of range. */
TinyAIStatus tinyaiSetKernelTuning(const TinyAIKernelTuning *tuning);
/* Measures the best setting for this machine's kernel variant (a few
 * seconds, about 1 GiB of memory; run it when nothing else runs): *out gets
 * it and *gain (may be NULL) its speed-up over no software prefetch. Does
 * not apply it. */
TinyAIStatus tinyaiTuneKernels(TinyAIKernelTuning *out, double *gain);
/* A tuning file, a few lines of text naming the CPU signature and kernel
 * variant it was measured on. Saving writes a temporary file and renames it
 * over `path`. Loading fails with TINYAI_ERR_IO (no file),
 * TINYAI_ERR_FORMAT (malformed, out-of-range values, naming the line) or
 * TINYAI_ERR_UNSUPPORTED (measured on another CPU or variant). */
TinyAIStatus tinyaiSaveKernelTuning(const char *path, const TinyAIKernelTuning *tuning);
TinyAIStatus tinyaiLoadKernelTuning(const char *path, TinyAIKernelTuning *out);

/* Loads a model (GGUF v2/v3 or .tmai, detected from the file's magic).
 * Validates the file, the architecture (llama, qwen2, qwen3, gemma3) and every tensor's shape.
 * On success *out owns the model: free it with tinyaiFreeModel. */
TinyAIStatus tinyaiLoadModel(const char *path, const TinyAIModelConfig *config,
                             TinyAIModel **out);
void tinyaiFreeModel(TinyAIModel *model); /* accepts NULL */

typedef struct {
    char architecture[32];
    char name[128];
    int nVocab;
    int nCtxTrain;   /* context length the model was trained for */
    int nEmbd;
    int nFF;
    int nHead;
    int nHeadKV;
    int nLayer;      /* transformer blocks */
    int headDim;
    float ropeFreqBase;
    float rmsEps;
    bool tiedOutput; /* output head shares the token embedding */
    uint64_t weightBytes; /* bytes of all tensor data */
    uint64_t nParams;
    const char *isa; /* kernel variant in use: "scalar", "avx2", "avx512" */
    int threads;
    char fileFormat[8];     /* "gguf" or "tmai" */
    char tokenizerModel[16];/* "gpt2" (byte-level BPE) or "llama" (SentencePiece) */
    int32_t bosToken;       /* -1 if none */
    int32_t eosToken;       /* -1 if none */
    bool addBosToken;       /* whether prompts should start with BOS */
    int nFileLayers;        /* layer table entries: embedding, blocks, head */
    uint64_t packedBytes;   /* bytes of all layer images (the weights as the
                               kernels read them: matrices packed) */
    double repackSeconds;   /* time the load spent reading, verifying and
                               repacking resident layers (0 when the layers
                               are loaded on demand) */
    char devices[320];      /* where the layers run: "cpu", or "opencl:0
                               (<its name>) for 31 of 32 layers, cpu", per
                               batch size where that differs ("1 column:
                               cpu; 16+ columns: opencl:0 ...") */
    char placementNote[320];/* "" or what happened to a bad calibration file
                               (it was measured again) */
    char weightType[8];     /* the type most of the blocks' weight bytes
                               have ("Q4_0", "F16", ...): the model's
                               quantization as a listing names it */
    int slidingWindow;      /* > 0: positions the sliding-window blocks attend
                               (Gemma 3); 0: every block attends to all */
    int slidingBlocks;      /* how many of the nLayer blocks slide */
    float slidingRopeFreqBase; /* their RoPE base */
    char kvCacheType[8];    /* "f32", "f16" or "q8_0" (TinyAIModelConfig.kvCacheType) */
    bool bf16Prompts;       /* TinyAIModelConfig.bf16Prompts */
} TinyAIModelInfo;

/* ---- Devices --------------------------------------------------------------
 *
 * What the layers can run on: the CPU (index 0, "cpu"), every OpenCL
 * device the ICD loader reports ("opencl:0", ...), then the devices of the
 * loaded plugins ("NAME:0", ...). Listing opens no OpenCL device (a
 * plugin's is opened to be described). */
/* Loads a device plugin (a shared object implementing <tinyai/plugin.h>)
 * for the rest of the process, with its options ("key=value;..." or NULL,
 * passed to it as given). Its devices follow the OpenCL ones in the device
 * list, named "NAME:N" after the plugin's name; models load on them with
 * TinyAIModelConfig.device "NAME:N" (or "plugin:NAME[:N]"), and auto
 * placement considers them. Errors: TINYAI_ERR_IO (missing, unreadable,
 * not a shared object), TINYAI_ERR_FORMAT (not a TinyAI plugin, or tables
 * it returned that cannot be right), TINYAI_ERR_UNSUPPORTED (another ABI
 * major version), TINYAI_ERR_INVALID_ARG (bad options, or a plugin of the
 * same name is loaded); the message names the file. Not thread-safe. */
TinyAIStatus tinyaiLoadPlugin(const char *path, const char *options);
/* Unloads every plugin none of whose devices is in use by a model. */
void tinyaiUnloadPlugins(void);

/* A loaded plugin, for listings (strings valid while it is loaded). */
typedef struct {
    const char *name;     /* what its devices are named after */
    const char *path;
    int abiMajor, abiMinor; /* the <tinyai/plugin.h> it was built against */
    int devices;
    const char *lastLog;  /* the last line it logged ("" if none): why it
                             has no devices, for instance */
} TinyAIPluginInfo;

int tinyaiPluginCount(void);
TinyAIStatus tinyaiGetPluginInfo(int index, TinyAIPluginInfo *out);

typedef struct {
    char name[64];     /* "cpu", "opencl:0", "NAME:0" (a plugin's): what
                          TinyAIModelConfig.device takes */
    char model[128];   /* the hardware as it names itself */
    char vendor[64];
    char version[96];  /* driver / platform */
    int kind;          /* 0 CPU, 1 GPU, 2 accelerator, 3 other */
    uint64_t memoryBytes;
} TinyAIDeviceInfo;

/* A device's calibration: what the cost model of --device auto knows of
 * it (measured once, kept in cacheDir/devices.json). Weight types in the
 * order F32, F16, Q8_0, Q4_0, Q4_1. */
typedef struct {
    double matvecGBs[5];    /* batch 1: GB/s of packed weights */
    double matmulGFlops[5]; /* 64 columns */
    double matmulBigGFlops[5]; /* 512 columns */
    double opMicros;        /* one op */
    double matmulOpMicros;  /* the fixed cost of one matrix product */
    double syncMicros;      /* one synchronisation */
    double elementwiseGBs;
    double hostToDeviceGBs, deviceToHostGBs; /* 0 for the CPU */
    double transferMicros;
    uint64_t memoryBytes;   /* for weights; 0: the host's */
    double otherLoadCores;  /* cores other work kept busy while it was measured
                               (-1: not recorded) */
    int measuredUnderLoad;  /* 1: enough that these figures are low (more than
                               0.3 + 0.1 x the online CPUs); measure again on a
                               quiet machine */
} TinyAIDeviceCalibration;

/* Measures device `index` (the CPU with `threads` threads, 0 = all cores)
 * and saves it in cacheDir/devices.json (which also records this machine's
 * OpenCL devices, so that auto need not enumerate them again). A second or
 * a few per device. */
TinyAIStatus tinyaiCalibrateDevice(const char *cacheDir, int index, int threads,
                                   TinyAIDeviceCalibration *out);

/* The calibration of device `index` saved in cacheDir/devices.json (the
 * CPU's at `threads` threads, 0 = all cores): TINYAI_ERR_IO if it has none
 * (or there is no file), TINYAI_ERR_FORMAT if the file is corrupt. */
TinyAIStatus tinyaiGetDeviceCalibration(const char *cacheDir, int index, int threads,
                                        TinyAIDeviceCalibration *out);

int tinyaiDeviceCount(void);
/* TINYAI_ERR_RANGE for an index outside 0..tinyaiDeviceCount()-1. */
TinyAIStatus tinyaiGetDeviceInfo(int index, TinyAIDeviceInfo *out);

/* Where file layer `layer` (0 = embedding, 1..nLayer = blocks, nLayer + 1 =
 * head) runs when decoding (batches of one column): the device's name
 * ("cpu", "opencl:0"), static for the model's life; NULL for a layer out of
 * range. */
const char *tinyaiLayerDevice(const TinyAIModel *model, int layer);

/* The placement of a layer for passes of `columns` columns (the bucket
 * holding that batch size: 1, 2, 4 .. 256, 512 and up): its device, the cost
 * model's prediction (0 where the device was named and the model's
 * cacheDir holds no calibration of it) and the mean measured time of the
 * layer in the passes of that bucket since load or the last
 * tinyaiResetLayerTimes (0 before any), seconds, weights and transfers
 * included. */
typedef struct {
    const char *device;
    int bucketColumns;  /* the smallest batch of the bucket */
    double predictedSeconds;
    double measuredSeconds;
    int passes;         /* passes measured */
} TinyAILayerPlacement;

TinyAIStatus tinyaiGetLayerPlacement(const TinyAIModel *model, int columns, int layer,
                                     TinyAILayerPlacement *out);
/* Forgets the layers' measured times (after a warm-up, say). */
void tinyaiResetLayerTimes(TinyAIModel *model);

TinyAIStatus tinyaiGetModelInfo(const TinyAIModel *model, TinyAIModelInfo *out);

/* Where the memory goes and what the weight cache did (since load or the
 * last tinyaiResetMemoryStats). */
typedef struct {
    TinyAIExecutionMode mode;  /* the mode running (ADAPTIVE resolved);
                                  NORMAL before planning without a limit */
    char modeReason[320];      /* why (ADAPTIVE), or "" */
    bool planned;              /* the memory plan is made */
    size_t memoryLimit;        /* 0 = none */
    size_t cacheBytes;         /* weight cache budget */
    size_t sessionBytes;       /* KV caches + activations + scratch planned */
    size_t stagingBytes;       /* read buffers for repacking (GGUF, .tmai v1) */
    size_t fixedBytes;         /* the model's tables (tokenizer, metadata,
                                  tensor table); counted in the limit */
    size_t modelBytes;         /* all layer images */
    size_t largestLayerBytes;
    size_t minimumBytes;       /* the least limit the planned sessions run in */
    size_t currentBytes;       /* tracked now: cache + sessions + staging +
                                  fixed */
    size_t peakBytes;          /* tracked peak */
    uint64_t hits, misses, loads, evictions, prefetches;
    uint64_t bytesRead;        /* bytes read from storage */
    double stallSeconds;       /* time the forward pass waited for layers */
    double loadSeconds;        /* time the loaders spent reading layers */
    const char *ioEngine;      /* "uring", "pread", "mmap" */
    const char *ioFallback;    /* why not io_uring, or NULL */
    const char *cachePolicy;   /* "belady", "lru" */
    bool hugePagesPending;     /* without a limit: the weights, loaded in
                                  base pages (a start that takes the same
                                  time on every machine), are still being
                                  moved into huge pages in the background;
                                  decoding is slower until this is false */
} TinyAIMemoryInfo;

TinyAIStatus tinyaiGetMemoryInfo(const TinyAIModel *model, TinyAIMemoryInfo *out);
void tinyaiResetMemoryStats(TinyAIModel *model);

/* One entry of the model file's layer table (the unit of loading and
 * scheduling: 0 = token embedding, 1..nLayer = blocks, nLayer + 1 = final
 * norm and output head). */
typedef struct {
    int index;
    uint64_t offset;    /* byte offset of the layer's weights in the file */
    uint64_t size;      /* bytes */
    int precision;      /* bits per weight of its main tensor */
    int nTensors;
    uint64_t checksum;  /* XXH64 (.tmai), 0 for GGUF */
} TinyAILayerInfo;

TinyAIStatus tinyaiGetModelLayerInfo(const TinyAIModel *model, int index,
                                     TinyAILayerInfo *out);

/* ---- Model files ----------------------------------------------------------- */

/* Converts a GGUF (or .tmai) model to TinyAI's native .tmai format
 * (docs/FORMAT.md). The output appears atomically: on failure no partial
 * file is left at outPath. */
TinyAIStatus tinyaiConvertModel(const char *inPath, const char *outPath);

/* Shape and types of a synthetic random-weight model. */
typedef struct {
    int nVocab, nEmbd, nFF, nHead, nHeadKV, nLayer, nCtx;
    float ropeFreqBase, rmsEps;
    const char *weightType;    /* "F32", "F16", "Q8_0", "Q4_0", "Q4_1", "Q4_K", ... */
    const char *embeddingType; /* type of token_embd (same names) */
    bool tiedOutput;           /* no output.weight: the head uses token_embd */
    uint64_t seed;
    const char *architecture;  /* "llama" (NULL too), "qwen2", "qwen3", "gemma3" */
    int headDim;               /* 0: nEmbd / nHead */
    int slidingWindow;         /* gemma3: positions its sliding-window blocks attend */
    float logitSoftcap;        /* gemma3: > 0 caps the final logits at +-c (c tanh(l / c)) */
} TinyAISynthConfig;

TinyAISynthConfig tinyaiCreateDefaultSynthConfig(void);

/* Writes a random-weight Llama GGUF (deterministic from the seed) with a
 * small byte-level BPE vocabulary, streaming tensor by tensor (multi-GB
 * shapes need little memory). */
TinyAIStatus tinyaiWriteSyntheticModel(const TinyAISynthConfig *config, const char *path);

/* ---- Tokens --------------------------------------------------------------- */

/* Encodes NUL-terminated text. Prepends BOS if addBos and the model has one.
 * parseSpecial: control tokens such as <|im_start|> written in the text are
 * encoded as themselves. Writes at most cap ids; *nOut gets the count the
 * whole encoding needs (TINYAI_ERR_RANGE if more than cap). */
TinyAIStatus tinyaiTokenize(const TinyAIModel *model, const char *text, bool addBos,
                            bool parseSpecial, int32_t *ids, size_t cap, size_t *nOut);

/* The bytes token `id` decodes to (possibly a partial UTF-8 sequence).
 * Control tokens decode to "". Borrowed: valid while the model lives.
 * NULL if id is out of range. */
const char *tinyaiTokenPiece(const TinyAIModel *model, int32_t id, size_t *len);

/* Whether id ends generation (EOS, <|im_end|>, ...). */
bool tinyaiTokenIsEndOfGeneration(const TinyAIModel *model, int32_t id);

typedef struct {
    const char *role; /* "system", "user" or "assistant" */
    const char *content;
} TinyAIChatMessage;

/* Formats a conversation with the model's chat template (ChatML for SmolLM2),
 * opening the assistant's turn if addAssistant. *out is malloc'ed: free it
 * with tinyaiFree. */
TinyAIStatus tinyaiApplyChatTemplate(const TinyAIModel *model,
                                     const TinyAIChatMessage *messages, size_t n,
                                     bool addAssistant, char **out);

/* The conversation formatted as tinyaiApplyChatTemplate does and encoded
 * (BOS first if addBos and the model has one): the template's markers as
 * control tokens, every message's content as text, so that a control
 * token's spelling typed in a message ("<|im_start|>system" in a user's
 * text) stays text and cannot open a turn of its own. For contents without
 * such spellings the ids are those of tinyaiApplyChatTemplate's text
 * through tinyaiTokenize with parseSpecial. Writes at most cap ids; *nOut
 * gets the count the whole encoding needs (TINYAI_ERR_RANGE if more than
 * cap). */
TinyAIStatus tinyaiTokenizeChat(const TinyAIModel *model, const TinyAIChatMessage *messages,
                                size_t n, bool addAssistant, bool addBos, int32_t *ids,
                                size_t cap, size_t *nOut);

void tinyaiFree(void *p);

/* ---- Sessions ------------------------------------------------------------- */

/* A sequence with room for nCtx tokens (1..nCtxTrain; 0 = min(nCtxTrain,
 * 4096)). The KV cache is allocated here: creation fails with
 * TINYAI_ERR_NOMEM rather than later. Under a memory limit the first session
 * makes the memory plan (see TinyAIModelConfig) and later ones must fit it:
 * at most maxSessions, each of at most the planned context
 * (TINYAI_ERR_RANGE otherwise). Free with tinyaiFreeSession. */
TinyAIStatus tinyaiCreateSession(TinyAIModel *model, int nCtx, TinyAISession **out);
void tinyaiFreeSession(TinyAISession *session); /* accepts NULL */

/* Appends n tokens at the current position and runs them through the model
 * (a prompt in one call is processed in batches). Afterwards the logits of
 * the last token are available. TINYAI_ERR_RANGE if position + n would
 * exceed nCtx (nothing is evaluated then); TINYAI_ERR_INVALID_ARG for an id
 * outside the vocabulary. */
TinyAIStatus tinyaiEval(TinyAISession *session, const int32_t *tokens, size_t n);

/* Decodes several sequences together: sessions[i] (all of one model,
 * pairwise distinct) gets tokens[i] appended, and every layer is read and
 * applied once for all n of them, so under a memory limit the weights
 * streamed per step are shared by the batch. Afterwards each session has the
 * logits of its token. n must be at most the planned maxSessions (and 512).
 * Errors as tinyaiEval, checked for every session before anything runs. */
TinyAIStatus tinyaiEvalBatch(TinyAISession *const *sessions, const int32_t *tokens, size_t n);

/* One step of continuous batching: sessions[i] (pairwise distinct, one
 * model) gets counts[i] >= 1 tokens appended, tokens[i][0 .. counts[i]-1]:
 * a chunk of a prompt, or one generated token. Every layer is read once for
 * the whole step. Afterwards each session has the logits of its last
 * token, the same as if it had been evaluated alone. The step's total
 * tokens and its sessions must be within the plan (tinyaiStepCapacity).
 * Errors as tinyaiEvalBatch, checked for every session first. */
TinyAIStatus tinyaiEvalStep(TinyAISession *const *sessions, const int32_t *const *tokens,
                            const size_t *counts, size_t n);
/* tinyaiEvalStep where each session with all[i] nonzero also keeps the
 * logits after each of its tokens, not only the last: a text being scored
 * (each token's log-probability given those before it) at the speed of a
 * prompt. They are read with tinyaiGetStepLogits. Each is what the token's
 * logits would be were the session evaluated up to it alone. The step's
 * rows of logits, counts[i] for such a session and one for each other,
 * must be at most tinyaiStepCapacity's sessions (TINYAI_ERR_RANGE
 * otherwise: a model planned for one session keeps only the last). */
TinyAIStatus tinyaiEvalStepAll(TinyAISession *const *sessions, const int32_t *const *tokens,
                               const size_t *counts, const int *all, size_t n);
/* The logits (nVocab floats) after token k (0-based) of the session's last
 * tinyaiEvalStepAll step that asked for them all; NULL for a k outside it,
 * or once any session of the model was evaluated again. Borrowed: they
 * live in the model's step workspace. */
const float *tinyaiGetStepLogits(const TinyAISession *session, int k);
/* The most tokens and sessions one step may hold, as planned when the
 * first session was made (TINYAI_ERR_INVALID_ARG before that). */
TinyAIStatus tinyaiStepCapacity(const TinyAIModel *model, int *tokens, int *sessions);

/* Logits (nVocab floats) of the last evaluated token; NULL before any eval.
 * Borrowed: valid until the next tinyaiEval or tinyaiResetSession. */
const float *tinyaiGetLogits(const TinyAISession *session);

int tinyaiSessionPosition(const TinyAISession *session);
int tinyaiSessionContextSize(const TinyAISession *session);
/* Bytes held by the session (KV cache + activations). */
uint64_t tinyaiSessionMemoryBytes(const TinyAISession *session);
/* ---- Perplexity --------------------------------------------------------- */

/* Perplexity of a token sequence, computed as llama.cpp's perplexity tool
 * does: the sequence is cut into whole chunks of contextSize tokens (a
 * shorter rest is not scored), each evaluated from an empty context with
 * its first token replaced by BOS (when addBos), and each scored on its
 * second half: the log-probability (log-softmax of the logits, in double)
 * of every token after position contextSize / 2 given all before it in
 * its chunk. perplexity = exp(mean negative log-likelihood); stdError its
 * standard error (from the per-token spread, as llama.cpp reports it). */
typedef struct {
    int contextSize; /* tokens per chunk, 4..the model's training context
                        (default 512, or that context if smaller) */
    int batch;       /* chunks evaluated together, 1..the model's
                        maxSessions (default 1) */
    int addBos;      /* -1: as the model says (default); 0 no; 1 yes */
    /* called after each batch of chunks with the chunks done so far and
     * the running figures (may be NULL) */
    void (*progress)(void *ctx, int chunk, int nChunks, double perplexity, double stdError);
    void *progressCtx;
} TinyAIPerplexityConfig;

typedef struct {
    double perplexity, stdError;
    double nll;           /* summed negative log-likelihood */
    int64_t tokensScored;
    int chunks;
    double seconds;       /* evaluation time */
} TinyAIPerplexityResult;

TinyAIPerplexityConfig tinyaiCreateDefaultPerplexityConfig(void);
/* TINYAI_ERR_RANGE when the tokens do not fill one chunk or the batch
 * exceeds the model's sessions; TINYAI_ERR_INVALID_ARG for a bad config or
 * token id; evaluation errors as tinyaiEval. */
TinyAIStatus tinyaiPerplexity(TinyAIModel *model, const int32_t *tokens, size_t n,
                              const TinyAIPerplexityConfig *config, TinyAIPerplexityResult *out);

/* Forgets all tokens (position 0). */
void tinyaiResetSession(TinyAISession *session);
/* Forgets the tokens from `position` on (0 <= position <= the current
 * position), keeping the KV cache of those before it: a prompt that shares
 * a prefix with what the session holds continues from there. The logits
 * are gone until the next evaluation. */
TinyAIStatus tinyaiSessionRewind(TinyAISession *session, int position);
/* Makes `dst` hold the first n tokens `src` holds (0 <= n <= src's
 * position, n <= dst's context): their KV cache is copied and dst
 * continues from position n, as if it had evaluated them itself. Both
 * sessions must belong to the same model. A server gives a request the
 * cache of a prefix (a system prompt) another sequence computed. The
 * logits of dst are gone until its next evaluation. */
TinyAIStatus tinyaiSessionCopyPrefix(TinyAISession *dst, const TinyAISession *src, int n);

/* ---- Sampling ------------------------------------------------------------- */

typedef struct {
    float temperature;   /* <= 0: greedy (argmax). Default 0.8. */
    int topK;            /* keep the K most likely; <= 0: all. Default 40. */
    float topP;          /* nucleus: smallest set with mass >= topP; 1 = off.
                            Default 0.95. */
    float repeatPenalty; /* > 0; 1 = off. Default 1 (off, as in llama.cpp),
                            so that temperature 0 is the argmax. */
    int repeatLastN;     /* tokens of history the penalty looks at. 64. */
    uint64_t seed;       /* same seed, same logits -> same choices. */
} TinyAISamplerConfig;

TinyAISamplerConfig tinyaiCreateDefaultSamplerConfig(void);

/* Validates the config (temperature finite, topP in (0, 1], repeatPenalty
 * > 0, repeatLastN >= 0). Free with tinyaiFreeSampler. */
TinyAIStatus tinyaiCreateSampler(const TinyAISamplerConfig *config, TinyAISampler **out);
void tinyaiFreeSampler(TinyAISampler *sampler); /* accepts NULL */

/* Picks a token from nVocab logits (not modified) and records it in the
 * sampler's history. Returns -1 (with an error message) on bad arguments. */
int32_t tinyaiSample(TinyAISampler *sampler, const float *logits, int nVocab);
/* log(sum(exp(logits[i]))) over n logits, summed in double from their
 * maximum: token t's log-probability is logits[t] minus it (the server's
 * logprobs, tinyaiPerplexity). -inf for n < 1. */
double tinyaiLogSumExp(const float *logits, int n);

/* Records tokens (a prompt) in the history the repetition penalty sees. */
void tinyaiSamplerAccept(TinyAISampler *sampler, const int32_t *ids, size_t n);

#ifdef __cplusplus
}
#endif

#endif /* TINYAI_LLM_H */
