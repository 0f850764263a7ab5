/*
 * offload/host.h: the host side of every device's weights (layer: offload).
 *
 * Every device reads weight matrices in the packed panel layout of
 * core/types.h ("Packed weights"); they are packed on the host, once per
 * load, by the fastest packer this CPU has (the kernels' SIMD gathers where
 * the CPU has them). Layer images (runtime/format) and `.tmai` files are
 * built with these, so nothing above offload/ reaches into kernels/.
 */
#ifndef TAI_OFFLOAD_HOST_H
#define TAI_OFFLOAD_HOST_H

#include <stdint.h>

#include "core/types.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The host's thread pool (the CPU device's; kernels/kernels.h creates it). */
typedef struct tai_pool tai_pool;

/* Packs panels [p0, p1) of row-major W (rows x n of type t, rows
 * tai_type_row_bytes apart) into dst, which holds the whole packed matrix
 * (panel p at dst + p * tai_pack_panel_bytes). Panels are independent. */
void tai_host_pack_panels(tai_type t, const void *w, int64_t rows, int64_t n, void *dst,
                          int64_t p0, int64_t p1);
/* Packs the whole of W into dst (tai_pack_bytes bytes, 64-byte aligned),
 * panels split across the pool (NULL: the calling thread). */
void tai_host_pack_matrix(tai_pool *pool, tai_type t, const void *w, int64_t rows, int64_t n,
                          void *dst);

/* One block-sparse panel from up to 16 row-major rows (kernels.h
 * tai_pack_sparse_panel). */
void tai_host_pack_sparse_panel(tai_type t, const void *w, int64_t nrows, int64_t n,
                                int64_t keep, const uint16_t *idx, void *dst, void *tmp);

/* Row r (0 <= r < rows) of a packed rows x n matrix, dequantized to n
 * floats (bit for bit tai_dequantize_row of the row-major row). */
void tai_host_packed_row(tai_type t, const void *packed, int64_t rows, int64_t n, int64_t r,
                         float *out);
/* The (cos, sin) pairs of rotary embedding for position pos: rot_dim / 2
 * pairs into cs, as every device's rope op reads them. */
void tai_host_rope_angles(float *cs, int rot_dim, int64_t pos, float theta_base);

#ifdef __cplusplus
}
#endif

#endif
