/*
 * tools/plot.h: `tinyai bench --plot`: the benchmark's pictures, drawn by
 * gnuplot (scripts/setup.sh installs it) from data handed to it inline.
 */
#ifndef TAI_TOOLS_PLOT_H
#define TAI_TOOLS_PLOT_H

#include <stddef.h>

/* One benchmark row. */
typedef struct {
    char series_limit[256]; /* the row's series on the memory-limit axis
                               (everything but the limit) */
    char series_batch[256]; /* ... on the batch axis (everything but it) */
    char label[256];        /* the whole row, for the per-row panel */
    double limit_bytes;     /* 0: none */
    int batch;
    double tps, tps_std;
    double storage_bound;   /* tok/s storage allows at this row's reads per
                               token (0: not streamed) */
} plot_point;

/* One row's time per file layer (seconds per pass). */
typedef struct {
    char label[160];
    int n;
    const double *seconds;
} plot_layers;

/* Draws into path (.svg or .png, by its extension): tok/s against memory
 * limit with the storage bound (series with two limits or more), tok/s
 * against batch (likewise), time per layer (when given), else tok/s per
 * row. 0, or -1 with a one-line reason in err. */
int plot_write(const char *path, const plot_point *pts, int n, const plot_layers *layers,
               int n_layers, char *err, size_t err_cap);

#endif
