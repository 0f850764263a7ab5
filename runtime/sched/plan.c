/*
 * runtime/sched: the dependency planner (plan.h): layer table, Kahn's order,
 * output lifetimes, bytes per step and greedy arena offsets.
 */
#include "runtime/sched/plan.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/liveplan.h"

typedef struct {
    int layer;
    size_t size;
    int *deps;         /* layer indices, in the order they were added */
    unsigned char *types; /* tai_dep_type of each dependency */
    int n_deps, cap_deps;
    /* Results of the last successful prepare. */
    int step;
    int last;
    size_t offset;
} node;

struct tai_plan {
    node *nodes; /* in order of first addition: a node's index is its "slot" */
    int n, cap;
    /* Layer index -> slot: open addressing with linear probing, -1 empty,
     * at most half full. Layer indices are arbitrary ints, so a direct
     * table indexed by layer could be huge. */
    int *map;
    size_t map_cap; /* a power of two, or 0 */
    bool prepared;
    int *order;         /* step -> slot */
    size_t *step_bytes; /* step -> bytes live */
    size_t peak, arena;
};

static size_t hash_layer(int layer, size_t mask) {
    return ((size_t)(unsigned)layer * 2654435761u) & mask;
}

static int find_slot(const tai_plan *p, int layer) {
    if (p->map_cap == 0) return -1;
    size_t mask = p->map_cap - 1;
    for (size_t h = hash_layer(layer, mask);; h = (h + 1) & mask) {
        int s = p->map[h];
        if (s < 0) return -1;
        if (p->nodes[s].layer == layer) return s;
    }
}

static void map_put(int *map, size_t cap, int layer, int slot) {
    size_t mask = cap - 1;
    size_t h = hash_layer(layer, mask);
    while (map[h] >= 0) h = (h + 1) & mask;
    map[h] = slot;
}

/* Makes room for one more node in both tables; changes nothing visible. */
static TinyAIStatus reserve_node(tai_plan *p) {
    if (p->n == INT_MAX) return tai_error(TINYAI_ERR_RANGE, "too many layers in the schedule");
    if (p->n == p->cap) {
        int cap = p->cap ? (p->cap > INT_MAX / 2 ? INT_MAX : p->cap * 2) : 16;
        node *nodes = realloc(p->nodes, (size_t)cap * sizeof *nodes);
        if (!nodes) return tai_error(TINYAI_ERR_NOMEM, "schedule: out of memory");
        p->nodes = nodes;
        p->cap = cap;
    }
    if ((size_t)(p->n + 1) * 2 > p->map_cap) {
        size_t cap = p->map_cap ? p->map_cap * 2 : 32;
        int *map = malloc(cap * sizeof *map);
        if (!map) return tai_error(TINYAI_ERR_NOMEM, "schedule: out of memory");
        memset(map, 0xff, cap * sizeof *map); /* every entry -1 */
        for (int s = 0; s < p->n; s++) map_put(map, cap, p->nodes[s].layer, s);
        free(p->map);
        p->map = map;
        p->map_cap = cap;
    }
    return TINYAI_OK;
}

static TinyAIStatus reserve_dep(node *nd) {
    if (nd->n_deps < nd->cap_deps) return TINYAI_OK;
    if (nd->cap_deps > INT_MAX / 2)
        return tai_error(TINYAI_ERR_RANGE, "layer %d: too many dependencies", nd->layer);
    int cap = nd->cap_deps ? nd->cap_deps * 2 : 2;
    int *deps = realloc(nd->deps, (size_t)cap * sizeof *deps);
    if (!deps) return tai_error(TINYAI_ERR_NOMEM, "schedule: out of memory");
    nd->deps = deps;
    unsigned char *types = realloc(nd->types, (size_t)cap);
    if (!types) return tai_error(TINYAI_ERR_NOMEM, "schedule: out of memory");
    nd->types = types;
    nd->cap_deps = cap;
    return TINYAI_OK;
}

TinyAIStatus tai_plan_create(tai_plan **out) {
    if (!out) return tai_error(TINYAI_ERR_INVALID_ARG, "tai_plan_create: NULL out");
    *out = calloc(1, sizeof **out);
    if (!*out) return tai_error(TINYAI_ERR_NOMEM, "schedule: out of memory");
    return TINYAI_OK;
}

