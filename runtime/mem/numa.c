/*
 * runtime/mem/numa.c: NUMA topology, thread-to-core and buffer-to-node
 * decisions, thread binding and bound allocation over hwloc (layer:
 * runtime). See numa.h for the rules.
 *
 * At open the topology is reduced to two small tables (cores per node, node
 * per core), so the decisions never walk hwloc objects; hwloc is consulted
 * again only for the cpusets and nodesets the actions need.
 */
#include "runtime/mem/numa.h"

#include <errno.h>
#include <fcntl.h>
#include <hwloc.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/error.h"
#include "core/thread.h"

struct tai_numa {
    hwloc_topology_t topo;
    bool thissystem;
    hwloc_obj_type_t core_type; /* HWLOC_OBJ_CORE, or PU without a core level */
    int n_nodes;
    int n_cores;
    int *core_node;             /* n_cores */
    int node_cores[TAI_NUMA_MAX_NODES];
    atomic_bool last_bound;
    char desc[512];
};

/* ---- Topology ----------------------------------------------------------- */

static TinyAIStatus load_desc(hwloc_topology_t topo, const char *desc) {
    static const char syn[] = "synthetic:";
    static const char xml[] = "xml:";
    if (desc == NULL) return TINYAI_OK;
    if (strncmp(desc, syn, sizeof syn - 1) == 0) {
        const char *s = desc + sizeof syn - 1;
        if (hwloc_topology_set_synthetic(topo, s) < 0)
            return tai_error(TINYAI_ERR_INVALID_ARG,
                             "numa: hwloc rejects the synthetic topology \"%s\"", s);
        return TINYAI_OK;
    }
    if (strncmp(desc, xml, sizeof xml - 1) == 0) {
        const char *path = desc + sizeof xml - 1;
        /* Reaching the file is checked here, parsing it by hwloc: with its
         * libxml2 plugin hwloc parses in hwloc_topology_set_xml, with only
         * its built-in parser in hwloc_topology_load, and it sets errno
         * differently in each, so its errno cannot tell the two apart. */
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            return tai_error(TINYAI_ERR_IO, "numa: cannot read topology XML %s: %s", path,
                             strerror(errno));
        close(fd);
        if (hwloc_topology_set_xml(topo, path) < 0)
            return tai_error(TINYAI_ERR_INVALID_ARG, "numa: %s is not an hwloc XML topology",
                             path);
        return TINYAI_OK;
    }
    return tai_error(TINYAI_ERR_INVALID_ARG,
                     "numa: unknown topology \"%s\" (expected \"synthetic:<hwloc synthetic "
                     "description>\" or \"xml:<path>\")",
                     desc);
}

static void describe(tai_numa *n, const char *desc) {
    size_t cap = sizeof n->desc, len = 0;
    int w = snprintf(n->desc, cap, "%d NUMA node%s, %d core%s", n->n_nodes,
                     n->n_nodes == 1 ? "" : "s", n->n_cores, n->n_cores == 1 ? "" : "s");
    len = w > 0 ? (size_t)w : 0;
    for (int k = 0; n->n_nodes > 1 && k < n->n_nodes && len < cap; k++) {
        w = snprintf(n->desc + len, cap - len, "%s%d%s", k == 0 ? " (" : "+", n->node_cores[k],
                     k == n->n_nodes - 1 ? ")" : "");
        len += w > 0 ? (size_t)w : 0;
    }
    if (desc != NULL && len < cap)
        snprintf(n->desc + len, cap - len, ", %s",
                 strncmp(desc, "xml:", 4) == 0 ? "from XML" : "synthetic");
}

