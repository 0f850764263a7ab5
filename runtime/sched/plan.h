/*
 * runtime/sched: the dependency planner under the forward scheduler. Pure:
 * it takes layers, their dependencies and the sizes of their outputs, and
 * gives back an execution order, the lifetime of every output, the bytes
 * live at each step, the peak, and an offset for every output inside one
 * activation arena. It does no I/O, runs nothing and owns only its tables.
 *
 * Input. tai_plan_add(plan, layer, depends_on, dep_type, output_size) records
 * that `layer` exists, that its output activations take `output_size` bytes,
 * and (unless dep_type is TAI_DEP_NONE) that it reads the output of
 * `depends_on`. A layer may be added several times, once per dependency (a
 * residual block: layer 3 after layer 2 and also reading layer 1). The
 * dependency type is recorded for the scheduler; the planner treats every
 * type alike, as an edge "depends_on runs before layer, and its output stays
 * live until layer has run".
 *
 * Algorithm (tai_plan_prepare).
 *   1. Checks: every layer index is below the caller's limit (the model's
 *      layer count) and every depends_on names a layer that was added.
 *   2. Order: Kahn's algorithm. A layer is ready when all of its
 *      dependencies have run; among the ready layers the one added first
 *      runs next. The order is therefore deterministic, and follows the
 *      order of addition wherever the dependencies allow it (a sequential
 *      chain added in order runs in that order). If layers remain that never
 *      become ready, they contain a cycle; the planner walks dependencies
 *      from the first such layer until one repeats and reports that cycle.
 *   3. Lifetimes: the output of the layer run at step s is live from s to
 *      the last step of a layer that depends on it. An output no layer
 *      depends on is an output of the whole pass and stays live until the
 *      last step.
 *   4. Memory: the bytes of step t are the sizes of all outputs live at t,
 *      including the one being produced (inputs and output coexist while a
 *      layer runs). The peak is the largest step.
 *   5. Arena offsets: greedy by size, as TensorFlow Lite Micro's
 *      GreedyMemoryPlanner. Outputs are taken largest first (ties: earlier
 *      step first); each goes to the lowest TAI_PLAN_ALIGN-aligned offset
 *      at which it overlaps no already placed output whose lifetime overlaps
 *      its own. The arena is the highest end, rounded up to TAI_PLAN_ALIGN.
 *      It is at least the peak (all outputs live at the peak step are
 *      disjoint in it) and at most the sum of the sizes each rounded up to
 *      TAI_PLAN_ALIGN (every output fits just above all conflicting ones).
 *   Costs: O(L log L + E) for the order, O(L^2) for the offsets, with L
 *   layers and E dependencies.
 *
 * Errors are TinyAIStatus values with a message in tinyaiLastErrorMessage()
 * (core/error.h). A failing call leaves the plan as it was, except
 * that a failing tai_plan_prepare leaves it unprepared.
 *
 * Thread safety: none inside. Calls that change a plan need exclusive
 * access; the const accessors may run on several threads at once while no
 * thread changes the plan.
 */
#ifndef TAI_RUNTIME_SCHED_PLAN_H
#define TAI_RUNTIME_SCHED_PLAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <tinyai/status.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Dependency types, with the values of the specification's TINYAI_DEP_*. */
typedef enum {
    TAI_DEP_NONE = 0,       /* no dependency: depends_on must be -1 */
    TAI_DEP_SEQUENTIAL = 1, /* after the previous layer */
    TAI_DEP_RESIDUAL = 2,   /* reads an earlier layer's output (skip path) */
    TAI_DEP_ATTENTION = 3,  /* attention pattern */
} tai_dep_type;

/* Alignment of every arena offset and of the arena size, in bytes. */
#define TAI_PLAN_ALIGN 64

/* tai_plan_output_offset's answer when there is none. */
#define TAI_PLAN_NO_OFFSET SIZE_MAX

typedef struct tai_plan tai_plan;

/* An empty plan. Fails only with TINYAI_ERR_NOMEM (or INVALID_ARG for a NULL
 * out). The caller frees it with tai_plan_destroy. */
TinyAIStatus tai_plan_create(tai_plan **out);
void tai_plan_destroy(tai_plan *plan); /* accepts NULL */

