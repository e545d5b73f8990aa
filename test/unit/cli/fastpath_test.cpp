// `meshctl fastpath` end to end in-process, against a fake agent's GetFastPath.
#include <gtest/gtest.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "fake_admin.h"
#include "meshctl_harness.h"
#include "sockmesh/cli/fastpath_views.h"
#include "sockmesh/cli/output.h"

namespace sockmesh::cli {
namespace {

namespace fs = std::filesystem;
using testing::MeshctlHarness;

constexpr std::uint64_t kNodeNetns = 4026531840;

void add_workload(v1::FastPathReport &r, std::string name, std::vector<std::string> addresses,
                  std::uint64_t netns, std::uint64_t sockets, std::string reason = "") {
  auto *w = r.add_workloads();
  w->set_workload(std::move(name));
  for (auto &a : addresses) w->add_addresses(std::move(a));
  w->set_netns_cookie(netns);
  w->set_sockets(sockets);
  w->set_netns_unknown_reason(std::move(reason));
}

void add_socket(v1::FastPathReport &r, std::string owner, std::string local, std::string remote,
                std::uint64_t netns, std::uint64_t cookie) {
  auto *s = r.add_socket_list();
  s->set_owner(std::move(owner));
  s->set_local(std::move(local));
  s->set_remote(std::move(remote));
  s->set_netns_cookie(netns);
  s->set_cookie(cookie);
}

// A node with the fast path on: demo/client talks to demo/web on the node and to the agent; one
// socket of a process in no workload; demo/batch has no process yet. Workloads and sockets come in
// an order other than meshctl's.
v1::FastPathReport sample_report() {
  v1::FastPathReport r;
  r.set_enabled(true);
  r.set_switched_on(true);
  r.set_supported(true);
  r.set_node_netns_cookie(kNodeNetns);
  r.set_sockets(5);
  r.set_max_sockets(65536);
  r.set_node_sockets(1);
  r.set_sockets_added(120);
  r.set_redirected_messages(1234);
  r.set_redirected_bytes(4718592);
  auto &fallbacks = *r.mutable_fallbacks();
  fallbacks["peer_gone"] = 0;
  fallbacks["no_netns"] = 2;
  fallbacks["map_full"] = 0;
  fallbacks["peer_missing"] = 1;
  r.set_addresses(4);
  add_workload(r, "demo/web", {"10.78.1.11"}, 4026532002, 1);
  add_workload(r, "demo/client", {"10.78.1.10", "fd00:78:1::10"}, 4026532001, 2);
  add_workload(r, "demo/idle", {"10.78.1.13"}, 4026532003, 0);
  add_workload(r, "demo/batch", {"10.78.1.12"}, 0, 0, "no process in its cgroup yet");
  add_socket(r, "node", "10.77.0.1:15001", "10.78.1.10:43212", kNodeNetns, 8196);
  add_socket(r, "demo/web", "10.78.1.11:8080", "10.78.1.10:43210", 4026532002, 8194);
  add_socket(r, "demo/client", "10.78.1.10:43212", "10.77.0.1:15001", 4026532001, 8195);
  add_socket(r, "demo/client", "10.78.1.10:43210", "10.78.1.11:8080", 4026532001, 8193);
  add_socket(r, "", "10.78.1.99:5000", "10.78.1.11:8080", 4026532100, 8200);
  return r;
}

const char *const kHeader =
    "Fast path:   on\n"
    "Sockets:     5 of 65536 in sm_fastpath (1 the agent's)\n"
    "Added:       120 sockets since the counters were made\n"
    "Redirected:  1234 messages, 4.5 MiB\n"
    "Fallbacks:   3 (no_netns 2, map_full 0, peer_missing 1, peer_gone 0)\n"
    "Node netns:  4026531840\n"
    "Addresses:   4 in sm_netns\n";

const char *const kWorkloads =
    "\n"
    "Workloads:\n"
    "WORKLOAD      FAST PATH   SOCKETS   NETNS        ADDRESSES                  REASON\n"
    "demo/batch    no netns    0         -            10.78.1.12                 no process in "
    "its cgroup yet\n"
    "demo/client   active      2         4026532001   10.78.1.10,fd00:78:1::10   -\n"
    "demo/idle     idle        0         4026532003   10.78.1.13                 -\n"
    "demo/web      active      1         4026532002   10.78.1.11                 -\n";

const char *const kSockets =
    "\n"
    "Sockets:\n"
    "OWNER         LOCAL              REMOTE             NETNS        COOKIE\n"
    "-             10.78.1.99:5000    10.78.1.11:8080    4026532100   8200\n"
    "demo/client   10.78.1.10:43210   10.78.1.11:8080    4026532001   8193\n"
    "demo/client   10.78.1.10:43212   10.77.0.1:15001    4026532001   8195\n"
    "demo/web      10.78.1.11:8080    10.78.1.10:43210   4026532002   8194\n"
    "node          10.77.0.1:15001    10.78.1.10:43212   4026531840   8196\n";

class FastPathTest : public MeshctlHarness {
 protected:
  void SetUp() override {
    MeshctlHarness::SetUp();
    fs::create_directories(env_.run_root / "n1");
    agent_ = std::make_unique<testing::FakeAdmin>(env_.run_root / "n1" / "admin.sock");
    agent_->status.set_node("n1");
    agent_->fast_path = sample_report();
  }
  void TearDown() override {
    agent_.reset();
    MeshctlHarness::TearDown();
  }