TinyAIStatus tai_numa_open(const char *desc, tai_numa **out) {
    if (out == NULL) return tai_error(TINYAI_ERR_INVALID_ARG, "numa: out is NULL");
    *out = NULL;
    tai_numa *n = calloc(1, sizeof *n);
    if (n == NULL) return tai_error(TINYAI_ERR_NOMEM, "numa: out of memory");
    TinyAIStatus st;
    if (hwloc_topology_init(&n->topo) < 0) {
        free(n);
        return tai_error(TINYAI_ERR_NOMEM, "numa: hwloc_topology_init failed");
    }
    st = load_desc(n->topo, desc);
    if (st != TINYAI_OK) goto fail;
    if (hwloc_topology_load(n->topo) < 0) {
        if (desc != NULL && strncmp(desc, "xml:", 4) == 0)
            st = tai_error(TINYAI_ERR_INVALID_ARG, "numa: %s is not an hwloc XML topology",
                           desc + 4);
        else
            st = tai_error(TINYAI_ERR_INTERNAL, "numa: hwloc could not load the topology: %s",
                           strerror(errno));
        goto fail;
    }
    n->thissystem = hwloc_topology_is_thissystem(n->topo) != 0;

    n->n_nodes = hwloc_get_nbobjs_by_type(n->topo, HWLOC_OBJ_NUMANODE);
    if (n->n_nodes < 1 || n->n_nodes > TAI_NUMA_MAX_NODES) {
        st = tai_error(TINYAI_ERR_UNSUPPORTED, "numa: %d NUMA nodes (1..%d supported)",
                       n->n_nodes, TAI_NUMA_MAX_NODES);
        goto fail;
    }
    /* Some topologies (synthetic ones, a few virtual machines) have no core
     * level; each PU is then a core. */
    n->core_type = HWLOC_OBJ_CORE;
    n->n_cores = hwloc_get_nbobjs_by_type(n->topo, HWLOC_OBJ_CORE);
    if (n->n_cores <= 0) {
        n->core_type = HWLOC_OBJ_PU;
        n->n_cores = hwloc_get_nbobjs_by_type(n->topo, HWLOC_OBJ_PU);
    }
    if (n->n_cores <= 0) {
        st = tai_error(TINYAI_ERR_UNSUPPORTED, "numa: the topology has no cores");
        goto fail;
    }
    n->core_node = calloc((size_t)n->n_cores, sizeof *n->core_node);
    if (n->core_node == NULL) {
        st = tai_error(TINYAI_ERR_NOMEM, "numa: out of memory");
        goto fail;
    }
    for (int c = 0; c < n->n_cores; c++) {
        hwloc_obj_t core = hwloc_get_obj_by_type(n->topo, n->core_type, (unsigned)c);
        int node = -1;
        /* The lowest index whose CPUs contain the core: on machines where
         * several nodes cover the same CPUs (DDR plus high-bandwidth memory)
         * the first is the ordinary memory. CPU-less nodes never match. */
        for (int k = 0; k < n->n_nodes && node < 0; k++) {
            hwloc_obj_t nd = hwloc_get_obj_by_type(n->topo, HWLOC_OBJ_NUMANODE, (unsigned)k);
            if (!hwloc_bitmap_iszero(nd->cpuset) && hwloc_bitmap_isincluded(core->cpuset, nd->cpuset))
                node = k;
        }
        for (int k = 0; k < n->n_nodes && node < 0; k++) {
            hwloc_obj_t nd = hwloc_get_obj_by_type(n->topo, HWLOC_OBJ_NUMANODE, (unsigned)k);
            if (hwloc_bitmap_intersects(core->cpuset, nd->cpuset)) node = k;
        }
        if (node < 0) node = 0; /* hwloc gives every PU a local node; not reached */
        n->core_node[c] = node;
        n->node_cores[node]++;
    }
    atomic_init(&n->last_bound, false);
    describe(n, desc);
    *out = n;
    return TINYAI_OK;
fail:
    hwloc_topology_destroy(n->topo);
    free(n->core_node);
    free(n);
    return st;
}

void tai_numa_close(tai_numa *numa) {
    if (numa == NULL) return;
    hwloc_topology_destroy(numa->topo);
    free(numa->core_node);
    free(numa);
}

bool tai_numa_can_bind(const tai_numa *numa) { return numa != NULL && numa->thissystem; }
int tai_numa_node_count(const tai_numa *numa) { return numa ? numa->n_nodes : 0; }
int tai_numa_core_count(const tai_numa *numa) { return numa ? numa->n_cores : 0; }

int tai_numa_node_cores(const tai_numa *numa, int node) {
    if (numa == NULL || node < 0 || node >= numa->n_nodes) return -1;
    return numa->node_cores[node];
}

int tai_numa_core_node(const tai_numa *numa, int core) {
    if (numa == NULL || core < 0 || core >= numa->n_cores) return -1;
    return numa->core_node[core];
}

const char *tai_numa_describe(const tai_numa *numa) { return numa ? numa->desc : ""; }

/* ---- Worker threads ----------------------------------------------------- */