/* Adds `layer` (>= 0) with one dependency, or none when dep_type is
 * TAI_DEP_NONE and depends_on is -1. output_size: bytes of the layer's
 * output activations (0 allowed: it takes no arena space).
 * Errors (TINYAI_ERR_INVALID_ARG, plan unchanged): NULL plan; layer < 0;
 * depends_on < -1; dep_type not a tai_dep_type; TAI_DEP_NONE with a
 * dependency or another type without one; depends_on == layer; the layer
 * added before with a different output_size; the same (layer, depends_on)
 * pair added before with a different type. The same pair with the same type
 * again is accepted and changes nothing. depends_on need not have been added
 * yet: tai_plan_prepare checks that. NOMEM if the tables cannot grow (RANGE
 * past INT_MAX layers or dependencies of one layer).
 * A successful add leaves the plan unprepared. */
TinyAIStatus tai_plan_add(tai_plan *plan, int layer, int depends_on, int dep_type,
                          size_t output_size);

/* Computes order, lifetimes, memory and offsets (see the top of this file).
 * n_layers_limit: every layer index must be below it; -1 for no limit.
 * Errors, the plan then unprepared:
 *   INVALID_ARG  NULL plan, limit < -1, a layer index >= limit ("layer 40
 *                is out of range: the model has 32 layers"), a dependency
 *                on a layer never added ("layer 4 depends on layer 7, which
 *                is not in the schedule"), or a cycle ("dependency cycle:
 *                1 -> 2 -> 3 -> 1", where a -> b means b depends on a,
 *                starting at the cycle's smallest layer index);
 *   RANGE        a byte count does not fit in size_t;
 *   NOMEM.
 * An empty plan prepares to zero steps, zero peak and zero arena. */
TinyAIStatus tai_plan_prepare(tai_plan *plan, int n_layers_limit);

/* Whether the last tai_plan_prepare succeeded and nothing was added since. */
bool tai_plan_is_prepared(const tai_plan *plan);

/* Distinct layers added (prepared or not). */
int tai_plan_layer_count(const tai_plan *plan);

/* Dependencies of `layer`, in the order they were added: the count (-1 for a
 * layer never added), and the i-th one's layer index (-1 when i is out of
 * range) with its type in *dep_type when dep_type is not NULL. Available
 * before prepare. */
int tai_plan_dep_count(const tai_plan *plan, int layer);
int tai_plan_dep(const tai_plan *plan, int layer, int i, int *dep_type);

/* Output bytes of `layer` as added; 0 for a layer never added. */
size_t tai_plan_output_size(const tai_plan *plan, int layer);

/* The rest answer only for a prepared plan; otherwise (or for an unknown
 * layer or step) they give 0, -1 or TAI_PLAN_NO_OFFSET as stated. */

/* Number of steps: one per layer. 0 when unprepared. */
int tai_plan_step_count(const tai_plan *plan);
/* The layer run at `step`, or -1. */
int tai_plan_step_layer(const tai_plan *plan, int step);
/* The step at which `layer` runs, or -1. */
int tai_plan_layer_step(const tai_plan *plan, int layer);
/* The last step during which `layer`'s output is live (its own step at
 * least; step_count - 1 for an output of the pass), or -1. */
int tai_plan_last_use(const tai_plan *plan, int layer);
/* Bytes of the outputs live during `step`, or 0. */
size_t tai_plan_step_bytes(const tai_plan *plan, int step);
/* The largest tai_plan_step_bytes, or 0. */
size_t tai_plan_peak_bytes(const tai_plan *plan);
/* Bytes of an arena holding every output at its offset, or 0. */
size_t tai_plan_arena_bytes(const tai_plan *plan);
/* Offset of `layer`'s output in the arena (a multiple of TAI_PLAN_ALIGN), or
 * TAI_PLAN_NO_OFFSET. */
size_t tai_plan_output_offset(const tai_plan *plan, int layer);

/* Whether two outputs with overlapping lifetimes share arena bytes: never
 * true for a plan tai_plan_prepare made; a check for tests, like TFLM's
 * DoAnyBuffersOverlap. O(L^2). false for an unprepared plan. */
bool tai_plan_buffers_overlap(const tai_plan *plan);

#ifdef __cplusplus
}
#endif

#endif /* TAI_RUNTIME_SCHED_PLAN_H */
