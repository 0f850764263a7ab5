/*
 * offload/opencl/opencl.h: OpenCL devices (layer: offload). Every device of
 * every platform the ICD loader (ocl-icd) reports, numbered in platform
 * order, runs the OpenCL C 1.2 kernels of kernels.cl behind the device
 * vtable; nothing requires cl_khr_fp16 or sub-groups.
 *
 * The program is built once per device; with a cache folder, its binary is
 * kept there (opencl-<hash>.bin, the hash of the source, the device, its
 * driver and the platform) and a later open loads it instead of compiling.
 * A cache file that does not load is rebuilt from source and replaced.
 */
#ifndef TAI_OFFLOAD_OPENCL_OPENCL_H
#define TAI_OFFLOAD_OPENCL_OPENCL_H

#include <tinyai/status.h>

#include "offload/offload.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The number of OpenCL devices (0 where there is no ICD loader, no
 * platform or no device: not an error). */
int tai_opencl_count(void);

/* A short description of device `index` ("Portable Computing Language:
 * pthread-skylake-avx512-...") into buf; 0, or -1 if there is no such
 * device. */
int tai_opencl_describe(int index, char *buf, size_t cap);

/* What device `index` is, without opening it (no program is built): 0, or
 * -1 if there is no such device. */
int tai_opencl_query(int index, tai_device_info *out);

/* Opens device `index` (0..tai_opencl_count()-1) as "opencl:<index>":
 * context, in-order queue, program (from cache_dir when it holds a binary
 * for this device; cache_dir may be NULL: no cache). A build failure's
 * error message holds the device's build log. Freed with tai_device_close. */
TinyAIStatus tai_opencl_device_open(int index, const char *cache_dir, tai_device **out);
/* The same with another program source (NULL: the real one; for tests of
 * a failing build) and a choice of matrix-vector kernel: matvec -1 picks
 * by device (the K-split one on GPUs and accelerators, the row one on
 * CPUs), 0 and 1 force the row or the K-split one (tests run both). */
TinyAIStatus tai_opencl_device_open_source(int index, const char *cache_dir, const char *source,
                                           int matvec, tai_device **out);

#ifdef __cplusplus
}
#endif

#endif
