// tools/bench.c: `tinyai bench` end to end. The figures themselves depend
// on the machine, so the tests check what holds on any machine: one row
// per combination, each format carrying the same rows, samples that agree
// with the means, a memory limit that makes the run read from storage, the
// plot drawn, and every bad argument a one-line error.
#include <gtest/gtest.h>

#include <cjson/cJSON.h>

#include <cmath>
#include <sstream>
#include <string>
#include <vector>

#include "tests/tools/cli_test_util.h"

namespace {
using namespace tai_cli;

std::string SmallModel() {
    static const std::string path = Synth("--preset small --type Q8_0");
    return path;
}

// The json output's rows: `bench ARGS -o json`, which must succeed.
struct Rows {
    cJSON *arr = nullptr;
    std::string output;
    explicit Rows(const std::string &args) {
        Result r = Tinyai("bench " + args + " -o json", "stdout only");
        output = r.output;
        EXPECT_EQ(r.status, 0) << r.output;
        arr = cJSON_Parse(r.output.c_str());
    }
    ~Rows() { cJSON_Delete(arr); }
    int size() const { return cJSON_IsArray(arr) ? cJSON_GetArraySize(arr) : -1; }
    const cJSON *operator[](int i) const { return cJSON_GetArrayItem(arr, i); }
};

double Num(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    EXPECT_TRUE(cJSON_IsNumber(v)) << k;
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

std::string Str(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : "";
}

TEST(Bench, OneRowPerCombinationWithConsistentSamples) {
    const std::string m = SmallModel();
    Rows rows("-m " + m + " -p 16 -n 4 -pg 8,2 -t 1,2 -r 3");
    ASSERT_TRUE(cJSON_IsArray(rows.arr)) << rows.output;
    // threads outside, tests inside, as llama-bench orders them
    ASSERT_EQ(cJSON_GetArraySize(rows.arr), 6);
    const int want[6][3] = {{1, 16, 0}, {1, 0, 4}, {1, 8, 2}, {2, 16, 0}, {2, 0, 4}, {2, 8, 2}};
    for (int i = 0; i < 6; i++) {
        const cJSON *o = cJSON_GetArrayItem(rows.arr, i);
        EXPECT_EQ(Num(o, "n_threads"), want[i][0]) << i;
        EXPECT_EQ(Num(o, "n_prompt"), want[i][1]) << i;
        EXPECT_EQ(Num(o, "n_gen"), want[i][2]) << i;
        EXPECT_EQ(Str(o, "model_filename"), m);
        EXPECT_NE(Str(o, "model_type").find("Q8_0"), std::string::npos) << Str(o, "model_type");
        EXPECT_GT(Num(o, "model_n_params"), 1e6);
        // the samples: three, and the mean and each tok/s follow from them
        const cJSON *sn = cJSON_GetObjectItemCaseSensitive(o, "samples_ns");
        const cJSON *st = cJSON_GetObjectItemCaseSensitive(o, "samples_ts");
        ASSERT_EQ(cJSON_GetArraySize(sn), 3);
        ASSERT_EQ(cJSON_GetArraySize(st), 3);
        const double tokens = want[i][1] + want[i][2];
        double mean = 0;
        for (int k = 0; k < 3; k++) {
            const double ns = cJSON_GetArrayItem(sn, k)->valuedouble;
            const double ts = cJSON_GetArrayItem(st, k)->valuedouble;
            EXPECT_GT(ns, 0);
            EXPECT_NEAR(ts, tokens / (ns * 1e-9), ts * 1e-6);
            mean += ts / 3;
        }
        EXPECT_NEAR(Num(o, "avg_ts"), mean, mean * 1e-6);
        EXPECT_GE(Num(o, "stddev_ts"), 0);
        // resident: nothing read from storage, every acquisition a hit
        EXPECT_EQ(Num(o, "read_bytes_per_token"), 0);
        EXPECT_EQ(Num(o, "cache_hit_rate"), 1);
        EXPECT_GT(Num(o, "peak_rss_bytes"), 1 << 20);
        // and a ceiling measured for it
        const std::string c = Str(o, "ceiling");
        EXPECT_TRUE(c == "memory" || c == "int8") << c;
        EXPECT_GT(Num(o, "ceiling_fraction"), 0);
        EXPECT_GT(Num(o, "ceiling_value"), 0);
    }
}

TEST(Bench, FormatsCarryTheSameRows) {
    const std::string m = SmallModel();
    const std::string args = "bench -m " + m + " -p 8 -n 2 -r 1 -t 1 ";
    Result md = Tinyai(args, "stdout only");
    ASSERT_EQ(md.status, 0) << md.output;
    EXPECT_NE(md.output.find("| model | size | params | backend | threads | test | t/s |"),
              std::string::npos)
        << md.output;
    EXPECT_NE(md.output.find("| pp8 |"), std::string::npos) << md.output;
    EXPECT_NE(md.output.find("| tg2 |"), std::string::npos) << md.output;
    EXPECT_NE(md.output.find("ceilings measured in this run"), std::string::npos);

    Result csv = Tinyai(args + "-o csv", "stdout only");
    ASSERT_EQ(csv.status, 0) << csv.output;
    std::istringstream in(csv.output);
    std::string line;
    std::vector<std::string> lines;
    while (std::getline(in, line)) lines.push_back(line);
    ASSERT_EQ(lines.size(), 3u) << csv.output;
    // every line has the header's fields (quoted fields hold no commas here)
    auto fields = [](const std::string &l) {
        int n = 1;
        bool q = false;
        for (char c : l) {
            if (c == '"') q = !q;
            if (c == ',' && !q) n++;
        }
        return n;
    };
    EXPECT_EQ(fields(lines[1]), fields(lines[0]));
    EXPECT_EQ(fields(lines[2]), fields(lines[0]));
    EXPECT_EQ(lines[0].rfind("model_filename,", 0), 0u);

    Result jl = Tinyai(args + "-o jsonl", "stdout only");
    ASSERT_EQ(jl.status, 0) << jl.output;
    std::istringstream jin(jl.output);
    int n = 0;
    while (std::getline(jin, line)) {
        cJSON *o = cJSON_Parse(line.c_str());
        ASSERT_TRUE(cJSON_IsObject(o)) << line;
        EXPECT_GT(Num(o, "avg_ts"), 0);
        cJSON_Delete(o);
        n++;
    }
    EXPECT_EQ(n, 2);
}

// Under half of what the model needs resident, decoding reads weights from
// storage every token; without a limit it reads none.
TEST(Bench, MemoryLimitStreamsFromStorage) {
    const std::string m = SmallModel();
    Rows rows("-m " + m + " -p 0 -n 3 -r 2 -t 1 --mem-limit none,50%");
    ASSERT_EQ(cJSON_GetArraySize(rows.arr), 2) << rows.output;
    const cJSON *none = cJSON_GetArrayItem(rows.arr, 0), *half = cJSON_GetArrayItem(rows.arr, 1);
    EXPECT_EQ(Str(none, "mem_limit"), "none");
    EXPECT_EQ(Num(none, "read_bytes_per_token"), 0);
    EXPECT_EQ(Str(half, "mem_limit"), "50%");
    EXPECT_GT(Num(half, "mem_limit_bytes"), 0);
    EXPECT_GT(Num(half, "read_bytes_per_token"), 0);
    EXPECT_LT(Num(half, "cache_hit_rate"), 1);
    EXPECT_TRUE(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(half, "streamed")));
    EXPECT_EQ(Str(half, "ceiling"), "storage");
    // the weights a token reads at most: the whole file
    EXPECT_LE(Num(half, "read_bytes_per_token"), Num(half, "model_size") * 1.01);
}

// Sequences decoded together: each step yields one token per sequence.
TEST(Bench, BatchAxis) {
    const std::string m = SmallModel();
    Rows rows("-m " + m + " -p 4 -n 3 -r 1 -t 1 --batch 1,3");
    ASSERT_EQ(rows.size(), 4) << rows.output;
    const double batches[4] = {1, 1, 3, 3};
    for (int i = 0; i < 4; i++) {
        const cJSON *o = cJSON_GetArrayItem(rows.arr, i);
        EXPECT_EQ(Num(o, "n_batch_sequences"), batches[i]);
        const double tokens = batches[i] * (Num(o, "n_prompt") + Num(o, "n_gen"));
        const double ns = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(o, "samples_ns"), 0)
                              ->valuedouble;
        EXPECT_NEAR(Num(o, "avg_ts"), tokens / (ns * 1e-9), Num(o, "avg_ts") * 1e-6);
    }
}

