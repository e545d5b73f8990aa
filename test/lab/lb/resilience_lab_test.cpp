// M8 on the lab (docs/resilience.md): resilience decided by the kernel at connect(), configured
// through meshcp, on a two-node lab with real sockets. Clients on node 1 that are not captured, so
// the kernel carries their connections to the backends on node 2 by itself:
// - one of three backends killed under a connect loop: exactly consecutive_failures connects are
//   refused, then none while it is ejected; it is taken back after its ejection time; with two of
//   three dead, max_ejection_percent keeps one of them in;
// - max_connections per backend and per service: the next connection goes elsewhere or fails at
//   once; every count is back to 0 once the connections are gone, SIGKILLed holders included;
// - a rate limit over 10 s of real time within ±10 %, its burst exact;
// - fault injection's share within 5 sigma, its errno, and only for the sources it names.
// And a captured client (the agent carries its connections): a refusing backend is ejected on
// node 1 from the agent's reports.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <thread>

#include "mesh_fixture.h"

namespace sockmesh::testing {
namespace {

using namespace std::chrono_literals;

constexpr uint16_t kPort = 9200;
const std::vector<std::string> kBackends = {"rs-a", "rs-b", "rs-c"};

void wait_for(const std::function<bool()> &done, std::chrono::milliseconds limit,
              const std::string &what) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) FAIL() << "timed out waiting for " << what;
    std::this_thread::sleep_for(50ms);
  }
}

