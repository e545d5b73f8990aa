// M7 on the lab: the same-node fast path carries workload-to-workload and workload-to-agent
// traffic byte for byte (1 byte to 256 MiB, 200 connections at once, half-close both ways, a peer
// that closes or resets mid-transfer, sendfile and splice, non-blocking clients), the proof being
// the kernel's counters and the pods' veth counters staying flat; cross-node connections never
// enter it; switched off, the same transfers take TCP/IP; a denied pair never gets it; and the
// map is empty once the connections are gone.
#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>
#include <thread>

#include "mesh_fixture.h"

namespace sockmesh::testing {
namespace {

using namespace std::chrono_literals;

constexpr uint16_t kXferPort = 9100;
constexpr uint64_t kMiB = 1024 * 1024;
// What the handshake, FINs and ACKs of one connection leave on a veth when the payload skips it:
// a few packets of at most a hundred bytes each (the counters include headers).
constexpr uint64_t kVethPerConnection = 2048;

// Waits until `done` holds; an exception (an agent still starting) counts as not yet.
void wait_for(const std::function<bool()> &done, std::chrono::milliseconds limit,
              const std::string &what) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  const auto holds = [&] {
    try {
      return done();
    } catch (const std::exception &) {
      return false;
    }
  };
  while (!holds()) {
    if (std::chrono::steady_clock::now() > deadline) FAIL() << "timed out waiting for " << what;
    std::this_thread::sleep_for(50ms);
  }
}

std::string trimmed(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

std::string read_file(const std::string &path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string extra_yaml(lab::Lab &lab) {
  std::ostringstream y;
  for (int n = 1; n <= 2; ++n)
    y << "apiVersion: sockmesh/v1\nkind: Node\nmetadata: {name: " << lab.node_name(n)
      << "}\nspec: {addresses: [" << lab.node_address(n) << "]}\n---\n";
  auto workload = [&](const std::string &pod, const std::string &captured) {
    y << "apiVersion: sockmesh/v1\nkind: Workload\nmetadata: {name: " << pod
      << ", namespace: demo, labels: {app: " << pod
      << "}}\nspec: {node: " << lab.node_name(lab.pod_node(pod)) << ", serviceAccount: " << pod
      << ", addresses: [" << lab.pod_ip(pod) << "], cgroupPath: " << pod
      << ", captured: " << captured << "}\n---\n";
  };
  workload("client", "true");
  workload("plain", "false");
  workload("other", "true");
  // `other` may not reach web-v1-a; everyone else may.
  y << "apiVersion: sockmesh/v1\nkind: AuthorizationPolicy\n"
    << "metadata: {name: deny-other, namespace: demo}\nspec:\n"
    << "  selector: {matchLabels: {app: web}}\n  action: DENY\n  rules:\n"
    << "    - from: [{source: {principals: [cluster.local/ns/demo/sa/other]}}]\n";
  return y.str();
}

class FastPathLabTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    mesh_ = new MeshLab({}, Source::kControlPlane, {{"plain", 1, ""}, {"other", 1, ""}});
    auto &lab = mesh_->lab();
    auto applied = mesh_->apply(mesh_->config_text({}) + "---\n" + extra_yaml(lab));
    ASSERT_TRUE(applied.ok()) << applied.error_message();
    mesh_->wait_all_acked();
    for (const std::string pod : {"web-v1-a", "web-v1-b"})
      lab.spawn_in_pod(pod, {SM_XFER_BIN, "serve", std::to_string(kXferPort)}, server_log(pod));
    // Both agents know their workloads' namespaces, node 1 holds the client's SVID (captured
    // connections need it), and the servers answer.
    wait_for([] { return mesh_->status(1).mesh().svids_size() >= 2; }, 20s, "node 1's SVIDs");
    wait_for(
        [] {
          for (int node = 1; node <= 2; node++) {
            const auto report = mesh_->fast_path(node);  // kept: the loop reads its members
            for (const auto &w : report.workloads())
              if (w.netns_cookie() == 0) return false;
          }
          return true;
        },
        10s, "the workloads' namespaces");
    wait_for(
        [&] {
          return xfer("client", "web-v1-b", {"--up", "1", "--down", "1"}).rc == 0;
        },
        10s, "the servers");
  }
  static void TearDownTestSuite() {
    delete mesh_;
    mesh_ = nullptr;
  }

  static std::string server_log(const std::string &pod) {
    return mesh_->dir() + "/xfer-" + pod + ".log";
  }

  struct Run {
    int rc = -1;
    std::string line;  // sm_xfer's summary
  };
  // sm_xfer run in `from` against `to`'s server.
  static Run xfer(const std::string &from, const std::string &to,
                  const std::vector<std::string> &args) {
    std::vector<std::string> argv = {SM_XFER_BIN, "run", mesh_->lab().pod_ip(to),
                                     std::to_string(kXferPort)};
    argv.insert(argv.end(), args.begin(), args.end());
    Run r;
    r.rc = mesh_->lab().run_in_pod(from, argv, &r.line);
    r.line = trimmed(r.line);
    return r;
  }

  // Bytes through the pod's eth0, both directions, headers included.
  static uint64_t veth_bytes(const std::string &pod) {
    std::string out;
    mesh_->lab().run_in_pod(pod, {"ip", "-s", "-j", "link", "show", "dev", "eth0"}, &out);
    auto j = nlohmann::json::parse(out);
    return j[0]["stats64"]["rx"]["bytes"].get<uint64_t>() +
           j[0]["stats64"]["tx"]["bytes"].get<uint64_t>();
  }

  static uint64_t counter(int node, const std::string &name) { return mesh_->counter(node, name); }

  // The server's log lines after the first `skip`.
  static std::vector<std::string> server_lines(const std::string &pod, size_t skip) {
    std::vector<std::string> out;
    std::istringstream in(read_file(server_log(pod)));
    size_t n = 0;
    for (std::string line; std::getline(in, line);)
      if (line.rfind("done ", 0) == 0 && n++ >= skip) out.push_back(line);
    return out;
  }
  static size_t server_done(const std::string &pod) { return server_lines(pod, 0).size(); }
  // Waits for `count` more "done" lines than `before` and returns them.
  static std::vector<std::string> server_result(const std::string &pod, size_t before,
                                                size_t count) {
    wait_for([&] { return server_done(pod) >= before + count; }, 20s, pod + "'s server");
    return server_lines(pod, before);
  }

  static std::string ok_line(int conns, uint64_t up, uint64_t down) {
    return "conns=" + std::to_string(conns) + " failed=0 up=" + std::to_string(conns * up) +
           " down=" + std::to_string(conns * down) + " bad=0 error=none";
  }
  static std::string done_line(uint64_t up, uint64_t down) {
    return "done up=" + std::to_string(up) + " ok=1 down=" + std::to_string(down) + " eof=1";
  }

  // One same-node transfer client -> web-v1-a that must ride the fast path: byte-exact both ways,
  // the kernel's redirected bytes grow by the payload, the client's veth stays flat.
  static void expect_fast(const std::vector<std::string> &args, int conns, uint64_t up,
                          uint64_t down) {
    const size_t before = server_done("web-v1-a");
    const uint64_t veth = veth_bytes("client");
    const uint64_t redirected = counter(1, "fastpath_bytes");
    const uint64_t missing = counter(1, "fastpath_peer_missing");
    const Run r = xfer("client", "web-v1-a", args);
    EXPECT_EQ(r.rc, 0) << r.line;
    EXPECT_EQ(r.line, ok_line(conns, up, down));
    const auto lines = server_result("web-v1-a", before, size_t(conns));
    ASSERT_EQ(lines.size(), size_t(conns));
    for (const auto &line : lines) EXPECT_EQ(line, done_line(up, down));
    // The 32-byte header of each connection rides the fast path too.
    EXPECT_GE(counter(1, "fastpath_bytes") - redirected, uint64_t(conns) * (up + down + 32));
    EXPECT_EQ(counter(1, "fastpath_peer_missing"), missing);
    EXPECT_LE(veth_bytes("client") - veth, uint64_t(conns) * kVethPerConnection)
        << "payload crossed the client's veth";
  }

  // Restarts both agents with `args`; waits until their fast path reports `agent_hops` and a
  // captured connection through both gets through again.
  static void restart_agents(const std::vector<std::string> &args, bool agent_hops) {
    for (int node = 1; node <= 2; node++) {
      mesh_->stop_agent(node);
      mesh_->set_meshd_args(node, args);
      mesh_->start_agent(node);
    }
    for (int node = 1; node <= 2; node++)
      wait_for(
          [&] {
            const auto r = mesh_->fast_path(node);
            return r.enabled() && r.agent_hops() == agent_hops;
          },
          10s, "node " + std::to_string(node) + "'s agent");
    wait_for([] { return mesh_->status(1).mesh().svids_size() >= 2; }, 20s, "node 1's SVIDs");
    wait_for(
        [&] {
          return xfer("client", "web-v1-b", {"--up", "1", "--down", "1"}).rc == 0;
        },
        10s, "a captured connection");
  }

  static MeshLab *mesh_;
};
MeshLab *FastPathLabTest::mesh_ = nullptr;

TEST_F(FastPathLabTest, ReportsItselfOnAndEveryWorkloadsNamespace) {
  const auto report = mesh_->fast_path(1);
  EXPECT_TRUE(report.enabled());
  EXPECT_TRUE(report.switched_on());
  EXPECT_TRUE(report.supported());
  EXPECT_EQ(report.missing_features_size(), 0);
  EXPECT_NE(report.node_netns_cookie(), 0u);
  std::set<std::string> names;
  std::set<uint64_t> cookies;
  for (const auto &w : report.workloads()) {
    names.insert(w.workload());
    cookies.insert(w.netns_cookie());
    EXPECT_NE(w.netns_cookie(), report.node_netns_cookie()) << w.workload();
  }
  EXPECT_EQ(names,
            (std::set<std::string>{"demo/client", "demo/other", "demo/plain", "demo/web-v1-a"}));
  EXPECT_EQ(cookies.size(), 4u) << "one namespace per pod";
}

TEST_F(FastPathLabTest, ByteExactFromOneByteTo256MiB) {
  for (uint64_t size :
       {uint64_t(1), uint64_t(1000), uint64_t(65536 + 7), kMiB + 3, 16 * kMiB, 256 * kMiB}) {
    SCOPED_TRACE("size " + std::to_string(size));
    expect_fast({"--up", std::to_string(size), "--down", std::to_string(size)}, 1, size, size);
  }
}

TEST_F(FastPathLabTest, TwoHundredConcurrentConnections) {
  expect_fast({"--up", "100000", "--down", "300000", "--conns", "200"}, 200, 100000, 300000);
}

TEST_F(FastPathLabTest, HalfCloseEitherSideFirst) {
  // The client shuts its side while the server still sends, then the other way round.
  expect_fast({"--up", std::to_string(4 * kMiB), "--down", std::to_string(8 * kMiB)}, 1, 4 * kMiB,
              8 * kMiB);
  expect_fast(
      {"--up", std::to_string(8 * kMiB), "--down", std::to_string(4 * kMiB), "--server-shut-first"},
      1, 8 * kMiB, 4 * kMiB);
}

TEST_F(FastPathLabTest, SendfileAndSpliceFromTheApplication) {
  expect_fast({"--up", std::to_string(32 * kMiB + 5), "--down", "4096", "--mode", "sendfile"}, 1,
              32 * kMiB + 5, 4096);
  expect_fast({"--up", std::to_string(32 * kMiB + 5), "--down", "4096", "--mode", "splice"}, 1,
              32 * kMiB + 5, 4096);
}

TEST_F(FastPathLabTest, NonBlockingClientFullDuplex) {
  expect_fast(
      {"--up", std::to_string(64 * kMiB), "--down", std::to_string(64 * kMiB), "--nonblock"}, 1,
      64 * kMiB, 64 * kMiB);
}

TEST_F(FastPathLabTest, PeerCloseOrResetMidTransferFailsTheSenderNeverHangs) {
  for (const std::string how : {"--server-close", "--server-reset"}) {
    SCOPED_TRACE(how);
    const size_t before = server_done("web-v1-a");
    const auto start = std::chrono::steady_clock::now();
    const Run r =
        xfer("client", "web-v1-a",
             {"--up", std::to_string(256 * kMiB), "--down", "0", how, std::to_string(kMiB)});
    EXPECT_EQ(r.rc, 1) << r.line;
    // The sender learns at once: a broken pipe or a reset, not a timeout.
    EXPECT_TRUE(std::regex_search(r.line, std::regex("error=send:E(PIPE|CONNRESET)"))) << r.line;
    EXPECT_LT(std::chrono::steady_clock::now() - start, 10s);
    // What the server read before it went was exact.
    const auto lines = server_result("web-v1-a", before, 1);
    ASSERT_EQ(lines.size(), 1u);
    EXPECT_EQ(lines[0].substr(0, lines[0].find(" down=")),
              "done up=" + std::to_string(kMiB) + " ok=1");
  }
}

TEST_F(FastPathLabTest, TelemetryCountsFastPathBytesExactly) {
  const auto find = [](const v1::TrafficReport &report) -> v1::TrafficPair {
    for (const auto &p : report.pairs())
      if (p.source_workload() == "demo/client" && p.destination_workload() == "demo/web-v1-a")
        return p;
    return {};
  };
  const auto before = find(mesh_->traffic(1));
  ASSERT_EQ(
      xfer("client", "web-v1-a", {"--up", "3000000", "--down", "5000000", "--conns", "3"}).line,
      ok_line(3, 3000000, 5000000));
  v1::TrafficPair after;
  wait_for(
      [&] {
        after = find(mesh_->traffic(1));
        return after.closed() >= before.closed() + 3;
      },
      10s, "the three connections counted closed");
  // The application's bytes (each upload starts with sm_xfer's 32-byte header), all of them
  // carried socket to socket.
  EXPECT_EQ(after.bytes_sent() - before.bytes_sent(), 3u * (3000000 + 32));
  EXPECT_EQ(after.bytes_received() - before.bytes_received(), 3u * 5000000);
  EXPECT_EQ(after.fastpath_bytes_sent() - before.fastpath_bytes_sent(), 3u * (3000000 + 32));
  EXPECT_EQ(after.fastpath_bytes_received() - before.fastpath_bytes_received(), 3u * 5000000);
}

TEST_F(FastPathLabTest, AgentHopsOnlyWhenAskedFor) {
  // By default a captured connection's hops to and from the agents stay on TCP/IP.
  EXPECT_FALSE(mesh_->fast_path(1).agent_hops());
  const uint64_t s1 = counter(1, "fastpath_sockets"), s2 = counter(2, "fastpath_sockets");
  const size_t before = server_done("web-v1-b");
  EXPECT_EQ(xfer("client", "web-v1-b", {"--up", "100000", "--down", "100000"}).line,
            ok_line(1, 100000, 100000));
  EXPECT_EQ(server_result("web-v1-b", before, 1).size(), 1u);
  EXPECT_EQ(counter(1, "fastpath_sockets"), s1);
  EXPECT_EQ(counter(2, "fastpath_sockets"), s2);
}

TEST_F(FastPathLabTest, AgentHopsOfACapturedConnectionRideItWhenAskedFor) {
  // client (node 1, captured) -> agent 1 -> tunnel -> agent 2 -> web-v1-b: the first and last
  // hops are same-node and skip TCP/IP; the tunnel between the nodes does not.
  restart_agents({"--fast-path-agent-hops", "on"}, true);
  const size_t before = server_done("web-v1-b");
  const uint64_t veth_client = veth_bytes("client"), veth_server = veth_bytes("web-v1-b");
  const uint64_t n1 = counter(1, "fastpath_bytes"), n2 = counter(2, "fastpath_bytes");
  const uint64_t size = 16 * kMiB;
  const Run r =
      xfer("client", "web-v1-b", {"--up", std::to_string(size), "--down", std::to_string(size)});
  EXPECT_EQ(r.line, ok_line(1, size, size));
  const auto lines = server_result("web-v1-b", before, 1);
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0], done_line(size, size));
  // Both directions of each hop: the application's and the agent's sends.
  EXPECT_GE(counter(1, "fastpath_bytes") - n1, 2 * size);
  EXPECT_GE(counter(2, "fastpath_bytes") - n2, 2 * size);
  EXPECT_LE(veth_bytes("client") - veth_client, kVethPerConnection);
  EXPECT_LE(veth_bytes("web-v1-b") - veth_server, kVethPerConnection);
  restart_agents({}, false);
}

