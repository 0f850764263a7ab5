/* offload/host.c: host-side weight work through the kernels (layer: offload). */
#include "offload/host.h"

#include "kernels/kernels.h"

void tai_host_pack_panels(tai_type t, const void *w, int64_t rows, int64_t n, void *dst,
                          int64_t p0, int64_t p1) {
    tai_pack_panels(t, w, rows, n, dst, p0, p1);
}

void tai_host_pack_sparse_panel(tai_type t, const void *w, int64_t nrows, int64_t n,
                                int64_t keep, const uint16_t *idx, void *dst, void *tmp) {
    tai_pack_sparse_panel(t, w, nrows, n, keep, idx, dst, tmp);
}

void tai_host_pack_matrix(tai_pool *pool, tai_type t, const void *w, int64_t rows, int64_t n,
                          void *dst) {
    tai_pack_matrix(pool, t, w, rows, n, dst);
}

void tai_host_packed_row(tai_type t, const void *packed, int64_t rows, int64_t n, int64_t r,
                         float *out) {
    tai_packed_row(t, packed, rows, n, r, out);
}

void tai_host_rope_angles(float *cs, int rot_dim, int64_t pos, float theta_base) {
    tai_rope_angles(cs, rot_dim, pos, theta_base);
}
