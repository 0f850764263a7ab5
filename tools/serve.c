/*
 * tools/serve.c: `tinyai serve`, the OpenAI-compatible server (server/).
 * Listens first (/health answers 503 while the model loads), loads the
 * model planned for the slots, starts the continuous-batching engine, and
 * serves until SIGINT or SIGTERM: then new requests get 503, running ones
 * finish (or are cut after a few seconds), and everything is freed. An
 * engine stuck in a step past --step-timeout (a plugin device or a read
 * that never returns) is not waited for: the exit status is then 1.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <tinyai/llm.h>

#include "server/server.h"
#include "tools/cli.h"

static volatile sig_atomic_t stop_requested;
static void on_signal(int sig) {
    (void)sig;
    stop_requested = 1;
}

static void serve_help(void) {
    printf("usage: tinyai serve -m MODEL [options]\n"
           "\n"
           "An OpenAI-compatible HTTP server: POST /v1/chat/completions and\n"
           "/v1/completions (with \"stream\": true, server-sent events), GET /v1/models,\n"
           "/health and /metrics. Concurrent requests are decoded together, each\n"
           "layer read once per step for all of them.\n"
           "\n"
           "  -m, --model PATH     model file (.gguf or .tmai)\n"
           "  --host ADDR          IPv4 address to bind (default 127.0.0.1: this machine only)\n"
           "  --port N             default 8080; 0 picks a free port\n"
           "  --slots N|auto       sequences decoded together (default 4); auto: the most,\n"
           "                       up to 64, that --mem-limit leaves room for (8 without one)\n"
           "  --ctx N              tokens per sequence, prompt and answer (default 2048,\n"
           "                       at most the model's)\n"
           "  --max-queue N        requests waiting for a slot before 429 (default 64)\n"
           "  --max-tokens N       answer length when a request sets none (default 256)\n"
           "  --api-key KEY        require \"Authorization: Bearer KEY\" (also --api-key-file F)\n"
           "  --mem-limit BYTES    memory for weights, KV caches and activations\n"
           "  --step-timeout S     a step running longer than S seconds (a device or the\n"
           "                       storage not answering) fails the requests waiting on it\n"
           "                       and /health with 503 until it returns (default 300;\n"
           "                       0: never)\n"
           "  --threads N, --device D, --mode M, --io E, --cache-policy P, --numa P,\n"
           "  --kv-type T, --prompt-products P,\n"
           "  --plugin PATH        as for generate\n");
}

int cmd_serve(int argc, char **argv) {
    const char *model_path = NULL, *host = "127.0.0.1", *api_key = NULL;
    long port = 8080, slots = 4, ctx = 2048, max_queue = 64, max_tokens = 256, step_timeout = 300;
    TinyAIModelConfig mc = tinyaiCreateDefaultModelConfig();
    int mo = 0;
    char key_buf[512];
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            serve_help();
            return 0;
        } else if (!(v = take(argc, argv, &i))) {
            return usage_error("option %s needs a value or is unknown", a);
        } else if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
            model_path = v;
        } else if (!strcmp(a, "--host")) {
            host = v;
        } else if (!strcmp(a, "--port")) {
            if (!parse_long(v, 0, 65535, &port)) return usage_error("--port must be in 0..65535, got '%s'", v);
        } else if (!strcmp(a, "--slots")) {
            if (!strcmp(v, "auto")) slots = 0;
            else if (!parse_long(v, 1, 256, &slots))
                return usage_error("--slots must be auto or in 1..256, got '%s'", v);
        } else if (!strcmp(a, "--ctx")) {
            if (!parse_long(v, 16, 1 << 20, &ctx)) return usage_error("--ctx must be in 16..1048576, got '%s'", v);
        } else if (!strcmp(a, "--max-queue")) {
            if (!parse_long(v, 1, 100000, &max_queue))
                return usage_error("--max-queue must be in 1..100000, got '%s'", v);
        } else if (!strcmp(a, "--max-tokens")) {
            if (!parse_long(v, 1, 1 << 20, &max_tokens))
                return usage_error("--max-tokens must be in 1..1048576, got '%s'", v);
        } else if (!strcmp(a, "--step-timeout")) {
            if (!parse_long(v, 0, 1 << 24, &step_timeout))
                return usage_error("--step-timeout must be in 0..16777216 seconds, got '%s'", v);
        } else if (!strcmp(a, "--api-key")) {
            api_key = v;
        } else if (!strcmp(a, "--api-key-file")) {
            FILE *f = fopen(v, "r");
            if (!f) return usage_error("--api-key-file: cannot read '%s'", v);
            const size_t n = fread(key_buf, 1, sizeof key_buf - 1, f);
            fclose(f);
            key_buf[n] = 0;
            key_buf[strcspn(key_buf, "\r\n")] = 0;
            if (!key_buf[0]) return usage_error("--api-key-file: '%s' holds no key", v);
            api_key = key_buf;
        } else if ((mo = model_option(a, v, &mc)) != 0) {
            if (mo == 2) return 2;
        } else {
            return usage_error("unknown option %s", a);
        }
    }
    if (!model_path) return usage_error("%s", "serve needs -m MODEL");
    if (access(model_path, R_OK) != 0) return usage_error("cannot read the model '%s'", model_path);

    /* listen first: clients polling /health see 503 while the model loads */
    const char *base = strrchr(model_path, '/');
    tai_server_config sc = {0};
    sc.host = host;
    sc.port = (int)port;
    sc.api_key = api_key;
    sc.model_name = base ? base + 1 : model_path;
    sc.default_max_tokens = (int)max_tokens;
    tai_server *srv = NULL;
    TinyAIStatus st = tai_server_start(&sc, &srv);
    if (st == TINYAI_ERR_UNSUPPORTED) {
        fprintf(stderr, "%s: %s\n", prog, tinyaiLastErrorMessage());
        return 1;
    }
    if (st != TINYAI_OK) {
        fprintf(stderr, "%s: cannot listen on %s:%ld (%s)\n", prog, host, port,
                st == TINYAI_ERR_INVALID_ARG ? "not an IPv4 address" : "in use, or not allowed");
        return 1;
    }
    fprintf(stderr, "%s: listening on http://%s:%d\n", prog, host, tai_server_port(srv));
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    apply_tuning(1);
    /* the first run measures the devices in a child: its buffers and an
     * OpenCL compiler never count against --mem-limit here */
    char cdir[4000];
    cache_dir(cdir, sizeof cdir);
    if (make_dirs(cdir) == 0) {
        measure_devices_once(cdir, mc.device, mc.threads, 0);
        mc.cacheDir = cdir;
    }
    load_plugins(0);
    TinyAIModel *model = NULL;
    tai_engine *engine = NULL;
    int rc = 0;
    TinyAIModelInfo info;
    /* --slots auto: without a limit, 8; under one, the most (a power of two
     * up to 64) whose KV caches fit beside what one slot needs, from a
     * probe of one slot's plan (loading the model once more, not once per
     * candidate: every load's pages count in the peak) */
    int want = slots > 0 ? (int)slots : mc.memoryLimit > 0 ? 64 : 8;
    if (slots == 0 && mc.memoryLimit > 0) {
        TinyAIModelConfig pc = mc;
        pc.maxSessions = 1;
        pc.contextSize = (int)ctx;
        TinyAIModel *probe = NULL;
        TinyAISession *one = NULL;
        TinyAIMemoryInfo mi;
        if (tinyaiLoadModel(model_path, &pc, &probe) == TINYAI_OK &&
            tinyaiCreateSession(probe, (int)ctx, &one) == TINYAI_OK &&
            tinyaiGetMemoryInfo(probe, &mi) == TINYAI_OK) {
            const double per = (double)tinyaiSessionMemoryBytes(one) * 1.1;
            const double room = (double)mc.memoryLimit - (double)mi.minimumBytes;
            int n = 1;
            while (n < 64 && room >= per * (double)(2 * n - 1)) n *= 2;
            want = n;
        } else {
            want = 1; /* one slot's plan already fails: say so below */
        }
        tinyaiFreeSession(one);
        tinyaiFreeModel(probe);
        tinyaiClearError();
    }
    for (int n = want; n >= 1; n = slots > 0 ? 0 : n / 2) {
        mc.maxSessions = n;
        mc.contextSize = (int)ctx;
        if (tinyaiLoadModel(model_path, &mc, &model) != TINYAI_OK) {
            rc = fail("cannot load the model");
            goto out;
        }
        tinyaiGetModelInfo(model, &info);
        if (ctx > info.nCtxTrain && info.nCtxTrain > 0) ctx = info.nCtxTrain;
        tai_engine_config ec = {n, (int)ctx, (int)max_queue, (double)step_timeout};
        if ((st = tai_engine_start(model, &ec, &engine)) == TINYAI_OK) {
            slots = n;
            break;
        }
        tinyaiFreeModel(model);
        model = NULL;
        if (slots > 0 || n == 1 || st != TINYAI_ERR_RANGE) break;
    }
    if (!engine) {
        rc = fail("cannot plan the slots (a smaller --slots or --ctx, or a larger --mem-limit)");
        goto out;
    }
    tai_server_attach(srv, model, engine, (int)ctx);
    fprintf(stderr, "%s: ready: %s, %ld slots of %ld tokens, devices: %s\n", prog, sc.model_name,
            slots, ctx, info.devices);
    while (!stop_requested) pause();
    fprintf(stderr, "%s: stopping\n", prog);
out:
    tai_server_quiesce(srv);
    if (tai_engine_stop(engine, 5.0) == -ETIMEDOUT) {
        /* its thread is inside a step that does not return: the model
         * stays as it is (that thread may still use it); the connections
         * waiting on it have been answered 503 */
        fprintf(stderr, "%s: the engine is stuck in a step (%.0f s: a device or the storage is not answering); exiting without it\n",
                prog, tai_engine_stalled(engine));
        tai_server_stop(srv);
        /* at once: no exit handler (a plugin's destructor, a leak check of
         * what that thread still uses) may run beside the stuck thread */
        fflush(stderr);
        _exit(1);
    }
    tai_server_stop(srv); /* its connections may ask the engine until closed */
    tai_engine_free(engine);
    tinyaiFreeModel(model);
    return rc;
}