TEST(Bench, PlotDrawsTheMemoryLimitSweep) {
    const std::string m = SmallModel();
    const std::string svg = tai_test::TempPath(".svg");
    Result r = Tinyai("bench -m " + m + " -p 0 -n 2 -r 1 -t 1 --mem-limit 60%,100% --plot " + svg,
                      "stdout only");
    ASSERT_EQ(r.status, 0) << r.output;
    const std::string pic = ReadFile(svg);
    EXPECT_NE(pic.find("<svg"), std::string::npos);
    EXPECT_NE(pic.find("tok/s against memory limit"), std::string::npos);
    // a file that cannot be written is an error, after the table
    Result bad = Tinyai("bench -m " + m + " -p 0 -n 2 -r 1 -t 1 --plot /nonexistent-dir/x.svg");
    EXPECT_EQ(bad.status, 1) << bad.output;
    EXPECT_NE(bad.output.find("--plot /nonexistent-dir/x.svg"), std::string::npos) << bad.output;
}

// A limit below what the model can run in: the row fails naming the
// minimum, the others run, and the status says something failed.
TEST(Bench, RowThatCannotRunFailsAlone) {
    const std::string m = SmallModel();
    Result r = Tinyai("bench -m " + m + " -p 0 -n 2 -r 1 -t 1 --mem-limit none,1K");
    EXPECT_EQ(r.status, 1) << r.output;
    EXPECT_NE(r.output.find("below the minimum"), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("| none |"), std::string::npos) << r.output;
}

