// runtime/mem NUMA placement: topologies (this machine, hwloc synthetic ones,
// an asymmetric one through XML), the choice of worker cores, the placement
// policies, binding threads (also the workers of a kernels/ pool) and memory
// on this machine, checked against what the kernel reports, and bad input.
#include <gtest/gtest.h>

#include <hwloc.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "core/thread.h"
#include "kernels/kernels.h"
#include "runtime/mem/numa.h"
#include "tests/common/test_paths.h"

namespace {

struct NumaCloser {
    void operator()(tai_numa *n) const { tai_numa_close(n); }
};
using Numa = std::unique_ptr<tai_numa, NumaCloser>;

Numa Open(const char *desc) {
    tai_numa *n = nullptr;
    TinyAIStatus st = tai_numa_open(desc, &n);
    EXPECT_EQ(st, TINYAI_OK) << (desc ? desc : "this machine") << ": "
                             << tinyaiLastErrorMessage();
    return Numa(n);
}

// This machine's topology loaded by the test itself, to check the module's
// answers against hwloc and the kernel independently of the module.
struct HwlocTopo {
    hwloc_topology_t t = nullptr;
    HwlocTopo() {
        hwloc_topology_init(&t);
        hwloc_topology_load(t);
    }
    ~HwlocTopo() { hwloc_topology_destroy(t); }
    hwloc_const_cpuset_t CoreCpuset(int i) const {
        hwloc_obj_type_t type =
            hwloc_get_nbobjs_by_type(t, HWLOC_OBJ_CORE) > 0 ? HWLOC_OBJ_CORE : HWLOC_OBJ_PU;
        return hwloc_get_obj_by_type(t, type, static_cast<unsigned>(i))->cpuset;
    }
};

// An asymmetric 4-node machine: "pack:4 numa:1 core:4 pu:1" restricted to
// the PUs 0-1 (node 0), 4-7 (node 1) and 8 (node 2); node 3 keeps its
// memory but no CPU (as a CXL or HBM-only node). Written as XML, since a
// synthetic description can only say symmetric machines.
std::string AsymmetricXml() {
    hwloc_topology_t t;
    hwloc_topology_init(&t);
    EXPECT_EQ(hwloc_topology_set_synthetic(t, "pack:4 numa:1 core:4 pu:1"), 0);
    EXPECT_EQ(hwloc_topology_load(t), 0);
    hwloc_bitmap_t keep = hwloc_bitmap_alloc();
    hwloc_bitmap_list_sscanf(keep, "0-1,4-8");
    EXPECT_EQ(hwloc_topology_restrict(t, keep, 0), 0);
    hwloc_bitmap_free(keep);
    char *buf = nullptr;
    int len = 0;
    EXPECT_EQ(hwloc_topology_export_xmlbuffer(t, &buf, &len, 0), 0);
    std::string xml(buf, len > 0 ? static_cast<size_t>(len) - 1 : 0);  // len counts the NUL
    hwloc_free_xmlbuffer(t, buf);
    hwloc_topology_destroy(t);
    std::string path = tai_test::TempPath(".xml");
    std::ofstream(path) << xml;
    return path;
}

std::vector<int> ThreadCores(const tai_numa *n, int n_threads) {
    std::vector<int> cores(static_cast<size_t>(n_threads), -1);
    EXPECT_EQ(tai_numa_thread_cores(n, n_threads, cores.data()), TINYAI_OK)
        << tinyaiLastErrorMessage();
    return cores;
}

tai_numa_placement Place(const tai_numa *n, tai_numa_policy policy, const std::vector<int> &cores,
                         size_t bytes = 1 << 20, bool hot = true, size_t max = 1 << 20) {
    tai_numa_placement p;
    memset(&p, 0x5a, sizeof p);
    EXPECT_EQ(tai_numa_place(n, policy, cores.data(), static_cast<int>(cores.size()), bytes, hot,
                             max, &p),
              TINYAI_OK)
        << tinyaiLastErrorMessage();
    return p;
}

void ExpectBind(const tai_numa_placement &p, tai_numa_policy policy, std::vector<int> nodes) {
    EXPECT_EQ(p.policy, policy);
    EXPECT_EQ(p.membind, TAI_NUMA_MEMBIND_BIND);
    ASSERT_EQ(p.n_copies, static_cast<int>(nodes.size()));
    uint64_t mask = 0;
    for (size_t c = 0; c < nodes.size(); c++) {
        EXPECT_EQ(p.copy_node[c], nodes[c]) << "copy " << c;
        mask |= uint64_t{1} << nodes[c];
    }
    EXPECT_EQ(p.nodes, mask);
}

void ExpectInterleave(const tai_numa_placement &p, uint64_t nodes) {
    EXPECT_EQ(p.policy, TAI_NUMA_INTERLEAVE);
    EXPECT_EQ(p.membind, TAI_NUMA_MEMBIND_INTERLEAVE);
    EXPECT_EQ(p.nodes, nodes);
    EXPECT_EQ(p.n_copies, 1);
    EXPECT_EQ(p.copy_node[0], -1);
}

tai_numa_placement BindTo(int node) {
    tai_numa_placement p{};
    p.policy = TAI_NUMA_LOCAL;
    p.membind = TAI_NUMA_MEMBIND_BIND;
    p.nodes = uint64_t{1} << node;
    p.n_copies = 1;
    p.copy_node[0] = node;
    return p;
}

uint64_t AllNodes(const tai_numa *n) {
    int k = tai_numa_node_count(n);
    return k == 64 ? UINT64_MAX : (uint64_t{1} << k) - 1;
}

// Why this kernel does not let hwloc bind memory to node 0 ("" if it does),
// asked independently of the module so that a module that stopped binding
// fails instead of skipping.
std::string MembindRefused(const HwlocTopo &h) {
    hwloc_obj_t node = hwloc_get_obj_by_type(h.t, HWLOC_OBJ_NUMANODE, 0);
    void *p = hwloc_alloc_membind(h.t, 4096, node->nodeset, HWLOC_MEMBIND_BIND,
                                  HWLOC_MEMBIND_BYNODESET | HWLOC_MEMBIND_STRICT);
    if (p == nullptr) return std::string("hwloc_alloc_membind: ") + strerror(errno);
    hwloc_free(h.t, p, 4096);
    return "";
}

// Why this kernel does not tell where [p, p + len) is bound and located, or
// "" if it does (same independence).
std::string AreaQueryRefused(const HwlocTopo &h, const void *p, size_t len) {
    hwloc_nodeset_t set = hwloc_bitmap_alloc();
    hwloc_membind_policy_t policy;
    std::string why;
    if (hwloc_get_area_membind(h.t, p, len, set, &policy, HWLOC_MEMBIND_BYNODESET) != 0)
        why = std::string("hwloc_get_area_membind: ") + strerror(errno);
    else if (hwloc_get_area_memlocation(h.t, p, len, set, HWLOC_MEMBIND_BYNODESET) != 0)
        why = std::string("hwloc_get_area_memlocation: ") + strerror(errno);
    hwloc_bitmap_free(set);
    return why;
}

// ---- Topologies -----------------------------------------------------------

TEST(NumaTopology, ThisMachine) {
    Numa n = Open(nullptr);
    ASSERT_TRUE(n);
    HwlocTopo h;
    EXPECT_TRUE(tai_numa_can_bind(n.get()));
    EXPECT_EQ(tai_numa_node_count(n.get()), hwloc_get_nbobjs_by_type(h.t, HWLOC_OBJ_NUMANODE));
    int cores = hwloc_get_nbobjs_by_type(h.t, HWLOC_OBJ_CORE);
    if (cores <= 0) cores = hwloc_get_nbobjs_by_type(h.t, HWLOC_OBJ_PU);
    EXPECT_EQ(tai_numa_core_count(n.get()), cores);
    int sum = 0;
    for (int k = 0; k < tai_numa_node_count(n.get()); k++) sum += tai_numa_node_cores(n.get(), k);
    EXPECT_EQ(sum, cores);
    for (int c = 0; c < cores; c++) {
        int node = tai_numa_core_node(n.get(), c);
        ASSERT_GE(node, 0);
        hwloc_obj_t nd = hwloc_get_obj_by_type(h.t, HWLOC_OBJ_NUMANODE, node);
        EXPECT_TRUE(hwloc_bitmap_isincluded(h.CoreCpuset(c), nd->cpuset)) << "core " << c;
    }
    std::string d = tai_numa_describe(n.get());
    std::string nodes = std::to_string(tai_numa_node_count(n.get())) + " NUMA node";
    EXPECT_EQ(d.rfind(nodes, 0), 0u) << d;
    EXPECT_NE(d.find(std::to_string(cores) + " core"), std::string::npos) << d;
    if (tai_numa_node_count(n.get()) == 1) {
        EXPECT_EQ(d, "1 NUMA node, " + std::to_string(cores) + (cores == 1 ? " core" : " cores"));
    }
}

TEST(NumaTopology, TwoPackagesOfFourCores) {
    Numa n = Open("synthetic:pack:2 numa:1 core:4 pu:2");
    ASSERT_TRUE(n);
    EXPECT_FALSE(tai_numa_can_bind(n.get()));
    EXPECT_EQ(tai_numa_node_count(n.get()), 2);
    EXPECT_EQ(tai_numa_core_count(n.get()), 8);  // cores, not the 16 PUs
    for (int c = 0; c < 8; c++) EXPECT_EQ(tai_numa_core_node(n.get(), c), c / 4) << c;
    EXPECT_EQ(tai_numa_node_cores(n.get(), 0), 4);
    EXPECT_EQ(tai_numa_node_cores(n.get(), 1), 4);
    EXPECT_STREQ(tai_numa_describe(n.get()), "2 NUMA nodes, 8 cores (4+4), synthetic");
}

TEST(NumaTopology, FourNodesOfTwoCores) {
    Numa n = Open("synthetic:numa:4 core:2 pu:1");
    ASSERT_TRUE(n);
    EXPECT_EQ(tai_numa_node_count(n.get()), 4);
    EXPECT_EQ(tai_numa_core_count(n.get()), 8);
    for (int c = 0; c < 8; c++) EXPECT_EQ(tai_numa_core_node(n.get(), c), c / 2) << c;
    EXPECT_STREQ(tai_numa_describe(n.get()), "4 NUMA nodes, 8 cores (2+2+2+2), synthetic");
}

TEST(NumaTopology, SingleNodeSynthetic) {
    Numa n = Open("synthetic:numa:1 core:1 pu:2");
    ASSERT_TRUE(n);
    EXPECT_STREQ(tai_numa_describe(n.get()), "1 NUMA node, 1 core, synthetic");
}

TEST(NumaTopology, NoCoreLevelUsesPus) {
    Numa n = Open("synthetic:numa:2 pu:3");
    ASSERT_TRUE(n);
    EXPECT_EQ(tai_numa_core_count(n.get()), 6);
    EXPECT_EQ(tai_numa_core_node(n.get(), 2), 0);
    EXPECT_EQ(tai_numa_core_node(n.get(), 3), 1);
}

TEST(NumaTopology, AsymmetricFromXml) {
    std::string path = AsymmetricXml();
    Numa n = Open(("xml:" + path).c_str());
    ASSERT_TRUE(n);
    EXPECT_FALSE(tai_numa_can_bind(n.get()));
    EXPECT_EQ(tai_numa_node_count(n.get()), 4);
    EXPECT_EQ(tai_numa_core_count(n.get()), 7);
    std::vector<int> per_node, core_node;
    for (int k = 0; k < 4; k++) per_node.push_back(tai_numa_node_cores(n.get(), k));
    for (int c = 0; c < 7; c++) core_node.push_back(tai_numa_core_node(n.get(), c));
    EXPECT_EQ(per_node, (std::vector<int>{2, 4, 1, 0}));
    EXPECT_EQ(core_node, (std::vector<int>{0, 0, 1, 1, 1, 1, 2}));
    EXPECT_STREQ(tai_numa_describe(n.get()), "4 NUMA nodes, 7 cores (2+4+1+0), from XML");
    EXPECT_EQ(tai_numa_core_node(n.get(), 7), -1);
    EXPECT_EQ(tai_numa_core_node(n.get(), -1), -1);
    EXPECT_EQ(tai_numa_node_cores(n.get(), 4), -1);
}

TEST(NumaTopology, BadInput) {
    tai_numa *n = reinterpret_cast<tai_numa *>(0x1);
    EXPECT_EQ(tai_numa_open(nullptr, nullptr), TINYAI_ERR_INVALID_ARG);

    EXPECT_EQ(tai_numa_open("pack:2 numa:1 core:4", &n), TINYAI_ERR_INVALID_ARG);
    EXPECT_EQ(n, nullptr);
    EXPECT_NE(std::string(tinyaiLastErrorMessage()).find("synthetic:"), std::string::npos)
        << tinyaiLastErrorMessage();
    EXPECT_EQ(tai_numa_open("", &n), TINYAI_ERR_INVALID_ARG);

    EXPECT_EQ(tai_numa_open("synthetic:pack:two core:4", &n), TINYAI_ERR_INVALID_ARG);
    EXPECT_EQ(n, nullptr);
    EXPECT_NE(std::string(tinyaiLastErrorMessage()).find("pack:two"), std::string::npos);

    std::string missing = tai_test::TempPath("-missing.xml");
    EXPECT_EQ(tai_numa_open(("xml:" + missing).c_str(), &n), TINYAI_ERR_IO);
    EXPECT_EQ(n, nullptr);
    std::string msg = tinyaiLastErrorMessage();
    EXPECT_NE(msg.find(missing), std::string::npos) << msg;
    EXPECT_NE(msg.find(strerror(ENOENT)), std::string::npos) << msg;

    std::string junk = tai_test::TempPath("-junk.xml");
    std::ofstream(junk) << "<?xml version=\"1.0\"?>\n<not_a_topology>";
    EXPECT_EQ(tai_numa_open(("xml:" + junk).c_str(), &n), TINYAI_ERR_INVALID_ARG);
    EXPECT_EQ(n, nullptr);
    EXPECT_NE(std::string(tinyaiLastErrorMessage()).find(junk), std::string::npos);

    // The same with or without hwloc's libxml2 plugin (it parses at a
    // different step): an empty file and binary junk are not topologies.
    std::string empty = tai_test::TempPath("-empty.xml");
    std::ofstream(empty).close();
    std::string binary = tai_test::TempPath("-binary.xml");
    std::ofstream(binary, std::ios::binary) << std::string("\x00\xff\x13garbage", 11);
    for (const std::string &bad : {empty, binary}) {
        EXPECT_EQ(tai_numa_open(("xml:" + bad).c_str(), &n), TINYAI_ERR_INVALID_ARG) << bad;
        EXPECT_EQ(n, nullptr);
        EXPECT_NE(std::string(tinyaiLastErrorMessage()).find(bad), std::string::npos)
            << tinyaiLastErrorMessage();
    }
    // A directory is not a file to read.
    std::string dir = tai_test::TempPath("-dir.xml");
    ASSERT_EQ(mkdir(dir.c_str(), 0700), 0);
    EXPECT_NE(tai_numa_open(("xml:" + dir).c_str(), &n), TINYAI_OK);
    EXPECT_EQ(n, nullptr);
    EXPECT_NE(std::string(tinyaiLastErrorMessage()).find(dir), std::string::npos);
    rmdir(dir.c_str());

    tai_numa_close(nullptr);
    EXPECT_EQ(tai_numa_node_count(nullptr), 0);
    EXPECT_FALSE(tai_numa_can_bind(nullptr));
}

// ---- Worker cores ---------------------------------------------------------

TEST(NumaThreadCores, FillOneNodeThenSpread) {
    Numa n = Open("synthetic:pack:2 numa:1 core:4 pu:2");
    ASSERT_TRUE(n);
    EXPECT_EQ(ThreadCores(n.get(), 1), (std::vector<int>{0}));
    EXPECT_EQ(ThreadCores(n.get(), 3), (std::vector<int>{0, 1, 2}));
    EXPECT_EQ(ThreadCores(n.get(), 4), (std::vector<int>{0, 1, 2, 3}));
    EXPECT_EQ(ThreadCores(n.get(), 6), (std::vector<int>{0, 1, 2, 3, 4, 5}));
    EXPECT_EQ(ThreadCores(n.get(), 8), (std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7}));
    // More threads than cores: wrap around.
    EXPECT_EQ(ThreadCores(n.get(), 10), (std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7, 0, 1}));
}

