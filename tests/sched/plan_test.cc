// runtime/sched: the dependency planner on hand-made schedules (a sequential
// chain, the residual example of the specification), malformed ones (cycles,
// unknown layers, bad arguments, limits, size overflow), and random DAGs
// whose order, lifetimes, bytes and offsets are checked by brute force.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

#include <tinyai/status.h>

#include "runtime/sched/plan.h"

namespace {

struct PlanDeleter {
    void operator()(tai_plan *p) const { tai_plan_destroy(p); }
};
using PlanPtr = std::unique_ptr<tai_plan, PlanDeleter>;

PlanPtr Make() {
    tai_plan *p = nullptr;
    EXPECT_EQ(tai_plan_create(&p), TINYAI_OK) << tinyaiLastErrorMessage();
    return PlanPtr(p);
}

void Add(tai_plan *p, int layer, int dep, int type, size_t size) {
    ASSERT_EQ(tai_plan_add(p, layer, dep, type, size), TINYAI_OK)
        << "layer " << layer << " dep " << dep << ": " << tinyaiLastErrorMessage();
}

std::vector<int> Order(const tai_plan *p) {
    std::vector<int> v;
    for (int t = 0; t < tai_plan_step_count(p); t++) v.push_back(tai_plan_step_layer(p, t));
    return v;
}

size_t AlignUp(size_t v) { return (v + TAI_PLAN_ALIGN - 1) / TAI_PLAN_ALIGN * TAI_PLAN_ALIGN; }

TEST(Plan, SequentialChain) {
    PlanPtr p = Make();
    Add(p.get(), 0, -1, TAI_DEP_NONE, 100);
    for (int i = 1; i < 5; i++) Add(p.get(), i, i - 1, TAI_DEP_SEQUENTIAL, 100 * (size_t)(i + 1));
    EXPECT_FALSE(tai_plan_is_prepared(p.get()));
    ASSERT_EQ(tai_plan_prepare(p.get(), -1), TINYAI_OK) << tinyaiLastErrorMessage();
    EXPECT_TRUE(tai_plan_is_prepared(p.get()));
    EXPECT_EQ(Order(p.get()), (std::vector<int>{0, 1, 2, 3, 4}));
    for (int i = 0; i < 5; i++) {
        EXPECT_EQ(tai_plan_layer_step(p.get(), i), i);
        // Read by the next layer; the last one is the pass's output.
        EXPECT_EQ(tai_plan_last_use(p.get(), i), std::min(i + 1, 4));
    }
    // Step t holds the input (layer t-1) and the output (layer t).
    const size_t bytes[5] = {100, 300, 500, 700, 900};
    for (int t = 0; t < 5; t++) EXPECT_EQ(tai_plan_step_bytes(p.get(), t), bytes[t]) << t;
    EXPECT_EQ(tai_plan_peak_bytes(p.get()), 900u);
    // Largest first: 4 at 0; 3 (live with 4) above it at 512; 2 (live with
    // 3 only) fits at 0; 1 (live with 2) at align(300) = 320; 0 (live with
    // 1) fits at 0. Highest end 512 + 400 = 912, rounded to 960.
    const size_t offs[5] = {0, 320, 0, 512, 0};
    for (int i = 0; i < 5; i++) EXPECT_EQ(tai_plan_output_offset(p.get(), i), offs[i]) << i;
    EXPECT_EQ(tai_plan_arena_bytes(p.get()), 960u);
    EXPECT_FALSE(tai_plan_buffers_overlap(p.get()));
}

// The specification's residual example: layer 3 added twice, after layer 2
// and reading layer 1 through the residual connection.
TEST(Plan, ResidualExample) {
    PlanPtr p = Make();
    Add(p.get(), 0, -1, TAI_DEP_NONE, 1000);
    Add(p.get(), 1, 0, TAI_DEP_SEQUENTIAL, 2000);
    Add(p.get(), 2, 1, TAI_DEP_SEQUENTIAL, 3000);
    Add(p.get(), 3, 1, TAI_DEP_RESIDUAL, 4000);
    Add(p.get(), 3, 2, TAI_DEP_SEQUENTIAL, 4000);
    EXPECT_EQ(tai_plan_layer_count(p.get()), 4);
    ASSERT_EQ(tai_plan_dep_count(p.get(), 3), 2);
    int type = -1;
    EXPECT_EQ(tai_plan_dep(p.get(), 3, 0, &type), 1);
    EXPECT_EQ(type, TAI_DEP_RESIDUAL);
    EXPECT_EQ(tai_plan_dep(p.get(), 3, 1, &type), 2);
    EXPECT_EQ(type, TAI_DEP_SEQUENTIAL);
    EXPECT_EQ(tai_plan_dep(p.get(), 3, 2, &type), -1);
    EXPECT_EQ(tai_plan_dep_count(p.get(), 0), 0);
    EXPECT_EQ(tai_plan_dep_count(p.get(), 9), -1);
    EXPECT_EQ(tai_plan_output_size(p.get(), 3), 4000u);

    ASSERT_EQ(tai_plan_prepare(p.get(), 4), TINYAI_OK) << tinyaiLastErrorMessage();
    EXPECT_EQ(Order(p.get()), (std::vector<int>{0, 1, 2, 3}));
    // 0 is read at step 1; 1 by 2 and, through the residual, by 3; 2 by 3;
    // 3 is the pass's output.
    EXPECT_EQ(tai_plan_last_use(p.get(), 0), 1);
    EXPECT_EQ(tai_plan_last_use(p.get(), 1), 3);
    EXPECT_EQ(tai_plan_last_use(p.get(), 2), 3);
    EXPECT_EQ(tai_plan_last_use(p.get(), 3), 3);
    // Step 0: {0}; 1: {0, 1}; 2: {1, 2}; 3: {1, 2, 3}.
    EXPECT_EQ(tai_plan_step_bytes(p.get(), 0), 1000u);
    EXPECT_EQ(tai_plan_step_bytes(p.get(), 1), 3000u);
    EXPECT_EQ(tai_plan_step_bytes(p.get(), 2), 5000u);
    EXPECT_EQ(tai_plan_step_bytes(p.get(), 3), 9000u);
    EXPECT_EQ(tai_plan_step_bytes(p.get(), 4), 0u);
    EXPECT_EQ(tai_plan_peak_bytes(p.get()), 9000u);
    // 3 at 0; 2 above it at align(4000) = 4032; 1 (live with both) above 2 at
    // align(7032) = 7040; 0 (live with 1 only) at 0. End 9040 -> 9088.
    EXPECT_EQ(tai_plan_output_offset(p.get(), 3), 0u);
    EXPECT_EQ(tai_plan_output_offset(p.get(), 2), 4032u);
    EXPECT_EQ(tai_plan_output_offset(p.get(), 1), 7040u);
    EXPECT_EQ(tai_plan_output_offset(p.get(), 0), 0u);
    EXPECT_EQ(tai_plan_arena_bytes(p.get()), 9088u);
    EXPECT_FALSE(tai_plan_buffers_overlap(p.get()));
}

// Among ready layers the one added first runs first, whatever the indices.
TEST(Plan, ReadyLayersRunInOrderOfAddition) {
    PlanPtr p = Make();
    Add(p.get(), 2, 1, TAI_DEP_SEQUENTIAL, 64);
    Add(p.get(), 1, -1, TAI_DEP_NONE, 64);
    Add(p.get(), 3, -1, TAI_DEP_NONE, 64);
    Add(p.get(), 0, 3, TAI_DEP_ATTENTION, 64);
    ASSERT_EQ(tai_plan_prepare(p.get(), -1), TINYAI_OK) << tinyaiLastErrorMessage();
    // Ready at first: 1 and 3 (1 added first). Then 2 (added before 3).
    EXPECT_EQ(Order(p.get()), (std::vector<int>{1, 2, 3, 0}));
}

TEST(Plan, AddingAfterPrepareUnprepares) {
    PlanPtr p = Make();
    Add(p.get(), 0, -1, TAI_DEP_NONE, 10);
    Add(p.get(), 1, 0, TAI_DEP_SEQUENTIAL, 20);
    ASSERT_EQ(tai_plan_prepare(p.get(), -1), TINYAI_OK);
    EXPECT_EQ(tai_plan_peak_bytes(p.get()), 30u);
    Add(p.get(), 2, 1, TAI_DEP_SEQUENTIAL, 30);
    EXPECT_FALSE(tai_plan_is_prepared(p.get()));
    EXPECT_EQ(tai_plan_step_count(p.get()), 0);
    EXPECT_EQ(tai_plan_step_layer(p.get(), 0), -1);
    EXPECT_EQ(tai_plan_layer_step(p.get(), 0), -1);
    EXPECT_EQ(tai_plan_last_use(p.get(), 0), -1);
    EXPECT_EQ(tai_plan_peak_bytes(p.get()), 0u);
    EXPECT_EQ(tai_plan_arena_bytes(p.get()), 0u);
    EXPECT_EQ(tai_plan_output_offset(p.get(), 0), TAI_PLAN_NO_OFFSET);
    ASSERT_EQ(tai_plan_prepare(p.get(), -1), TINYAI_OK);
    EXPECT_EQ(Order(p.get()), (std::vector<int>{0, 1, 2}));
    EXPECT_EQ(tai_plan_peak_bytes(p.get()), 50u);
}

TEST(Plan, EmptyPlan) {
    PlanPtr p = Make();
    ASSERT_EQ(tai_plan_prepare(p.get(), 0), TINYAI_OK);
    EXPECT_TRUE(tai_plan_is_prepared(p.get()));
    EXPECT_EQ(tai_plan_step_count(p.get()), 0);
    EXPECT_EQ(tai_plan_peak_bytes(p.get()), 0u);
    EXPECT_EQ(tai_plan_arena_bytes(p.get()), 0u);
}

TEST(Plan, CycleOfTwo) {
    PlanPtr p = Make();
    Add(p.get(), 0, -1, TAI_DEP_NONE, 8);
    Add(p.get(), 2, 1, TAI_DEP_SEQUENTIAL, 8);
    Add(p.get(), 1, 2, TAI_DEP_SEQUENTIAL, 8);
    Add(p.get(), 1, 0, TAI_DEP_SEQUENTIAL, 8);
    EXPECT_EQ(tai_plan_prepare(p.get(), -1), TINYAI_ERR_INVALID_ARG);
    EXPECT_STREQ(tinyaiLastErrorMessage(), "dependency cycle: 1 -> 2 -> 1");
    EXPECT_FALSE(tai_plan_is_prepared(p.get()));
    EXPECT_EQ(tai_plan_step_count(p.get()), 0);
    EXPECT_EQ(tai_plan_layer_step(p.get(), 0), -1);
}

TEST(Plan, CycleOfThree) {
    PlanPtr p = Make();
    Add(p.get(), 0, -1, TAI_DEP_NONE, 8);
    Add(p.get(), 4, 3, TAI_DEP_SEQUENTIAL, 8); // downstream of the cycle, not in it
    Add(p.get(), 3, 2, TAI_DEP_SEQUENTIAL, 8);
    Add(p.get(), 2, 1, TAI_DEP_SEQUENTIAL, 8);
    Add(p.get(), 1, 0, TAI_DEP_SEQUENTIAL, 8);
    Add(p.get(), 1, 3, TAI_DEP_RESIDUAL, 8);
    EXPECT_EQ(tai_plan_prepare(p.get(), -1), TINYAI_ERR_INVALID_ARG);
    EXPECT_STREQ(tinyaiLastErrorMessage(), "dependency cycle: 1 -> 2 -> 3 -> 1");
    EXPECT_FALSE(tai_plan_is_prepared(p.get()));
}

// A long cycle: the message stays bounded and still closes the loop.
TEST(Plan, LongCycleMessageIsCut) {
    PlanPtr p = Make();
    const int n = 500;
    for (int i = 0; i < n; i++) Add(p.get(), i, (i + n - 1) % n, TAI_DEP_SEQUENTIAL, 8);
    EXPECT_EQ(tai_plan_prepare(p.get(), -1), TINYAI_ERR_INVALID_ARG);
    std::string m = tinyaiLastErrorMessage();
    EXPECT_EQ(m.rfind("dependency cycle: 0 -> 1 -> 2 -> ", 0), 0u) << m;
    EXPECT_NE(m.find(" -> ... -> 0"), std::string::npos) << m;
    EXPECT_LT(m.size(), 700u);
}

TEST(Plan, UnknownDependency) {
    PlanPtr p = Make();
    for (int i = 0; i < 4; i++) Add(p.get(), i, i - 1, i ? TAI_DEP_SEQUENTIAL : TAI_DEP_NONE, 8);
    Add(p.get(), 4, 7, TAI_DEP_RESIDUAL, 8);
    EXPECT_EQ(tai_plan_prepare(p.get(), -1), TINYAI_ERR_INVALID_ARG);
    EXPECT_STREQ(tinyaiLastErrorMessage(),
                 "layer 4 depends on layer 7, which is not in the schedule");
    EXPECT_FALSE(tai_plan_is_prepared(p.get()));
    // Adding the missing layer makes it a valid schedule; 7 was added last
    // but 4 needs it, so it runs just before 4.
    Add(p.get(), 7, -1, TAI_DEP_NONE, 8);
    ASSERT_EQ(tai_plan_prepare(p.get(), -1), TINYAI_OK) << tinyaiLastErrorMessage();
    EXPECT_EQ(Order(p.get()), (std::vector<int>{0, 1, 2, 3, 7, 4}));
}

TEST(Plan, SelfDependencyRejected) {
    PlanPtr p = Make();
    EXPECT_EQ(tai_plan_add(p.get(), 2, 2, TAI_DEP_SEQUENTIAL, 8), TINYAI_ERR_INVALID_ARG);
    EXPECT_NE(std::string(tinyaiLastErrorMessage()).find("cannot depend on itself"),
              std::string::npos)
        << tinyaiLastErrorMessage();
    EXPECT_EQ(tai_plan_layer_count(p.get()), 0);
}

TEST(Plan, BadArgumentsLeaveThePlanUnchanged) {
    PlanPtr p = Make();
    Add(p.get(), 0, -1, TAI_DEP_NONE, 128);
    Add(p.get(), 1, 0, TAI_DEP_SEQUENTIAL, 256);
    ASSERT_EQ(tai_plan_prepare(p.get(), -1), TINYAI_OK);

    struct Case {
        int layer, dep, type;
        size_t size;
        const char *needle;
    } cases[] = {
        {-1, -1, TAI_DEP_NONE, 8, "negative"},
        {2, -2, TAI_DEP_SEQUENTIAL, 8, "dependency -2 is invalid"},
        {2, 1, 4, 8, "unknown dependency type 4"},
        {2, 1, -1, 8, "unknown dependency type -1"},
        {2, 1, TAI_DEP_NONE, 8, "type none with a dependency on layer 1"},
        {2, -1, TAI_DEP_RESIDUAL, 8, "residual dependency without a layer"},
        {1, 0, TAI_DEP_SEQUENTIAL, 255, "output size 255 bytes differs from the 256"},
        {1, -1, TAI_DEP_NONE, 0, "output size 0 bytes differs"},
        {1, 0, TAI_DEP_RESIDUAL, 256, "added as sequential, now as residual"},
    };
    for (const Case &c : cases) {
        tinyaiClearError();
        EXPECT_EQ(tai_plan_add(p.get(), c.layer, c.dep, c.type, c.size), TINYAI_ERR_INVALID_ARG)
            << c.needle;
        EXPECT_NE(std::string(tinyaiLastErrorMessage()).find(c.needle), std::string::npos)
            << "want '" << c.needle << "' in '" << tinyaiLastErrorMessage() << "'";
    }
    // Nothing changed, the plan is still prepared.
    EXPECT_TRUE(tai_plan_is_prepared(p.get()));
    EXPECT_EQ(tai_plan_layer_count(p.get()), 2);
    EXPECT_EQ(tai_plan_dep_count(p.get(), 1), 1);
    EXPECT_EQ(tai_plan_output_size(p.get(), 1), 256u);

    // The same pair again is harmless: one dependency, same plan.
    Add(p.get(), 1, 0, TAI_DEP_SEQUENTIAL, 256);
    Add(p.get(), 1, -1, TAI_DEP_NONE, 256);
    EXPECT_EQ(tai_plan_dep_count(p.get(), 1), 1);
    ASSERT_EQ(tai_plan_prepare(p.get(), -1), TINYAI_OK);
    EXPECT_EQ(Order(p.get()), (std::vector<int>{0, 1}));
    EXPECT_EQ(tai_plan_peak_bytes(p.get()), 384u);

    EXPECT_EQ(tai_plan_add(nullptr, 0, -1, TAI_DEP_NONE, 8), TINYAI_ERR_INVALID_ARG);
    EXPECT_EQ(tai_plan_prepare(nullptr, -1), TINYAI_ERR_INVALID_ARG);
    EXPECT_EQ(tai_plan_create(nullptr), TINYAI_ERR_INVALID_ARG);
    tai_plan_destroy(nullptr);
}

TEST(Plan, LayerLimit) {
    PlanPtr p = Make();
    Add(p.get(), 0, -1, TAI_DEP_NONE, 8);
    for (int i = 1; i < 5; i++) Add(p.get(), i, i - 1, TAI_DEP_SEQUENTIAL, 8);
    EXPECT_EQ(tai_plan_prepare(p.get(), 4), TINYAI_ERR_INVALID_ARG);
    EXPECT_STREQ(tinyaiLastErrorMessage(), "layer 4 is out of range: the model has 4 layers");
    EXPECT_FALSE(tai_plan_is_prepared(p.get()));
    EXPECT_EQ(tai_plan_prepare(p.get(), 1), TINYAI_ERR_INVALID_ARG);
    EXPECT_STREQ(tinyaiLastErrorMessage(), "layer 1 is out of range: the model has 1 layer");
    EXPECT_EQ(tai_plan_prepare(p.get(), -2), TINYAI_ERR_INVALID_ARG);
    EXPECT_EQ(tai_plan_prepare(p.get(), 5), TINYAI_OK) << tinyaiLastErrorMessage();
    EXPECT_EQ(tai_plan_step_count(p.get()), 5);
}

TEST(Plan, SparseAndLargeLayerIndices) {
    PlanPtr p = Make();
    const int ids[] = {INT32_MAX, 7, 1000000, 0, 123456789};
    Add(p.get(), ids[0], -1, TAI_DEP_NONE, 64);
    for (int i = 1; i < 5; i++) Add(p.get(), ids[i], ids[i - 1], TAI_DEP_SEQUENTIAL, 64);
    ASSERT_EQ(tai_plan_prepare(p.get(), -1), TINYAI_OK) << tinyaiLastErrorMessage();
    EXPECT_EQ(Order(p.get()), std::vector<int>(ids, ids + 5));
    EXPECT_EQ(tai_plan_prepare(p.get(), 1000001), TINYAI_ERR_INVALID_ARG);
    EXPECT_STREQ(tinyaiLastErrorMessage(),
                 "layer 2147483647 is out of range: the model has 1000001 layers");
}

TEST(Plan, LongChainGrowsTables) {
    PlanPtr p = Make();
    const int n = 5000;
    Add(p.get(), 0, -1, TAI_DEP_NONE, 1);
    for (int i = 1; i < n; i++) Add(p.get(), i, i - 1, TAI_DEP_SEQUENTIAL, 1);
    ASSERT_EQ(tai_plan_prepare(p.get(), n), TINYAI_OK) << tinyaiLastErrorMessage();
    for (int i = 0; i < n; i += 97) EXPECT_EQ(tai_plan_step_layer(p.get(), i), i);
    EXPECT_EQ(tai_plan_peak_bytes(p.get()), 2u);
    // Two 1-byte outputs live at once, each in its own aligned slot.
    EXPECT_EQ(tai_plan_arena_bytes(p.get()), 2u * TAI_PLAN_ALIGN);
    EXPECT_FALSE(tai_plan_buffers_overlap(p.get()));
}

TEST(Plan, ZeroSizeOutputsTakeNoSpace) {
    PlanPtr p = Make();
    Add(p.get(), 0, -1, TAI_DEP_NONE, 0);
    Add(p.get(), 1, 0, TAI_DEP_SEQUENTIAL, 100);
    Add(p.get(), 2, 1, TAI_DEP_SEQUENTIAL, 0);
    ASSERT_EQ(tai_plan_prepare(p.get(), -1), TINYAI_OK);
    EXPECT_EQ(tai_plan_peak_bytes(p.get()), 100u);
    EXPECT_EQ(tai_plan_arena_bytes(p.get()), 128u);
    EXPECT_EQ(tai_plan_output_offset(p.get(), 0), 0u);
    EXPECT_EQ(tai_plan_output_offset(p.get(), 1), 0u);
    EXPECT_EQ(tai_plan_output_offset(p.get(), 2), 0u);
    EXPECT_FALSE(tai_plan_buffers_overlap(p.get()));
}

TEST(Plan, ByteOverflowIsAnError) {
    PlanPtr p = Make();
    const size_t big = SIZE_MAX / 2 + 1;
    Add(p.get(), 0, -1, TAI_DEP_NONE, big);
    Add(p.get(), 1, 0, TAI_DEP_SEQUENTIAL, big);
    EXPECT_EQ(tai_plan_prepare(p.get(), -1), TINYAI_ERR_RANGE);
    EXPECT_FALSE(tai_plan_is_prepared(p.get()));
    // One huge output alone fits in size_t but its arena rounded up does not.
    PlanPtr q = Make();
    Add(q.get(), 0, -1, TAI_DEP_NONE, SIZE_MAX - 1);
    EXPECT_EQ(tai_plan_prepare(q.get(), -1), TINYAI_ERR_RANGE);
    // Outputs that are never live together may each be large.
    PlanPtr r = Make();
    Add(r.get(), 0, -1, TAI_DEP_NONE, 64);
    Add(r.get(), 1, 0, TAI_DEP_SEQUENTIAL, 64);
    Add(r.get(), 2, 1, TAI_DEP_SEQUENTIAL, big);
    Add(r.get(), 3, 2, TAI_DEP_SEQUENTIAL, 64);
    Add(r.get(), 4, 3, TAI_DEP_SEQUENTIAL, 64);
    Add(r.get(), 5, 4, TAI_DEP_SEQUENTIAL, big - 128);
    ASSERT_EQ(tai_plan_prepare(r.get(), -1), TINYAI_OK) << tinyaiLastErrorMessage();
    EXPECT_EQ(tai_plan_peak_bytes(r.get()), big + 64);
    EXPECT_FALSE(tai_plan_buffers_overlap(r.get()));
}

// Random DAGs: layers with distinct random indices, each depending on up to
// three layers earlier in a hidden topological order, added in a random
// order (some calls repeated). Every property of plan.h is checked by brute
// force against the planner's answers.
TEST(Plan, RandomDags) {
    for (unsigned seed = 1; seed <= 1000; seed++) {
        SCOPED_TRACE("seed " + std::to_string(seed));
        std::mt19937 rng(seed);
        auto uni = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
        const int n = uni(1, 40);
        std::vector<int> ids(200);
        for (int i = 0; i < 200; i++) ids[i] = i;
        std::shuffle(ids.begin(), ids.end(), rng);
        ids.resize(n); // ids[k]: the k-th layer of the hidden topological order

        std::map<int, size_t> size;
        std::map<int, std::set<int>> deps;
        struct Call {
            int layer, dep, type;
        };
        std::vector<Call> calls;
        for (int k = 0; k < n; k++) {
            int r = uni(0, 9);
            size[ids[k]] = r == 0 ? 0 : r < 4 ? 64 * (size_t)uni(1, 20) : (size_t)uni(1, 5000);
            int nd = k == 0 ? 0 : uni(0, std::min(k, 3));
            for (int j = 0; j < nd; j++) deps[ids[k]].insert(ids[uni(0, k - 1)]);
            if (deps[ids[k]].empty()) calls.push_back({ids[k], -1, TAI_DEP_NONE});
            for (int d : deps[ids[k]]) calls.push_back({ids[k], d, uni(1, 3)});
        }
        std::shuffle(calls.begin(), calls.end(), rng);
        for (int i = 0, m = (int)calls.size(); i < m / 4; i++) calls.push_back(calls[uni(0, m - 1)]);

        PlanPtr p = Make();
        std::vector<int> first_added; // layers in order of first addition
        for (const Call &c : calls) {
            Add(p.get(), c.layer, c.dep, c.type, size[c.layer]);
            if (std::find(first_added.begin(), first_added.end(), c.layer) == first_added.end())
                first_added.push_back(c.layer);
        }
        ASSERT_EQ(tai_plan_layer_count(p.get()), n);
        ASSERT_EQ(tai_plan_prepare(p.get(), 200), TINYAI_OK) << tinyaiLastErrorMessage();
        ASSERT_EQ(tai_plan_step_count(p.get()), n);

        // Every layer exactly once, and steps agree both ways.
        std::vector<int> order = Order(p.get());
        std::map<int, int> step;
        for (int t = 0; t < n; t++) {
            ASSERT_EQ(step.count(order[t]), 0u) << "layer " << order[t] << " twice";
            step[order[t]] = t;
            ASSERT_EQ(tai_plan_layer_step(p.get(), order[t]), t);
        }
        ASSERT_EQ(step.size(), (size_t)n);
        for (int id : ids) ASSERT_EQ(step.count(id), 1u);

        // Dependencies respected and reported as added.
        for (int id : ids) {
            ASSERT_EQ(tai_plan_dep_count(p.get(), id), (int)deps[id].size());
            for (int d : deps[id]) ASSERT_LT(step[d], step[id]) << d << " before " << id;
        }

        // Among the ready layers, the one added first ran.
        for (int t = 0; t < n; t++) {
            for (int id : first_added) {
                if (step[id] < t) continue; // already ran
                bool ready = true;
                for (int d : deps[id]) ready = ready && step[d] < t;
                if (ready) {
                    ASSERT_EQ(id, order[t]) << "step " << t;
                    break;
                }
            }
        }

        // Lifetimes and bytes per step.
        std::map<int, int> last;
        for (int id : ids) {
            bool used = false;
            int l = step[id];
            for (int other : ids)
                if (deps[other].count(id)) {
                    used = true;
                    l = std::max(l, step[other]);
                }
            last[id] = used ? l : n - 1;
            ASSERT_EQ(tai_plan_last_use(p.get(), id), last[id]) << "layer " << id;
        }
        size_t peak = 0, sum_aligned = 0;
        for (int t = 0; t < n; t++) {
            size_t b = 0;
            for (int id : ids)
                if (step[id] <= t && t <= last[id]) b += size[id];
            ASSERT_EQ(tai_plan_step_bytes(p.get(), t), b) << "step " << t;
            peak = std::max(peak, b);
        }
        ASSERT_EQ(tai_plan_peak_bytes(p.get()), peak);

        // Offsets: aligned, inside the arena, disjoint when live together.
        const size_t arena = tai_plan_arena_bytes(p.get());
        for (int id : ids) {
            size_t off = tai_plan_output_offset(p.get(), id);
            ASSERT_EQ(off % TAI_PLAN_ALIGN, 0u);
            ASSERT_LE(off + size[id], arena);
            sum_aligned += AlignUp(size[id]);
        }
        for (int a : ids)
            for (int b : ids) {
                if (a >= b || !size[a] || !size[b]) continue;
                if (step[a] > last[b] || step[b] > last[a]) continue;
                size_t oa = tai_plan_output_offset(p.get(), a);
                size_t ob = tai_plan_output_offset(p.get(), b);
                ASSERT_TRUE(oa + size[a] <= ob || ob + size[b] <= oa)
                    << "layers " << a << " and " << b << " share bytes";
            }
        ASSERT_FALSE(tai_plan_buffers_overlap(p.get()));
        ASSERT_GE(arena, peak);
        ASSERT_LE(arena, sum_aligned);
        ASSERT_EQ(arena % TAI_PLAN_ALIGN, 0u);
    }
}

} // namespace