TEST_F(FastPathLabTest, CrossNodeConnectionsNeverEnter) {
  // plain (node 1, not captured) -> web-v1-b (node 2) straight over the nodes' network.
  const size_t before = server_done("web-v1-b");
  const uint64_t s1 = counter(1, "fastpath_sockets"), s2 = counter(2, "fastpath_sockets");
  const uint64_t veth = veth_bytes("plain");
  const Run r =
      xfer("plain", "web-v1-b",
           {"--up", std::to_string(4 * kMiB), "--down", std::to_string(4 * kMiB), "--conns", "4"});
  EXPECT_EQ(r.line, ok_line(4, 4 * kMiB, 4 * kMiB));
  EXPECT_EQ(server_result("web-v1-b", before, 4).size(), 4u);
  EXPECT_EQ(counter(1, "fastpath_sockets"), s1);
  EXPECT_EQ(counter(2, "fastpath_sockets"), s2);
  EXPECT_GE(veth_bytes("plain") - veth, 2 * 4 * 4 * kMiB) << "the payload crossed the veth";
}

TEST_F(FastPathLabTest, DeniedPairNeverGetsIt) {
  const uint64_t sockets = counter(1, "fastpath_sockets");
  const uint64_t denied = counter(1, "connect_denied");
  const Run r = xfer("other", "web-v1-a", {"--up", "1000", "--down", "1000"});
  EXPECT_EQ(r.rc, 1);
  EXPECT_EQ(r.line, "conns=0 failed=1 up=0 down=0 bad=0 error=connect:ECONNREFUSED");
  EXPECT_EQ(counter(1, "connect_denied"), denied + 1);
  EXPECT_EQ(counter(1, "fastpath_sockets"), sockets);
}

