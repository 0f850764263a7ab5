// tests/plugin/conformance_suite_test.cc: the plugin conformance suite
// (tools/conformance) on every plugin in the tree: the reference plugin as
// shipped and built against ABI 1.0 and 1.2 passes every check; plugins
// that misbehave fail the checks that catch them; the program's exit
// statuses and report.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include <sys/wait.h>

#include "tests/common/test_paths.h"
#include "tools/conformance/conformance.h"

namespace {

std::string Env(const char *name) {
    const char *v = std::getenv(name);
    return v ? v : "";
}

std::string Bad(const std::string &mode) {
    std::string one = Env("TINYAI_TEST_BAD_PLUGINS");
    return one.substr(0, one.rfind('/') + 1) + "libbad_" + mode + ".so";
}

const tai_conf_case *Find(const tai_conf_report &r, const std::string &name,
                          const std::string &type = "") {
    for (int i = 0; i < r.n; i++)
        if (name == r.cases[i].name && type == r.cases[i].type) return &r.cases[i];
    return nullptr;
}

TEST(ConformanceSuite, EveryReferencePluginBuildPassesEverything) {
    for (const char *var : {"TINYAI_TEST_PLUGIN", "TINYAI_TEST_PLUGIN_1_0", "TINYAI_TEST_PLUGIN_1_2"}) {
        SCOPED_TRACE(var);
        const std::string path = Env(var);
        ASSERT_FALSE(path.empty()) << var << " is not set (run through Bazel)";
        tai_conf_report r;
        ASSERT_EQ(tai_conf_run(path.c_str(), nullptr, 0, &r), TINYAI_OK) << tinyaiLastErrorMessage();
        for (int i = 0; i < r.n; i++)
            EXPECT_NE(r.cases[i].result, TAI_CONF_FAIL)
                << r.cases[i].group << ": " << r.cases[i].name << " " << r.cases[i].type << ": "
                << r.cases[i].detail;
        EXPECT_GE(tai_conf_count(&r, TAI_CONF_PASS), 30);
        // one device (two devices of the plugin: skipped); ABI 1.0 has no
        // streams: that check is skipped too, nothing else
        EXPECT_EQ(tai_conf_count(&r, TAI_CONF_SKIP), std::string(var).back() == '0' ? 2 : 1);
        for (const char *type : {"F32", "F16", "Q8_0", "Q4_0", "Q4_1"}) {
            ASSERT_TRUE(Find(r, "matmul", type)) << type;
            EXPECT_EQ(Find(r, "matmul", type)->result, TAI_CONF_PASS) << type;
        }
        tai_conf_free(&r);
    }
}

// With two devices, both compute at once.
TEST(ConformanceSuite, TwoDevicesOfOnePlugin) {
    tai_conf_report r;
    ASSERT_EQ(tai_conf_run(Env("TINYAI_TEST_PLUGIN").c_str(), "devices=2", 1, &r), TINYAI_OK);
    ASSERT_TRUE(Find(r, "two devices of the plugin"));
    EXPECT_EQ(Find(r, "two devices of the plugin")->result, TAI_CONF_PASS)
        << Find(r, "two devices of the plugin")->detail;
    EXPECT_EQ(tai_conf_count(&r, TAI_CONF_FAIL), 0);
    tai_conf_free(&r);
}

// A device that claims success without writing its output, or claims
// memory it does not enforce, is caught; the checks it cannot run skip.
TEST(ConformanceSuite, AMisbehavingPluginFailsTheChecksThatCatchIt) {
    tai_conf_report r;
    ASSERT_EQ(tai_conf_run(Bad("unfilled_output").c_str(), nullptr, 0, &r), TINYAI_OK)
        << tinyaiLastErrorMessage();
    const tai_conf_case *mm = Find(r, "matmul", "F32");
    ASSERT_TRUE(mm);
    EXPECT_EQ(mm->result, TAI_CONF_FAIL);
    EXPECT_NE(std::string(mm->detail).find("was not written"), std::string::npos) << mm->detail;
    ASSERT_TRUE(Find(r, "matmul", "Q4_0"));
    EXPECT_EQ(Find(r, "matmul", "Q4_0")->result, TAI_CONF_SKIP); // not claimed
    ASSERT_TRUE(Find(r, "out of memory"));
    EXPECT_EQ(Find(r, "out of memory")->result, TAI_CONF_FAIL);
    EXPECT_EQ(Find(r, "generation", "F32")->result, TAI_CONF_SKIP); // not a whole block
    tai_conf_free(&r);
    ASSERT_EQ(tai_conf_run(Bad("positive_status").c_str(), nullptr, 0, &r), TINYAI_OK);
    EXPECT_EQ(Find(r, "matmul", "F32")->result, TAI_CONF_FAIL);
    EXPECT_NE(std::string(Find(r, "matmul", "F32")->detail).find("positive status"),
              std::string::npos)
        << Find(r, "matmul", "F32")->detail;
    tai_conf_free(&r);
    // one that does not load is an error of the run itself
    EXPECT_EQ(tai_conf_run(Bad("major2").c_str(), nullptr, 0, &r), TINYAI_ERR_UNSUPPORTED);
    tai_conf_free(&r);
    EXPECT_EQ(tai_conf_run(Env("TINYAI_TEST_PLUGIN").c_str(), nullptr, 3, &r), TINYAI_ERR_RANGE);
    tai_conf_free(&r);
}

int Program(const std::string &args) {
    const std::string cmd = Env("TINYAI_TEST_CONFORMANCE") + " " + args + " > /dev/null 2>&1";
    const int st = std::system(cmd.c_str());
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

TEST(ConformanceSuite, TheProgramsExitStatusAndReport) {
    ASSERT_FALSE(Env("TINYAI_TEST_CONFORMANCE").empty());
    const std::string json = tai_test::TempPath(".json"), md = tai_test::TempPath(".md");
    EXPECT_EQ(Program(Env("TINYAI_TEST_PLUGIN") + " --report " + json), 0);
    std::stringstream text;
    text << std::ifstream(json).rdbuf();
    EXPECT_NE(text.str().find("\"failed\": 0"), std::string::npos) << text.str().substr(0, 300);
    EXPECT_NE(text.str().find("\"plugin\": \"reference\""), std::string::npos);
    EXPECT_EQ(Program(Env("TINYAI_TEST_PLUGIN") + " --options devices=2 --device 1 --report " + md), 0);
    std::stringstream table;
    table << std::ifstream(md).rdbuf();
    EXPECT_NE(table.str().find("| matmul | pass | pass | pass | pass | pass |"), std::string::npos)
        << table.str().substr(0, 500);
    EXPECT_NE(table.str().find("device reference:1"), std::string::npos);
    EXPECT_EQ(Program(Bad("unfilled_output")), 1);      // a check failed
    EXPECT_EQ(Program(Bad("no_entry")), 1);             // does not load
    EXPECT_EQ(Program("/nonexistent/plugin.so"), 2);    // usage: unreadable
    EXPECT_EQ(Program(""), 2);                          // usage: no plugin
    EXPECT_EQ(Program(Env("TINYAI_TEST_PLUGIN") + " --report x.txt"), 2);
    std::remove(json.c_str());
    std::remove(md.c_str());
}

} // namespace