TEST(Bench, BadArgumentsAreOneLineErrors) {
    const std::string m = SmallModel();
    const std::string b = "bench -m " + m + " ";
    ExpectCleanError(Tinyai(b + "-r 0"), "-r takes a count");
    ExpectCleanError(Tinyai(b + "-o xml"), "-o takes md, csv, json or jsonl");
    ExpectCleanError(Tinyai(b + "-p abc"), "-p takes integers");
    ExpectCleanError(Tinyai(b + "-p 8,,x"), "-p takes integers");
    ExpectCleanError(Tinyai(b + "-t 0"), "-t takes integers");
    ExpectCleanError(Tinyai(b + "--mem-limit 150%"), "a share must be in");
    ExpectCleanError(Tinyai(b + "--mem-limit 0%"), "a share must be in");
    ExpectCleanError(Tinyai(b + "--mem-limit lots"), "--mem-limit takes bytes");
    ExpectCleanError(Tinyai(b + "-pg 512"), "-pg takes prompt,generation pairs");
    ExpectCleanError(Tinyai(b + "-pg 0,4"), "-pg needs both sizes above 0");
    ExpectCleanError(Tinyai(b + "--plot x.txt"), "--plot takes a FILE.svg or FILE.png");
    ExpectCleanError(Tinyai(b + "--io floppy"), "--io takes auto, uring, pread or mmap");
    ExpectCleanError(Tinyai(b + "--cache-policy random"), "--cache-policy takes belady or lru");
    ExpectCleanError(Tinyai(b + "-p 0 -n 0"), "nothing to measure");
    ExpectCleanError(Tinyai(b + "--frobnicate"), "unknown option --frobnicate");
    ExpectCleanError(Tinyai(b + "-m"), "-m needs a value");
    ExpectCleanError(Tinyai("bench -m /nonexistent/model.gguf"), "cannot read model");
    // a file that is no model: its row fails with the loader's message
    const std::string junk = tai_test::TempPath(".gguf");
    WriteFile(junk, "not a model at all");
    Result r = Tinyai("bench -m " + junk + " -p 0 -n 1 -r 1 -t 1", "stdout only");
    EXPECT_EQ(r.status, 1) << r.output;
    EXPECT_NE(r.output.find("failed:"), std::string::npos) << r.output;
}

}  // namespace

