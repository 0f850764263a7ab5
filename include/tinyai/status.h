/*
 * TinyAI public API: status codes and error messages.
 *
 * Every TinyAI function that can fail reports it as a value: functions that
 * return TinyAIStatus return TINYAI_OK on success; functions that return a
 * pointer return NULL and functions that return bool return false. In every
 * case tinyaiLastErrorMessage() then gives a readable one-line explanation.
 *
 * Thread safety: the last error message is thread-local (like dlerror), so
 * each thread sees the message of its own last failing call.
 */
#ifndef TINYAI_STATUS_H
#define TINYAI_STATUS_H

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    TINYAI_OK = 0,
    TINYAI_ERR_INVALID_ARG = 1, /* a bad argument from the caller */
    TINYAI_ERR_IO = 2,          /* open/read/write failed */
    TINYAI_ERR_FORMAT = 3,      /* malformed or truncated model file */
    TINYAI_ERR_UNSUPPORTED = 4, /* valid but not supported (arch, type) */
    TINYAI_ERR_NOMEM = 5,       /* allocation failed */
    TINYAI_ERR_CHECKSUM = 6,    /* stored checksum does not match the data */
    TINYAI_ERR_RANGE = 7,       /* a value out of range (context full, ...) */
    TINYAI_ERR_INTERNAL = 8,    /* a broken internal invariant */
    TINYAI_ERR_DEVICE = 9,      /* a compute device failed (its driver or an op) */
} TinyAIStatus;

/* Static text naming the status ("invalid argument", ...). Never NULL. */
const char *tinyaiStatusString(TinyAIStatus status);

/* The detailed message of this thread's last failing TinyAI call, or "" if
 * none. Borrowed: valid until this thread's next TinyAI call. */
const char *tinyaiLastErrorMessage(void);

/* Clears this thread's last error message. */
void tinyaiClearError(void);

#ifdef __cplusplus
}
#endif

#endif /* TINYAI_STATUS_H */