TEST(NumaThreadCores, FourSmallNodes) {
    Numa n = Open("synthetic:numa:4 core:2 pu:1");
    ASSERT_TRUE(n);
    EXPECT_EQ(ThreadCores(n.get(), 2), (std::vector<int>{0, 1}));
    EXPECT_EQ(ThreadCores(n.get(), 3), (std::vector<int>{0, 1, 2}));
    EXPECT_EQ(ThreadCores(n.get(), 5), (std::vector<int>{0, 1, 2, 3, 4}));
}

TEST(NumaThreadCores, AsymmetricPrefersTheBiggestNodes) {
    Numa n = Open(("xml:" + AsymmetricXml()).c_str());
    ASSERT_TRUE(n);
    // Node 0 (cores 0-1) suffices for two threads; three need node 1 (2-5).
    EXPECT_EQ(ThreadCores(n.get(), 2), (std::vector<int>{0, 1}));
    EXPECT_EQ(ThreadCores(n.get(), 3), (std::vector<int>{2, 3, 4}));
    EXPECT_EQ(ThreadCores(n.get(), 4), (std::vector<int>{2, 3, 4, 5}));
    // Beyond one node: node 1 (4 cores), then node 0 (2), then node 2 (1);
    // node 3 has no CPU and never gets a thread.
    EXPECT_EQ(ThreadCores(n.get(), 5), (std::vector<int>{2, 3, 4, 5, 0}));
    EXPECT_EQ(ThreadCores(n.get(), 7), (std::vector<int>{2, 3, 4, 5, 0, 1, 6}));
    EXPECT_EQ(ThreadCores(n.get(), 9), (std::vector<int>{2, 3, 4, 5, 0, 1, 6, 2, 3}));
}