  std::unique_ptr<testing::FakeAdmin> agent_;
};

TEST_F(FastPathTest, StateTotalsAndWorkloads) {
  const auto r = run({"fastpath"});
  EXPECT_EQ(r.err, "");
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.out, std::string(kHeader) + kWorkloads);
}

TEST_F(FastPathTest, SocketsListsTheSocketsInOrder) {
  const auto r = run({"fastpath", "--sockets", "--node", "n1"});
  EXPECT_EQ(r.err, "");
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.out, std::string(kHeader) + kWorkloads + kSockets);
}

TEST_F(FastPathTest, SocketsBeyondTheAgentsListAreCounted) {
  auto &report = agent_->fast_path;
  report.set_sockets(1500);
  // The agent listed 2 of 1500 (the fake's first two: node's and demo/web's).
  report.mutable_socket_list()->DeleteSubrange(2, 3);
  const auto r = run({"fastpath", "--sockets"});
  EXPECT_EQ(r.code, 0);
  EXPECT_TRUE(
      r.out.ends_with("\n"
                      "Sockets:\n"
                      "OWNER      LOCAL             REMOTE             NETNS        COOKIE\n"
                      "demo/web   10.78.1.11:8080   10.78.1.10:43210   4026532002   8194\n"
                      "node       10.77.0.1:15001   10.78.1.10:43212   4026531840   8196\n"
                      "... 1498 more not shown (the agent lists at most 1000)\n"))
      << r.out;
  EXPECT_NE(r.out.find("Sockets:     1500 of 65536 in sm_fastpath (1 the agent's)\n"),
            std::string::npos)
      << r.out;
}

// What a --config agent answers: nothing is known to its fast path.
TEST_F(FastPathTest, AnAgentWithoutTheFastPath) {
  agent_->fast_path.Clear();
  agent_->fast_path.set_supported(true);
  auto r = run({"fastpath", "--sockets"});
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.out,
            "Fast path:   off (switched off: meshd --fast-path off, or a --config agent)\n"
            "Sockets:     0 of 0 in sm_fastpath (0 the agent's)\n"
            "Added:       0 sockets since the counters were made\n"
            "Redirected:  0 messages, 0 B\n"
            "Fallbacks:   none\n"
            "Node netns:  -\n"
            "Addresses:   0 in sm_netns\n"
            "\n"
            "Workloads:\n"
            "No workloads on this node.\n"
            "\n"
            "Sockets:\n"
            "No sockets in sm_fastpath.\n");
}

TEST_F(FastPathTest, SwitchedOffWorkloadsShowOff) {
  auto &report = agent_->fast_path;
  report.set_enabled(false);
  report.set_switched_on(false);
  report.set_sockets(0);
  report.set_node_sockets(0);
  report.clear_socket_list();
  for (auto &w : *report.mutable_workloads()) w.set_sockets(0);
  const auto r = run({"fastpath"});
  EXPECT_EQ(r.code, 0);
  EXPECT_TRUE(r.out.starts_with(
      "Fast path:   off (switched off: meshd --fast-path off, or a --config agent)\n"))
      << r.out;
  EXPECT_TRUE(r.out.ends_with(
      "WORKLOAD      FAST PATH   SOCKETS   NETNS        ADDRESSES                  REASON\n"
      "demo/batch    no netns    0         -            10.78.1.12                 no process in "
      "its cgroup yet\n"
      "demo/client   off         0         4026532001   10.78.1.10,fd00:78:1::10   -\n"
      "demo/idle     off         0         4026532003   10.78.1.13                 -\n"
      "demo/web      off         0         4026532002   10.78.1.11                 -\n"))
      << r.out;
}

