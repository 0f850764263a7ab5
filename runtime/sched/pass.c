/*
 * runtime/sched: a forward pass, layer by layer. For each file layer the
 * scheduler acquires the images the layer reads from the weight cache
 * (waiting on storage when they are not resident: the time is counted as
 * stall), makes them present on the layer's device (a device with its own
 * memory gets a copy on the layer's first use there, kept while the
 * placement keeps the layer there), has the architecture issue the layer's
 * ops (tai_llama_run), synchronises the device, and releases the images:
 * the cache may evict a layer only once its ops are done.
 */
#include <stdio.h>
#include <string.h>

#include "core/clock.h"
#include "core/error.h"
#include "core/trace.h"
#include "runtime/model/profile.h"
#include "runtime/sched/sched.h"

/* Acquires a layer image, counting the time spent waiting for it. */
static TinyAIStatus acquire(TinyAIModel *m, int layer, const unsigned char **img) {
    const uint64_t t0 = tai_now_ns();
    void *p = NULL;
    TinyAIStatus st = tai_mapped_acquire(m->mm, layer, &p);
    const uint64_t t1 = tai_now_ns();
    m->stall_ns += t1 - t0;
    /* a wait worth drawing: the layer was not there yet */
    if (m->prof && m->prof->trace && t1 - t0 > 20000)
        tai_trace_span(m->prof->trace, "wait", "stall", layer, t0, t1, 0);
    *img = p;
    return st;
}

/* A layer's image as device d sees it: the acquired host image on the
 * CPU; on another device the image's copy in its memory, uploaded on the
 * layer's first use there and kept. */
static TinyAIStatus weights_on(TinyAIModel *m, int d, int layer, const unsigned char *img,
                               tai_dref *out) {
    if (d == 0) {
        *out = tai_dref_host(img);
        return TINYAI_OK;
    }
    tai_device *dev = m->devs[d];
    if (!m->dev_w[layer]) {
        const size_t bytes = tai_mapped_image_bytes(m->mm, layer);
        tai_dbuf *buf = NULL;
        const int rc = dev->ops->buf_alloc(dev->ctx, bytes, &buf);
        if (rc != 0) return tai_dev_fail(dev, "buf_alloc (weights)", rc);
        const tai_dref at = {buf, 0};
        const uint64_t t0 = tai_now_ns();
        TinyAIStatus st = tai_dev_upload(dev, at, img, bytes);
        /* the image may be evicted once released: the copy is made first */
        if (st == TINYAI_OK) st = tai_dev_sync(dev);
        if (m->prof) tai_trace_span(m->prof->trace, "upload", "transfer", layer, t0, tai_now_ns(), bytes);
        if (st != TINYAI_OK) {
            dev->ops->buf_free(dev->ctx, buf);
            return st;
        }
        m->dev_w[layer] = buf;
        m->dev_w_on[layer] = (unsigned char)d;
    }
    out->buf = m->dev_w[layer];
    out->off = 0;
    return TINYAI_OK;
}

static TinyAIStatus run_layer(const tai_batch *b, int layer, int d) {
    TinyAIModel *m = b->m;
    tai_device *dev = m->devs[d];
    int ids[2];
    const int n = tai_llama_layer_images(m, layer, ids);
    if (n == 0) {
        /* the layer reads what it needs from the file itself (embedding
         * rows): its time is the wait on storage */
        const uint64_t t0 = tai_now_ns();
        TinyAIStatus st = tai_llama_run(b, layer, d, NULL);
        if (st == TINYAI_OK) st = tai_dev_sync(dev);
        m->stall_ns += tai_now_ns() - t0;
        return st;
    }
    tai_dref w[2];
    int held = 0;
    TinyAIStatus st = TINYAI_OK;
    for (int i = 0; i < n && st == TINYAI_OK; i++) {
        const unsigned char *img = NULL;
        st = acquire(m, ids[i], &img);
        if (st != TINYAI_OK) break;
        held++;
        st = weights_on(m, d, ids[i], img, &w[i]);
    }
    if (st == TINYAI_OK) st = tai_llama_run(b, layer, d, w);
    /* the layer's ops are done before its images can be evicted */
    if (st == TINYAI_OK) st = tai_dev_sync(dev);
    while (held > 0) {
        const TinyAIStatus st2 = tai_mapped_release(m->mm, ids[--held]);
        if (st == TINYAI_OK) st = st2;
    }
    return st;
}

TinyAIStatus tai_sched_layer(const tai_batch *b, int layer) {
    TinyAIModel *m = b->m;
    if (layer < 0 || layer >= m->file->n_layers)
        return tai_error(TINYAI_ERR_INVALID_ARG, "layer %d out of range (0..%d)", layer,
                         m->file->n_layers - 1);
    if (layer == 0) {
        /* a new pass: its placement is the plan of its width's bucket */
        m->cur_plan = tai_plan_bucket(m, b->n);
        m->layer_dev = m->plans[m->cur_plan];
        tai_llama_begin(b);
    }
    tai_profile *prof = m->prof;
    const uint64_t stall0 = m->stall_ns;
    if (prof) tai_prof_layer_begin(prof);
    const uint64_t t0 = tai_now_ns();
    const TinyAIStatus st = run_layer(b, layer, m->layer_dev[layer]);
    /* a pass is over: a background load may read what it kept for last */
    if (layer == m->file->n_layers - 1) tai_mapped_load_last(m->mm);
    if (st == TINYAI_OK) {
        const uint64_t t1 = tai_now_ns();
        m->plan_meas[m->cur_plan][layer] += (double)(t1 - t0) * 1e-9;
        m->plan_runs[m->cur_plan][layer]++;
        if (prof)
            tai_prof_layer_end(prof, layer, m->layer_dev[layer], t0, t1, m->stall_ns - stall0);
    }
    return st;
}

TinyAIStatus tai_sched_layer_cpu(const tai_batch *b, int layer) {
    TinyAIModel *m = b->m;
    if (layer < 0 || layer >= m->file->n_layers)
        return tai_error(TINYAI_ERR_INVALID_ARG, "layer %d out of range (0..%d)", layer,
                         m->file->n_layers - 1);
    tai_llama_begin(b); /* the activations start and stay on the host */
    return run_layer(b, layer, 0);
}

/* A device chosen by auto failed running a layer: its layers move to the
 * CPU in every plan, for good, and the model's info says so once. */
static void fall_back(TinyAIModel *m, int d, const char *why) {
    for (int k = 0; k < m->n_plans; k++)
        for (int l = 0; l < m->file->n_layers; l++)
            if (m->plans[k][l] == d) m->plans[k][l] = 0;
    snprintf(m->placement_note, sizeof m->placement_note, "%.280s; its layers run on the CPU now",
             why);
}

TinyAIStatus tai_sched_forward(const tai_batch *b) {
    TinyAIModel *m = b->m;
    for (int l = 0; l < m->file->n_layers; l++) {
        const TinyAIStatus st = tai_sched_layer(b, l);
        if (st == TINYAI_OK) continue;
        /* With auto, a device that fails (an error of the device, not of
         * the input or the file) hands its layers to the CPU and the pass
         * starts again: its earlier layers recompute what they stored. */
        const int d = m->layer_dev[l];
        const char *msg = tinyaiLastErrorMessage();
        if (!m->auto_placed || d == 0 || strncmp(msg, "device ", 7) != 0) return st;
        char why[300];
        snprintf(why, sizeof why, "%s", msg);
        fall_back(m, d, why);
        l = -1;
    }
    tai_llama_finish(b);
    return TINYAI_OK;
}
