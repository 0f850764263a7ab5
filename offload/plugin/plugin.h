/*
 * offload/plugin: device plugins (layer: offload). Loads a shared object
 * that implements <tinyai/plugin.h>, negotiates the ABI version, checks
 * every table it returns, and wraps each of its devices as a tai_device
 * (the same vtable as the CPU and OpenCL), named "<plugin>:<index>".
 *
 * The registry of loaded plugins is the process's only global state
 * besides the kernels' settings: plugins are loaded once and shared by
 * every model. Loading and unloading are not thread-safe against each
 * other or against opening devices; opened devices are used as any other.
 */
#ifndef TAI_OFFLOAD_PLUGIN_PLUGIN_H
#define TAI_OFFLOAD_PLUGIN_PLUGIN_H

#include <stdint.h>

#include <tinyai/plugin.h>
#include <tinyai/status.h>

#include "offload/offload.h"

#ifdef __cplusplus
extern "C" {
#endif

#define TAI_MAX_PLUGINS 16

typedef struct tai_plugin tai_plugin;

/* Loads the plugin at `path` with its options ("key=value;..." or NULL)
 * and adds it to the registry. Errors (status and message naming the
 * file): TINYAI_ERR_IO (cannot be opened: missing, unreadable, not a shared
 * object), TINYAI_ERR_FORMAT (no entry point, or tables with impossible
 * sizes or missing slots), TINYAI_ERR_UNSUPPORTED (another ABI major, in
 * either direction), TINYAI_ERR_INVALID_ARG (a plugin of that name is
 * already loaded), or the entry point's own failure with the plugin's last
 * log line. */
TinyAIStatus tai_plugin_load(const char *path, const char *options, tai_plugin **out);
/* Shuts the plugin down and unloads it; every device opened from it must
 * be closed first (TINYAI_ERR_INVALID_ARG otherwise, nothing done). */
TinyAIStatus tai_plugin_unload(tai_plugin *p);
/* Unloads every plugin whose devices are all closed. */
void tai_plugin_unload_all(void);

int tai_plugin_count(void);
tai_plugin *tai_plugin_at(int i);
tai_plugin *tai_plugin_find(const char *name);
const char *tai_plugin_name(const tai_plugin *p);
const char *tai_plugin_path(const tai_plugin *p);
/* The ABI version the plugin was built for. */
void tai_plugin_abi(const tai_plugin *p, int *major, int *minor);
/* Its devices (as counted at load). */
int tai_plugin_device_count(const tai_plugin *p);
/* The last line the plugin logged ("" if none). */
const char *tai_plugin_last_log(const tai_plugin *p);
/* Bytes of host memory it holds through the host table now. */
uint64_t tai_plugin_host_bytes(const tai_plugin *p);

/* Opens device `index` of the plugin as a tai_device named
 * "<plugin>:<index>" (closed with tai_device_close). Its table is checked
 * first: a size below ABI 1.0's, a missing required slot, or an op it
 * claims without the slot is TINYAI_ERR_FORMAT. Ops it does not claim fail
 * with TINYAI_ERR_UNSUPPORTED. */
TinyAIStatus tai_plugin_device_open(tai_plugin *p, int index, tai_device **out);

/* A plugin device's own table and handle (for tests of the raw ABI, such
 * as its streams); TINYAI_ERR_INVALID_ARG for a device of another kind. */
TinyAIStatus tai_plugin_device_raw(const tai_device *d, const TinyAIPluginDeviceOps **ops,
                                   void **dev);

/* The plugin a device was opened from (NULL for a device of another kind). */
tai_plugin *tai_plugin_of(const tai_device *d);

/* The total devices of all plugins, and the i-th of them (in load order,
 * each plugin's in index order). */
int tai_plugin_devices(void);
TinyAIStatus tai_plugin_device_at(int i, tai_plugin **p, int *index);
/* "NAME:N", "NAME" (device 0) or "plugin:NAME[:N]": the plugin and its
 * device index, 0; -1 when no loaded plugin has that name; -2 when one
 * has (*p is set) but the index is out of range or malformed. */
int tai_plugin_resolve(const char *device, tai_plugin **p, int *index);

#ifdef __cplusplus
}
#endif

#endif
