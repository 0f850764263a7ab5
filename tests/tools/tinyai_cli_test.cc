// tools/: the tinyai command end to end — generation, convert, inspect,
// synth — and every bad input giving one clear line and a non-zero exit,
// never a crash or a hang.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include <tinyai/llm.h>

#include "tests/common/test_paths.h"
#include "tests/tools/cli_test_util.h"

namespace {
using namespace tai_cli;

TEST(Cli, HelpForEverySubcommand) {
    for (const char *sub : {"", "generate ", "inspect ", "convert ", "synth ", "devices ", "perplexity ",
                            "quantize ", "prune ", "bench "}) {
        Result r = Tinyai(std::string(sub) + "--help");
        EXPECT_EQ(r.status, 0) << sub;
        EXPECT_NE(r.output.find("usage: tinyai"), std::string::npos) << sub;
    }
}

// The kernel variant in use is reported without a model, and it is one the
// CPU supports (the same list `cpu` prints).
TEST(Cli, InspectCpuNamesTheChosenVariant) {
    Result r = Tinyai("inspect --cpu");
    ASSERT_EQ(r.status, 0) << r.output;
    size_t at = r.output.find("chosen:");
    ASSERT_NE(at, std::string::npos) << r.output;
    std::string chosen = r.output.substr(at + 7);
    chosen = chosen.substr(chosen.find_first_not_of(' '));
    chosen = chosen.substr(0, chosen.find('\n'));
    EXPECT_TRUE(chosen == "scalar" || chosen == "avx2" || chosen == "avx512") << chosen;
    size_t v = r.output.find("kernel variants:");
    ASSERT_NE(v, std::string::npos);
    EXPECT_NE(r.output.substr(v, r.output.find('\n', v) - v).find(chosen), std::string::npos);
    EXPECT_EQ(Tinyai("cpu").output, r.output);
    ExpectCleanError(Tinyai("inspect --cpu model.gguf"), "takes no model");
}

TEST(Cli, GeneratesOnSyntheticModelAndReportsSpeed) {
    std::string m = Synth("--type Q4_0");
    Result r = Tinyai("generate -m " + m + " -p hello -n 8 --temp 0 --threads 2");
    EXPECT_EQ(r.status, 0) << r.output;
    EXPECT_NE(r.output.find("generated: "), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("tok/s"), std::string::npos);
    EXPECT_NE(r.output.find("peak RSS"), std::string::npos);
    std::remove(m.c_str());
}

TEST(Cli, TmaiGeneratesExactlyTheSameTokensAsGguf) {
    std::string g = Synth("--type Q4_1 --seed 3");
    std::string t = tai_test::TempPath(".tmai");
    Result c = Tinyai("convert " + g + " " + t);
    ASSERT_EQ(c.status, 0) << c.output;
    const std::string args = " -p 'the quick brown fox' -n 24 --temp 0.9 --seed 5 --quiet";
    Result a = Tinyai("generate -m " + g + args, "stdout");
    Result b = Tinyai("generate -m " + t + args, "stdout");
    EXPECT_EQ(a.status, 0);
    EXPECT_EQ(b.status, 0);
    EXPECT_FALSE(a.output.empty());
    EXPECT_EQ(a.output, b.output);
    Result i = Tinyai("inspect " + t);
    EXPECT_EQ(i.status, 0) << i.output;
    EXPECT_NE(i.output.find("(tmai)"), std::string::npos) << i.output;
    std::remove(g.c_str());
    std::remove(t.c_str());
}

TEST(Cli, BadArgumentsAreOneLineErrors) {
    std::string m = Synth("");
    ExpectCleanError(Tinyai("generate -m " + m + " -p hi -n -1"), "-n must be");
    ExpectCleanError(Tinyai("generate -m " + m + " -p hi -n 99999999"), "-n must be");
    ExpectCleanError(Tinyai("generate -m " + m + " -p hi -n 12abc"), "-n must be");
    ExpectCleanError(Tinyai("generate -m " + m + " -p hi --threads 0"), "--threads must be");
    ExpectCleanError(Tinyai("generate -m " + m + " -p hi --threads 100000"), "--threads must be");
    ExpectCleanError(Tinyai("generate -m " + m + " -p hi --top-p 1.5"), "--top-p");
    ExpectCleanError(Tinyai("generate -m " + m + " -p hi --cpu sse9"), "unknown CPU kernel variant");
    ExpectCleanError(Tinyai("generate -m " + m + " -p hi --bogus 1"), "unknown option");
    ExpectCleanError(Tinyai("generate -m " + m), "needs -p");
    ExpectCleanError(Tinyai("generate -p hi"), "needs -m");
    ExpectCleanError(Tinyai("frobnicate"), "unknown command");
    ExpectCleanError(Tinyai("synth -o /nonexistent-dir/x.gguf"), "nonexistent-dir");
    ExpectCleanError(Tinyai("synth -o x.gguf --type Q5_K"), "Q5_K");
    std::remove(m.c_str());
}

// `devices` lists the CPU first, then what OpenCL reports; --device takes
// those names, and anything else is a usage error (status 2).
TEST(Cli, DevicesAndTheDeviceOption) {
    Result r = Tinyai("devices");
    ASSERT_EQ(r.status, 0) << r.output;
    EXPECT_EQ(r.output.rfind("cpu ", 0), 0u) << r.output;
    std::string m = Synth("");
    for (const char *bad : {"gpu", "opencl:99", "cpu:0", ""}) {
        Result b = Tinyai("generate -m " + m + " -p hi -n 2 --device '" + bad + "'");
        EXPECT_EQ(b.status, 2) << bad << ": " << b.output;
        EXPECT_NE(b.output.find("--device"), std::string::npos) << b.output;
    }
    Result c = Tinyai("generate -m " + m + " -p hi -n 2 --temp 0 --device cpu");
    EXPECT_EQ(c.status, 0) << c.output;
    EXPECT_NE(c.output.find("devices: cpu"), std::string::npos) << c.output;
    if (r.output.find("opencl:0") != std::string::npos) {
        // the same greedy text on OpenCL (an F32 model: float agreement)
        std::string f = Synth("--type F32");
        Result a = Tinyai("generate -m " + f + " -p hi -n 12 --temp 0 --device cpu", "");
        Result o = Tinyai("generate -m " + f + " -p hi -n 12 --temp 0 --device opencl", "");
        EXPECT_EQ(o.status, 0) << o.output;
        EXPECT_EQ(a.output, o.output);
        Result s = Tinyai("generate -m " + f + " -p hi -n 2 --device opencl:0");
        EXPECT_NE(s.output.find("devices: opencl:0"), std::string::npos) << s.output;
        std::remove(f.c_str());
    }
    std::remove(m.c_str());
}

TEST(Cli, PromptLongerThanContextIsAnError) {
    std::string m = Synth("");
    std::string prompt(400, 'a');
    for (size_t i = 0; i < prompt.size(); i += 2) prompt[i] = ' ';
    ExpectCleanError(Tinyai("generate -m " + m + " --ctx 16 -p '" + prompt + "'"), "longer than the context");
    ExpectCleanError(Tinyai("generate -m " + m + " --ctx 100000 -p hi"), "context");
    std::remove(m.c_str());
}

TEST(Cli, CorruptFilesAreOneLineErrors) {
    std::string m = Synth("--type Q8_0");
    std::string data = ReadFile(m);
    ASSERT_GT(data.size(), 4096u);
    std::string bad = tai_test::TempPath(".gguf");

    WriteFile(bad, "XXXX" + data.substr(4));
    ExpectCleanError(Tinyai("generate -m " + bad + " -p hi"), "magic");
    for (size_t cut : {size_t(3), size_t(24), size_t(200), size_t(2000), data.size() - 10}) {
        WriteFile(bad, data.substr(0, cut));
        Result r = Tinyai("generate -m " + bad + " -p hi");
        SCOPED_TRACE(cut);
        ExpectCleanError(r, bad);
    }
    WriteFile(bad, "");
    ExpectCleanError(Tinyai("inspect " + bad), bad);
    ExpectCleanError(Tinyai("inspect /nonexistent/model.gguf"), "/nonexistent/model.gguf");

    // Unsupported architecture: the value of general.architecture renamed.
    std::string arch = data;
    size_t at = arch.find("llama");
    ASSERT_NE(at, std::string::npos);
    arch.replace(at, 5, "mamba");
    WriteFile(bad, arch);
    ExpectCleanError(Tinyai("inspect " + bad), "architecture");

    // A .tmai layer whose checksum does not match its bytes.
    std::string t = tai_test::TempPath(".tmai");
    ASSERT_EQ(Tinyai("convert " + m + " " + t).status, 0);
    // Layer 1's offset from the layer table that inspect prints.
    Result info = Tinyai("inspect " + t);
    size_t row = info.output.find("\n     1 ");
    ASSERT_NE(row, std::string::npos) << info.output;
    unsigned long long layer1 = std::stoull(info.output.substr(row + 8));
    std::string td = ReadFile(t);
    ASSERT_LT(layer1 + 100, td.size());
    td[layer1 + 100] ^= 0x40;  // inside block 0's weights
    WriteFile(t, td);
    ExpectCleanError(Tinyai("generate -m " + t + " -p hi -n 2"), "checksum");
    ExpectCleanError(Tinyai("generate -m " + t + " -p hi -n 2 --verify"), "checksum");
    std::remove(m.c_str());
    std::remove(bad.c_str());
    std::remove(t.c_str());
}

// `perplexity` on the real model and the shipped public-domain text: a
// sane figure for English, the running estimate per chunk, and the same
// figure whatever the batch of chunks (batch invariance).
TEST(Cli, RealModelPerplexityOfEnglishText) {
    TAI_REQUIRE_DEFAULT_MODEL(path);
    const std::string text = "tests/data/public_domain_en.txt";
    Result one = Tinyai("perplexity -m " + path + " -f " + text + " --ctx 128 --threads 2");
    ASSERT_EQ(one.status, 0) << one.output;
    EXPECT_NE(one.output.find("[5/5] "), std::string::npos) << one.output;
    const size_t at = one.output.find("PPL = ");
    ASSERT_NE(at, std::string::npos) << one.output;
    const double ppl = std::atof(one.output.c_str() + at + 6);
    EXPECT_GT(ppl, 2.0) << one.output;  // English under a small model: single
    EXPECT_LT(ppl, 40.0) << one.output; // digits to tens, not thousands
    Result two = Tinyai("perplexity -m " + path + " -f " + text + " --ctx 128 --batch 2 --threads 2",
                        "stdout only");
    ASSERT_EQ(two.status, 0) << two.output;
    const std::string line = one.output.substr(at, one.output.find('\n', at) - at);
    EXPECT_NE(two.output.find(line), std::string::npos) << line << "\n" << two.output;
}

TEST(Cli, PerplexityBadInputIsOneLineErrors) {
    std::string m = Synth("");
    const std::string text = "tests/data/public_domain_en.txt";
    ExpectCleanError(Tinyai("perplexity -m " + m), "needs -m MODEL and -f TEXT");
    ExpectCleanError(Tinyai("perplexity -m " + m + " -f /nonexistent/t.txt"), "cannot read the text");
    ExpectCleanError(Tinyai("perplexity -m " + m + " -f " + text + " --ctx 2"), "--ctx must be");
    ExpectCleanError(Tinyai("perplexity -m " + m + " -f " + text + " --batch 0"), "--batch must be");
    const std::string small = tai_test::TempPath(".txt"), bin = tai_test::TempPath(".bin"),
                      empty = tai_test::TempPath(".txt");
    WriteFile(small, "Too short.");
    WriteFile(bin, std::string("ab\0cd", 5));
    WriteFile(empty, "");
    ExpectCleanError(Tinyai("perplexity -m " + m + " -f " + small + " --ctx 64"),
                     "fewer than one chunk of 64");
    ExpectCleanError(Tinyai("perplexity -m " + m + " -f " + bin), "NUL bytes");
    ExpectCleanError(Tinyai("perplexity -m " + m + " -f " + empty), "holds no text");
    std::remove(small.c_str());
    std::remove(bin.c_str());
    std::remove(empty.c_str());
    std::remove(m.c_str());
}

// `tinyai quantize` streams: converting a model of ~270 MB keeps the
// process's peak resident memory under a third of it (the rows in flight,
// not the file: pages of the source it is done with leave the resident set).
TEST(Cli, QuantizeStreamsInBoundedMemory) {
    const std::string src = tai_test::TempPath(".gguf"), out = tai_test::TempPath(".gguf");
    Result w = Tinyai("synth -o " + src + " --type F32 --vocab 8192 --embd 1024 --ff 2816 "
                      "--heads 8 --kv-heads 8 --layers 4 --untied");
    ASSERT_EQ(w.status, 0) << w.output;
    struct stat sb;
    ASSERT_EQ(stat(src.c_str(), &sb), 0);
    ASSERT_GT(sb.st_size, 250 << 20);
    // spawned directly, so that wait4 gives this child's own peak
    const std::string cache = "TINYAI_CACHE=" + TestCache();
    std::vector<std::string> args = {"tools/tinyai", "quantize", src, out, "--attention", "int4",
                                     "--ffn", "int4", "--embedding", "int8", "--output", "int8"};
    std::vector<char *> argv;
    for (auto &a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    std::vector<char *> envp = {const_cast<char *>(cache.c_str()), nullptr};
    pid_t pid;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    ASSERT_EQ(posix_spawn(&pid, "tools/tinyai", &fa, nullptr, argv.data(), envp.data()), 0);
    posix_spawn_file_actions_destroy(&fa);
    int status = 0;
    struct rusage ru;
    ASSERT_EQ(wait4(pid, &status, 0, &ru), pid);
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
    const double peak_mib = ru.ru_maxrss / 1024.0;
    EXPECT_LT(peak_mib, sb.st_size / 3.0 / 1048576.0) << "peak " << peak_mib << " MiB";
    struct stat so;
    ASSERT_EQ(stat(out.c_str(), &so), 0);
    EXPECT_LT(so.st_size * 4, sb.st_size);
    Result g = Tinyai("generate -m " + out + " -p hello -n 4 --temp 0 --threads 2");
    EXPECT_EQ(g.status, 0) << g.output;
    std::remove(src.c_str());
    std::remove(out.c_str());
}

TEST(Cli, QuantizeBadInputIsOneLineErrors) {
    std::string m = Synth("--type Q4_0");
    const std::string out = tai_test::TempPath(".gguf");
    ExpectCleanError(Tinyai("quantize " + m), "needs IN and OUT");
    ExpectCleanError(Tinyai("quantize " + m + " " + out + " --ffn int3"), "precision 'int3'");
    ExpectCleanError(Tinyai("quantize " + m + " " + out + " --int4 q4_2"), "--int4 'q4_2'");
    ExpectCleanError(Tinyai("quantize " + m + " " + out + " --mix q3_k_m"), "--mix 'q3_k_m'");
    // a Q4_0 source has no bits for the mix's Q6_K tensors: refused, named
    ExpectCleanError(Tinyai("quantize " + m + " " + out + " --mix q4_k_m"), "would raise it");
    ExpectCleanError(Tinyai("quantize " + m + " " + out + " --threads 0"), "--threads");
    ExpectCleanError(Tinyai("quantize " + m + " " + out + " --ffn int8"),
                     "ffn_gate.weight is Q4_0");
    ExpectCleanError(Tinyai("quantize /nonexistent/m.gguf " + out), "/nonexistent/m.gguf");
    ExpectCleanError(Tinyai("quantize " + m + " /nonexistent/out.gguf --ffn int4"),
                     "/nonexistent/out.gguf");
    ExpectCleanError(Tinyai("quantize " + m + " " + m), "the output is the input");
    struct stat sb;
    EXPECT_NE(stat(out.c_str(), &sb), 0) << "a failed conversion left " << out;
    std::remove(m.c_str());
}

// The real model with its embedding lowered from Q8_0 to Q4_1, as .tmai:
// 12 MiB smaller, English perplexity within 15% of the original's, and the
// greedy answer unchanged.
TEST(Cli, RealModelQuantizedKeepsItsAnswer) {
    TAI_REQUIRE_DEFAULT_MODEL(path);
    const std::string out = tai_test::TempPath(".tmai"), text = "tests/data/public_domain_en.txt";
    Result q = Tinyai("quantize " + path + " " + out + " --embedding int4 --int4 q4_1");
    ASSERT_EQ(q.status, 0) << q.output;
    EXPECT_NE(q.output.find("x0.8"), std::string::npos) << q.output;
    auto ppl = [&](const std::string &m) {
        Result r = Tinyai("perplexity -m " + m + " -f " + text + " --ctx 128 --threads 2");
        EXPECT_EQ(r.status, 0) << r.output;
        const size_t at = r.output.find("PPL = ");
        return at == std::string::npos ? 0.0 : std::atof(r.output.c_str() + at + 6);
    };
    const double a = ppl(path), b = ppl(out);
    EXPECT_GT(b, a);
    EXPECT_LT(b, a * 1.15) << a << " -> " << b;
    Result g = Tinyai("generate -m " + out + " -p 'The capital of France is' -n 4 --temp 0 --threads 2",
                      "stdout only");
    EXPECT_NE(g.output.find("Paris"), std::string::npos) << g.output;
    std::remove(out.c_str());
}

TEST(Cli, PruneBadInputIsOneLineErrors) {
    std::string m = Synth("--type Q8_0");
    const std::string out = tai_test::TempPath(".tmai");
    ExpectCleanError(Tinyai("prune " + m), "needs IN and OUT");
    ExpectCleanError(Tinyai("prune " + m + " " + out + " --sparsity 1.5"), "--sparsity '1.5'");
    ExpectCleanError(Tinyai("prune " + m + " " + out + " --sparsity x"), "--sparsity 'x'");
    ExpectCleanError(Tinyai("prune " + m + " " + out + " --method random"), "--method 'random'");
    ExpectCleanError(Tinyai("prune " + m + " " + out + " --layer-sparsity 0:0.5"),
                     "--layer-sparsity '0:0.5'");
    ExpectCleanError(Tinyai("prune " + m + " " + out + " --block-size 0"), "--block-size");
    ExpectCleanError(Tinyai("prune " + m + " " + tai_test::TempPath(".gguf")), "a .tmai file");
    ExpectCleanError(Tinyai("prune /nonexistent/m.gguf " + out), "/nonexistent/m.gguf");
    struct stat sb;
    EXPECT_NE(stat(out.c_str(), &sb), 0) << "a failed prune left " << out;
    Result ok = Tinyai("prune " + m + " " + out + " --sparsity 0.5 --method norm-weighted "
                       "--layer-sparsity 0=0.25,1=0.75");
    EXPECT_EQ(ok.status, 0) << ok.output;
    EXPECT_NE(ok.output.find("pruning saves"), std::string::npos) << ok.output;
    Result g = Tinyai("generate -m " + out + " -p hello -n 4 --temp 0 --threads 2");
    EXPECT_EQ(g.status, 0) << g.output;
    ExpectCleanError(Tinyai("quantize " + out + " " + tai_test::TempPath(".gguf") + " --ffn int4"),
                     "before pruning");
    std::remove(out.c_str());
    std::remove(m.c_str());
}

// The real model at 70%: 46% smaller (the blocks' matrices; the embedding
// stays) and it runs; the perplexity it then has is in bench/README.md.
TEST(Cli, RealModelPrunedRuns) {
    TAI_REQUIRE_DEFAULT_MODEL(path);
    const std::string out = tai_test::TempPath(".tmai");
    Result p = Tinyai("prune " + path + " " + out + " --sparsity 0.7");
    ASSERT_EQ(p.status, 0) << p.output;
    struct stat a, b;
    ASSERT_EQ(stat(path.c_str(), &a), 0);
    ASSERT_EQ(stat(out.c_str(), &b), 0);
    EXPECT_LT(b.st_size, a.st_size * 6 / 10);
    Result g = Tinyai("generate -m " + out + " -p 'The capital of France is' -n 8 --temp 0 --threads 2");
    EXPECT_EQ(g.status, 0) << g.output;
    EXPECT_NE(g.output.find("generated: 8 tokens"), std::string::npos) << g.output;
    std::remove(out.c_str());
}

// --memory-report writes TinyAI's memory by kind beside the process's
// resident memory; a report that cannot be written is a one-line error.
TEST(Cli, GenerateWritesAMemoryReport) {
    TAI_REQUIRE_DEFAULT_MODEL(path);
    const std::string report = tai_test::TempPath(".txt");
    Result r = Tinyai("generate -m " + path + " -p hello -n 8 --temp 0 --threads 2 --memory-report " +
                      report);
    ASSERT_EQ(r.status, 0) << r.output;
    const std::string text = ReadFile(report);
    for (const char *needle : {"TinyAI memory report", "weights (cache arenas)",
                               "KV caches and logits", "activations (workspaces)", "I/O staging",
                               "tables (tokenizer, file)", "process resident now (VmRSS)",
                               "TinyAI's share of VmRSS", "largest live buffers"})
        EXPECT_NE(text.find(needle), std::string::npos) << needle << "\n" << text;
    // the weights are all resident: at least the model's 92 MiB
    const size_t at = text.find("weights (cache arenas)");
    double held = 0, peak = 0, resident = 0;
    ASSERT_EQ(sscanf(text.c_str() + at + 22, "%lf %lf %lf", &held, &peak, &resident), 3) << text;
    EXPECT_GT(resident, 90.0) << text;
    std::remove(report.c_str());
    ExpectCleanError(Tinyai("generate -m " + path + " -p hello -n 1 --memory-report /nonexistent/r.txt"),
                     "/nonexistent/r.txt");
}

TEST(Cli, RealModelGreedyNamesParis) {
    TAI_REQUIRE_DEFAULT_MODEL(path);
    Result r = Tinyai("generate -m " + path + " -p 'The capital of France is' -n 12 --temp 0 --threads 2");
    EXPECT_EQ(r.status, 0) << r.output;
    EXPECT_NE(r.output.find("Paris"), std::string::npos) << r.output;
}

// --chat reads the user's text as text: a "<|im_end|>" typed in it costs
// the tokens of its spelling (a space and "<|im_end|>": 7 for SmolLM2), not
// one control token that would close the user's turn.
TEST(Cli, RealModelChatReadsMarkersInThePromptAsText) {
    TAI_REQUIRE_DEFAULT_MODEL(path);
    auto prompt_tokens = [&](const std::string &p) {
        Result r = Tinyai("generate -m " + path + " --chat -p '" + p + "' -n 1 --temp 0 --threads 2");
        EXPECT_EQ(r.status, 0) << r.output;
        const size_t at = r.output.find("prompt: ");
        EXPECT_NE(at, std::string::npos) << r.output;
        return at == std::string::npos ? -1 : std::atoi(r.output.c_str() + at + 8);
    };
    const int plain = prompt_tokens("Say hi.");
    ASSERT_GT(plain, 0);
    EXPECT_EQ(prompt_tokens("Say hi. <|im_end|>"), plain + 7);
}

// The F16 and 8-bit KV caches from the command line: the same answer, and a
// device other than the CPU refused in one line.
TEST(Cli, RealModelF16AndQ8KvCachesNameParis) {
    TAI_REQUIRE_DEFAULT_MODEL(path);
    for (const char *kv : {"f16", "q8_0"}) {
        SCOPED_TRACE(kv);
        const std::string base = "generate -m " + path + " -p 'The capital of France is' -n 12 --temp 0 "
                                 "--threads 2 --kv-type " + kv + " ";
        Result r = Tinyai(base);
        EXPECT_EQ(r.status, 0) << r.output;
        EXPECT_NE(r.output.find("Paris"), std::string::npos) << r.output;
        Result d = Tinyai(base + "--device opencl:0");
        ExpectCleanError(d, std::string(kv[0] == 'f' ? "F16" : "8-bit") +
                                " KV cache is read by the CPU kernels only");
        EXPECT_EQ(d.status, 1) << d.output;
    }
}

}  // namespace

namespace {
using namespace tai_cli;

TEST(Cli, RealModelTmaiGeneratesTheSameTokens) {
    TAI_REQUIRE_DEFAULT_MODEL(path);
    std::string t = tai_test::TempPath(".tmai");
    Result c = Tinyai("convert " + path + " " + t);
    ASSERT_EQ(c.status, 0) << c.output;
    const std::string args = " -p 'Once upon a time' -n 24 --temp 0.7 --seed 3 --quiet --threads 2";
    Result a = Tinyai("generate -m " + path + args, "stdout");
    Result b = Tinyai("generate -m " + t + args, "stdout");
    EXPECT_EQ(a.status, 0);
    EXPECT_EQ(b.status, 0);
    EXPECT_GT(a.output.size(), 24u);
    EXPECT_EQ(a.output, b.output);
    std::remove(t.c_str());
}

}  // namespace

// ---- generate under a memory limit ------------------------------------------

namespace {
using namespace tai_cli;

// The number after `key` in `text` (e.g. "peak " -> 60.0); -1 if absent.
double NumberAfter(const std::string &text, const std::string &key) {
    size_t at = text.find(key);
    if (at == std::string::npos) return -1;
    return std::strtod(text.c_str() + at + key.size(), nullptr);
}

TEST(Cli, MemLimitPrintsTheMemorySummary) {
    TAI_REQUIRE_DEFAULT_MODEL(path);
    const std::string base =
        "generate -m " + path + " -p 'The capital of France is' -n 8 --temp 0 --threads 2 ";
    Result r = Tinyai(base + "--mem-limit 72M");
    ASSERT_EQ(r.status, 0) << r.output;
    EXPECT_NE(r.output.find("Paris"), std::string::npos) << r.output;
    size_t at = r.output.find("memory: mode ");
    ASSERT_NE(at, std::string::npos) << r.output;
    const std::string line = r.output.substr(at, r.output.find('\n', at) - at);
    for (const char *field : {"limit 72.0 MiB", "MiB/token", "cache hits", "I/O stall", "peak",
                              "tracked", "io ", "policy belady"})
        EXPECT_NE(line.find(field), std::string::npos) << field << " missing: " << line;
    const double per_token = NumberAfter(line, "read ");
    const double peak = NumberAfter(line, "peak ");
    const double hits = NumberAfter(line, "cache hits ");
    EXPECT_GT(per_token, 0.0) << line;  // 72 MiB cannot hold the 92 MiB model
    EXPECT_GT(peak, 0.0) << line;
    EXPECT_LE(peak, 72.0) << line;
    EXPECT_GE(hits, 0.0) << line;
    EXPECT_LE(hits, 100.0) << line;
    // no limit: no memory line
    Result plain = Tinyai(base);
    EXPECT_EQ(plain.status, 0);
    EXPECT_EQ(plain.output.find("memory: "), std::string::npos) << plain.output;

    // the options reach the runtime and the summary says so
    Result o = Tinyai(base + "--mem-limit 70M --mode memory-opt --io pread --cache-policy lru "
                             "--prefetch 2");
    ASSERT_EQ(o.status, 0) << o.output;
    EXPECT_NE(o.output.find("memory: mode memory-opt (as asked)"), std::string::npos) << o.output;
    EXPECT_NE(o.output.find("io pread"), std::string::npos) << o.output;
    EXPECT_NE(o.output.find("policy lru"), std::string::npos) << o.output;
    EXPECT_NE(o.output.find("Paris"), std::string::npos) << o.output;
    Result s = Tinyai(base + "--mem-limit 70M --mode streaming --io mmap --quiet", "stdout");
    EXPECT_EQ(s.status, 0);
    EXPECT_NE(s.output.find("Paris"), std::string::npos) << s.output;
}

TEST(Cli, BadMemoryOptionsAreUsageErrors) {
    std::string m = Synth("");
    const std::string base = "generate -m " + m + " -p hi -n 2 ";
    for (const char *v : {"0", "junk", "12Q", "-5", "5MB", "''", "99999999999G"}) {
        SCOPED_TRACE(v);
        Result r = Tinyai(base + "--mem-limit " + v);
        ExpectCleanError(r, "--mem-limit must be a positive byte count");
        EXPECT_EQ(r.status, 2);
    }
    struct {
        const char *args, *needle;
    } bad[] = {
        {"--mode junk", "--mode must be"},
        {"--mode NORMAL", "--mode must be"},
        {"--io junk", "--io must be"},
        {"--cache-policy junk", "--cache-policy must be"},
        {"--cache-policy LRU", "--cache-policy must be"},
        {"--kv-type q8", "--kv-type must be f32, f16 or q8_0"},
        {"--kv-type F16", "--kv-type must be f32, f16 or q8_0"},
        {"--prefetch -1", "--prefetch must be"},
        {"--prefetch 65", "--prefetch must be"},
        {"--mem-limit", "needs a value"},
    };
    for (const auto &b : bad) {
        SCOPED_TRACE(b.args);
        Result r = Tinyai(base + b.args);
        ExpectCleanError(r, b.needle);
        EXPECT_EQ(r.status, 2);
    }
    std::remove(m.c_str());
}

// A limit below what the model needs: status 1 and the minimum in the
// message; that minimum, given back, runs.
TEST(Cli, LimitBelowTheMinimumNamesIt) {
    TAI_REQUIRE_DEFAULT_MODEL(path);
    const std::string base = "generate -m " + path + " -p 'The capital of France is' -n 6 "
                             "--temp 0 --threads 2 --mode streaming ";
    Result r = Tinyai(base + "--mem-limit 1M");
    ExpectCleanError(r, "below the minimum of ");
    EXPECT_EQ(r.status, 1);
    size_t at = r.output.find("minimum of ");
    ASSERT_NE(at, std::string::npos);
    const unsigned long long minimum = std::strtoull(r.output.c_str() + at + 11, nullptr, 10);
    ASSERT_GT(minimum, 1u << 20) << r.output;
    Result one_less = Tinyai(base + "--mem-limit " + std::to_string(minimum - 1));
    ExpectCleanError(one_less, "below the minimum of " + std::to_string(minimum));
    Result ok = Tinyai(base + "--mem-limit " + std::to_string(minimum));
    EXPECT_EQ(ok.status, 0) << ok.output;
    EXPECT_NE(ok.output.find("Paris"), std::string::npos) << ok.output;
    EXPECT_NE(ok.output.find("memory: mode streaming"), std::string::npos) << ok.output;
    // normal mode with a limit the model does not fit in
    Result n = Tinyai("generate -m " + path + " -p hi -n 2 --mode normal --mem-limit 80M");
    ExpectCleanError(n, "normal mode");
    EXPECT_EQ(n.status, 1);
}

}  // namespace

// ---- greedy -------------------------------------------------------------------

namespace {
using namespace tai_cli;

// Greedy decoding through the API with no sampler at all: each token is the
// argmax of the logits (lowest id on ties). Returns the text the CLI would
// print and the ids.
std::string ArgmaxText(const std::string &path, const std::string &prompt, int n,
                       std::vector<int32_t> *ids_out) {
    TinyAIModelConfig c = tinyaiCreateDefaultModelConfig();
    TinyAIModel *m = nullptr;
    EXPECT_EQ(tinyaiLoadModel(path.c_str(), &c, &m), TINYAI_OK) << tinyaiLastErrorMessage();
    if (!m) return "";
    TinyAIModelInfo info;
    EXPECT_EQ(tinyaiGetModelInfo(m, &info), TINYAI_OK);
    std::vector<int32_t> ids(512);
    size_t n_ids = 0;
    EXPECT_EQ(tinyaiTokenize(m, prompt.c_str(), info.addBosToken, false, ids.data(), ids.size(),
                             &n_ids),
              TINYAI_OK);
    TinyAISession *s = nullptr;
    EXPECT_EQ(tinyaiCreateSession(m, 0, &s), TINYAI_OK) << tinyaiLastErrorMessage();
    std::string text;
    if (s && tinyaiEval(s, ids.data(), n_ids) == TINYAI_OK) {
        for (int i = 0; i < n; i++) {
            const float *l = tinyaiGetLogits(s);
            int32_t best = 0;
            for (int v = 1; v < info.nVocab; v++)
                if (l[v] > l[best]) best = v;
            if (tinyaiTokenIsEndOfGeneration(m, best)) break;
            ids_out->push_back(best);
            size_t len = 0;
            const char *piece = tinyaiTokenPiece(m, best, &len);
            if (piece) text.append(piece, len);
            if (i + 1 < n) {
                EXPECT_EQ(tinyaiEval(s, &best, 1), TINYAI_OK);
            }
        }
    }
    tinyaiFreeSession(s);
    tinyaiFreeModel(m);
    return text + "\n";
}

// `--temp 0` with every other option at its default is the argmax of the
// logits, token for token. The model (seed) is one where a repetition penalty
// of 1.1, on by default before, departs from the argmax: shown beside it, so
// this test fails if greedy stops being the argmax.
TEST(Cli, TempZeroIsTheArgmaxOfTheLogits) {
    const std::pair<const char *, int> cases[] = {{"F32", 2}, {"Q8_0", 2}, {"Q4_0", 3}};
    for (auto [type, seed] : cases) {
        SCOPED_TRACE(type);
        std::string m = Synth(std::string("--type ") + type + " --seed " + std::to_string(seed));
        const std::string prompt = "the quick brown fox";
        std::vector<int32_t> ids;
        const std::string want = ArgmaxText(m, prompt, 32, &ids);
        const std::string args = " -p '" + prompt + "' -n 32 --temp 0 --quiet";
        Result r = Tinyai("generate -m " + m + args, "stdout");
        EXPECT_EQ(r.status, 0);
        EXPECT_EQ(r.output, want);
        Result penalised = Tinyai("generate -m " + m + args + " --repeat-penalty 1.1", "stdout");
        EXPECT_EQ(penalised.status, 0);
        EXPECT_NE(penalised.output, want) << "the penalty no longer changes this model's output";
        std::remove(m.c_str());
    }
}

}  // namespace

// ---- kernel tuning ------------------------------------------------------------

namespace {
using namespace tai_cli;

std::string ReadAll(const std::string &p) {
    std::ifstream f(p);
    return std::string(std::istreambuf_iterator<char>(f), {});
}

// The first `tinyai tune` in an empty cache folder measures (for real) and
// saves a file for this CPU, which `cpu` then reports and a second `tune`
// reads back instead of measuring; `generate` applies it silently.
TEST(Cli, TuneMeasuresOnceAndSavesPerCpu) {
    const std::string dir = tai_test::TempPath("-tune");
    const std::string env = "TINYAI_CACHE='" + dir + "/sub'";  // made by tinyai
    const std::string file = dir + "/sub/kernels-" + Signature() + ".tune";
    Result before = RunWith(env, "cpu", nullptr);
    ASSERT_EQ(before.status, 0) << before.output;
    EXPECT_NE(before.output.find("none measured yet"), std::string::npos) << before.output;
    Result t = RunWith(env, "tune", nullptr);
    ASSERT_EQ(t.status, 0) << t.output;
    EXPECT_NE(t.output.find("measuring"), std::string::npos) << t.output;
    const std::string saved = ReadAll(file);
    ASSERT_NE(saved.find("cpu " + Signature()), std::string::npos) << saved;
    Result after = RunWith(env, "cpu", nullptr);
    EXPECT_NE(after.output.find(file), std::string::npos) << after.output;
    Result again = RunWith(env, "tune", nullptr);
    EXPECT_EQ(again.status, 0);
    EXPECT_NE(again.output.find("measured before"), std::string::npos) << again.output;
    EXPECT_EQ(ReadAll(file), saved);
    std::string m = Synth("");
    Result g = RunWith(env, "generate -m " + m + " -p hi -n 2", nullptr);
    EXPECT_EQ(g.status, 0) << g.output;
    EXPECT_EQ(g.output.find("tuning"), std::string::npos) << g.output;
    std::remove(m.c_str());
}

// A first run's tuning measured while other work keeps the CPUs busy is
// used for that run but not saved (a busy machine's figures are low): a
// process spinning beside it keeps well over a quarter of a core busy
// whatever else runs (half a core even with four runnable threads on two
// cores). One spinner, and the CPU named (no device calibration), so that
// the run stays short under the sanitizers.
TEST(Cli, TuningMeasuredOnABusyMachineIsNotSaved) {
    const std::string dir = tai_test::TempPath("-busytune");
    const std::string file = dir + "/kernels-" + Signature() + ".tune";
    std::string m = Synth("");
    std::vector<pid_t> spinners;
    for (int i = 0; i < 1; i++) {
        pid_t p = fork();
        ASSERT_GE(p, 0);
        if (p == 0) {
            for (;;) {
            }
        }
        spinners.push_back(p);
    }
    // the measurement shares the CPUs with the spinner (and, under the
    // sanitizers, takes most of a minute): a longer limit than RunWith's
    Result g = tai_test::RunCommand("TINYAI_CACHE='" + dir + "' timeout 600 tools/tinyai generate -m " +
                                    m + " -p hi -n 1 --device cpu 2>&1");
    for (pid_t p : spinners) {
        kill(p, SIGKILL);
        waitpid(p, nullptr, 0);
    }
    EXPECT_EQ(g.status, 0) << g.output;
    EXPECT_NE(g.output.find("not saved"), std::string::npos) << g.output;
    struct stat sb;
    EXPECT_NE(stat(file.c_str(), &sb), 0) << file << " was saved";
    std::remove(m.c_str());
}

// A damaged or foreign tuning file is a warning naming it, never a failure:
// with --no-tune the CPU's defaults are used.
TEST(Cli, BadTuningFileIsAWarning) {
    const std::string dir = tai_test::TempPath("-badtune");
    mkdir(dir.c_str(), 0755);
    const std::string file = dir + "/kernels-" + Signature() + ".tune";
    std::string m = Synth("");
    for (const std::string &body :
         {std::string("cpu ") + Signature() + " avx512\nprefetch_l1 banana\nprefetch_l2 0\n",
          std::string("cpu SomeOtherCpu-1-2-3 avx2\nprefetch_l1 0\nprefetch_l2 0\n"),
          std::string("\x01\x02garbage")}) {
        WriteFile(file, body);
        Result g = RunWith("TINYAI_CACHE='" + dir + "'", "generate -m " + m + " -p hi -n 2 --no-tune",
                       nullptr);
        EXPECT_EQ(g.status, 0) << g.output;
        EXPECT_NE(g.output.find("warning: ignoring the kernel tuning"), std::string::npos)
            << g.output;
        EXPECT_NE(g.output.find(file), std::string::npos) << g.output;
    }
    std::remove(m.c_str());
}

}  // namespace

namespace {
using namespace tai_cli;

// --profile prints where the time went, per layer and per op, with the
// CPU's counters or why they are missing; --trace writes a trace; a trace
// that cannot be written stops the command before it loads anything.
TEST(Cli, GenerateProfileAndTrace) {
    std::string m = Synth("--type Q8_0");
    const std::string trace = tai_test::TempPath(".json");
    Result r = Tinyai("generate -m " + m + " -p hello -n 4 --temp 0 --profile --trace " + trace);
    ASSERT_EQ(r.status, 0) << r.output;
    for (const char *want : {"layer", "ms/pass", "GFLOP/s", "embedding", "block 0", "head", "attention", "down"})
        EXPECT_NE(r.output.find(want), std::string::npos) << want << "\n" << r.output;
    EXPECT_TRUE(r.output.find("hardware counters are not exposed") != std::string::npos ||
                r.output.find("IPC") != std::string::npos)
        << r.output;
    const std::string t = ReadFile(trace);
    EXPECT_EQ(t.rfind("{\"displayTimeUnit\"", 0), 0u) << t.substr(0, 200);
    EXPECT_NE(t.find("\"cat\": \"compute\""), std::string::npos);
    ExpectCleanError(Tinyai("generate -m " + m + " -p hello --trace /nonexistent-dir/t.json"),
                     "cannot write it");
}

}  // namespace
