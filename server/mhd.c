/*
 * server/mhd.c: opening libmicrohttpd on first use (see mhd.h).
 */
#include "server/mhd.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>

#include "core/error.h"

/* The soname of Debian's libmicrohttpd12 (the ABI the header describes). */
#define MHD_SONAME "libmicrohttpd.so.12"

static tai_mhd table;
static TinyAIStatus load_status;
static char load_msg[256];
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void load(void) {
    void *h = dlopen(MHD_SONAME, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char *why = dlerror();
        snprintf(load_msg, sizeof load_msg, "cannot open %s (the HTTP library; Debian's "
                 "libmicrohttpd12): %s", MHD_SONAME, why ? why : "?");
        load_status = TINYAI_ERR_UNSUPPORTED;
        return;
    }
    struct {
        void **slot;
        const char *name;
    } fns[] = {
        {(void **)&table.start_daemon, "MHD_start_daemon"},
        {(void **)&table.stop_daemon, "MHD_stop_daemon"},
        {(void **)&table.get_daemon_info, "MHD_get_daemon_info"},
        {(void **)&table.create_response_from_buffer, "MHD_create_response_from_buffer"},
        {(void **)&table.create_response_from_callback, "MHD_create_response_from_callback"},
        {(void **)&table.add_response_header, "MHD_add_response_header"},
        {(void **)&table.queue_response, "MHD_queue_response"},
        {(void **)&table.destroy_response, "MHD_destroy_response"},
        {(void **)&table.lookup_connection_value, "MHD_lookup_connection_value"},
    };
    for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++) {
        *fns[i].slot = dlsym(h, fns[i].name);
        if (!*fns[i].slot) {
            snprintf(load_msg, sizeof load_msg, "%s has no %s", MHD_SONAME, fns[i].name);
            load_status = TINYAI_ERR_UNSUPPORTED;
            dlclose(h);
            return;
        }
    }
    load_status = TINYAI_OK;
}

TinyAIStatus tai_mhd_get(const tai_mhd **out) {
    pthread_once(&once, load);
    *out = load_status == TINYAI_OK ? &table : NULL;
    return load_status == TINYAI_OK ? TINYAI_OK : tai_error(load_status, "%s", load_msg);
}

const tai_mhd *tai_mhd_table(void) {
    pthread_once(&once, load);
    return load_status == TINYAI_OK ? &table : NULL;
}