TEST(NumaThreadCores, ThisMachineCoversEveryCoreOnce) {
    Numa n = Open(nullptr);
    ASSERT_TRUE(n);
    int cores = tai_numa_core_count(n.get());
    std::vector<int> got = ThreadCores(n.get(), cores);
    std::vector<int> seen(static_cast<size_t>(cores), 0);
    for (int c : got) {
        ASSERT_GE(c, 0);
        ASSERT_LT(c, cores);
        seen[static_cast<size_t>(c)]++;
    }
    for (int c = 0; c < cores; c++) EXPECT_EQ(seen[static_cast<size_t>(c)], 1) << c;
}

TEST(NumaThreadCores, BadInput) {
    Numa n = Open("synthetic:numa:2 core:2 pu:1");
    ASSERT_TRUE(n);
    int cores[4] = {7, 7, 7, 7};
    EXPECT_EQ(tai_numa_thread_cores(nullptr, 2, cores), TINYAI_ERR_INVALID_ARG);
    EXPECT_EQ(tai_numa_thread_cores(n.get(), 2, nullptr), TINYAI_ERR_INVALID_ARG);
    EXPECT_EQ(tai_numa_thread_cores(n.get(), 0, cores), TINYAI_ERR_INVALID_ARG);
    EXPECT_EQ(tai_numa_thread_cores(n.get(), -3, cores), TINYAI_ERR_INVALID_ARG);
    EXPECT_EQ(cores[0], 7);
}