static void drop_results(tai_plan *p) {
    p->prepared = false;
    free(p->order);
    free(p->step_bytes);
    p->order = NULL;
    p->step_bytes = NULL;
    p->peak = p->arena = 0;
}

void tai_plan_destroy(tai_plan *plan) {
    if (!plan) return;
    for (int s = 0; s < plan->n; s++) {
        free(plan->nodes[s].deps);
        free(plan->nodes[s].types);
    }
    free(plan->nodes);
    free(plan->map);
    drop_results(plan);
    free(plan);
}

static const char *dep_name(int t) {
    switch (t) {
    case TAI_DEP_NONE: return "none";
    case TAI_DEP_SEQUENTIAL: return "sequential";
    case TAI_DEP_RESIDUAL: return "residual";
    case TAI_DEP_ATTENTION: return "attention";
    }
    return "?";
}

TinyAIStatus tai_plan_add(tai_plan *plan, int layer, int depends_on, int dep_type,
                          size_t output_size) {
    if (!plan) return tai_error(TINYAI_ERR_INVALID_ARG, "add layer: NULL schedule");
    if (layer < 0)
        return tai_error(TINYAI_ERR_INVALID_ARG, "add layer: layer index %d is negative", layer);
    if (depends_on < -1)
        return tai_error(TINYAI_ERR_INVALID_ARG,
                         "add layer %d: dependency %d is invalid (-1 for none, or a layer index)",
                         layer, depends_on);
    if (dep_type < TAI_DEP_NONE || dep_type > TAI_DEP_ATTENTION)
        return tai_error(TINYAI_ERR_INVALID_ARG, "add layer %d: unknown dependency type %d",
                         layer, dep_type);
    if (dep_type == TAI_DEP_NONE && depends_on != -1)
        return tai_error(TINYAI_ERR_INVALID_ARG,
                         "add layer %d: dependency type none with a dependency on layer %d "
                         "(use -1, or a sequential/residual/attention dependency)",
                         layer, depends_on);
    if (dep_type != TAI_DEP_NONE && depends_on == -1)
        return tai_error(TINYAI_ERR_INVALID_ARG,
                         "add layer %d: %s dependency without a layer to depend on", layer,
                         dep_name(dep_type));
    if (depends_on == layer)
        return tai_error(TINYAI_ERR_INVALID_ARG, "add layer %d: a layer cannot depend on itself",
                         layer);

    int s = find_slot(plan, layer);
    if (s >= 0) {
        node *nd = &plan->nodes[s];
        if (nd->size != output_size)
            return tai_error(TINYAI_ERR_INVALID_ARG,
                             "add layer %d: output size %zu bytes differs from the %zu bytes "
                             "it was added with",
                             layer, output_size, nd->size);
        if (depends_on >= 0) {
            for (int i = 0; i < nd->n_deps; i++) {
                if (nd->deps[i] != depends_on) continue;
                if (nd->types[i] != dep_type)
                    return tai_error(TINYAI_ERR_INVALID_ARG,
                                     "add layer %d: dependency on layer %d added as %s, "
                                     "now as %s",
                                     layer, depends_on, dep_name(nd->types[i]),
                                     dep_name(dep_type));
                plan->prepared = false;
                return TINYAI_OK; /* the same edge again */
            }
            TinyAIStatus st = reserve_dep(nd);
            if (st != TINYAI_OK) return st;
            nd->deps[nd->n_deps] = depends_on;
            nd->types[nd->n_deps] = (unsigned char)dep_type;
            nd->n_deps++;
        }
        plan->prepared = false;
        return TINYAI_OK;
    }

    TinyAIStatus st = reserve_node(plan);
    if (st != TINYAI_OK) return st;
    node nd = {.layer = layer, .size = output_size, .step = -1, .last = -1,
               .offset = TAI_PLAN_NO_OFFSET};
    if (depends_on >= 0) {
        st = reserve_dep(&nd);
        if (st != TINYAI_OK) {
            free(nd.deps);
            free(nd.types);
            return st;
        }
        nd.deps[0] = depends_on;
        nd.types[0] = (unsigned char)dep_type;
        nd.n_deps = 1;
    }
    plan->nodes[plan->n] = nd;
    map_put(plan->map, plan->map_cap, layer, plan->n);
    plan->n++;
    plan->prepared = false;
    return TINYAI_OK;
}

