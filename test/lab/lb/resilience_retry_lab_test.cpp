// M8 on the lab: a captured client's connection to a service whose backend on the other node
// fails is retried by the agent on another backend of the service (docs/tunnel.md, "Connect
// timeout and retries"), with the bytes the client wrote before any backend accepted delivered
// exactly once; a backend that refuses costs one retry, one that drops SYNs costs the service's
// connect timeout. With retries off the same failures reach the client, which shows the test
// can fail.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <thread>

#include "mesh_fixture.h"
#include "sockmesh/resources/resource_set.h"
#include "sockmesh/v1/resources.pb.h"

namespace sockmesh::testing {
namespace {

using namespace std::chrono_literals;

constexpr uint16_t kEchoPort = 9003;       // cat in web-v1-b and web-v2-a; nothing in web-c
constexpr uint16_t kBlackholePort = 9004;  // web-d: a listener whose accept queue is full
constexpr int kConnections = 120;

void wait_until(const std::function<bool()> &done, std::chrono::milliseconds limit,
                const std::string &what) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline)
      throw std::runtime_error("timed out waiting for " + what);
    std::this_thread::sleep_for(50ms);
  }
}

std::vector<std::string> words(const std::string &line) {
  std::istringstream in(line);
  std::vector<std::string> out;
  for (std::string w; in >> w;) out.push_back(w);
  return out;
}

// The agents without the same-node fast path, as the other tunnel tests run them.
std::map<int, std::vector<std::string>> without_fast_path() {
  return {{1, {"--fast-path", "off"}}, {2, {"--fast-path", "off"}}};
}

// Nodes, the captured client (node 1) and the two backends without a working server (node 2).
std::string mesh_yaml(lab::Lab &lab) {
  std::ostringstream y;
  for (int n = 1; n <= 2; ++n)
    y << "apiVersion: sockmesh/v1\nkind: Node\nmetadata: {name: " << lab.node_name(n)
      << "}\nspec: {addresses: [" << lab.node_address(n) << "]}\n---\n";
  y << "apiVersion: sockmesh/v1\nkind: Workload\nmetadata: {name: client, namespace: demo}\n"
    << "spec: {node: " << lab.node_name(1) << ", serviceAccount: client, addresses: ["
    << lab.pod_ip("client") << "], cgroupPath: client, captured: true}\n---\n";
  for (const std::string pod : {"web-c", "web-d"})
    y << "apiVersion: sockmesh/v1\nkind: Workload\nmetadata: {name: " << pod
      << ", namespace: demo}\nspec: {node: " << lab.node_name(2) << ", addresses: ["
      << lab.pod_ip(pod) << "], cgroupPath: " << pod << "}\n---\n";
  return y.str();
}

// A service built as a protobuf: upstreamConnect in YAML may not be loadable yet.
v1::Service service(const std::string &name, const std::string &vip,
                    const std::vector<std::pair<std::string, uint16_t>> &endpoints,
                    uint32_t timeout_ms, std::optional<uint32_t> retries) {
  v1::Service s;
  s.mutable_metadata()->set_name(name);
  s.mutable_metadata()->set_namespace_("demo");
  auto *v = s.add_vips();
  v->set_address(vip);
  v->set_port(80);
  for (const auto &[workload, port] : endpoints) {
    auto *e = s.add_endpoints();
    e->set_workload(workload);
    e->set_port(port);
    e->set_weight(1);
  }
  s.mutable_upstream_connect()->set_timeout_ms(timeout_ms);
  if (retries) s.mutable_upstream_connect()->set_retries(*retries);
  return s;
}

void apply_service(MeshLab &mesh, const v1::Service &s) {
  v1::Snapshot snapshot;
  *snapshot.add_services() = s;
  std::vector<v1::Resource> resources;
  for (auto &[name, resource] : resources::to_resources(snapshot)) resources.push_back(resource);
  v1::ApplyResponse response;
  const auto status = mesh.apply_resources(resources, &response);
  if (!status.ok())
    throw std::runtime_error("apply " + s.metadata().name() + ": " + status.error_message());
  mesh.wait_all_acked();
}

