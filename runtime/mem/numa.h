/*
 * runtime/mem: NUMA placement of the weight cache and the worker threads,
 * through hwloc. Internal to runtime/ and the layers above it.
 *
 * Three parts:
 *   - a topology handle (tai_numa): this machine, or a synthetic or XML
 *     description of another one, so that the decisions can be tested for
 *     machines we do not have;
 *   - pure decisions on that topology: which core each worker thread runs on
 *     (tai_numa_thread_cores) and where a buffer's memory goes
 *     (tai_numa_place);
 *   - actions, possible only on this machine's own topology: binding the
 *     calling thread to a core, allocating bound memory, and asking the
 *     kernel where an area is bound and where its pages are.
 *
 * Indexes. Nodes and cores are hwloc logical indexes: NUMA node k is the
 * k-th NUMANode object, core i the i-th Core object (the i-th PU on a
 * topology without a core level). Node sets are bitmasks of node indexes
 * (bit k = node k); topologies with more than TAI_NUMA_MAX_NODES nodes are
 * refused at open.
 *
 * Thread safety: after tai_numa_open returns, the handle is read-only except
 * for the flag behind tai_numa_last_alloc_bound (atomic), so every function
 * may be called from any thread; tai_numa_close must not race with the rest.
 */
#ifndef TAI_RUNTIME_MEM_NUMA_H
#define TAI_RUNTIME_MEM_NUMA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <tinyai/status.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TAI_NUMA_MAX_NODES 64

typedef struct tai_numa tai_numa;

/* ---- Topology ----------------------------------------------------------- */

/* Loads a topology:
 *   desc NULL               this machine (the cores and nodes this process
 *                           is allowed to use);
 *   "synthetic:<string>"    an hwloc synthetic description, e.g.
 *                           "synthetic:pack:2 numa:1 core:4 pu:2";
 *   "xml:<path>"            an hwloc XML file (lstopo --of xml, or
 *                           hwloc_topology_export_xml).
 * Only the first can bind threads or memory (tai_numa_can_bind).
 * Errors: INVALID_ARG (out NULL, unknown prefix, a synthetic string hwloc
 * rejects, a malformed XML file), IO (the XML file cannot be read; the
 * message names the path and the reason), UNSUPPORTED (more than
 * TAI_NUMA_MAX_NODES nodes, or no core at all), NOMEM, INTERNAL (hwloc
 * failed to load this machine). The caller frees *out with tai_numa_close. */
TinyAIStatus tai_numa_open(const char *desc, tai_numa **out);
void tai_numa_close(tai_numa *numa); /* accepts NULL */

/* True only for this machine's topology (hwloc_topology_is_thissystem):
 * the binding and allocation functions act only then. */
bool tai_numa_can_bind(const tai_numa *numa);
int tai_numa_node_count(const tai_numa *numa); /* >= 1 */
int tai_numa_core_count(const tai_numa *numa); /* >= 1 */
/* Cores of node `node` (0 for a memory-only node), -1 for a bad index. */
int tai_numa_node_cores(const tai_numa *numa, int node);
/* The node of core `core`: the lowest-indexed node whose CPUs include the
 * core's (a node of plain memory, not a memory-side cache or a CPU-less
 * node). -1 for a bad index. */
int tai_numa_core_node(const tai_numa *numa, int core);
/* One line, e.g. "1 NUMA node, 2 cores" or
 * "2 NUMA nodes, 8 cores (4+4), synthetic". Borrowed: valid until
 * tai_numa_close. */
const char *tai_numa_describe(const tai_numa *numa);

/* ---- Worker threads ----------------------------------------------------- */

/* Fills cores[0..n_threads) with the core each worker thread should run on.
 * Threads stay near their memory: if one node has at least n_threads cores,
 * every thread goes to the lowest-indexed such node. Otherwise nodes are
 * taken whole in order of decreasing core count (ties: lower index first),
 * so the threads span as few nodes as possible. Within a node, cores go in
 * index order (neighbours share caches). With more threads than cores the
 * list wraps around: thread i gets the core of thread i mod (cores). Each
 * core is a physical core, so SMT siblings are not used for a second worker
 * before every core has one. Errors: INVALID_ARG (NULL, n_threads < 1). */
TinyAIStatus tai_numa_thread_cores(const tai_numa *numa, int n_threads, int *cores);

/* Binds the calling thread to core `core` (all of its PUs,
 * HWLOC_CPUBIND_THREAD). Typical use: a tai_pool job whose fn(ctx, i, n)
 * binds worker i to cores[i]. Returns OK; INVALID_ARG (NULL, bad index);
 * UNSUPPORTED when the topology is not this machine's or the kernel refuses
 * (the message says why): callers then simply run unbound. */
TinyAIStatus tai_numa_bind_thread(const tai_numa *numa, int core);

/* ---- Placement decisions ------------------------------------------------ */

typedef enum {
    TAI_NUMA_LOCAL = 0,      /* bind to the node holding most threads */
    TAI_NUMA_INTERLEAVE = 1, /* pages spread over the nodes with threads */
    TAI_NUMA_REPLICATE = 2,  /* small hot buffers: one copy per such node */
} tai_numa_policy;