TinyAIStatus tai_numa_thread_cores(const tai_numa *numa, int n_threads, int *cores) {
    if (numa == NULL || cores == NULL)
        return tai_error(TINYAI_ERR_INVALID_ARG, "numa: thread_cores: NULL argument");
    if (n_threads < 1)
        return tai_error(TINYAI_ERR_INVALID_ARG, "numa: thread_cores: %d threads", n_threads);

    int order[TAI_NUMA_MAX_NODES];
    int n_order = 0;
    for (int k = 0; k < numa->n_nodes; k++) {
        if (numa->node_cores[k] >= n_threads) {
            order[n_order++] = k;
            break;
        }
    }
    if (n_order == 0) {
        /* No node is enough alone: nodes by decreasing core count. Insertion
         * sort, stable, so equal counts keep increasing index order. */
        for (int k = 0; k < numa->n_nodes; k++) {
            if (numa->node_cores[k] == 0) continue;
            int j = n_order++;
            while (j > 0 && numa->node_cores[order[j - 1]] < numa->node_cores[k]) {
                order[j] = order[j - 1];
                j--;
            }
            order[j] = k;
        }
    }
    /* Lay the chosen nodes' cores out once, then deal them to the threads,
     * wrapping when there are more threads than cores. */
    int t = 0;
    for (int o = 0; o < n_order && t < n_threads; o++)
        for (int c = 0; c < numa->n_cores && t < n_threads; c++)
            if (numa->core_node[c] == order[o]) cores[t++] = c;
    for (int used = t; t < n_threads; t++) cores[t] = cores[t % used];
    return TINYAI_OK;
}

TinyAIStatus tai_numa_bind_thread(const tai_numa *numa, int core) {
    if (numa == NULL) return tai_error(TINYAI_ERR_INVALID_ARG, "numa: bind_thread: NULL handle");
    if (core < 0 || core >= numa->n_cores)
        return tai_error(TINYAI_ERR_INVALID_ARG, "numa: core %d out of range (0..%d)", core,
                         numa->n_cores - 1);
    if (!numa->thissystem)
        return tai_error(TINYAI_ERR_UNSUPPORTED,
                         "numa: cannot bind threads on a topology that is not this machine's");
    hwloc_obj_t obj = hwloc_get_obj_by_type(numa->topo, numa->core_type, (unsigned)core);
    tai_thread_note_binding(); /* helper threads started later run on every CPU */
    if (hwloc_set_cpubind(numa->topo, obj->cpuset, HWLOC_CPUBIND_THREAD) < 0)
        return tai_error(TINYAI_ERR_UNSUPPORTED, "numa: binding the thread to core %d failed: %s",
                         core, strerror(errno));
    return TINYAI_OK;
}

/* ---- Placement decisions ------------------------------------------------ */

const char *tai_numa_policy_name(tai_numa_policy p) {
    switch (p) {
    case TAI_NUMA_LOCAL: return "local";
    case TAI_NUMA_INTERLEAVE: return "interleave";
    case TAI_NUMA_REPLICATE: return "replicate";
    }
    return "unknown";
}

int tai_numa_policy_parse(const char *name) {
    if (name == NULL) return -1;
    for (int p = TAI_NUMA_LOCAL; p <= TAI_NUMA_REPLICATE; p++)
        if (strcmp(name, tai_numa_policy_name((tai_numa_policy)p)) == 0) return p;
    return -1;
}

static void bind_to(tai_numa_placement *out, tai_numa_policy policy, uint64_t nodes) {
    memset(out, 0, sizeof *out);
    out->policy = policy;
    out->membind = TAI_NUMA_MEMBIND_BIND;
    out->nodes = nodes;
    for (int k = 0; k < TAI_NUMA_MAX_NODES; k++)
        if (nodes >> k & 1) out->copy_node[out->n_copies++] = k;
}