namespace {
using namespace tai_cli;

// --profile: each row's table on stderr, per layer and per op; --trace: a
// trace per row; --plot then also draws the time per layer.
TEST(Bench, ProfileTraceAndLayerPlot) {
    const std::string m = SmallModel();
    const std::string trace = tai_test::TempPath(".json"), png = tai_test::TempPath(".png");
    Result r = Tinyai("bench -m " + m + " -p 8 -n 2 -r 1 -t 1 --profile --trace " + trace +
                      " --plot " + png);
    ASSERT_EQ(r.status, 0) << r.output;
    EXPECT_NE(r.output.find("profile of "), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("block 0"), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("attention"), std::string::npos) << r.output;
    const std::string base = trace.substr(0, trace.size() - 5);
    for (const char *k : {"-1.json", "-2.json"}) {
        const std::string t = ReadFile(base + k);
        EXPECT_NE(t.find("\"traceEvents\""), std::string::npos) << base + k;
        EXPECT_NE(t.find("\"layer 1\""), std::string::npos) << base + k;
    }
    EXPECT_EQ(ReadFile(png).substr(1, 3), "PNG");
    ExpectCleanError(Tinyai("bench -m " + m + " --trace /nonexistent-dir/t.json"), "cannot write it");
}

}  // namespace

namespace {
using namespace tai_cli;

// --simd-level: one row per level, each run with that level's kernels.
TEST(Bench, SimdLevelAxis) {
    const std::string m = SmallModel();
    Rows rows("-m " + m + " -p 0 -n 2 -r 1 -t 1 --simd-level 0,2");
    ASSERT_EQ(rows.size(), 2) << rows.output;
    EXPECT_EQ(Str(rows[0], "cpu_kernels"), "scalar");
    TinyAICpuInfo ci;
    ASSERT_EQ(tinyaiGetCpuInfo(&ci), TINYAI_OK);
    EXPECT_EQ(Str(rows[1], "cpu_kernels"), ci.chosen);
    ExpectCleanError(Tinyai("bench -m " + m + " --simd-level 3"), "--simd-level takes integers");
}

// --block-size and --prefetch-distance: the model's cache settings per row.
TEST(Bench, CacheSettingAxes) {
    const std::string m = SmallModel();
    Rows rows("-m " + m + " -p 16 -n 0 -r 1 -t 1 --block-size 0,64 --prefetch-distance 0,8");
    ASSERT_EQ(rows.size(), 4) << rows.output;
    const double want[4][2] = {{0, 0}, {0, 8}, {64, 0}, {64, 8}};
    for (int i = 0; i < 4; i++) {
        EXPECT_EQ(Num(rows[i], "block_size"), want[i][0]) << i;
        EXPECT_EQ(Num(rows[i], "prefetch_distance"), want[i][1]) << i;
    }
    ExpectCleanError(Tinyai("bench -m " + m + " --block-size 48"), "--block-size takes 0 or multiples of 32");
    ExpectCleanError(Tinyai("bench -m " + m + " --prefetch-distance 999"), "--prefetch-distance takes integers");
}

}  // namespace