// ---- Policies -------------------------------------------------------------

TEST(NumaPolicy, NameAndParse) {
    for (int p : {TAI_NUMA_LOCAL, TAI_NUMA_INTERLEAVE, TAI_NUMA_REPLICATE})
        EXPECT_EQ(tai_numa_policy_parse(tai_numa_policy_name(static_cast<tai_numa_policy>(p))), p);
    EXPECT_STREQ(tai_numa_policy_name(TAI_NUMA_LOCAL), "local");
    EXPECT_STREQ(tai_numa_policy_name(TAI_NUMA_INTERLEAVE), "interleave");
    EXPECT_STREQ(tai_numa_policy_name(TAI_NUMA_REPLICATE), "replicate");
    EXPECT_STREQ(tai_numa_policy_name(static_cast<tai_numa_policy>(3)), "unknown");
    for (const char *junk : {"", "Local", "locale", "interleave ", "repl", "unknown"})
        EXPECT_EQ(tai_numa_policy_parse(junk), -1) << '"' << junk << '"';
    EXPECT_EQ(tai_numa_policy_parse(nullptr), -1);
}

TEST(NumaPlace, SingleNodeIsAlwaysNodeZero) {
    for (const char *desc : {static_cast<const char *>(nullptr), "synthetic:numa:1 core:4 pu:2"}) {
        Numa n = Open(desc);
        ASSERT_TRUE(n);
        if (tai_numa_node_count(n.get()) != 1) continue;  // a multi-node host
        std::vector<int> cores = ThreadCores(n.get(), 4);
        for (int p : {TAI_NUMA_LOCAL, TAI_NUMA_INTERLEAVE, TAI_NUMA_REPLICATE}) {
            SCOPED_TRACE(tai_numa_policy_name(static_cast<tai_numa_policy>(p)));
            ExpectBind(Place(n.get(), static_cast<tai_numa_policy>(p), cores), TAI_NUMA_LOCAL, {0});
        }
    }
}

TEST(NumaPlace, TwoNodesThreadsOnOne) {
    Numa n = Open("synthetic:pack:2 numa:1 core:4 pu:2");
    ASSERT_TRUE(n);
    std::vector<int> on0 = ThreadCores(n.get(), 4);
    std::vector<int> on1 = {4, 5, 6};
    ExpectBind(Place(n.get(), TAI_NUMA_LOCAL, on0), TAI_NUMA_LOCAL, {0});
    ExpectBind(Place(n.get(), TAI_NUMA_LOCAL, on1), TAI_NUMA_LOCAL, {1});
    // Nothing to spread over or replicate for: LOCAL.
    ExpectBind(Place(n.get(), TAI_NUMA_INTERLEAVE, on1), TAI_NUMA_LOCAL, {1});
    ExpectBind(Place(n.get(), TAI_NUMA_REPLICATE, on1), TAI_NUMA_LOCAL, {1});
}