TinyAIStatus tai_numa_place(const tai_numa *numa, tai_numa_policy policy,
                            const int *thread_cores, int n_threads, size_t bytes, bool hot,
                            size_t replicate_max_bytes, tai_numa_placement *out) {
    if (numa == NULL || thread_cores == NULL || out == NULL)
        return tai_error(TINYAI_ERR_INVALID_ARG, "numa: place: NULL argument");
    if (n_threads < 1)
        return tai_error(TINYAI_ERR_INVALID_ARG, "numa: place: %d threads", n_threads);
    if ((int)policy < TAI_NUMA_LOCAL || (int)policy > TAI_NUMA_REPLICATE)
        return tai_error(TINYAI_ERR_INVALID_ARG, "numa: place: unknown policy %d", (int)policy);
    int per_node[TAI_NUMA_MAX_NODES] = {0};
    uint64_t with_threads = 0;
    for (int t = 0; t < n_threads; t++) {
        int c = thread_cores[t];
        if (c < 0 || c >= numa->n_cores)
            return tai_error(TINYAI_ERR_INVALID_ARG,
                             "numa: place: thread %d is on core %d, out of range (0..%d)", t, c,
                             numa->n_cores - 1);
        per_node[numa->core_node[c]]++;
        with_threads |= UINT64_C(1) << numa->core_node[c];
    }
    int local = 0;
    for (int k = 1; k < numa->n_nodes; k++)
        if (per_node[k] > per_node[local]) local = k;

    bool one_node = (with_threads & (with_threads - 1)) == 0;
    if (policy == TAI_NUMA_INTERLEAVE && !one_node) {
        memset(out, 0, sizeof *out);
        out->policy = TAI_NUMA_INTERLEAVE;
        out->membind = TAI_NUMA_MEMBIND_INTERLEAVE;
        out->nodes = with_threads;
        out->n_copies = 1;
        out->copy_node[0] = -1;
        return TINYAI_OK;
    }
    if (policy == TAI_NUMA_REPLICATE && !one_node && hot && bytes <= replicate_max_bytes) {
        bind_to(out, TAI_NUMA_REPLICATE, with_threads);
        return TINYAI_OK;
    }
    bind_to(out, TAI_NUMA_LOCAL, UINT64_C(1) << local);
    return TINYAI_OK;
}

int tai_numa_placement_copy(const tai_numa *numa, const tai_numa_placement *p, int core) {
    if (numa == NULL || p == NULL || core < 0 || core >= numa->n_cores) return -1;
    if (p->membind != TAI_NUMA_MEMBIND_BIND) return 0;
    for (int c = 0; c < p->n_copies && c < TAI_NUMA_MAX_NODES; c++)
        if (p->copy_node[c] == numa->core_node[core]) return c;
    return 0;
}

/* ---- Memory ------------------------------------------------------------- */

/* The hwloc nodeset (OS indexes) of a mask of logical node indexes. */
static hwloc_nodeset_t nodeset_of(const tai_numa *numa, uint64_t mask) {
    hwloc_nodeset_t set = hwloc_bitmap_alloc();
    if (set == NULL) return NULL;
    for (int k = 0; k < numa->n_nodes; k++) {
        if (!(mask >> k & 1)) continue;
        hwloc_obj_t nd = hwloc_get_obj_by_type(numa->topo, HWLOC_OBJ_NUMANODE, (unsigned)k);
        hwloc_bitmap_or(set, set, nd->nodeset);
    }
    return set;
}

/* The mask of logical node indexes whose OS nodes are in `set`. */
static uint64_t mask_of(const tai_numa *numa, hwloc_const_nodeset_t set) {
    uint64_t mask = 0;
    for (int k = 0; k < numa->n_nodes; k++) {
        hwloc_obj_t nd = hwloc_get_obj_by_type(numa->topo, HWLOC_OBJ_NUMANODE, (unsigned)k);
        if (hwloc_bitmap_intersects(nd->nodeset, set)) mask |= UINT64_C(1) << k;
    }
    return mask;
}

void *tai_numa_alloc(tai_numa *numa, size_t size, const tai_numa_placement *p, int copy) {
    if (numa == NULL || p == NULL) {
        tai_error(TINYAI_ERR_INVALID_ARG, "numa: alloc: NULL argument");
        return NULL;
    }
    if (size == 0) {
        tai_error(TINYAI_ERR_INVALID_ARG, "numa: alloc: size 0");
        return NULL;
    }
    if (copy < 0 || copy >= p->n_copies || copy >= TAI_NUMA_MAX_NODES) {
        tai_error(TINYAI_ERR_INVALID_ARG, "numa: alloc: copy %d of %d", copy, p->n_copies);
        return NULL;
    }
    uint64_t valid = numa->n_nodes == 64 ? UINT64_MAX : (UINT64_C(1) << numa->n_nodes) - 1;
    uint64_t mask;
    hwloc_membind_policy_t policy;
    if (p->membind == TAI_NUMA_MEMBIND_INTERLEAVE) {
        mask = p->nodes;
        policy = HWLOC_MEMBIND_INTERLEAVE;
    } else if (p->membind == TAI_NUMA_MEMBIND_BIND && p->copy_node[copy] >= 0 &&
               p->copy_node[copy] < TAI_NUMA_MAX_NODES) {
        mask = UINT64_C(1) << p->copy_node[copy];
        policy = HWLOC_MEMBIND_BIND;
    } else {
        tai_error(TINYAI_ERR_INVALID_ARG, "numa: alloc: malformed placement");
        return NULL;
    }
    if (mask == 0 || (mask & ~valid) != 0) {
        tai_error(TINYAI_ERR_INVALID_ARG,
                  "numa: alloc: placement names nodes 0x%llx, the topology has %d",
                  (unsigned long long)mask, numa->n_nodes);
        return NULL;
    }

    void *mem = NULL;
    bool bound = false;
    if (numa->thissystem) {
        hwloc_nodeset_t set = nodeset_of(numa, mask);
        if (set == NULL) {
            tai_error(TINYAI_ERR_NOMEM, "numa: alloc: out of memory");
            return NULL;
        }
        /* STRICT: fail rather than hand back memory that silently is not
         * where the placement says, so the fallback below is recorded.
         * NOCPUBIND: never bind the calling thread instead. */
        mem = hwloc_alloc_membind(numa->topo, size, set, policy,
                                  HWLOC_MEMBIND_BYNODESET | HWLOC_MEMBIND_STRICT |
                                      HWLOC_MEMBIND_NOCPUBIND);
        hwloc_bitmap_free(set);
        bound = mem != NULL;
    }
    if (mem == NULL) mem = hwloc_alloc(numa->topo, size);
    if (mem == NULL) {
        tai_error(TINYAI_ERR_NOMEM, "numa: alloc: cannot allocate %zu bytes", size);
        return NULL;
    }
    /* Only whole pages of the block itself: the fallback may come from the
     * heap, where rounding up would advise a neighbour's page. */
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    if (size >= page) (void)madvise(mem, size / page * page, MADV_HUGEPAGE);
    atomic_store(&numa->last_bound, bound);
    return mem;
}