int connect_to(const std::string &ip, uint16_t port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  inet_pton(AF_INET, ip.c_str(), &addr.sin_addr);
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  timeval tv{20, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  if (::connect(fd, reinterpret_cast<sockaddr *>(&addr), sizeof(addr)) != 0) {
    const int err = errno;
    ::close(fd);
    errno = err;
    return -1;
  }
  return fd;
}

struct Tally {
  int ok = 0;
  int failed = 0;
  int64_t max_ms = 0;
  std::string first_error;
};

// From inside the client pod: `count` connections to ip:port, each writing a request of its own
// at once (before any backend can have accepted) and reading it back from the echo server.
Tally echo_many(lab::Lab &lab, const std::string &ip, uint16_t port, int count) {
  std::string out;
  lab.call_in_pod(
      "client",
      [&] {
        int ok = 0, failed = 0;
        int64_t max_ms = 0;
        std::string first_error = "-";
        for (int i = 0; i < count; ++i) {
          const auto begin = std::chrono::steady_clock::now();
          std::string request = "request-" + std::to_string(i) + "-";
          while (request.size() < 3000) request += char('a' + (request.size() * 7 + i) % 26);
          request += "\n";
          std::string error;
          const int fd = connect_to(ip, port);
          if (fd < 0) {
            error = "connect:" + std::to_string(errno);
          } else {
            if (::write(fd, request.data(), request.size()) != ssize_t(request.size()))
              error = "write:" + std::to_string(errno);
            std::string reply;
            char buf[4096];
            while (error.empty() && reply.size() < request.size()) {
              const ssize_t r = ::read(fd, buf, sizeof(buf));
              if (r <= 0) {
                error = r == 0 ? "eof" : "read:" + std::to_string(errno);
                break;
              }
              reply.append(buf, size_t(r));
            }
            if (error.empty() && reply != request) error = "wrong-bytes";
            ::close(fd);
          }
          const int64_t ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                                 std::chrono::steady_clock::now() - begin)
                                 .count();
          max_ms = std::max(max_ms, ms);
          if (error.empty()) {
            ++ok;
          } else {
            ++failed;
            if (first_error == "-") first_error = error;
          }
        }
        ::dprintf(STDOUT_FILENO, "%d %d %lld %s\n", ok, failed, static_cast<long long>(max_ms),
                  first_error.c_str());
        return 0;
      },
      &out);
  const auto w = words(out);
  if (w.size() != 4) throw std::runtime_error("client output: " + out);
  return {std::stoi(w[0]), std::stoi(w[1]), std::stoll(w[2]), w[3]};
}

// Lines of node 1's agent log from `from` on that contain every one of `parts`.
size_t log_lines(MeshLab &mesh, size_t from, const std::vector<std::string> &parts) {
  std::istringstream in(mesh.agent_log(1).substr(from));
  size_t n = 0;
  for (std::string line; std::getline(in, line);) {
    bool all = true;
    for (const auto &p : parts) all &= line.find(p) != std::string::npos;
    n += all;
  }
  return n;
}

class ResilienceRetryLabTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    mesh_ = new MeshLab({}, Source::kControlPlane, {{"web-c", 2, ""}, {"web-d", 2, ""}}, {},
                        without_fast_path());
    try {
      auto &lab = mesh_->lab();
      const auto applied = mesh_->apply(mesh_yaml(lab));
      if (!applied.ok()) throw std::runtime_error("mesh: " + applied.error_message());
      mesh_->wait_all_acked();
      for (const std::string pod : {"web-v1-b", "web-v2-a"})
        lab.spawn_in_pod(
            pod,
            {"socat", "TCP-LISTEN:" + std::to_string(kEchoPort) + ",reuseaddr,fork", "EXEC:cat"},
            "/dev/null");
      // The client's SVID on node 1; capture is on once the node's address is known.
      wait_until([&] { return mesh_->status(1).mesh().svids_size() >= 2; }, 20s,
                 "the SVIDs of node 1");
      start_blackhole();
    } catch (...) {
      delete mesh_;
      mesh_ = nullptr;
      throw;
    }
  }
  static void TearDownTestSuite() {
    if (blackhole_) {
      std::ofstream(stop_file()).put('x');
      blackhole_->join();
      delete blackhole_;
      blackhole_ = nullptr;
    }
    delete mesh_;
    mesh_ = nullptr;
  }

  static std::string stop_file() { return mesh_->dir() + "/blackhole.stop"; }

  // web-d listens on kBlackholePort with an accept queue of one, filled by a connection of its
  // own that is never accepted: the kernel then drops every further SYN (no RST), so a connect
  // to it hangs until its timeout.
  static void start_blackhole() {
    auto &lab = mesh_->lab();
    const std::string ip = lab.pod_ip("web-d");
    const std::string ready = mesh_->dir() + "/blackhole.ready";
    const std::string stop = stop_file();
    blackhole_ = new std::thread([&lab, ip, ready, stop] {
      lab.call_in_pod("web-d", [&] {
        const int listener = ::socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_port = htons(kBlackholePort);
        if (::bind(listener, reinterpret_cast<sockaddr *>(&addr), sizeof(addr)) != 0 ||
            ::listen(listener, 0) != 0)
          return 1;
        const int filler = connect_to(ip, kBlackholePort);  // completes: the queue is now full
        if (filler < 0) return 2;
        std::ofstream(ready).put('x');
        for (int i = 0; i < 3000 && !std::filesystem::exists(stop); ++i)
          std::this_thread::sleep_for(100ms);
        ::close(filler);
        ::close(listener);
        return 0;
      });
    });
    wait_until([&] { return std::filesystem::exists(ready); }, 10s, "the blackhole in web-d");
    // It blackholes: a connect from another pod of node 2 (not captured) gets no answer.
    std::string out;
    lab.call_in_pod(
        "web-v2-a",
        [&] {
          const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
          sockaddr_in to{};
          to.sin_family = AF_INET;
          to.sin_port = htons(kBlackholePort);
          inet_pton(AF_INET, ip.c_str(), &to.sin_addr);
          ::connect(fd, reinterpret_cast<sockaddr *>(&to), sizeof(to));
          pollfd p{fd, POLLOUT, 0};
          ::dprintf(STDOUT_FILENO, "%d\n", ::poll(&p, 1, 1000));
          ::close(fd);
          return 0;
        },
        &out);
    if (words(out) != std::vector<std::string>{"0"})
      throw std::runtime_error("the blackhole answered a connect: " + out);
  }

  static MeshLab *mesh_;
  static std::thread *blackhole_;
};
MeshLab *ResilienceRetryLabTest::mesh_ = nullptr;
std::thread *ResilienceRetryLabTest::blackhole_ = nullptr;