/* "local" / "interleave" / "replicate" ("unknown" for other values);
 * parse is exact and returns -1 for anything else (NULL included). */
const char *tai_numa_policy_name(tai_numa_policy p);
int tai_numa_policy_parse(const char *name);

typedef enum {
    TAI_NUMA_MEMBIND_BIND = 0,       /* each copy on one node */
    TAI_NUMA_MEMBIND_INTERLEAVE = 1, /* one copy, pages round-robin on `nodes` */
} tai_numa_membind;

typedef struct {
    tai_numa_policy policy;   /* the policy applied, after the fallbacks */
    tai_numa_membind membind;
    uint64_t nodes;           /* BIND: the copies' nodes; INTERLEAVE: the set */
    int n_copies;             /* >= 1 */
    /* BIND: copy c lives on node copy_node[c], in increasing node order.
     * INTERLEAVE: copy_node[0] is -1 (no single node). */
    int copy_node[TAI_NUMA_MAX_NODES];
} tai_numa_placement;

/*
 * Decides where a buffer of `bytes` used by threads running on
 * thread_cores[0..n_threads) goes. Pure: it looks only at the topology and
 * its arguments.
 *   LOCAL:      bind to the node holding most of the threads (ties: the
 *               lowest index).
 *   INTERLEAVE: interleave over the nodes that hold threads; when they are
 *               all on one node this is LOCAL (policy says LOCAL).
 *   REPLICATE:  for a buffer with `hot` set and bytes <= replicate_max_bytes,
 *               one copy bound to each node that holds threads (each thread
 *               reads the copy on its node: tai_numa_placement_copy);
 *               otherwise, or when the threads are all on one node, LOCAL.
 *               Replication multiplies the memory used, so it is kept for
 *               the small layers read by every thread at every token.
 * On a single-node topology every policy gives node 0, one copy (LOCAL).
 * Errors: INVALID_ARG (NULL, n_threads < 1, a core index out of range, an
 * unknown policy); *out is then unchanged.
 */
TinyAIStatus tai_numa_place(const tai_numa *numa, tai_numa_policy policy,
                            const int *thread_cores, int n_threads, size_t bytes, bool hot,
                            size_t replicate_max_bytes, tai_numa_placement *out);

/* The copy a thread on core `core` should read: the one on the core's node,
 * else copy 0 (a thread the placement was not made for). -1 for NULL or a
 * bad core index. */
int tai_numa_placement_copy(const tai_numa *numa, const tai_numa_placement *p, int core);

/* ---- Memory ------------------------------------------------------------- */

/*
 * Allocates `size` bytes for copy `copy` of placement p: page aligned, with
 * MADV_HUGEPAGE advised (a hint; ignored where the kernel has no transparent
 * huge pages). On this machine the memory comes from hwloc_alloc_membind
 * (BIND to the copy's node, or INTERLEAVE over p->nodes; strict). Where
 * binding is not possible (another topology, or the kernel refuses: ENOSYS,
 * EPERM, ...) it falls back to a plain page-aligned allocation, and
 * tai_numa_last_alloc_bound reports false. Pages are not touched: they are
 * placed by the binding at first touch.
 * Returns NULL with the message set for INVALID_ARG (NULL, size 0, copy out
 * of range, a placement naming nodes this topology lacks) or when memory is
 * exhausted. The caller frees it with tai_numa_free(numa, p, size) on the
 * same handle.
 */
void *tai_numa_alloc(tai_numa *numa, size_t size, const tai_numa_placement *p, int copy);
/* Frees a tai_numa_alloc block; size as allocated. Accepts p NULL. */
void tai_numa_free(tai_numa *numa, void *p, size_t size);
/* Whether the last successful tai_numa_alloc on this handle (from any
 * thread) got bound memory; false before the first. */
bool tai_numa_last_alloc_bound(const tai_numa *numa);

/* The weight cache's allocator callbacks (runtime/cache tai_cache_allocator:
 * alloc = tai_numa_allocator_alloc, free = tai_numa_allocator_free,
 * ctx = a tai_numa_allocator that outlives the cache). */
typedef struct {
    tai_numa *numa;
    tai_numa_placement placement;
    int copy;
} tai_numa_allocator;
void *tai_numa_allocator_alloc(void *ctx, size_t size);
void tai_numa_allocator_free(void *ctx, void *p, size_t size);

/* Asks the kernel about [p, p + len): *bound_mask gets the nodes the area's
 * memory policy allows (for an area with no policy of its own, every node),
 * *located_mask the nodes its pages are on now (pages never touched are on
 * none). Either output may be NULL. Errors: INVALID_ARG (NULL numa or p,
 * len 0, an address the kernel rejects), UNSUPPORTED (not this machine's
 * topology, or the kernel does not say: ENOSYS, EPERM). */
TinyAIStatus tai_numa_area_nodes(const tai_numa *numa, const void *p, size_t len,
                                 uint64_t *bound_mask, uint64_t *located_mask);

#ifdef __cplusplus
}
#endif

#endif /* TAI_RUNTIME_MEM_NUMA_H */