std::string read_file(const std::string &path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// A connect to ip:port that stays open: the fd, or -errno.
int open_to(const std::string &ip, uint16_t port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  inet_pton(AF_INET, ip.c_str(), &addr.sin_addr);
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (::connect(fd, reinterpret_cast<sockaddr *>(&addr), sizeof(addr)) != 0) {
    const int err = errno;
    ::close(fd);
    return -err;
  }
  return fd;
}

struct Loop {
  int ok = 0;
  std::map<int, int> errors;  // errno -> count
  int failed() const {
    int n = 0;
    for (auto [e, c] : errors) n += c;
    return n;
  }
};

class ResilienceLabTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    mesh_ = new MeshLab({}, Source::kControlPlane,
                        {{"rs-client", 1, ""}, {"rs-other", 1, ""}, {"rs-a", 2, ""},
                         {"rs-b", 2, ""}, {"rs-c", 2, ""}});
    auto applied = mesh_->apply(mesh_->config_text({}) + "---\n" + workloads_yaml());
    ASSERT_TRUE(applied.ok()) << applied.error_message();
    mesh_->wait_all_acked();
    for (const auto &pod : kBackends) start_server(pod);
  }
  static void TearDownTestSuite() {
    delete mesh_;
    mesh_ = nullptr;
  }
  void SetUp() override {
    // Every backend serving again, whatever the test before did.
    for (const auto &pod : kBackends)
      if (servers_[pod] == 0) start_server(pod);
  }

  static std::string workloads_yaml() {
    auto &lab = mesh_->lab();
    std::ostringstream y;
    // Nodes with their addresses: the captured client's agent needs them for the tunnel.
    for (int n = 1; n <= 2; ++n)
      y << "apiVersion: sockmesh/v1\nkind: Node\nmetadata: {name: " << lab.node_name(n)
        << "}\nspec: {addresses: [" << lab.node_address(n) << "]}\n---\n";
    auto workload = [&](const std::string &name, int node, const std::string &labels,
                        bool captured) {
      y << "apiVersion: sockmesh/v1\nkind: Workload\nmetadata: {name: " << name
        << ", namespace: demo, labels: {" << labels << "}}\nspec: {node: " << lab.node_name(node)
        << ", serviceAccount: " << name << ", addresses: [" << lab.pod_ip(name)
        << "], cgroupPath: " << name << ", captured: " << (captured ? "true" : "false")
        << "}\n---\n";
    };
    workload("client", 1, "app: client", true);  // the agent carries its connections
    workload("rs-client", 1, "app: chaos", false);
    workload("rs-other", 1, "app: calm", false);
    for (const auto &pod : kBackends) workload(pod, 2, "app: rs", true);
    return y.str();
  }

  static std::string server_log(const std::string &pod) {
    return mesh_->dir() + "/rs-" + pod + ".log";
  }
  static void start_server(const std::string &pod) {
    servers_[pod] = mesh_->lab().spawn_in_pod(pod, {SM_XFER_BIN, "serve", std::to_string(kPort)},
                                              server_log(pod));
    wait_for([&] { return read_file(server_log(pod)).find("listening") != std::string::npos; },
             10s, pod + "'s server");
  }
  static void kill_server(const std::string &pod) {
    kill(servers_[pod], SIGKILL);
    waitpid(servers_[pod], nullptr, 0);
    servers_[pod] = 0;
    std::remove(server_log(pod).c_str());
  }

  // A service "demo/<name>" at vip:80 over the three backends, with `spec_extra` (YAML lines
  // under spec, indented two spaces).
  static void apply_service(const std::string &name, const std::string &vip,
                            const std::string &spec_extra) {
    std::ostringstream y;
    // The workloads again (unchanged): a text given to apply must load on its own.
    y << workloads_yaml();
    y << "apiVersion: sockmesh/v1\nkind: Service\nmetadata: {name: " << name
      << ", namespace: demo}\nspec:\n  vips: [{address: " << vip << ", port: 80}]\n"
      << "  endpoints:\n";
    for (const auto &pod : kBackends) y << "  - {workload: " << pod << ", port: " << kPort << "}\n";
    y << spec_extra;
    auto applied = mesh_->apply(y.str());
    ASSERT_TRUE(applied.ok()) << applied.error_message();
    mesh_->wait_all_acked();
  }

  // `count` connects from `pod` to vip:80, each closed at once; with `talk`, each writes a few
  // bytes and reads until the server closes first (so that a connection the agent carries has
  // reached a backend before the client lets go).
  static Loop connect_loop(const std::string &pod, const std::string &vip, int count,
                           std::chrono::microseconds pause = 0us, bool talk = false) {
    std::string out;
    mesh_->lab().call_in_pod(
        pod,
        [&] {
          Loop l;
          for (int i = 0; i < count; i++) {
            const int fd = open_to(vip, 80);
            if (fd >= 0 && talk) {
              timeval tv{10, 0};
              setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
              char buf[256] = "hello";
              // Shorter than sm_xfer's header, then EOF: the server reads it all and closes
              // in order (unread bytes would make its close a reset).
              const bool sent = ::write(fd, buf, 8) == 8 && ::shutdown(fd, SHUT_WR) == 0;
              ssize_t r;
              while ((r = ::read(fd, buf, sizeof(buf))) > 0) {
              }
              if (sent && r == 0) l.ok++;
              else l.errors[r < 0 ? errno : EPIPE]++;
              ::close(fd);
            } else if (fd >= 0) {
              l.ok++;
              ::close(fd);
            } else {
              l.errors[-fd]++;
            }
            if (pause.count()) std::this_thread::sleep_for(pause);
          }
          ::dprintf(STDOUT_FILENO, "ok %d\n", l.ok);
          for (auto [e, c] : l.errors) ::dprintf(STDOUT_FILENO, "errno %d %d\n", e, c);
          return 0;
        },
        &out);
    Loop l;
    std::istringstream in(out);
    for (std::string word; in >> word;) {
      if (word == "ok") in >> l.ok;
      if (word == "errno") {
        int e = 0, c = 0;
        in >> e >> c;
        l.errors[e] = c;
      }
    }
    return l;
  }

  static v1::ServiceResilience report(int node, const std::string &name) {
    const auto r = mesh_->resilience(node, "demo", name);
    if (r.services_size() != 1) throw std::runtime_error("no report of demo/" + name);
    return r.services(0);
  }
  static const v1::BackendResilience &backend_of(const v1::ServiceResilience &s,
                                                 const std::string &pod) {
    const std::string address = mesh_->lab().pod_ip(pod) + ":" + std::to_string(kPort);
    for (const auto &b : s.backends())
      if (b.address() == address) return b;
    throw std::runtime_error("no backend " + address);
  }

  static MeshLab *mesh_;
  static std::map<std::string, pid_t> servers_;
};
MeshLab *ResilienceLabTest::mesh_ = nullptr;
std::map<std::string, pid_t> ResilienceLabTest::servers_;

TEST_F(ResilienceLabTest, ABackendKilledUnderAConnectLoopIsEjectedAfterTheThresholdAndTakenBack) {
  const std::string vip = "10.96.8.1";
  apply_service("rs-eject", vip,
                "  outlierDetection: {consecutiveFailures: 3, baseEjectionTime: 2s, "
                "maxEjectionPercent: 34}\n");
  Loop before = connect_loop("rs-client", vip, 60);
  EXPECT_EQ(before.ok, 60);
  EXPECT_EQ(before.failed(), 0);

  kill_server("rs-c");
  const auto start = std::chrono::steady_clock::now();
  Loop during = connect_loop("rs-client", vip, 300);
  // Exactly the threshold reached the dead backend, refused; then nothing while it was out.
  EXPECT_EQ(during.errors[ECONNREFUSED], 3) << during.failed();
  EXPECT_EQ(during.failed(), 3);
  EXPECT_EQ(during.ok, 297);
  auto s = report(1, "rs-eject");
  const auto &dead = backend_of(s, "rs-c");
  EXPECT_TRUE(dead.ejected());
  EXPECT_EQ(dead.failures(), 3u);
  EXPECT_EQ(dead.ejections_total(), 1u);
  EXPECT_GT(dead.ejection_remaining_ms(), 0);
  EXPECT_LE(dead.ejection_remaining_ms(), 2000);
  // Another node's kernel saw nothing: each node counts its own clients' connections.
  EXPECT_EQ(backend_of(report(2, "rs-eject"), "rs-c").failures(), 0u);

  // Back after its ejection time (it serves again): taken back by itself.
  start_server("rs-c");
  std::this_thread::sleep_until(start + 2200ms);
  const uint64_t connects = backend_of(report(1, "rs-eject"), "rs-c").connects();
  Loop after = connect_loop("rs-client", vip, 150);
  EXPECT_EQ(after.ok, 150);
  s = report(1, "rs-eject");
  EXPECT_FALSE(backend_of(s, "rs-c").ejected());
  EXPECT_GT(backend_of(s, "rs-c").connects(), connects + 20);  // ~50 of 150
}