TEST(NumaPlace, TwoNodesThreadsOnBoth) {
    Numa n = Open("synthetic:pack:2 numa:1 core:4 pu:2");
    ASSERT_TRUE(n);
    std::vector<int> six = ThreadCores(n.get(), 6);  // 4 on node 0, 2 on node 1
    ExpectBind(Place(n.get(), TAI_NUMA_LOCAL, six), TAI_NUMA_LOCAL, {0});
    ExpectBind(Place(n.get(), TAI_NUMA_LOCAL, {0, 1, 4, 5, 6, 7}), TAI_NUMA_LOCAL, {1});
    ExpectBind(Place(n.get(), TAI_NUMA_LOCAL, {5, 0, 4, 1}), TAI_NUMA_LOCAL, {0});  // tie
    ExpectInterleave(Place(n.get(), TAI_NUMA_INTERLEAVE, six), 0x3);

    const size_t kMax = 64 << 10;
    tai_numa_placement rep = Place(n.get(), TAI_NUMA_REPLICATE, six, kMax, true, kMax);
    ExpectBind(rep, TAI_NUMA_REPLICATE, {0, 1});
    // Each thread reads the copy on its own node.
    EXPECT_EQ(tai_numa_placement_copy(n.get(), &rep, 2), 0);
    EXPECT_EQ(tai_numa_placement_copy(n.get(), &rep, 5), 1);
    EXPECT_EQ(tai_numa_placement_copy(n.get(), &rep, 8), -1);
    EXPECT_EQ(tai_numa_placement_copy(n.get(), nullptr, 0), -1);
    // Too large, or not hot: one copy where most threads are.
    ExpectBind(Place(n.get(), TAI_NUMA_REPLICATE, six, kMax + 1, true, kMax), TAI_NUMA_LOCAL, {0});
    ExpectBind(Place(n.get(), TAI_NUMA_REPLICATE, six, 4096, false, kMax), TAI_NUMA_LOCAL, {0});
    ExpectBind(Place(n.get(), TAI_NUMA_REPLICATE, six, 4096, true, 0), TAI_NUMA_LOCAL, {0});
    tai_numa_placement local = Place(n.get(), TAI_NUMA_LOCAL, six);
    EXPECT_EQ(tai_numa_placement_copy(n.get(), &local, 5), 0);
}

TEST(NumaPlace, FourNodes) {
    Numa n = Open("synthetic:numa:4 core:2 pu:1");
    ASSERT_TRUE(n);
    std::vector<int> on13 = {2, 3, 6, 7};
    ExpectBind(Place(n.get(), TAI_NUMA_LOCAL, on13), TAI_NUMA_LOCAL, {1});  // tie 1 vs 3
    ExpectBind(Place(n.get(), TAI_NUMA_LOCAL, {6, 2, 7}), TAI_NUMA_LOCAL, {3});
    ExpectInterleave(Place(n.get(), TAI_NUMA_INTERLEAVE, on13), 0xa);
    tai_numa_placement rep = Place(n.get(), TAI_NUMA_REPLICATE, on13);
    ExpectBind(rep, TAI_NUMA_REPLICATE, {1, 3});
    EXPECT_EQ(tai_numa_placement_copy(n.get(), &rep, 7), 1);
    EXPECT_EQ(tai_numa_placement_copy(n.get(), &rep, 0), 0);  // node 0 has no copy
    std::vector<int> all = ThreadCores(n.get(), 8);
    ExpectInterleave(Place(n.get(), TAI_NUMA_INTERLEAVE, all), 0xf);
    ExpectBind(Place(n.get(), TAI_NUMA_REPLICATE, all), TAI_NUMA_REPLICATE, {0, 1, 2, 3});
}

TEST(NumaPlace, AsymmetricNeverUsesTheCpulessNode) {
    Numa n = Open(("xml:" + AsymmetricXml()).c_str());
    ASSERT_TRUE(n);
    std::vector<int> all = ThreadCores(n.get(), 7);
    ExpectBind(Place(n.get(), TAI_NUMA_LOCAL, all), TAI_NUMA_LOCAL, {1});
    ExpectInterleave(Place(n.get(), TAI_NUMA_INTERLEAVE, all), 0x7);
    ExpectBind(Place(n.get(), TAI_NUMA_REPLICATE, all), TAI_NUMA_REPLICATE, {0, 1, 2});
    ExpectBind(Place(n.get(), TAI_NUMA_INTERLEAVE, ThreadCores(n.get(), 4)), TAI_NUMA_LOCAL, {1});
}

TEST(NumaPlace, BadInput) {
    Numa n = Open("synthetic:numa:2 core:2 pu:1");
    ASSERT_TRUE(n);
    int cores[2] = {0, 3};
    tai_numa_placement p{};
    p.n_copies = 77;
    EXPECT_EQ(tai_numa_place(nullptr, TAI_NUMA_LOCAL, cores, 2, 1, true, 1, &p),
              TINYAI_ERR_INVALID_ARG);
    EXPECT_EQ(tai_numa_place(n.get(), TAI_NUMA_LOCAL, nullptr, 2, 1, true, 1, &p),
              TINYAI_ERR_INVALID_ARG);
    EXPECT_EQ(tai_numa_place(n.get(), TAI_NUMA_LOCAL, cores, 2, 1, true, 1, nullptr),
              TINYAI_ERR_INVALID_ARG);
    EXPECT_EQ(tai_numa_place(n.get(), TAI_NUMA_LOCAL, cores, 0, 1, true, 1, &p),
              TINYAI_ERR_INVALID_ARG);
    EXPECT_EQ(tai_numa_place(n.get(), static_cast<tai_numa_policy>(3), cores, 2, 1, true, 1, &p),
              TINYAI_ERR_INVALID_ARG);
    int bad[2] = {0, 4};
    EXPECT_EQ(tai_numa_place(n.get(), TAI_NUMA_LOCAL, bad, 2, 1, true, 1, &p),
              TINYAI_ERR_INVALID_ARG);
    EXPECT_NE(std::string(tinyaiLastErrorMessage()).find("core 4"), std::string::npos)
        << tinyaiLastErrorMessage();
    bad[1] = -1;
    EXPECT_EQ(tai_numa_place(n.get(), TAI_NUMA_LOCAL, bad, 2, 1, true, 1, &p),
              TINYAI_ERR_INVALID_ARG);
    EXPECT_EQ(p.n_copies, 77);  // untouched on error
}