TEST_F(ResilienceRetryLabTest, ARefusingBackendIsRetriedOnAnotherWithTheClientsBytesIntact) {
  auto &lab = mesh_->lab();
  const std::vector<std::pair<std::string, uint16_t>> endpoints = {
      {"web-v1-b", kEchoPort}, {"web-v2-a", kEchoPort}, {"web-c", kEchoPort}};
  apply_service(*mesh_, service("retry", "10.96.0.30", endpoints, 0, std::nullopt));
  const std::string refused = lab.pod_ip("web-c") + ":" + std::to_string(kEchoPort);

  size_t log_from = mesh_->agent_log(1).size();
  const uint64_t refused_before = mesh_->status(1).mesh().outbound().streams_refused();
  const Tally t = echo_many(lab, "10.96.0.30", 80, kConnections);
  std::this_thread::sleep_for(500ms);  // the agent's last log lines
  EXPECT_EQ(t.ok, kConnections) << "first error: " << t.first_error;
  EXPECT_EQ(t.failed, 0) << "first error: " << t.first_error;
  // About a third of the connections were balanced to web-c first: each cost one retry.
  const size_t retries = log_lines(
      *mesh_, log_from, {"event=upstream_retry", "failed=" + refused, "reason=connect_refused"});
  std::printf("[   info   ] refusing backend: %d of %d ok, %zu retries, slowest %lld ms\n", t.ok,
              kConnections, retries, static_cast<long long>(t.max_ms));
  EXPECT_GE(retries, size_t(kConnections / 10)) << "the kernel never chose the refusing backend?";
  EXPECT_EQ(log_lines(*mesh_, log_from, {"event=upstream_retry"}), retries);
  EXPECT_EQ(log_lines(*mesh_, log_from, {"event=upstream_exhausted"}), 0u);
  // Each retry followed a 502 from node 2's agent.
  EXPECT_EQ(mesh_->status(1).mesh().outbound().streams_refused() - refused_before, retries);

  // Without retries the refusals reach the clients: the test can fail.
  apply_service(*mesh_, service("retry", "10.96.0.30", endpoints, 0, 0));
  log_from = mesh_->agent_log(1).size();
  const Tally off = echo_many(lab, "10.96.0.30", 80, kConnections);
  std::this_thread::sleep_for(500ms);
  std::printf("[   info   ] retries off: %d of %d reset\n", off.failed, kConnections);
  EXPECT_GE(off.failed, kConnections / 10);
  EXPECT_EQ(off.ok + off.failed, kConnections);
  // The reset reaches the client while it reads the echo, or already while it writes.
  EXPECT_TRUE(off.first_error == "read:" + std::to_string(ECONNRESET) ||
              off.first_error == "write:" + std::to_string(ECONNRESET))
      << off.first_error;
  EXPECT_EQ(log_lines(*mesh_, log_from, {"event=upstream_retry"}), 0u);
  EXPECT_EQ(log_lines(*mesh_, log_from, {"event=upstream_exhausted"}), size_t(off.failed));
}

TEST_F(ResilienceRetryLabTest, ABlackholedBackendCostsTheServicesConnectTimeout) {
  auto &lab = mesh_->lab();
  apply_service(
      *mesh_, service("blackhole", "10.96.0.31",
                      {{"web-v1-b", kEchoPort}, {"web-v2-a", kEchoPort}, {"web-d", kBlackholePort}},
                      300, std::nullopt));
  const std::string dropped = lab.pod_ip("web-d") + ":" + std::to_string(kBlackholePort);
  const size_t log_from = mesh_->agent_log(1).size();
  const Tally t = echo_many(lab, "10.96.0.31", 80, kConnections);
  std::this_thread::sleep_for(500ms);
  EXPECT_EQ(t.ok, kConnections) << "first error: " << t.first_error;
  // 300 ms for the connect node 2's agent gave up on, then the next backend; far below the 5 s
  // the agent waits without the service's timeout, and within the timeout plus this side's
  // margin (1 s) with room for a loaded machine.
  EXPECT_LT(t.max_ms, 300 + 1000 + 700);
  const size_t retries = log_lines(
      *mesh_, log_from, {"event=upstream_retry", "failed=" + dropped, "reason=connect_timeout"});
  std::printf("[   info   ] blackholed backend: %d of %d ok, %zu retries, slowest %lld ms\n", t.ok,
              kConnections, retries, static_cast<long long>(t.max_ms));
  EXPECT_GE(retries, size_t(kConnections / 10));
  EXPECT_EQ(log_lines(*mesh_, log_from, {"event=upstream_retry"}), retries);
}

}  // namespace
}  // namespace sockmesh::testing