/* Min-heap of slots: the ready layer added first comes out first. */
static void heap_push(int *h, int *len, int v) {
    int i = (*len)++;
    while (i > 0) {
        int parent = (i - 1) / 2;
        if (h[parent] <= v) break;
        h[i] = h[parent];
        i = parent;
    }
    h[i] = v;
}

static int heap_pop(int *h, int *len) {
    int top = h[0];
    int v = h[--(*len)];
    int i = 0;
    for (;;) {
        int c = 2 * i + 1;
        if (c >= *len) break;
        if (c + 1 < *len && h[c + 1] < h[c]) c++;
        if (v <= h[c]) break;
        h[i] = h[c];
        i = c;
    }
    if (*len > 0) h[i] = v;
    return top;
}

/* Called when Kahn's algorithm stops short: every layer not emitted has a
 * dependency not emitted, so following such dependencies from any of them
 * must come back to a layer already on the path. pos[] must be -1 for every
 * slot on entry; path[] has room for n slots. */
static TinyAIStatus report_cycle(const tai_plan *p, const int *dep_slot, const size_t *dep_off,
                                 const bool *done, int *pos, int *path) {
    int cur = 0;
    while (done[cur]) cur++;
    int len = 0;
    for (;;) {
        pos[cur] = len;
        path[len++] = cur;
        int next = -1;
        for (size_t e = dep_off[cur]; e < dep_off[cur + 1]; e++) {
            if (!done[dep_slot[e]]) {
                next = dep_slot[e];
                break;
            }
        }
        if (next < 0)
            return tai_error(TINYAI_ERR_INTERNAL, "schedule: cycle search lost its way");
        if (pos[next] >= 0) {
            cur = next;
            break;
        }
        cur = next;
    }
    /* path[pos[cur]..len-1] is the cycle, each entry depending on the next.
     * Printed the other way round (a -> b: b depends on a), starting at the
     * smallest layer index. */
    int first = pos[cur];
    int clen = len - first;
    int start = 0;
    for (int i = 1; i < clen; i++)
        if (p->nodes[path[first + i]].layer < p->nodes[path[first + start]].layer) start = i;
    char msg[600];
    size_t used = (size_t)snprintf(msg, sizeof msg, "dependency cycle: %d",
                                   p->nodes[path[first + start]].layer);
    for (int k = 1; k < clen; k++) {
        int i = ((start - k) % clen + clen) % clen;
        if (used + 40 > sizeof msg) {
            used += (size_t)snprintf(msg + used, sizeof msg - used, " -> ...");
            break;
        }
        used += (size_t)snprintf(msg + used, sizeof msg - used, " -> %d",
                                 p->nodes[path[first + i]].layer);
    }
    snprintf(msg + used, sizeof msg - used, " -> %d", p->nodes[path[first + start]].layer);
    return tai_error(TINYAI_ERR_INVALID_ARG, "%s", msg);
}

static bool lifetimes_overlap(const node *a, const node *b) {
    return a->step <= b->last && b->step <= a->last;
}

/* Step 5 of plan.h: greedy placement, largest first (core/liveplan.h). */
static TinyAIStatus place(tai_plan *p, tai_live_buf *items, int *tmp) {
    for (int s = 0; s < p->n; s++)
        items[s] = (tai_live_buf){.size = p->nodes[s].size, .align = TAI_PLAN_ALIGN,
                                  .first = p->nodes[s].step, .last = p->nodes[s].last};
    if (tai_live_place(items, p->n, TAI_PLAN_ALIGN, &p->arena, tmp) != 0)
        return tai_error(TINYAI_ERR_RANGE, "schedule: arena offsets overflow");
    for (int s = 0; s < p->n; s++) p->nodes[s].offset = items[s].offset;
    return TINYAI_OK;
}