void tai_numa_free(tai_numa *numa, void *p, size_t size) {
    if (numa == NULL || p == NULL) return;
    /* hwloc_free matches both hwloc_alloc_membind and the hwloc_alloc
     * fallback on the same topology. */
    hwloc_free(numa->topo, p, size);
}

bool tai_numa_last_alloc_bound(const tai_numa *numa) {
    return numa != NULL && atomic_load(&numa->last_bound);
}

void *tai_numa_allocator_alloc(void *ctx, size_t size) {
    tai_numa_allocator *a = ctx;
    if (a == NULL) {
        tai_error(TINYAI_ERR_INVALID_ARG, "numa: allocator: NULL context");
        return NULL;
    }
    return tai_numa_alloc(a->numa, size, &a->placement, a->copy);
}

void tai_numa_allocator_free(void *ctx, void *p, size_t size) {
    tai_numa_allocator *a = ctx;
    if (a != NULL) tai_numa_free(a->numa, p, size);
}

static TinyAIStatus area_error(const char *what, int e) {
    if (e == ENOSYS || e == EPERM)
        return tai_error(TINYAI_ERR_UNSUPPORTED, "numa: the kernel does not report %s: %s", what,
                         strerror(e));
    if (e == EFAULT || e == EINVAL || e == ENOMEM)
        return tai_error(TINYAI_ERR_INVALID_ARG, "numa: %s of the area: %s", what, strerror(e));
    return tai_error(TINYAI_ERR_INTERNAL, "numa: %s of the area: %s", what, strerror(e));
}

TinyAIStatus tai_numa_area_nodes(const tai_numa *numa, const void *p, size_t len,
                                 uint64_t *bound_mask, uint64_t *located_mask) {
    if (numa == NULL || p == NULL || len == 0)
        return tai_error(TINYAI_ERR_INVALID_ARG, "numa: area_nodes: NULL area or length 0");
    if (!numa->thissystem)
        return tai_error(TINYAI_ERR_UNSUPPORTED,
                         "numa: cannot query memory on a topology that is not this machine's");
    hwloc_nodeset_t set = hwloc_bitmap_alloc();
    if (set == NULL) return tai_error(TINYAI_ERR_NOMEM, "numa: out of memory");
    TinyAIStatus st = TINYAI_OK;
    if (bound_mask != NULL) {
        hwloc_membind_policy_t policy;
        if (hwloc_get_area_membind(numa->topo, p, len, set, &policy, HWLOC_MEMBIND_BYNODESET) < 0) {
            st = area_error("the memory binding", errno);
            goto done;
        }
        *bound_mask = mask_of(numa, set);
    }
    if (located_mask != NULL) {
        hwloc_bitmap_zero(set);
        if (hwloc_get_area_memlocation(numa->topo, p, len, set, HWLOC_MEMBIND_BYNODESET) < 0) {
            st = area_error("the location", errno);
            goto done;
        }
        *located_mask = mask_of(numa, set);
    }
done:
    hwloc_bitmap_free(set);
    return st;
}
