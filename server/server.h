/*
 * server/: TinyAI's OpenAI-compatible HTTP server (layer: server). HTTP is
 * libmicrohttpd's (a thread per connection, so that a request waits for
 * its tokens without holding anything else up), JSON is cJSON's; requests
 * become tai_req for the continuous-batching engine (engine.h).
 *
 * Endpoints: POST /v1/completions and /v1/chat/completions (streaming as
 * server-sent events, or not), GET /v1/models, /health (503 until a model
 * is attached, then {"status":"ok"}; no key needed), /metrics (Prometheus
 * text). Errors are OpenAI-shaped: {"error": {"message", "type", "code"}}.
 */
#ifndef TAI_SERVER_SERVER_H
#define TAI_SERVER_SERVER_H

#include <stddef.h>

#include <tinyai/llm.h>

#include "server/engine.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    const char *host;        /* default "127.0.0.1" */
    int port;                /* 0: any free port (tai_server_port says which) */
    const char *api_key;     /* NULL: none; else "Authorization: Bearer KEY" */
    size_t max_body;         /* bytes; default 1 MiB */
    int max_connections;     /* default 256 */
    int timeout_s;           /* an idle connection is closed after it; default 30 */
    const char *model_name;  /* the id /v1/models lists and responses carry */
    int default_max_tokens;  /* when a request gives none; default 256 */
    double keepalive_s;      /* a stream with nothing to send for this long
                                sends an SSE comment line (": keep-alive"),
                                so proxies and the idle timeout leave it
                                open; default 5 */
} tai_server_config;

typedef struct tai_server tai_server;

/* Starts listening; /health answers 503 until tai_server_attach. Errors:
 * TINYAI_ERR_INVALID_ARG (bad config), TINYAI_ERR_IO (cannot bind),
 * TINYAI_ERR_UNSUPPORTED (libmicrohttpd cannot be opened: the reason in
 * tinyaiLastErrorMessage). */
TinyAIStatus tai_server_start(const tai_server_config *c, tai_server **out);
int tai_server_port(const tai_server *s);
/* The model (borrowed) and its engine (borrowed): the server is ready. */
void tai_server_attach(tai_server *s, TinyAIModel *model, tai_engine *engine, int ctx);
/* New requests are refused with 503 from now on (the engine may still
 * finish the running ones). */
void tai_server_quiesce(tai_server *s);
/* Stops listening and closes every connection; the engine must be stopped
 * first (a request still waiting would block the close). */
void tai_server_stop(tai_server *s);

#ifdef __cplusplus
}
#endif

#endif