TEST_F(FastPathTest, UnsupportedNamesWhatTheKernelLacks) {
  auto &report = agent_->fast_path;
  report.set_enabled(false);
  report.set_supported(false);
  report.add_missing_features("prog:sk_msg");
  report.add_missing_features("map:sockhash");
  auto r = run({"fastpath"});
  EXPECT_EQ(r.code, 0);
  EXPECT_TRUE(
      r.out.starts_with("Fast path:   unsupported (the kernel lacks: prog:sk_msg, map:sockhash)\n"))
      << r.out;
  report.set_switched_on(false);
  r = run({"fastpath"});
  EXPECT_TRUE(r.out.starts_with(
      "Fast path:   off (switched off: meshd --fast-path off, or a --config agent; the kernel "
      "lacks: prog:sk_msg, map:sockhash)\n"))
      << r.out;
}

TEST_F(FastPathTest, UnknownFallbackReasonsFollowTheKnownOnes) {
  auto &fallbacks = *agent_->fast_path.mutable_fallbacks();
  fallbacks.clear();
  fallbacks["zz_new"] = 4;
  fallbacks["peer_gone"] = 1;
  fallbacks["aa_new"] = 2;
  const auto r = run({"fastpath"});
  EXPECT_NE(r.out.find("\nFallbacks:   7 (peer_gone 1, aa_new 2, zz_new 4)\n"), std::string::npos)
      << r.out;
}

TEST_F(FastPathTest, JsonAndYamlAreTheOrderedReport) {
  auto r = run({"fastpath", "-o", "json"});
  EXPECT_EQ(r.err, "");
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.out, json_document(fast_path_in_order(sample_report()), DocumentLayout::single));
  // The whole answer, socket list included, without --sockets; 64-bit numbers as strings.
  for (const char *text :
       {"\"enabled\": true", "\"redirectedBytes\": \"4718592\"", "\"maxSockets\": \"65536\"",
        "\"no_netns\": \"2\"", "\"netnsUnknownReason\": \"no process in its cgroup yet\"",
        "\"cookie\": \"8200\""})
    EXPECT_NE(r.out.find(text), std::string::npos) << text << " missing from:\n" << r.out;
  EXPECT_LT(r.out.find("\"workload\": \"demo/batch\""), r.out.find("\"workload\": \"demo/web\""));
  // Map entries sorted by key, whatever the order of the agent's hash table.
  EXPECT_NE(r.out.find("  \"fallbacks\": {\n"
                       "    \"map_full\": \"0\",\n"
                       "    \"no_netns\": \"2\",\n"
                       "    \"peer_gone\": \"0\",\n"
                       "    \"peer_missing\": \"1\"\n"
                       "  },\n"),
            std::string::npos)
      << r.out;
  r = run({"fastpath", "-o", "yaml"});
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.out, yaml_document(fast_path_in_order(sample_report()), DocumentLayout::single));
}

TEST_F(FastPathTest, AgentNotRunning) {
  const auto r = run({"--node", "n9", "fastpath"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err, "meshctl: cannot reach the agent of node \"n9\" at " +
                       (env_.run_root / "n9/admin.sock").string() +
                       ": no such socket (is meshd running?)\n");
}

TEST_F(FastPathTest, AgentFailures) {
  const std::string agent =
      "the agent of node \"n1\" at " + (env_.run_root / "n1/admin.sock").string();
  agent_->fast_path_error = grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "");
  auto r = run({"fastpath"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err, "meshctl: " + agent +
                       " does not serve GetFastPath: its meshd predates the fast path (upgrade "
                       "meshd to the version of this meshctl)\n");
  agent_->fast_path_error = grpc::Status(grpc::StatusCode::INTERNAL, "cannot read sm_fastpath");
  r = run({"fastpath", "-o", "json"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err, "meshctl: " + agent +
                       " failed GetFastPath: cannot read sm_fastpath (gRPC status 13)\n");
}

TEST_F(FastPathTest, UsageAndHelp) {
  auto r = run({"fastpath", "-o", "xml"});
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(r.err,
            "meshctl: --output: must be one of table, json, yaml, got \"xml\" (see meshctl "
            "--help)\n");
  r = run({"fastpath", "extra"});
  EXPECT_EQ(r.code, 2) << r.err;
  r = run({"fastpath", "--help"});
  EXPECT_EQ(r.code, 0);
  for (const char *word :
       {"same-node fast path", "--sockets", "at most 1000", "-o,--output FORMAT=table"})
    EXPECT_NE(r.out.find(word), std::string::npos) << word << " missing from:\n" << r.out;
  r = run({"--help"});
  EXPECT_NE(r.out.find("fastpath"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace sockmesh::cli
