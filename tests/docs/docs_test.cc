// docs/: the pages cannot drift from the code. Every code block marked
// "<!-- example: examples/NAME.c -->" appears, line for line, in that
// example program (which the examples test compiles and runs), and every
// function the documented headers declare is named on a page.
#include <gtest/gtest.h>

#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

namespace {

std::string Read(const std::string &path) {
    std::ifstream f(path);
    std::stringstream s;
    s << f.rdbuf();
    return s.str();
}

const char *const kPages[] = {"docs/api/mmap_loader.md", "docs/api/forward_scheduler.md",
                              "docs/api/optimization.md", "docs/guides/memory_optimization.md",
                              "docs/PROFILING.md"};

TEST(Docs, EveryExampleBlockIsInItsCompiledProgram) {
    int blocks = 0;
    for (const char *page : kPages) {
        const std::string text = Read(page);
        ASSERT_FALSE(text.empty()) << page;
        const std::regex marked("<!-- example: ([^ ]+) -->\n```c\n([\\s\\S]*?)\n```");
        for (auto it = std::sregex_iterator(text.begin(), text.end(), marked);
             it != std::sregex_iterator(); ++it, ++blocks) {
            const std::string file = (*it)[1], code = (*it)[2];
            const std::string src = Read(file);
            ASSERT_FALSE(src.empty()) << page << ": " << file << " is missing";
            EXPECT_NE(src.find(code), std::string::npos)
                << page << ": a block is not in " << file << " as written:\n" << code;
        }
    }
    EXPECT_GE(blocks, 8);
}

TEST(Docs, EveryFunctionOfTheDocumentedHeadersIsNamed) {
    std::string all;
    for (const char *page : kPages) all += Read(page);
    const char *const headers[] = {
        "include/tinyai/utils/mmap_loader.h", "include/tinyai/utils/forward_scheduler.h",
        "include/tinyai/utils/progressive_loader.h", "include/tinyai/utils/quantize_mixed.h",
        "include/tinyai/utils/prune.h", "include/tinyai/utils/memory.h",
        "include/tinyai/utils/memory_optimizer.h", "include/tinyai/utils/layer_scheduler.h",
        "include/tinyai/utils/simd.h", "include/tinyai/utils/cache_optimization.h",
        "include/tinyai/profile.h"};
    const std::regex decl("\n[A-Za-z][A-Za-z0-9_ *]*?\\b(tinyai[A-Za-z0-9_]*)\\(");
    int n = 0;
    for (const char *h : headers) {
        const std::string text = Read(h);
        ASSERT_FALSE(text.empty()) << h;
        for (auto it = std::sregex_iterator(text.begin(), text.end(), decl);
             it != std::sregex_iterator(); ++it, ++n) {
            const std::string fn = (*it)[1];
            EXPECT_NE(all.find(fn), std::string::npos) << fn << " (" << h << ") is on no page";
        }
    }
    EXPECT_GT(n, 30);
}

}  // namespace
