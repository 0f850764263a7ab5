// <tinyai/profile.h>: what a profile records follows from the model's
// shapes (passes, weight bytes and arithmetic per layer, calls per op), the
// op times fit inside the layer times, counters either count or say why
// not, the trace is valid trace-event JSON with the run's layers, storage
// reads on their own threads, prefetches and evictions, and every misuse is
// an error value.
#include <gtest/gtest.h>

#include <cjson/cJSON.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <tinyai/profile.h>

#include "tests/model/memory_test_util.h"

namespace {
using namespace tai_test;

TinyAISynthConfig Shape() {
    TinyAISynthConfig c = tinyaiCreateDefaultSynthConfig();
    c.nVocab = 512;
    c.nEmbd = 128;
    c.nFF = 256;
    c.nHead = 4;
    c.nHeadKV = 2;
    c.nLayer = 3;
    c.nCtx = 128;
    c.weightType = "Q8_0";
    c.embeddingType = "Q8_0";
    c.tiedOutput = false;
    c.seed = 7;
    return c;
}

const std::string &Model() {
    static const std::string path = WriteSynthModel(Shape());
    return path;
}

// Q8_0: 34 bytes per 32 weights.
double Q8Bytes(double weights) { return weights / 32 * 34; }

TEST(Profile, RecordsWhatTheShapesSay) {
    ModelPtr m = LoadModel(Model(), MemConfig(0, TINYAI_EXEC_NORMAL, 2));
    ASSERT_TRUE(m);
    SessionPtr s = NewSession(m.get(), 64);
    ASSERT_TRUE(s);
    ASSERT_EQ(tinyaiStartProfile(m.get(), 0), TINYAI_OK) << tinyaiLastErrorMessage();
    const int32_t prompt[4] = {1, 2, 3, 4};
    ASSERT_EQ(tinyaiEval(s.get(), prompt, 4), TINYAI_OK);
    for (int32_t t = 5; t < 8; t++) ASSERT_EQ(tinyaiEval(s.get(), &t, 1), TINYAI_OK);
    tinyaiStopProfile(m.get());
    // one more pass after the stop changes nothing
    int32_t t = 9;
    ASSERT_EQ(tinyaiEval(s.get(), &t, 1), TINYAI_OK);

    const TinyAISynthConfig c = Shape();
    const double E = c.nEmbd, F = c.nFF, kvd = 2.0 * (c.nEmbd / c.nHead), V = c.nVocab;
    const double block_w = E * E * 2 + E * kvd * 2 + 3 * E * F; // q, o, k, v, gate, up, down
    // the columns the passes processed: 4 (prompt) + 3 x 1; attention
    // over positions 1..4 for the prompt, then 5, 6, 7
    const double cols = 7, ctx = 1 + 2 + 3 + 4 + 5 + 6 + 7;
    double layer_s = 0;
    for (int l = 1; l <= c.nLayer; l++) {
        TinyAILayerProfile lp;
        ASSERT_EQ(tinyaiGetLayerProfile(m.get(), l, &lp), TINYAI_OK);
        EXPECT_EQ(lp.layer, l);
        EXPECT_STREQ(lp.device, "cpu");
        EXPECT_EQ(lp.passes, 4u);
        // every pass reads each matrix once
        EXPECT_NEAR(lp.bytes, 4 * Q8Bytes(block_w), 1) << l;
        // the products, attention, and per column the norms (3 per
        // element each), rotation (1.5 per element of q and k), residuals
        // (1 each) and SwiGLU (5 per element)
        const double flops = 2 * block_w * cols + 4 * E * ctx +
                             cols * (6 * E + 1.5 * (E + kvd) + 2 * E + 5 * F);
        EXPECT_NEAR(lp.flops, flops, flops * 1e-9 + 1) << l;
        EXPECT_GT(lp.seconds, 0);
        EXPECT_GE(lp.stallSeconds, 0);
        EXPECT_LE(lp.stallSeconds, lp.seconds);
        layer_s += lp.seconds;
    }
    TinyAILayerProfile head;
    ASSERT_EQ(tinyaiGetLayerProfile(m.get(), c.nLayer + 1, &head), TINYAI_OK);
    EXPECT_EQ(head.passes, 4u);
    // the head's logits: one column per pass (the prompt's last token)
    EXPECT_NEAR(head.flops, 4 * (2 * V * E + 3 * E), 1);
    layer_s += head.seconds;
    TinyAILayerProfile emb;
    ASSERT_EQ(tinyaiGetLayerProfile(m.get(), 0, &emb), TINYAI_OK);
    EXPECT_EQ(emb.passes, 4u);
    layer_s += emb.seconds;

    // the ops: calls per pass and block, times inside the layers'
    ASSERT_EQ(tinyaiOpProfileCount(), 18);
    double op_s = 0;
    std::set<std::string> names;
    for (int o = 0; o < tinyaiOpProfileCount(); o++) {
        TinyAIOpProfile op;
        ASSERT_EQ(tinyaiGetOpProfile(m.get(), o, &op), TINYAI_OK);
        names.insert(op.name);
        op_s += op.seconds;
        const std::string n = op.name;
        if (n == "q" || n == "k" || n == "v" || n == "o" || n == "gate" || n == "up" ||
            n == "down" || n == "attention" || n == "attn_norm" || n == "swiglu") {
            EXPECT_EQ(op.calls, 4u * c.nLayer) << n;
        }
        if (n == "residual") {
            EXPECT_EQ(op.calls, 8u * c.nLayer);
        }
        if (n == "head") {
            EXPECT_EQ(op.calls, 4u);
            EXPECT_NEAR(op.bytes, 4 * Q8Bytes(V * E), 1);
        }
        if (n == "attention") {
            EXPECT_NEAR(op.flops, 4 * E * ctx * c.nLayer, 1);
        }
    }
    EXPECT_EQ(names.size(), 18u);
    EXPECT_LE(op_s, layer_s);
}

TEST(Profile, CountersCountOrSayWhyNot) {
    ModelPtr m = LoadModel(Model(), MemConfig(0, TINYAI_EXEC_NORMAL, 2));
    ASSERT_TRUE(m);
    SessionPtr s = NewSession(m.get(), 64);
    ASSERT_TRUE(s);
    ASSERT_EQ(tinyaiStartProfile(m.get(), TINYAI_PROFILE_COUNTERS), TINYAI_OK);
    std::vector<int32_t> prompt(32, 3);
    ASSERT_EQ(tinyaiEval(s.get(), prompt.data(), prompt.size()), TINYAI_OK);
    TinyAIProfileCounters pc;
    ASSERT_EQ(tinyaiGetProfileCounters(m.get(), &pc), TINYAI_OK);
    EXPECT_EQ(pc.n, TINYAI_PROFILE_MAX_COUNTERS);
    EXPECT_EQ(pc.threads, 2);
    bool any_hw = false;
    TinyAILayerProfile lp;
    ASSERT_EQ(tinyaiGetLayerProfile(m.get(), 1, &lp), TINYAI_OK);
    for (int k = 0; k < pc.n; k++) {
        ASSERT_NE(pc.names[k], nullptr);
        if (pc.hardware[k] && pc.available[k]) any_hw = true;
        if (!pc.available[k]) {
            EXPECT_EQ(lp.counters[k], 0u) << pc.names[k];
        }
        // a block's work takes CPU time and, on a CPU that counts them,
        // cycles and instructions
        const std::string n = pc.names[k];
        if (pc.available[k] && (n == "task-clock-ns" || n == "cycles" || n == "instructions")) {
            EXPECT_GT(lp.counters[k], 0u) << n;
        }
    }
    // without hardware counters the profile says why
    if (!any_hw) EXPECT_NE(std::string(pc.note).find("hardware counters"), std::string::npos);
    else EXPECT_STREQ(pc.note, "");
}

std::string ReadAll(const std::string &p) {
    std::ifstream f(p);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

// Under a limit the weights stream: the trace shows the reads on loader
// threads beside the forward pass, prefetches and evictions.
TEST(Profile, TraceOfAStreamedRun) {
    // the limit from the plan's own minimum: the model streams
    ModelPtr probe = LoadModel(Model(), MemConfig(1024, TINYAI_EXEC_MEMORY_OPT, 1));
    ASSERT_TRUE(probe);
    TinyAISession *none = nullptr;
    ASSERT_NE(tinyaiCreateSession(probe.get(), 32, &none), TINYAI_OK);
    const size_t min = MinimumFromMessage(tinyaiLastErrorMessage());
    ASSERT_GT(min, 0u);
    ModelPtr m = LoadModel(Model(), MemConfig(min, TINYAI_EXEC_MEMORY_OPT, 1));
    ASSERT_TRUE(m);
    SessionPtr s = NewSession(m.get(), 32);
    ASSERT_TRUE(s);
    ASSERT_EQ(tinyaiStartProfile(m.get(), TINYAI_PROFILE_TRACE), TINYAI_OK);
    for (int32_t t = 1; t <= 4; t++) ASSERT_EQ(tinyaiEval(s.get(), &t, 1), TINYAI_OK);
    const std::string path = tai_test::TempPath(".json");
    ASSERT_EQ(tinyaiWriteTrace(m.get(), path.c_str()), TINYAI_OK) << tinyaiLastErrorMessage();
    cJSON *root = cJSON_Parse(ReadAll(path).c_str());
    ASSERT_TRUE(cJSON_IsObject(root));
    const cJSON *ev = cJSON_GetObjectItemCaseSensitive(root, "traceEvents");
    ASSERT_TRUE(cJSON_IsArray(ev));
    int layers = 0, reads = 0, evicts = 0;
    std::set<int> compute_tids, read_tids;
    const cJSON *e;
    cJSON_ArrayForEach(e, ev) {
        const cJSON *ph = cJSON_GetObjectItemCaseSensitive(e, "ph");
        const cJSON *cat = cJSON_GetObjectItemCaseSensitive(e, "cat");
        if (!cJSON_IsString(ph) || !cJSON_IsString(cat)) continue;
        const std::string c = cat->valuestring, p = ph->valuestring;
        const int tid = cJSON_GetObjectItemCaseSensitive(e, "tid")->valueint;
        if (c == "compute" && p == "X") {
            layers++;
            compute_tids.insert(tid);
            EXPECT_GE(cJSON_GetObjectItemCaseSensitive(e, "dur")->valuedouble, 0);
        }
        if (c == "io" && p == "X") {
            reads++;
            read_tids.insert(tid);
            EXPECT_GT(cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(e, "args"),
                                                       "bytes")->valuedouble, 0);
        }
        if (c == "cache" && p == "i" &&
            std::string(cJSON_GetObjectItemCaseSensitive(e, "name")->valuestring).rfind("evict", 0) == 0)
            evicts++;
    }
    // 4 passes of 5 file layers
    EXPECT_EQ(layers, 4 * 5);
    // the weights do not fit: read again every pass, so evicted
    EXPECT_GE(reads, 4);
    EXPECT_GE(evicts, 1);
    // reads happen on the loader threads, not the forward pass's
    ASSERT_EQ(compute_tids.size(), 1u);
    for (int t : read_tids) EXPECT_EQ(compute_tids.count(t), 0u);
    cJSON_Delete(root);
    unlink(path.c_str());
}

TEST(Profile, MisuseIsAnErrorValue) {
    ModelPtr m = LoadModel(Model(), MemConfig(0, TINYAI_EXEC_NORMAL, 1));
    ASSERT_TRUE(m);
    TinyAILayerProfile lp;
    TinyAIOpProfile op;
    TinyAIProfileCounters pc;
    EXPECT_EQ(tinyaiGetLayerProfile(m.get(), 1, &lp), TINYAI_ERR_INVALID_ARG);
    EXPECT_NE(std::string(tinyaiLastErrorMessage()).find("no profile"), std::string::npos);
    EXPECT_EQ(tinyaiGetOpProfile(m.get(), 0, &op), TINYAI_ERR_INVALID_ARG);
    EXPECT_EQ(tinyaiWriteTrace(m.get(), "/tmp/x.json"), TINYAI_ERR_INVALID_ARG);
    EXPECT_EQ(tinyaiStartProfile(nullptr, 0), TINYAI_ERR_INVALID_ARG);
    EXPECT_EQ(tinyaiStartProfile(m.get(), 0x100), TINYAI_ERR_INVALID_ARG);
    tinyaiStopProfile(nullptr);
    tinyaiStopProfile(m.get()); // none running: nothing happens
    ASSERT_EQ(tinyaiStartProfile(m.get(), 0), TINYAI_OK);
    EXPECT_EQ(tinyaiGetLayerProfile(m.get(), -1, &lp), TINYAI_ERR_RANGE);
    EXPECT_EQ(tinyaiGetLayerProfile(m.get(), 5, &lp), TINYAI_ERR_RANGE);
    EXPECT_EQ(tinyaiGetLayerProfile(m.get(), 1, nullptr), TINYAI_ERR_INVALID_ARG);
    EXPECT_EQ(tinyaiGetOpProfile(m.get(), tinyaiOpProfileCount(), &op), TINYAI_ERR_RANGE);
    // started without counters or trace: those are errors, the rest reads
    EXPECT_EQ(tinyaiGetProfileCounters(m.get(), &pc), TINYAI_ERR_INVALID_ARG);
    EXPECT_EQ(tinyaiWriteTrace(m.get(), "/tmp/x.json"), TINYAI_ERR_INVALID_ARG);
    ASSERT_EQ(tinyaiGetLayerProfile(m.get(), 1, &lp), TINYAI_OK);
    EXPECT_EQ(lp.passes, 0u);
    // a trace that cannot be written leaves nothing behind
    ASSERT_EQ(tinyaiStartProfile(m.get(), TINYAI_PROFILE_TRACE), TINYAI_OK);
    EXPECT_EQ(tinyaiWriteTrace(m.get(), "/nonexistent-dir/t.json"), TINYAI_ERR_IO);
    struct stat st;
    EXPECT_NE(stat("/nonexistent-dir/t.json", &st), 0);
    // restarting forgets what was recorded
    SessionPtr s = NewSession(m.get(), 16);
    ASSERT_TRUE(s);
    int32_t t = 1;
    ASSERT_EQ(tinyaiEval(s.get(), &t, 1), TINYAI_OK);
    ASSERT_EQ(tinyaiGetLayerProfile(m.get(), 1, &lp), TINYAI_OK);
    EXPECT_EQ(lp.passes, 1u);
    ASSERT_EQ(tinyaiStartProfile(m.get(), 0), TINYAI_OK);
    ASSERT_EQ(tinyaiGetLayerProfile(m.get(), 1, &lp), TINYAI_OK);
    EXPECT_EQ(lp.passes, 0u);
}

}  // namespace
