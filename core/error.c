/* core: status strings and the thread-local last error message. */
#include "core/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define MSG_CAP 1024

static _Thread_local char last_msg[MSG_CAP];

const char *tinyaiStatusString(TinyAIStatus status) {
    switch (status) {
    case TINYAI_OK: return "ok";
    case TINYAI_ERR_INVALID_ARG: return "invalid argument";
    case TINYAI_ERR_IO: return "I/O error";
    case TINYAI_ERR_FORMAT: return "malformed model file";
    case TINYAI_ERR_UNSUPPORTED: return "unsupported";
    case TINYAI_ERR_NOMEM: return "out of memory";
    case TINYAI_ERR_CHECKSUM: return "checksum mismatch";
    case TINYAI_ERR_RANGE: return "out of range";
    case TINYAI_ERR_INTERNAL: return "internal error";
    case TINYAI_ERR_DEVICE: return "device error";
    }
    return "unknown status";
}

const char *tinyaiLastErrorMessage(void) { return last_msg; }

void tinyaiClearError(void) { last_msg[0] = '\0'; }

TinyAIStatus tai_error(TinyAIStatus status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_msg, sizeof last_msg, fmt, ap);
    va_end(ap);
    return status;
}

void tai_error_prefix(const char *fmt, ...) {
    char prefix[MSG_CAP];
    char old[MSG_CAP];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, last_msg, sizeof old);
    /* Longer than MSG_CAP: cut, as every message is. */
    size_t n = strlen(prefix);
    if (n > MSG_CAP - 3) n = MSG_CAP - 3;
    memcpy(last_msg, prefix, n);
    memcpy(last_msg + n, ": ", 2);
    size_t rest = MSG_CAP - n - 3;
    size_t m = strnlen(old, rest);
    memcpy(last_msg + n + 2, old, m);
    last_msg[n + 2 + m] = '\0';
}