TinyAIStatus tai_plan_prepare(tai_plan *plan, int n_layers_limit) {
    if (!plan) return tai_error(TINYAI_ERR_INVALID_ARG, "prepare: NULL schedule");
    drop_results(plan);
    if (n_layers_limit < -1)
        return tai_error(TINYAI_ERR_INVALID_ARG, "prepare: layer limit %d is invalid (-1: none)",
                         n_layers_limit);
    const int n = plan->n;
    node *nodes = plan->nodes;
    if (n_layers_limit >= 0) {
        for (int s = 0; s < n; s++)
            if (nodes[s].layer >= n_layers_limit)
                return tai_error(TINYAI_ERR_INVALID_ARG,
                                 "layer %d is out of range: the model has %d layer%s",
                                 nodes[s].layer, n_layers_limit, n_layers_limit == 1 ? "" : "s");
    }
    size_t n_edges = 0;
    for (int s = 0; s < n; s++) {
        for (int i = 0; i < nodes[s].n_deps; i++)
            if (find_slot(plan, nodes[s].deps[i]) < 0)
                return tai_error(TINYAI_ERR_INVALID_ARG,
                                 "layer %d depends on layer %d, which is not in the schedule",
                                 nodes[s].layer, nodes[s].deps[i]);
        n_edges += (size_t)nodes[s].n_deps;
    }
    if (n == 0) {
        plan->prepared = true;
        return TINYAI_OK;
    }

    TinyAIStatus st = TINYAI_OK;
    size_t nn = (size_t)n;
    size_t *dep_off = calloc(nn + 1, sizeof *dep_off); /* CSR: slot -> its dependencies */
    int *dep_slot = calloc(n_edges + 1, sizeof *dep_slot);
    size_t *rev_off = calloc(nn + 2, sizeof *rev_off); /* CSR: slot -> its dependents */
    int *rev = calloc(n_edges + 1, sizeof *rev);
    int *indeg = calloc(nn, sizeof *indeg);
    int *heap = calloc(nn, sizeof *heap);
    bool *done = calloc(nn, sizeof *done);
    size_t *end_sum = calloc(nn, sizeof *end_sum);
    tai_live_buf *items = calloc(nn, sizeof *items);
    int *placed = calloc(2 * nn, sizeof *placed);
    int *order = calloc(nn, sizeof *order);
    size_t *step_bytes = calloc(nn, sizeof *step_bytes);
    if (!dep_off || !dep_slot || !rev_off || !rev || !indeg || !heap || !done || !end_sum ||
        !items || !placed || !order || !step_bytes) {
        st = tai_error(TINYAI_ERR_NOMEM, "schedule: out of memory");
        goto fail;
    }

    for (int s = 0; s < n; s++) {
        dep_off[s + 1] = dep_off[s] + (size_t)nodes[s].n_deps;
        indeg[s] = nodes[s].n_deps; /* dependencies are distinct per layer */
        for (int i = 0; i < nodes[s].n_deps; i++) {
            int d = find_slot(plan, nodes[s].deps[i]);
            dep_slot[dep_off[s] + (size_t)i] = d;
            rev_off[d + 2]++;
        }
    }
    /* Counting sort into rev. With d's count at rev_off[d + 2], the prefix
     * sums leave d's start in rev_off[d + 1], used as d's fill cursor; once
     * filled it holds d's end, while rev_off[d] then holds d's start (the
     * end of d - 1), so d's dependents are rev[rev_off[d] .. rev_off[d + 1]). */
    for (int s = 0; s < n; s++) rev_off[s + 2] += rev_off[s + 1];
    for (int s = 0; s < n; s++)
        for (size_t e = dep_off[s]; e < dep_off[s + 1]; e++) rev[rev_off[dep_slot[e] + 1]++] = s;

    /* Kahn's algorithm. */
    int heap_len = 0, steps = 0;
    for (int s = 0; s < n; s++)
        if (indeg[s] == 0) heap_push(heap, &heap_len, s);
    while (heap_len > 0) {
        int s = heap_pop(heap, &heap_len);
        done[s] = true;
        nodes[s].step = steps;
        order[steps++] = s;
        for (size_t e = rev_off[s]; e < rev_off[s + 1]; e++)
            if (--indeg[rev[e]] == 0) heap_push(heap, &heap_len, rev[e]);
    }
    if (steps < n) {
        /* indeg and heap are free now: reuse them as the search's pos and path. */
        for (int s = 0; s < n; s++) indeg[s] = -1;
        st = report_cycle(plan, dep_slot, dep_off, done, indeg, heap);
        goto fail;
    }

    /* Lifetimes and bytes per step. */
    for (int s = 0; s < n; s++) {
        int last = rev_off[s] == rev_off[s + 1] ? n - 1 : nodes[s].step;
        for (size_t e = rev_off[s]; e < rev_off[s + 1]; e++)
            if (nodes[rev[e]].step > last) last = nodes[rev[e]].step;
        nodes[s].last = last;
        /* A subset of the outputs live at step `last`: if this overflows,
         * so would that step's bytes. */
        if (nodes[s].size > SIZE_MAX - end_sum[last]) goto overflow;
        end_sum[last] += nodes[s].size;
    }
    size_t live = 0, peak = 0;
    for (int t = 0; t < n; t++) {
        size_t sz = nodes[order[t]].size;
        if (sz > SIZE_MAX - live) goto overflow;
        live += sz;
        step_bytes[t] = live;
        if (live > peak) peak = live;
        live -= end_sum[t];
    }

    st = place(plan, items, placed);
    if (st != TINYAI_OK) goto fail;

    plan->order = order;
    plan->step_bytes = step_bytes;
    plan->peak = peak;
    plan->prepared = true;
    order = NULL;
    step_bytes = NULL;
    goto out;

overflow:
    st = tai_error(TINYAI_ERR_RANGE, "schedule: activation bytes do not fit in size_t");
fail:
    plan->arena = 0;
out:
    free(dep_off);
    free(dep_slot);
    free(rev_off);
    free(rev);
    free(indeg);
    free(heap);
    free(done);
    free(end_sum);
    free(items);
    free(placed);
    free(order);
    free(step_bytes);
    return st;
}