TEST_F(ResilienceLabTest, MaxEjectionPercentKeepsOneOfTwoDeadBackendsIn) {
  const std::string vip = "10.96.8.2";
  apply_service("rs-percent", vip,
                "  outlierDetection: {consecutiveFailures: 3, baseEjectionTime: 30s, "
                "maxEjectionPercent: 34}\n");
  kill_server("rs-b");
  kill_server("rs-c");
  Loop l = connect_loop("rs-client", vip, 300);
  const auto s = report(1, "rs-percent");
  const auto &b = backend_of(s, "rs-b"), &c = backend_of(s, "rs-c");
  // One of three may be out at once: one is ejected after 3 failures, the other keeps failing.
  EXPECT_EQ(int(b.ejected()) + int(c.ejected()), 1);
  EXPECT_EQ(b.ejections_total() + c.ejections_total(), 1u);
  const auto &kept = b.ejected() ? c : b;
  EXPECT_GT(kept.failures(), 30u);
  EXPECT_EQ(l.failed(), int(b.failures() + c.failures()));
  EXPECT_EQ(l.ok, 300 - l.failed());
  EXPECT_EQ(backend_of(s, "rs-a").failures(), 0u);
}

TEST_F(ResilienceLabTest, MaxConnectionsOverflowFailsFastAndCountsReturnToZeroAfterSigkill) {
  const std::string vip = "10.96.8.3";
  apply_service("rs-limit", vip,
                "  circuitBreaker: {maxConnections: 5, maxConnectionsPerBackend: 2}\n");
  // A holder in the client pod keeps 5 connections open (the service's limit), then a 6th is
  // tried; it reports and waits to be killed.
  const std::string log = mesh_->dir() + "/rs-holder.log";
  std::string out;
  mesh_->lab().call_in_pod(
      "rs-client",
      [&] {
        const pid_t holder = fork();
        if (holder == 0) {
          // The holder outlives the call: off call_in_pod's output. A fork of a process whose other
          // threads may hold the allocator's locks, so no allocation from here on.
          const int null = ::open("/dev/null", O_WRONLY);
          dup2(null, STDOUT_FILENO);
          dup2(null, STDERR_FILENO);
          for (int fd = 3; fd < 1024; fd++) ::close(fd);
          int fds[5];
          for (int &fd : fds) fd = open_to(vip, 80);
          const int sixth = open_to(vip, 80);
          const int f = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
          ::dprintf(f, "held %d %d %d %d %d sixth %d\n", fds[0] >= 0, fds[1] >= 0, fds[2] >= 0,
                    fds[3] >= 0, fds[4] >= 0, sixth);
          ::close(f);
          pause();
          _exit(0);
        }
        ::dprintf(STDOUT_FILENO, "%d\n", holder);
        return 0;
      },
      &out);
  const pid_t holder = std::stoi(out);
  wait_for([&] { return read_file(log).find("sixth") != std::string::npos; }, 10s, "the holder");
  EXPECT_EQ(read_file(log), "held 1 1 1 1 1 sixth -" + std::to_string(ECONNREFUSED) + "\n");
  auto s = report(1, "rs-limit");
  EXPECT_EQ(s.state().active_connections(), 5u);
  EXPECT_EQ(s.state().overflows(), 1u);
  uint64_t per_backend = 0;
  for (const auto &b : s.backends()) {
    EXPECT_LE(b.active_connections(), 2u) << b.address();
    per_backend += b.active_connections();
  }
  EXPECT_EQ(per_backend, 5u);
  // A seventh from another workload of the node meets the same limit.
  Loop other = connect_loop("rs-other", vip, 1);
  EXPECT_EQ(other.errors[ECONNREFUSED], 1);

  kill(holder, SIGKILL);
  waitpid(holder, nullptr, 0);
  wait_for([&] { return report(1, "rs-limit").state().active_connections() == 0; }, 10s,
           "the killed holder's connections to be given back");
  s = report(1, "rs-limit");
  for (const auto &b : s.backends()) EXPECT_EQ(b.active_connections(), 0u) << b.address();
  // Per backend: with two backends full, the next goes to the third.
  Loop after = connect_loop("rs-client", vip, 20);
  EXPECT_EQ(after.ok, 20);
}