// ---- Binding threads ------------------------------------------------------

// What the kernel says about the calling thread, as an hwloc cpuset.
bool SameAsAffinity(hwloc_const_cpuset_t want) {
    cpu_set_t mask;
    CPU_ZERO(&mask);
    if (sched_getaffinity(0, sizeof mask, &mask) != 0) return false;
    hwloc_bitmap_t got = hwloc_bitmap_alloc();
    for (int cpu = 0; cpu < CPU_SETSIZE; cpu++)
        if (CPU_ISSET(cpu, &mask)) hwloc_bitmap_set(got, static_cast<unsigned>(cpu));
    bool same = hwloc_bitmap_isequal(got, want);
    hwloc_bitmap_free(got);
    return same;
}

TEST(NumaBind, CallingThreadOnThisMachine) {
    Numa n = Open(nullptr);
    ASSERT_TRUE(n);
    HwlocTopo h;
    int last = tai_numa_core_count(n.get()) - 1;
    for (int core : {0, last}) {
        TinyAIStatus st = TINYAI_ERR_INTERNAL;
        std::string msg;
        bool hwloc_same = false, kernel_same = false;
        // A thread of its own, so the test's main thread stays unbound.
        std::thread t([&] {
            st = tai_numa_bind_thread(n.get(), core);
            msg = tinyaiLastErrorMessage();
            hwloc_bitmap_t set = hwloc_bitmap_alloc();
            if (hwloc_get_cpubind(h.t, set, HWLOC_CPUBIND_THREAD) == 0)
                hwloc_same = hwloc_bitmap_isequal(set, h.CoreCpuset(core));
            hwloc_bitmap_free(set);
            kernel_same = SameAsAffinity(h.CoreCpuset(core));
        });
        t.join();
        if (st == TINYAI_ERR_UNSUPPORTED) GTEST_SKIP() << "binding refused here: " << msg;
        ASSERT_EQ(st, TINYAI_OK) << msg;
        EXPECT_TRUE(hwloc_same) << "core " << core;
        EXPECT_TRUE(kernel_same) << "core " << core;
    }
}

// A thread started with tai_thread_create by a thread bound to one core
// (a compute thread starting a loader, say) runs on every CPU the process
// had, where a plain thread would be held to that core.
TEST(NumaBind, HelperThreadsOfABoundThreadRunOnEveryCpu) {
    Numa n = Open(nullptr);
    ASSERT_TRUE(n);
    HwlocTopo h;
    cpu_set_t all;  // the test's main thread is never bound
    ASSERT_EQ(sched_getaffinity(0, sizeof all, &all), 0);
    const int last = tai_numa_core_count(n.get()) - 1;
    TinyAIStatus st = TINYAI_ERR_INTERNAL;
    std::string msg;
    cpu_set_t helper, plain;
    CPU_ZERO(&helper);
    CPU_ZERO(&plain);
    int created = -1;
    std::thread t([&] {
        st = tai_numa_bind_thread(n.get(), last);
        msg = tinyaiLastErrorMessage();
        if (st != TINYAI_OK) return;
        pthread_t th;
        created = tai_thread_create(
            &th,
            [](void *arg) -> void * {
                sched_getaffinity(0, sizeof(cpu_set_t), static_cast<cpu_set_t *>(arg));
                return nullptr;
            },
            &helper);
        if (created == 0) pthread_join(th, nullptr);
        std::thread([&] { sched_getaffinity(0, sizeof plain, &plain); }).join();
    });
    t.join();
    if (st == TINYAI_ERR_UNSUPPORTED) GTEST_SKIP() << "binding refused here: " << msg;
    ASSERT_EQ(st, TINYAI_OK) << msg;
    ASSERT_EQ(created, 0);
    EXPECT_TRUE(CPU_EQUAL(&helper, &all)) << CPU_COUNT(&helper) << " of " << CPU_COUNT(&all)
                                          << " CPUs";
    // the contrast: a plain thread inherits the core
    hwloc_const_cpuset_t core = h.CoreCpuset(last);
    EXPECT_EQ(CPU_COUNT(&plain), hwloc_bitmap_weight(core));
}

struct PoolJob {
    const tai_numa *numa;
    const int *cores;
    const HwlocTopo *h;
    std::vector<TinyAIStatus> status;
    std::vector<int> bound_ok;
};

void BindWorker(void *ctx, int i, int) {
    auto *job = static_cast<PoolJob *>(ctx);
    job->status[static_cast<size_t>(i)] = tai_numa_bind_thread(job->numa, job->cores[i]);
    job->bound_ok[static_cast<size_t>(i)] = SameAsAffinity(job->h->CoreCpuset(job->cores[i]));
}

TEST(NumaBind, PoolWorkersEachOnTheirCore) {
    Numa n = Open(nullptr);
    ASSERT_TRUE(n);
    HwlocTopo h;
    int threads = tai_numa_core_count(n.get()) < 4 ? tai_numa_core_count(n.get()) : 4;
    std::vector<int> cores = ThreadCores(n.get(), threads);
    PoolJob job{n.get(), cores.data(), &h, std::vector<TinyAIStatus>(threads, TINYAI_ERR_INTERNAL),
                std::vector<int>(threads, 0)};
    std::thread t([&] {  // worker 0 is the caller: keep it off the main thread
        tai_pool *pool = nullptr;
        if (tai_pool_create(threads, &pool) != 0) return;
        tai_pool_run(pool, BindWorker, &job);
        tai_pool_destroy(pool);
    });
    t.join();
    for (int i = 0; i < threads; i++) {
        if (job.status[i] == TINYAI_ERR_UNSUPPORTED) GTEST_SKIP() << "binding refused here";
        EXPECT_EQ(job.status[i], TINYAI_OK) << "worker " << i;
        EXPECT_TRUE(job.bound_ok[i]) << "worker " << i << " core " << cores[i];
    }
}

