// examples/: every specification example built as a program, run against
// the real default model (converted to .tmai) and checked by its exit status
// and its output: layers loaded, real generated text, memory within the
// limits the examples set, and clean errors where an example cannot work as
// written (a progressive loader without a model, the four-layer residual
// schedule on a 32-layer model).
#include <gtest/gtest.h>

#include <sys/stat.h>

#include <sys/wait.h>

#include <cstdio>
#include <cctype>
#include <cstdlib>
#include <fstream>
#include <regex>
#include <string>

#include <tinyai/llm.h>

#include "runtime/llm/llm_internal.h"
#include "tests/common/test_paths.h"

namespace {

using Result = tai_test::CommandResult;

// Runs examples/<name> with TINYAI_EXAMPLE_MODEL=model (the runfiles tree is
// the working directory of a test). `timeout` turns a hang into a failure.
Result RunExample(const std::string &name, const std::string &model, const std::string &args = "") {
    std::string cmd = "TINYAI_EXAMPLE_MODEL='" + model + "' timeout 600 examples/" + name + " " +
                      args + " 2>&1";
    return tai_test::RunCommand(cmd);
}

// The text after "<label>" up to the end of the output's last line that
// starts with it; "" if none.
std::string After(const std::string &out, const std::string &label) {
    size_t at = out.rfind(label);
    if (at == std::string::npos) return "";
    at += label.size();
    return out.substr(at, out.find('\n', at) - at);
}

// Text a reader would call text: mostly letters and spaces, some words.
void ExpectRealText(const std::string &text) {
    size_t letters = 0, spaces = 0;
    for (unsigned char c : text) {
        if (std::isalpha(c)) letters++;
        if (c == ' ') spaces++;
    }
    EXPECT_GE(letters, 20u) << "'" << text << "'";
    EXPECT_GE(spaces, 4u) << "'" << text << "'";
}

class Examples : public testing::Test {
  protected:
    static void SetUpTestSuite() {
        std::string gguf = tai_test::DefaultModelPath();
        if (gguf.empty()) return;
        tmai_ = new std::string(tai_test::TempPath(".tmai"));
        ASSERT_EQ(tinyaiConvertModel(gguf.c_str(), tmai_->c_str()), TINYAI_OK)
            << tinyaiLastErrorMessage();
    }
    static void TearDownTestSuite() {
        if (tmai_) std::remove(tmai_->c_str());
        delete tmai_;
        tmai_ = nullptr;
    }
    void SetUp() override {
        TAI_REQUIRE_DEFAULT_MODEL(gguf);
        ASSERT_NE(tmai_, nullptr);
    }
    static std::string *tmai_;
};
std::string *Examples::tmai_ = nullptr;

// mmap_loader.md's usage example: all 32 layers load within the 100 MB
// cache; the odd ones are still held at the end, so memory is in use.
// What the usage example prints when it ran through all `layers` layers:
// each loaded, some memory in use at the end and no more than its cache.
void ExpectUsageExampleLoadedAll(const Result &r, int layers) {
    ASSERT_EQ(r.status, 0) << r.output;
    EXPECT_NE(r.output.find("Model has " + std::to_string(layers) + " layers\n"), std::string::npos)
        << r.output;
    for (int i = 0; i < layers; i++)
        EXPECT_NE(r.output.find("Layer " + std::to_string(i) + " loaded successfully\n"),
                  std::string::npos)
            << i << "\n" << r.output;
    const double mb = std::atof(After(r.output, "Memory usage: ").c_str());
    EXPECT_GT(mb, 0.0) << r.output;
    EXPECT_LE(mb, 100.0) << r.output;
}

TEST_F(Examples, MmapLoaderUsage) {
    ExpectUsageExampleLoadedAll(RunExample("mmap_loader_usage", *tmai_), 32);
}

// The same example on a model four times its 100 MB cache: it releases only
// the even layers, and every layer still loads (the odd ones it keeps are
// given up, oldest first, when the cache needs their room); what is in use
// at the end stays within the cache.
TEST(ExamplesLarge, MmapLoaderUsageOnAModelFourTimesTheCache) {
    TinyAISynthConfig c = tinyaiCreateDefaultSynthConfig();
    c.nVocab = 2000;
    c.nEmbd = 1024;
    c.nFF = 2816;
    c.nHead = 16;
    c.nHeadKV = 4;
    c.nLayer = 36;
    c.nCtx = 64;
    c.weightType = "Q8_0";
    c.embeddingType = "Q8_0";
    c.seed = 3;
    const std::string gguf = tai_test::TempPath(".gguf"), tmai = tai_test::TempPath(".tmai");
    ASSERT_EQ(tinyaiWriteSyntheticModel(&c, gguf.c_str()), TINYAI_OK) << tinyaiLastErrorMessage();
    ASSERT_EQ(tinyaiConvertModel(gguf.c_str(), tmai.c_str()), TINYAI_OK) << tinyaiLastErrorMessage();
    std::remove(gguf.c_str());
    struct stat st;
    ASSERT_EQ(stat(tmai.c_str(), &st), 0);
    EXPECT_GT(st.st_size, 4 * 100 * 1024 * 1024) << "the model must be four times the cache";
    Result r = RunExample("mmap_loader_usage", tmai);
    std::remove(tmai.c_str());
    ExpectUsageExampleLoadedAll(r, 38);
}

// The example with a file that is not there: its own failure branch.
TEST_F(Examples, MmapLoaderUsageMissingFile) {
    Result r = RunExample("mmap_loader_usage", tai_test::TempPath(".tmai"));
    EXPECT_EQ(r.status, 1) << r.output;
    EXPECT_EQ(r.output, "Failed to open model\n");
}

// The guide's three memory-mapped snippets: the descriptor of layer 1 is the
// one the model's layer table gives, the weights load, the layer stays
// cached after its release, and the priority set last is visible.
TEST_F(Examples, MmapGuide) {
    TinyAIModel *m = nullptr;
    ASSERT_EQ(tinyaiLoadModel(tmai_->c_str(), nullptr, &m), TINYAI_OK) << tinyaiLastErrorMessage();
    TinyAILayerInfo li;
    ASSERT_EQ(tinyaiGetModelLayerInfo(m, 1, &li), TINYAI_OK);
    tinyaiFreeModel(m);

    Result r = RunExample("mmap_guide", *tmai_);
    ASSERT_EQ(r.status, 0) << r.output;
    EXPECT_NE(r.output.find("layers: 32\n"), std::string::npos) << r.output;
    const std::string want = "layer 1: offset " + std::to_string(li.offset) + " size " +
                             std::to_string(li.size) + " precision " +
                             std::to_string(li.precision) + " bits\n";
    EXPECT_NE(r.output.find(want), std::string::npos) << want << r.output;
    EXPECT_NE(r.output.find("weights loaded: yes\n"), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("cached after release: yes, accesses 1, priority 2.0\n"),
              std::string::npos)
        << r.output;
    const long long used = std::atoll(After(r.output, "memory usage: ").c_str());
    EXPECT_GE(used, (long long)li.size) << r.output;
    EXPECT_LE(used, 100ll << 20) << r.output;
}

// The scheduler's basic example generates real text from "TinyAI is" in 32
// passes of 32 layers, and ends cleanly.
TEST_F(Examples, ForwardSchedulerBasic) {
    Result r = RunExample("forward_scheduler_basic", *tmai_);
    ASSERT_EQ(r.status, 0) << r.output;
    EXPECT_EQ(After(r.output, "layers executed: "), "1024") << r.output;
    EXPECT_EQ(After(r.output, "last error: "), "") << r.output;
    ExpectRealText(r.output.substr(r.output.find("output: ")));
    // the tracked peak (weights, runtime buffers, declared outputs) within
    // the example's 100 MB limit
    const long long peak = std::atoll(After(r.output, "peak memory usage: ").c_str());
    EXPECT_GT(peak, 0) << r.output;
    EXPECT_LE(peak, 100ll << 20) << r.output;
}

// The residual example as written declares four layers: on SmolLM2 (32
// layers) the model's layers run as the model defines them, all 32 per
// pass in order, the declared residual output held meanwhile; the text is
// the basic example's.
TEST_F(Examples, ForwardSchedulerResidualRunsOnALargerModel) {
    Result basic = RunExample("forward_scheduler_basic", *tmai_);
    Result r = RunExample("forward_scheduler_residual", *tmai_);
    ASSERT_EQ(r.status, 0) << r.output;
    EXPECT_NE(r.output.find(" (32 per pass), in order: yes\n"), std::string::npos) << r.output;
    const std::string text = After(r.output, "output: ");
    ExpectRealText(text);
    EXPECT_EQ(text, After(basic.output, "output: "));
}

// The four layers as the start of SmolLM2's schedule (the rest added after
// them): the residual dependency of block 1 on the embedding is meaningful,
// the order is the model's, and the text is the same as the basic example's.
TEST_F(Examples, ForwardSchedulerResidualCompleted) {
    Result basic = RunExample("forward_scheduler_basic", *tmai_);
    Result r = RunExample("forward_scheduler_residual", *tmai_, "--complete-schedule");
    ASSERT_EQ(r.status, 0) << r.output;
    EXPECT_NE(r.output.find("layers executed: 1024 (32 per pass), in order: yes\n"),
              std::string::npos)
        << r.output;
    const std::string text = After(r.output, "output: ");
    ExpectRealText(text);
    EXPECT_EQ(text, After(basic.output, "output: "));
}

// On a model of two blocks the example's four layers are the whole model:
// embedding, block 0, block 1 (residual from the embedding), output head.
TEST_F(Examples, ForwardSchedulerResidualOnTwoBlocks) {
    TinyAISynthConfig sc = tinyaiCreateDefaultSynthConfig();
    sc.nLayer = 2;
    const std::string path = tai_test::TempPath(".gguf");
    ASSERT_EQ(tinyaiWriteSyntheticModel(&sc, path.c_str()), TINYAI_OK) << tinyaiLastErrorMessage();
    Result r = RunExample("forward_scheduler_residual", path);
    std::remove(path.c_str());
    ASSERT_EQ(r.status, 0) << r.output;
    std::smatch m;
    ASSERT_TRUE(std::regex_search(r.output, m,
                                  std::regex("layers executed: ([0-9]+) \\(4 per pass\\), in "
                                             "order: yes\n")))
        << r.output;
    const int executed = std::stoi(m[1]);
    EXPECT_GE(executed, 4) << r.output;
    EXPECT_EQ(executed % 4, 0) << r.output;
}

// "Running a Large Language Model on Limited RAM": real text, and every
// memory usage the example prints is within its 200 MB limit.
TEST_F(Examples, LimitedRam) {
    Result r = RunExample("limited_ram", *tmai_);
    ASSERT_EQ(r.status, 0) << r.output;
    const std::string text = After(r.output, "Generated text: ");
    ExpectRealText(text);
    std::regex line("Executed layer ([0-9]+)\nCurrent memory usage: ([0-9.]+) MB\n");
    int n = 0;
    double most = 0;
    for (auto it = std::sregex_iterator(r.output.begin(), r.output.end(), line);
         it != std::sregex_iterator(); ++it, ++n) {
        EXPECT_EQ(std::stoi((*it)[1]), n % 32);
        const double mb = std::stod((*it)[2]);
        EXPECT_GT(mb, 0.0);
        if (mb > most) most = mb;
    }
    EXPECT_EQ(n, 32 * 32) << r.output.substr(0, 2000);
    EXPECT_LE(most, 200.0);
}

// The Progressive Loading example as written has no model: the calls fail
// cleanly and the last error says what is missing.
TEST_F(Examples, ProgressiveLoaderWithoutModel) {
    Result r = RunExample("progressive_loader", *tmai_);
    ASSERT_EQ(r.status, 0) << r.output;
    EXPECT_EQ(r.output, "loader created: yes\nlast error: tinyaiUnloadLayer: the loader has no "
                        "model (set TinyAIProgressiveLoaderConfig.model)\n");
}

// With a model: layers 0 and 1 load, 0 is unloaded but stays cached, the
// held bytes are layer 1's image.
TEST_F(Examples, ProgressiveLoaderWithModel) {
    Result r = RunExample("progressive_loader_model", *tmai_);
    ASSERT_EQ(r.status, 0) << r.output;
    EXPECT_NE(r.output.find("load 0: 1\nload 1: 1\nunload 0: 1\nlayer 0: cached\nlayer 1: loaded\n"),
              std::string::npos)
        << r.output;
    std::smatch m;
    ASSERT_TRUE(std::regex_search(r.output, m,
                                  std::regex("held bytes: ([0-9]+), peak ([0-9]+), budget "
                                             "268435456, loads ([0-9]+)\n")))
        << r.output;
    const long long held = std::stoll(m[1]), peak = std::stoll(m[2]);
    EXPECT_GT(held, 0);
    EXPECT_GT(peak, held); // layers 0 and 1 were held together
    EXPECT_GE(std::stoll(m[3]), 2);
}

// The memory guide's mixed-precision example. On the default model as
// published (Q4_1 blocks, a Q8_0 embedding that is also the head) its FP16
// head would raise the head's precision: refused, saying so. On the same
// model expanded to F32 (the unquantized base no PyPI package publishes)
// it applies: the weights shrink about 3.5 times and the greedy answer is
// still Paris.
TEST_F(Examples, MixedPrecision) {
    Result refused = RunExample("mixed_precision", *tmai_);
    EXPECT_EQ(refused.status, 2) << refused.output;
    EXPECT_NE(refused.output.find("Not applied: token_embd.weight is Q8_0: output precision F16 "
                                  "would raise it"),
              std::string::npos)
        << refused.output;

    const std::string f32 = tai_test::TempPath(".gguf");
    {
        TinyAIModelConfig mc = tinyaiCreateDefaultModelConfig();
        mc.memoryLimit = 1;
        TinyAIModel *m = nullptr;
        ASSERT_EQ(tinyaiLoadModel(tmai_->c_str(), &mc, &m), TINYAI_OK);
        TinyAIMixedPrecisionConfig c;
        tinyaiInitMixedPrecisionConfig(&c);
        c.embeddingPrecision = c.attentionPrecision = c.ffnPrecision = c.outputPrecision =
            TINYAI_PREC_FP32;
        ASSERT_EQ(tai_quantize_file(m->file, f32.c_str(), &c, true, nullptr, nullptr), TINYAI_OK)
            << tinyaiLastErrorMessage();
        tinyaiFreeModel(m);
    }
    Result r = RunExample("mixed_precision", f32);
    std::remove(f32.c_str());
    ASSERT_EQ(r.status, 0) << r.output;
    std::smatch m;
    ASSERT_TRUE(std::regex_search(r.output, m,
                                  std::regex("Weights: ([0-9.]+) MiB -> ([0-9.]+) MiB\n")))
        << r.output;
    const double a = std::stod(m[1]), b = std::stod(m[2]);
    EXPECT_GT(a / b, 3.0) << r.output;
    EXPECT_NE(After(r.output, "Continuation: ").find("Paris"), std::string::npos) << r.output;
}

// The memory guide's pruning example on the default model: the saving it
// prints is tinyaiCalculatePruningSavings's, about 45% of the weights
// (the blocks' matrices at 70%, block 0 at 50%; the embedding is not
// pruned), the weights shrink by as much, and the pruned model runs.
TEST_F(Examples, Pruning) {
    Result r = RunExample("pruning", *tmai_);
    ASSERT_EQ(r.status, 0) << r.output;
    const double saved = std::atof(After(r.output, "Memory saved: ").c_str());
    std::smatch m;
    ASSERT_TRUE(std::regex_search(r.output, m,
                                  std::regex("Weights: ([0-9.]+) MiB -> ([0-9.]+) MiB\\n")))
        << r.output;
    const double a = std::stod(m[1]), b = std::stod(m[2]);
    EXPECT_GT(saved, 0.4 * a) << r.output;
    EXPECT_NEAR(a - b, saved, 1.0) << r.output;
    EXPECT_NE(r.output.find("Ran one token: logits[0] = "), std::string::npos) << r.output;
}

// The memory guide's strategies, pools, tracking and snake_case progressive
// loader: a 1 MB static arena cannot hold a model's buffers and says so;
// the others run; the pools hand out and take back every block; the
// loader walks every layer holding at most three; the report is written
// (into the test's working directory, as the guide's relative path says).
TEST_F(Examples, MemoryGuide) {
    Result r = RunExample("memory_guide", *tmai_);
    ASSERT_EQ(r.status, 0) << r.output;
    EXPECT_NE(r.output.find("static 1 MB: cannot allocate"), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("static memory arena (1048576 bytes) has no room"), std::string::npos)
        << r.output;
    for (const char *ok : {"pooled: ran\n", "hybrid: ran\n", "dynamic: ran\n",
                           "pool: block allocated, 0 of 256 blocks in use\n",
                           "pattern: 0 blocks in use after 1000 objects\n",
                           "progressive: 32 of 32 layers processed"})
        EXPECT_NE(r.output.find(ok), std::string::npos) << ok << "\n" << r.output;
    const double cur = std::atof(After(r.output, "Current usage: ").c_str());
    const double peak = std::atof(After(r.output, "Peak usage: ").c_str());
    EXPECT_GT(peak, 100e6) << r.output;  // the model and its session at their most
    EXPECT_LT(cur, peak);                // all freed by then
    std::ifstream report("memory_report.txt");
    const std::string text((std::istreambuf_iterator<char>(report)), {});
    EXPECT_NE(text.find("strategy: dynamic"), std::string::npos) << text;
    std::remove("memory_report.txt");
}

// The Optimization API's memory optimizer example on the default model:
// 512 MB holds it resident (tradeoff 0.5: speed first), the activations
// planned smaller than one buffer each, the caller's tensors reused (five
// taken, 5 MiB requested, 2 MiB at most), and the model runs in the budget.
TEST_F(Examples, MemoryOptimizer) {
    Result r = RunExample("memory_optimizer", *tmai_);
    ASSERT_EQ(r.status, 0) << r.output;
    EXPECT_NE(r.output.find("Plan: normal, "), std::string::npos) << r.output;
    std::smatch m;
    ASSERT_TRUE(std::regex_search(r.output, m,
                                  std::regex("activations ([0-9.]+) MiB \\(([0-9.]+) MiB unplanned\\)")))
        << r.output;
    EXPECT_LT(std::stod(m[1]), std::stod(m[2]) * 0.8) << r.output;
    EXPECT_NE(r.output.find("Tensors: ran, 5 taken, 5.0 MiB requested, peak 2.0 MiB"),
              std::string::npos)
        << r.output;
    ASSERT_TRUE(std::regex_search(r.output, m,
                                  std::regex("Ran 8 tokens: yes; peak ([0-9.]+) MiB of the ([0-9.]+) MiB")))
        << r.output;
    EXPECT_LE(std::stod(m[1]), std::stod(m[2]));
}

// The Optimization API's layer scheduling example on the default model:
// every layer runs (the prompt in one chunk under 128 MB of activations),
// the estimate is within 10% of the measured peak, and the next token after
// "The capital of France is" is " Paris", as generate says.
TEST_F(Examples, LayerScheduler) {
    Result r = RunExample("layer_scheduler", *tmai_);
    ASSERT_EQ(r.status, 0) << r.output;
    EXPECT_NE(r.output.find("Plan: 32 layers, chunks of "), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("Ran: 32 of 32 layers"), std::string::npos) << r.output;
    std::smatch m;
    ASSERT_TRUE(std::regex_search(r.output, m,
                                  std::regex("Estimate: ([0-9.]+) MiB, measured peak ([0-9.]+) MiB")))
        << r.output;
    const double est = std::stod(m[1]), peak = std::stod(m[2]);
    EXPECT_NEAR(est / peak, 1.0, 0.1) << r.output;
    EXPECT_NE(r.output.find("Next token: ' Paris'"), std::string::npos) << r.output;
}

} // namespace