TEST_F(ResilienceLabTest, RateLimitOverTenSecondsIsWithinTenPercentAndTheBurstIsExact) {
  const std::string vip = "10.96.8.4";
  apply_service("rs-rate", vip, "  rateLimit: {connectionsPerSecond: 20, burst: 10}\n");
  Loop burst = connect_loop("rs-client", vip, 40);
  EXPECT_EQ(burst.ok, 10);
  EXPECT_EQ(burst.errors[ECONNREFUSED], 30);
  std::this_thread::sleep_for(600ms);  // the bucket refills to its burst
  // 10 s of a client asking every 2 ms: 10 at once, then 20 a second.
  const auto start = std::chrono::steady_clock::now();
  Loop hammer = connect_loop("rs-client", vip, 5000, 2000us);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ASSERT_GE(seconds, 10.0);
  const double expected = 10 + 20 * seconds;
  EXPECT_NEAR(hammer.ok, expected, 0.1 * expected) << seconds << " s";
  EXPECT_EQ(hammer.ok + hammer.errors[ECONNREFUSED], 5000);
  EXPECT_EQ(report(1, "rs-rate").state().rate_limited(),
            uint64_t(30 + hammer.errors[ECONNREFUSED]));
}

TEST_F(ResilienceLabTest, FaultInjectionFailsItsShareOnlyForTheSourcesItNames) {
  const std::string vip = "10.96.8.5";
  apply_service("rs-fault", vip,
                "  faultInjection:\n    abort: {percent: 30, error: ECONNRESET}\n"
                "    sources: {matchLabels: {app: chaos}}\n");
  const int n = 1000;
  Loop chaos = connect_loop("rs-client", vip, n);
  Loop calm = connect_loop("rs-other", vip, n);
  const double p = 0.3, sigma = std::sqrt(n * p * (1 - p));
  EXPECT_NEAR(chaos.errors[ECONNRESET], n * p, 5 * sigma);
  EXPECT_EQ(chaos.failed(), chaos.errors[ECONNRESET]);
  EXPECT_EQ(calm.failed(), 0);
  EXPECT_EQ(report(1, "rs-fault").state().faults(), uint64_t(chaos.errors[ECONNRESET]));
}

TEST_F(ResilienceLabTest, TheAgentReportsItsFailedConnectsAndTheBackendIsEjected) {
  // The captured client's connections go through node 1's agent, which connects on node 2 (out
  // of node 1's kernel's sight) and reports each outcome: the refusing backend is ejected on node
  // 1 all the same, and the client sees no failure (the agent retries).
  const std::string vip = "10.96.8.6";
  apply_service("rs-agent", vip,
                "  outlierDetection: {consecutiveFailures: 2, baseEjectionTime: 30s}\n");
  // Capture is on for the client (its agent listens and holds its SVID) before the backend dies.
  wait_for(
      [&] {
        const uint64_t before = mesh_->counter(1, "connect_captured");
        return connect_loop("client", vip, 1, 0us, true).ok == 1 &&
               mesh_->counter(1, "connect_captured") > before;
      },
      20s, "the client's connections to be captured");
  kill_server("rs-b");
  const uint64_t captured = mesh_->counter(1, "connect_captured");
  Loop l = connect_loop("client", vip, 60, 0us, true);
  EXPECT_EQ(mesh_->counter(1, "connect_captured") - captured, 60u);
  std::string errors;
  for (auto [e, c] : l.errors) errors += std::to_string(e) + "x" + std::to_string(c) + " ";
  EXPECT_EQ(l.ok, 60) << errors << "\n" << [] {
    const std::string log = mesh_->agent_log(1);
    return log.substr(log.size() > 4000 ? log.size() - 4000 : 0);
  }();
  // Each reached a backend that read its bytes and closed (a connection the agent accepted and
  // could not carry would be reset instead): none failed.
  const auto s = report(1, "rs-agent");
  const auto &dead = backend_of(s, "rs-b");
  EXPECT_TRUE(dead.ejected());
  EXPECT_EQ(dead.failures(), 2u);
  EXPECT_EQ(backend_of(s, "rs-a").failures() + backend_of(s, "rs-c").failures(), 0u);
}

}  // namespace
}  // namespace sockmesh::testing