TEST_F(FastPathLabTest, SwitchedOffTheSameTransfersTakeTcpIp) {
  mesh_->stop_agent(1);
  mesh_->set_meshd_args(1, {"--fast-path", "off"});
  mesh_->start_agent(1);
  wait_for([] { return !mesh_->fast_path(1).enabled(); }, 10s, "node 1's agent, fast path off");
  const auto report = mesh_->fast_path(1);
  EXPECT_FALSE(report.switched_on());
  EXPECT_TRUE(report.supported());

  const uint64_t sockets = counter(1, "fastpath_sockets");
  const size_t before = server_done("web-v1-a");
  const uint64_t veth = veth_bytes("client");
  for (const auto &args : std::vector<std::vector<std::string>>{
           {"--up", std::to_string(16 * kMiB), "--down", std::to_string(16 * kMiB)},
           {"--up", std::to_string(8 * kMiB), "--down", "1000", "--mode", "sendfile"},
           {"--up", std::to_string(8 * kMiB), "--down", std::to_string(8 * kMiB), "--nonblock"}})
    EXPECT_EQ(xfer("client", "web-v1-a", args).rc, 0);
  const auto lines = server_result("web-v1-a", before, 3);
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[0], done_line(16 * kMiB, 16 * kMiB));
  EXPECT_EQ(lines[1], done_line(8 * kMiB, 1000));
  EXPECT_EQ(lines[2], done_line(8 * kMiB, 8 * kMiB));
  EXPECT_EQ(counter(1, "fastpath_sockets"), sockets);
  EXPECT_GE(veth_bytes("client") - veth, (16 + 16 + 8 + 8 + 8) * kMiB);

  mesh_->stop_agent(1);
  mesh_->set_meshd_args(1, {});
  mesh_->start_agent(1);
  wait_for([] { return mesh_->fast_path(1).enabled(); }, 10s, "node 1's agent, fast path on");
}

TEST_F(FastPathLabTest, MapIsEmptyOnceConnectionsAreGone) {
  ASSERT_EQ(xfer("client", "web-v1-a", {"--up", "100000", "--down", "100000", "--conns", "20"}).rc,
            0);
  for (int node = 1; node <= 2; node++)
    wait_for([&] { return mesh_->fast_path(node).sockets() == 0; }, 10s,
             "an empty sm_fastpath on node " + std::to_string(node));
}

}  // namespace
}  // namespace sockmesh::testing