TEST(NumaBind, NotThisMachineOrBadCore) {
    Numa syn = Open("synthetic:pack:2 numa:1 core:4 pu:2");
    ASSERT_TRUE(syn);
    cpu_set_t before, after;
    ASSERT_EQ(sched_getaffinity(0, sizeof before, &before), 0);
    EXPECT_EQ(tai_numa_bind_thread(syn.get(), 1), TINYAI_ERR_UNSUPPORTED);
    ASSERT_EQ(sched_getaffinity(0, sizeof after, &after), 0);
    EXPECT_TRUE(CPU_EQUAL(&before, &after));

    Numa n = Open(nullptr);
    ASSERT_TRUE(n);
    EXPECT_EQ(tai_numa_bind_thread(n.get(), -1), TINYAI_ERR_INVALID_ARG);
    EXPECT_EQ(tai_numa_bind_thread(n.get(), tai_numa_core_count(n.get())), TINYAI_ERR_INVALID_ARG);
    EXPECT_NE(std::string(tinyaiLastErrorMessage()).find("out of range"), std::string::npos);
    EXPECT_EQ(tai_numa_bind_thread(nullptr, 0), TINYAI_ERR_INVALID_ARG);
}

// ---- Memory ---------------------------------------------------------------

constexpr size_t kBuf = 4 << 20;

TEST(NumaMemory, BoundToEachNodeOnThisMachine) {
    HwlocTopo h;
    std::string refused = MembindRefused(h);
    if (!refused.empty()) GTEST_SKIP() << refused;
    Numa n = Open(nullptr);
    ASSERT_TRUE(n);
    EXPECT_FALSE(tai_numa_last_alloc_bound(n.get()));
    long page = sysconf(_SC_PAGESIZE);
    for (int node = 0; node < tai_numa_node_count(n.get()); node++) {
        SCOPED_TRACE("node " + std::to_string(node));
        tai_numa_placement p = BindTo(node);
        auto *mem = static_cast<unsigned char *>(tai_numa_alloc(n.get(), kBuf, &p, 0));
        ASSERT_NE(mem, nullptr) << tinyaiLastErrorMessage();
        EXPECT_EQ(reinterpret_cast<uintptr_t>(mem) % 4096, 0u);
        EXPECT_TRUE(tai_numa_last_alloc_bound(n.get()));
        std::string why = AreaQueryRefused(h, mem, kBuf);
        if (!why.empty()) {
            tai_numa_free(n.get(), mem, kBuf);
            GTEST_SKIP() << why;
        }
        uint64_t bound = 0, located = 0;
        ASSERT_EQ(tai_numa_area_nodes(n.get(), mem, kBuf, &bound, &located), TINYAI_OK)
            << tinyaiLastErrorMessage();
        EXPECT_EQ(bound, uint64_t{1} << node);
        EXPECT_EQ(located, 0u) << "no page touched yet";
        for (size_t i = 0; i < kBuf; i += static_cast<size_t>(page)) mem[i] = 1;
        ASSERT_EQ(tai_numa_area_nodes(n.get(), mem, kBuf, &bound, &located), TINYAI_OK);
        EXPECT_EQ(bound, uint64_t{1} << node);
        EXPECT_EQ(located, uint64_t{1} << node);
        tai_numa_free(n.get(), mem, kBuf);
    }
}

TEST(NumaMemory, PlacementOfTheWorkersOnThisMachine) {
    HwlocTopo h;
    std::string refused = MembindRefused(h);
    if (!refused.empty()) GTEST_SKIP() << refused;
    Numa n = Open(nullptr);
    ASSERT_TRUE(n);
    std::vector<int> cores = ThreadCores(n.get(), tai_numa_core_count(n.get()));
    tai_numa_placement p = Place(n.get(), TAI_NUMA_LOCAL, cores);
    tai_numa_allocator a{n.get(), p, 0};
    void *mem = tai_numa_allocator_alloc(&a, kBuf);
    ASSERT_NE(mem, nullptr) << tinyaiLastErrorMessage();
    EXPECT_TRUE(tai_numa_last_alloc_bound(n.get()));
    memset(mem, 0, kBuf);
    std::string why = AreaQueryRefused(h, mem, kBuf);
    if (!why.empty()) {
        tai_numa_allocator_free(&a, mem, kBuf);
        GTEST_SKIP() << why;
    }
    uint64_t bound = 0, located = 0;
    EXPECT_EQ(tai_numa_area_nodes(n.get(), mem, kBuf, &bound, &located), TINYAI_OK)
        << tinyaiLastErrorMessage();
    EXPECT_EQ(bound, p.nodes);
    EXPECT_EQ(located, p.nodes);
    tai_numa_allocator_free(&a, mem, kBuf);
}

