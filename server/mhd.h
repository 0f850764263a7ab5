/*
 * server/mhd.h: libmicrohttpd's functions the server calls (layer: server,
 * internal), reached through the library opened when a server first
 * starts rather than linked into every program: libmicrohttpd brings
 * GnuTLS and seven more libraries with it, about 9 ms to read and relocate
 * at every cold start of a command that serves nothing (a cold `tinyai
 * generate` is a 0.3 s affair). The types are the header's own.
 */
#ifndef TAI_SERVER_MHD_H
#define TAI_SERVER_MHD_H

#include <microhttpd.h>

#include <tinyai/status.h>

typedef struct {
    __typeof__(&MHD_start_daemon) start_daemon;
    __typeof__(&MHD_stop_daemon) stop_daemon;
    __typeof__(&MHD_get_daemon_info) get_daemon_info;
    __typeof__(&MHD_create_response_from_buffer) create_response_from_buffer;
    __typeof__(&MHD_create_response_from_callback) create_response_from_callback;
    __typeof__(&MHD_add_response_header) add_response_header;
    __typeof__(&MHD_queue_response) queue_response;
    __typeof__(&MHD_destroy_response) destroy_response;
    __typeof__(&MHD_lookup_connection_value) lookup_connection_value;
} tai_mhd;

/* The table, the library opened on the first call (kept open for the
 * process); TINYAI_ERR_UNSUPPORTED, with the loader's reason, if it or one
 * of the functions is missing. */
TinyAIStatus tai_mhd_get(const tai_mhd **out);
/* The table once tai_mhd_get has succeeded (NULL before). */
const tai_mhd *tai_mhd_table(void);

#endif