bool tai_plan_is_prepared(const tai_plan *plan) { return plan && plan->prepared; }

int tai_plan_layer_count(const tai_plan *plan) { return plan ? plan->n : 0; }

static const node *lookup(const tai_plan *plan, int layer) {
    if (!plan) return NULL;
    int s = find_slot(plan, layer);
    return s < 0 ? NULL : &plan->nodes[s];
}

static const node *lookup_prepared(const tai_plan *plan, int layer) {
    return plan && plan->prepared ? lookup(plan, layer) : NULL;
}

int tai_plan_dep_count(const tai_plan *plan, int layer) {
    const node *nd = lookup(plan, layer);
    return nd ? nd->n_deps : -1;
}

int tai_plan_dep(const tai_plan *plan, int layer, int i, int *dep_type) {
    const node *nd = lookup(plan, layer);
    if (!nd || i < 0 || i >= nd->n_deps) return -1;
    if (dep_type) *dep_type = nd->types[i];
    return nd->deps[i];
}

size_t tai_plan_output_size(const tai_plan *plan, int layer) {
    const node *nd = lookup(plan, layer);
    return nd ? nd->size : 0;
}

int tai_plan_step_count(const tai_plan *plan) {
    return plan && plan->prepared ? plan->n : 0;
}

int tai_plan_step_layer(const tai_plan *plan, int step) {
    if (step < 0 || step >= tai_plan_step_count(plan)) return -1;
    return plan->nodes[plan->order[step]].layer;
}

int tai_plan_layer_step(const tai_plan *plan, int layer) {
    const node *nd = lookup_prepared(plan, layer);
    return nd ? nd->step : -1;
}

int tai_plan_last_use(const tai_plan *plan, int layer) {
    const node *nd = lookup_prepared(plan, layer);
    return nd ? nd->last : -1;
}

size_t tai_plan_step_bytes(const tai_plan *plan, int step) {
    if (step < 0 || step >= tai_plan_step_count(plan)) return 0;
    return plan->step_bytes[step];
}

size_t tai_plan_peak_bytes(const tai_plan *plan) {
    return plan && plan->prepared ? plan->peak : 0;
}

size_t tai_plan_arena_bytes(const tai_plan *plan) {
    return plan && plan->prepared ? plan->arena : 0;
}

size_t tai_plan_output_offset(const tai_plan *plan, int layer) {
    const node *nd = lookup_prepared(plan, layer);
    return nd ? nd->offset : TAI_PLAN_NO_OFFSET;
}

bool tai_plan_buffers_overlap(const tai_plan *plan) {
    if (!plan || !plan->prepared) return false;
    for (int i = 0; i < plan->n; i++) {
        const node *a = &plan->nodes[i];
        if (a->size == 0) continue;
        for (int j = i + 1; j < plan->n; j++) {
            const node *b = &plan->nodes[j];
            if (b->size == 0 || !lifetimes_overlap(a, b)) continue;
            /* a->offset + a->size cannot overflow: prepare checked it. */
            if (a->offset < b->offset + b->size && b->offset < a->offset + a->size) return true;
        }
    }
    return false;
}
