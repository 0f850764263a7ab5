/*
 * core: setting the thread-local error message behind
 * tinyaiLastErrorMessage(). Internal to runtime/ and the layers above it.
 */
#ifndef TAI_CORE_ERROR_H
#define TAI_CORE_ERROR_H

#include <tinyai/status.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Formats the message for this thread and returns `status`, so callers can
 * write `return tai_error(TINYAI_ERR_FORMAT, "bad magic in %s", path);`. */
TinyAIStatus tai_error(TinyAIStatus status, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Prefixes the current message with "<prefix>: " (context from a caller). */
void tai_error_prefix(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#ifdef __cplusplus
}
#endif

#endif