TEST(NumaMemory, InterleaveOnThisMachine) {
    HwlocTopo h;
    std::string refused = MembindRefused(h);
    if (!refused.empty()) GTEST_SKIP() << refused;
    Numa n = Open(nullptr);
    ASSERT_TRUE(n);
    tai_numa_placement p{};
    p.policy = TAI_NUMA_INTERLEAVE;
    p.membind = TAI_NUMA_MEMBIND_INTERLEAVE;
    p.nodes = AllNodes(n.get());
    p.n_copies = 1;
    p.copy_node[0] = -1;
    void *mem = tai_numa_alloc(n.get(), kBuf, &p, 0);
    ASSERT_NE(mem, nullptr) << tinyaiLastErrorMessage();
    EXPECT_TRUE(tai_numa_last_alloc_bound(n.get()));
    std::string why = AreaQueryRefused(h, mem, kBuf);
    if (!why.empty()) {
        tai_numa_free(n.get(), mem, kBuf);
        GTEST_SKIP() << why;
    }
    // The policy itself, as hwloc reads it back from the kernel.
    hwloc_nodeset_t set = hwloc_bitmap_alloc();
    hwloc_membind_policy_t policy = HWLOC_MEMBIND_DEFAULT;
    EXPECT_EQ(hwloc_get_area_membind(h.t, mem, kBuf, set, &policy, HWLOC_MEMBIND_BYNODESET), 0);
    hwloc_bitmap_free(set);
    EXPECT_EQ(policy, HWLOC_MEMBIND_INTERLEAVE);
    memset(mem, 0, kBuf);
    uint64_t bound = 0, located = 0;
    ASSERT_EQ(tai_numa_area_nodes(n.get(), mem, kBuf, &bound, &located), TINYAI_OK)
        << tinyaiLastErrorMessage();
    EXPECT_EQ(bound, p.nodes);
    EXPECT_NE(located, 0u);
    EXPECT_EQ(located & ~p.nodes, 0u);
    tai_numa_free(n.get(), mem, kBuf);
}

// The VmFlags of the mapping holding `p` in /proc/self/smaps ("" if none).
std::string VmFlags(const void *p) {
    std::ifstream smaps("/proc/self/smaps");
    std::string line;
    bool inside = false;
    auto addr = reinterpret_cast<uintptr_t>(p);
    while (std::getline(smaps, line)) {
        unsigned long lo, hi;
        char dash;
        std::istringstream head(line);
        if (line.find(':') > line.find(' ') && (head >> std::hex >> lo >> dash >> hi) &&
            dash == '-') {
            inside = addr >= lo && addr < hi;
        } else if (inside && line.rfind("VmFlags:", 0) == 0) {
            return line.substr(8) + " ";
        }
    }
    return "";
}

TEST(NumaMemory, HugePagesAdvised) {
    if (access("/sys/kernel/mm/transparent_hugepage/enabled", R_OK) != 0)
        GTEST_SKIP() << "kernel without transparent huge pages";
    Numa n = Open(nullptr);
    ASSERT_TRUE(n);
    tai_numa_placement p = BindTo(0);
    void *mem = tai_numa_alloc(n.get(), kBuf, &p, 0);
    ASSERT_NE(mem, nullptr);
    std::string flags = VmFlags(mem);
    tai_numa_free(n.get(), mem, kBuf);
    if (flags.empty()) GTEST_SKIP() << "/proc/self/smaps has no VmFlags here";
    EXPECT_NE(flags.find(" hg "), std::string::npos) << flags;
}

TEST(NumaMemory, SyntheticFallsBackToPlainMemory) {
    Numa n = Open("synthetic:pack:2 numa:1 core:4 pu:2");
    ASSERT_TRUE(n);
    tai_numa_placement p = Place(n.get(), TAI_NUMA_REPLICATE, ThreadCores(n.get(), 8));
    ASSERT_EQ(p.n_copies, 2);
    for (int copy = 0; copy < 2; copy++) {
        auto *mem = static_cast<unsigned char *>(tai_numa_alloc(n.get(), 10000, &p, copy));
        ASSERT_NE(mem, nullptr) << tinyaiLastErrorMessage();
        EXPECT_FALSE(tai_numa_last_alloc_bound(n.get()));
        EXPECT_EQ(reinterpret_cast<uintptr_t>(mem) % 4096, 0u);
        memset(mem, copy + 1, 10000);
        EXPECT_EQ(mem[9999], copy + 1);
        uint64_t bound = 0;
        EXPECT_EQ(tai_numa_area_nodes(n.get(), mem, 10000, &bound, nullptr),
                  TINYAI_ERR_UNSUPPORTED);
        tai_numa_free(n.get(), mem, 10000);
    }
}

TEST(NumaMemory, BadInput) {
    Numa n = Open("synthetic:numa:2 core:2 pu:1");
    ASSERT_TRUE(n);
    tai_numa_placement p = BindTo(1);
    EXPECT_EQ(tai_numa_alloc(nullptr, 4096, &p, 0), nullptr);
    EXPECT_EQ(tai_numa_alloc(n.get(), 4096, nullptr, 0), nullptr);
    EXPECT_EQ(tai_numa_alloc(n.get(), 0, &p, 0), nullptr);
    EXPECT_EQ(tai_numa_alloc(n.get(), 4096, &p, 1), nullptr);
    EXPECT_EQ(tai_numa_alloc(n.get(), 4096, &p, -1), nullptr);
    tai_numa_placement far = BindTo(2);  // the topology has nodes 0 and 1
    EXPECT_EQ(tai_numa_alloc(n.get(), 4096, &far, 0), nullptr);
    EXPECT_NE(std::string(tinyaiLastErrorMessage()).find("nodes"), std::string::npos);
    tai_numa_placement none = p;
    none.membind = TAI_NUMA_MEMBIND_INTERLEAVE;
    none.nodes = 0;
    EXPECT_EQ(tai_numa_alloc(n.get(), 4096, &none, 0), nullptr);
    EXPECT_EQ(tai_numa_allocator_alloc(nullptr, 4096), nullptr);
    tai_numa_free(n.get(), nullptr, 4096);
    tai_numa_free(nullptr, nullptr, 0);

    Numa here = Open(nullptr);
    ASSERT_TRUE(here);
    uint64_t bound = 0;
    EXPECT_EQ(tai_numa_area_nodes(here.get(), nullptr, 4096, &bound, nullptr),
              TINYAI_ERR_INVALID_ARG);
    int x = 0;
    EXPECT_EQ(tai_numa_area_nodes(here.get(), &x, 0, &bound, nullptr), TINYAI_ERR_INVALID_ARG);
    EXPECT_EQ(tai_numa_area_nodes(nullptr, &x, 4, &bound, nullptr), TINYAI_ERR_INVALID_ARG);
}

}  // namespace
