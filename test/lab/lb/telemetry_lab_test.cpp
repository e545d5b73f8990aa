// M6 on the lab: the kernel's per-pair counters equal the truth (connections and bytes of known
// transfers, same node and across nodes, through a VIP and straight to a pod), the access log has
// one open and one close line per connection with the right identities, events the ring buffer
// cannot hold are counted and reported, `meshctl bpf maps` shows the configured services, and a
// live scrape of the Prometheus endpoint passes promtool with every name documented.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include "mesh_fixture.h"
#include "sockmesh/lab/echo_server.h"

namespace sockmesh::testing {
namespace {

using namespace std::chrono_literals;

constexpr uint16_t kBulkPort = 9004;
constexpr size_t kRequest = 1000;  // the client sends this, then half-closes
constexpr size_t kReply = 5000;    // the server answers this after the request, then closes
const std::string kClientSpiffe = "spiffe://cluster.local/ns/demo/sa/client";

void wait_for(const std::function<bool()> &done, std::chrono::milliseconds limit,
              const std::string &what) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) FAIL() << "timed out waiting for " << what;
    std::this_thread::sleep_for(50ms);
  }
}

// In `pod`: `count` connections to ip:port, each sending kRequest bytes, half-closing and reading
// to the end. Returns "<ok> <failed> <bytes received>".
std::string transfers(lab::Lab &lab, const std::string &pod, const std::string &ip, uint16_t port,
                      int count) {
  std::string out;
  lab.call_in_pod(
      pod,
      [&] {
        int ok = 0, failed = 0;
        size_t received = 0;
        const std::string request(kRequest, 'q');
        for (int i = 0; i < count; i++) {
          sockaddr_in addr{};
          addr.sin_family = AF_INET;
          addr.sin_port = htons(port);
          inet_pton(AF_INET, ip.c_str(), &addr.sin_addr);
          const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
          timeval tv{10, 0};
          setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
          if (::connect(fd, reinterpret_cast<sockaddr *>(&addr), sizeof(addr)) != 0) {
            failed++;
            ::close(fd);
            continue;
          }
          if (::write(fd, request.data(), request.size()) != ssize_t(request.size())) failed++;
          ::shutdown(fd, SHUT_WR);
          char buf[8192];
          ssize_t r;
          while ((r = ::read(fd, buf, sizeof(buf))) > 0) received += size_t(r);
          ::close(fd);
          ok++;
        }
        ::dprintf(STDOUT_FILENO, "%d %d %zu\n", ok, failed, received);
        return 0;
      },
      &out);
  return out;
}

std::string trimmed(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

const v1::TrafficPair *find_pair(const v1::TrafficReport &report, const std::string &source,
                                 const std::string &backend) {
  for (const auto &p : report.pairs())
    if (p.source_workload() == source && p.backend() == backend) return &p;
  return nullptr;
}

std::vector<nlohmann::json> log_lines(const std::string &path) {
  std::vector<nlohmann::json> out;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) out.push_back(nlohmann::json::parse(line));
  return out;
}

std::string run(const std::string &command) {
  std::string out;
  FILE *p = popen(command.c_str(), "r");
  if (!p) return out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  const int rc = pclose(p);
  return out + "\nexit " + std::to_string(WEXITSTATUS(rc));
}

std::string mesh_yaml(lab::Lab &lab) {
  std::ostringstream y;
  for (int n = 1; n <= 2; ++n)
    y << "apiVersion: sockmesh/v1\nkind: Node\nmetadata: {name: " << lab.node_name(n)
      << "}\nspec: {addresses: [" << lab.node_address(n) << "]}\n---\n";
  y << "apiVersion: sockmesh/v1\nkind: Workload\nmetadata: {name: client, namespace: demo}\n"
    << "spec: {node: " << lab.node_name(1) << ", serviceAccount: client, addresses: ["
    << lab.pod_ip("client") << "], cgroupPath: client, captured: true}\n---\n"
    << "apiVersion: sockmesh/v1\nkind: Service\nmetadata: {name: bulk, namespace: demo}\n"
    << "spec:\n  vips: [{address: 10.96.0.30, port: 9004}]\n  endpoints:\n"
    << "    - {workload: web-v1-a, port: 9004}\n    - {workload: web-v1-b, port: 9004}\n";
  return y.str();
}

// Node 1 logs every connection into a roomy ring buffer; node 2 into a one-page ring, so that a
// stalled reader loses events (the overload test). No fast path: these clients block in read()
// after shutting down their sending side (docs/fastpath.md, "Limits"); the telemetry of
// fast-path bytes is FastPathLabTest's.
std::map<int, std::vector<std::string>> agent_args() {
  return {{1,
           {"--access-log-mode", "all", "--access-log", "{dir}/access-n1.jsonl",
            "--metrics-address", "0.0.0.0:15020", "--fast-path", "off"}},
          {2,
           {"--access-log-mode", "all", "--access-log", "{dir}/access-n2.jsonl",
            "--access-log-ring-bytes", "4096", "--fast-path", "off"}}};
}

class TelemetryLabTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    mesh_ = new MeshLab({}, Source::kControlPlane, {}, {}, agent_args());
    auto &lab = mesh_->lab();
    // The fixture's config again, so that the bulk service's endpoints resolve in this apply.
    auto applied = mesh_->apply(mesh_->config_text({}) + "---\n" + mesh_yaml(lab));
    ASSERT_TRUE(applied.ok()) << applied.error_message();
    mesh_->wait_all_acked();
    for (const std::string pod : {"web-v1-a", "web-v1-b", "web-v2-a"})
      lab.spawn_in_pod(pod,
                       {"socat", "TCP-LISTEN:" + std::to_string(kBulkPort) + ",reuseaddr,fork",
                        "SYSTEM:head -c " + std::to_string(kRequest) + " >/dev/null; head -c " +
                            std::to_string(kReply) + " /dev/zero"},
                       "/dev/null");
    // client and web-v1-a have their SVIDs on node 1 (capture is on once node 1's address is
    // known); the servers answer.
    wait_for([] { return mesh_->status(1).mesh().svids_size() == 2; }, 20s, "node 1's SVIDs");
    wait_for(
        [&] {
          return trimmed(transfers(lab, "web-v2-a", lab.pod_ip("web-v1-b"), kBulkPort, 1)) ==
                 "1 0 " + std::to_string(kReply);
        },
        10s, "the bulk servers");
  }
  static void TearDownTestSuite() {
    delete mesh_;
    mesh_ = nullptr;
  }
  static std::string backend(const std::string &pod) {
    return mesh_->lab().pod_ip(pod) + ":" + std::to_string(kBulkPort);
  }
  static MeshLab *mesh_;
};
MeshLab *TelemetryLabTest::mesh_ = nullptr;

TEST_F(TelemetryLabTest, CountersEqualTheTruthPerPair) {
  auto &lab = mesh_->lab();
  // Same node, straight to the pod; across nodes (captured, through the tunnel), straight to the
  // pod. The client's socket is counted: its bytes are the application's, whatever carries them.
  ASSERT_EQ(trimmed(transfers(lab, "client", lab.pod_ip("web-v1-a"), kBulkPort, 5)),
            "5 0 " + std::to_string(5 * kReply));
  ASSERT_EQ(trimmed(transfers(lab, "client", lab.pod_ip("web-v1-b"), kBulkPort, 4)),
            "4 0 " + std::to_string(4 * kReply));
  const auto report = mesh_->traffic(1);
  const auto *local = find_pair(report, "demo/client", backend("web-v1-a"));
  const auto *remote = find_pair(report, "demo/client", backend("web-v1-b"));
  ASSERT_NE(local, nullptr) << report.DebugString();
  ASSERT_NE(remote, nullptr) << report.DebugString();

  EXPECT_EQ(local->service(), "");
  EXPECT_EQ(local->source_principal(), kClientSpiffe);
  EXPECT_EQ(local->destination_workload(), "demo/web-v1-a");
  EXPECT_EQ(local->destination_principal(), "spiffe://cluster.local/ns/demo/sa/web");
  EXPECT_EQ(local->balanced(), 5u);
  EXPECT_EQ(local->captured(), 0u);
  EXPECT_EQ(local->opened(), 5u);
  EXPECT_EQ(local->closed(), 5u);
  EXPECT_EQ(local->failed(), 0u);
  EXPECT_EQ(local->reset(), 0u);
  EXPECT_EQ(local->active(), 0u);
  EXPECT_EQ(local->bytes_sent(), 5 * kRequest);
  EXPECT_EQ(local->bytes_received(), 5 * kReply);

  EXPECT_EQ(remote->destination_workload(), "demo/web-v1-b");
  EXPECT_EQ(remote->captured(), 4u);
  EXPECT_EQ(remote->balanced(), 0u);
  EXPECT_EQ(remote->opened(), 4u);
  EXPECT_EQ(remote->closed(), 4u);
  EXPECT_EQ(remote->bytes_sent(), 4 * kRequest);
  EXPECT_EQ(remote->bytes_received(), 4 * kReply);

  // A smoothed RTT per closed connection, plausible for veths on one machine: above 0, below 100
  // ms.
  for (const auto *p : {local, remote}) {
    ASSERT_GE(p->srtt_samples(), p->closed());
    const double avg = double(p->srtt_us_sum()) / double(p->srtt_samples());
    EXPECT_GT(avg, 0.0);
    EXPECT_LT(avg, 100000.0);
  }
}

TEST_F(TelemetryLabTest, VipConnectionsAreCountedPerBackendAndRefusalsPerReason) {
  auto &lab = mesh_->lab();
  ASSERT_EQ(trimmed(transfers(lab, "client", "10.96.0.30", kBulkPort, 40)),
            "40 0 " + std::to_string(40 * kReply));
  const auto after = mesh_->traffic(1);
  uint64_t total = 0;
  for (const std::string pod : {"web-v1-a", "web-v1-b"}) {
    // The VIP's pairs are their own, apart from the direct connects to the same backend.
    for (const auto &q : after.pairs())
      if (q.vip() == "10.96.0.30:9004/tcp" && q.backend() == backend(pod)) {
        EXPECT_EQ(q.service(), "demo/bulk");
        EXPECT_EQ(q.opened(), q.closed());
        EXPECT_EQ(q.balanced() + q.captured(), q.opened());
        EXPECT_EQ(q.bytes_sent(), q.opened() * kRequest);
        EXPECT_EQ(q.bytes_received(), q.opened() * kReply);
        total += q.opened();
      }
  }
  EXPECT_EQ(total, 40u) << "every connection through the VIP counted once, under its backend";

  // demo/empty has no endpoints: refused at connect(), counted as no_backend.
  std::string out;
  lab.call_in_pod(
      "client",
      [] {
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_port = htons(80);
        inet_pton(AF_INET, "10.96.0.11", &addr.sin_addr);
        const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
        const int rc = ::connect(fd, reinterpret_cast<sockaddr *>(&addr), sizeof(addr));
        ::dprintf(STDOUT_FILENO, "%d %d\n", rc, rc == 0 ? 0 : errno);
        ::close(fd);
        return 0;
      },
      &out);
  EXPECT_EQ(trimmed(out), "-1 " + std::to_string(ECONNREFUSED));
  bool seen = false;
  const auto refused = mesh_->traffic(1);  // range-for must not iterate a temporary's member
  for (const auto &p : refused.pairs())
    if (p.service() == "demo/empty" && p.source_workload() == "demo/client") {
      EXPECT_EQ(p.no_backend(), 1u);
      EXPECT_EQ(p.backend(), "");
      EXPECT_EQ(p.opened(), 0u);
      seen = true;
    }
  EXPECT_TRUE(seen);
}

TEST_F(TelemetryLabTest, AccessLogHasOneOpenAndOneCloseLinePerConnection) {
  auto &lab = mesh_->lab();
  const std::string path = mesh_->dir() + "/access-n1.jsonl";
  // A destination used by this test alone: web-v2-a on node 2, straight to the pod, captured.
  const std::string dest = backend("web-v2-a");
  ASSERT_EQ(trimmed(transfers(lab, "client", lab.pod_ip("web-v2-a"), kBulkPort, 6)),
            "6 0 " + std::to_string(6 * kReply));
  std::map<uint64_t, std::vector<nlohmann::json>> by_connection;
  wait_for(
      [&] {
        by_connection.clear();
        size_t closes = 0;
        for (const auto &line : log_lines(path))
          if (line.contains("destination") && line["destination"]["address"] == dest) {
            by_connection[line["connection"].get<uint64_t>()].push_back(line);
            closes += line["event"] == "close";
          }
        return closes == 6;
      },
      10s, "six close lines in " + path);
  ASSERT_EQ(by_connection.size(), 6u);
  for (const auto &[cookie, lines] : by_connection) {
    ASSERT_EQ(lines.size(), 2u) << "connection " << cookie;
    const auto &open = lines[0], &close = lines[1];
    EXPECT_EQ(open["event"], "open");
    EXPECT_EQ(close["event"], "close");
    EXPECT_EQ(close["reason"], "closed");
    for (const auto *l : {&open, &close}) {
      EXPECT_EQ((*l)["source"]["workload"], "demo/client");
      EXPECT_EQ((*l)["source"]["principal"], kClientSpiffe);
      EXPECT_EQ((*l)["destination"]["workload"], "demo/web-v2-a");
      EXPECT_EQ((*l)["destination"]["principal"], "spiffe://cluster.local/ns/demo/sa/web");
      EXPECT_EQ((*l)["route"], "tunnel");
      EXPECT_EQ((*l)["source"]["address"].get<std::string>().rfind(lab.pod_ip("client") + ":", 0),
                0u);
    }
    EXPECT_EQ(close["bytes_sent"], kRequest);
    EXPECT_EQ(close["bytes_received"], kReply);
    EXPECT_GT(close["duration_ms"].get<double>(), 0.0);
  }
  const auto status = mesh_->traffic(1).access_log();
  EXPECT_EQ(status.mode(), "all");
  EXPECT_EQ(status.events_lost(), 0u);
  EXPECT_EQ(status.write_errors(), 0u);
}

TEST_F(TelemetryLabTest, EventsLostToAFullRingAreCountedAndReported) {
  auto &lab = mesh_->lab();
  const std::string path = mesh_->dir() + "/access-n2.jsonl";
  const std::string dest = backend("web-v1-b");
  auto logged = [&] {
    size_t n = 0;
    for (const auto &line : log_lines(path))
      n += line.contains("destination") && line["destination"]["address"] == dest &&
           line["source"]["workload"] == "demo/web-v2-a";
    return n;
  };
  // Earlier connections' events are written within the reader's 100 ms period: wait until the log
  // stands still before counting.
  size_t logged_before = logged();
  for (size_t again = SIZE_MAX; again != logged_before;) {
    std::this_thread::sleep_for(250ms);
    again = logged_before;
    logged_before = logged();
  }
  const uint64_t lost_before = mesh_->traffic(2).access_log().events_lost();
  // Node 2's reader stalls; 100 connections make 200 events for a one-page ring.
  const pid_t agent = mesh_->agent_pid(2);
  ASSERT_EQ(kill(agent, SIGSTOP), 0);
  const std::string result = transfers(lab, "web-v2-a", lab.pod_ip("web-v1-b"), kBulkPort, 100);
  ASSERT_EQ(kill(agent, SIGCONT), 0);
  ASSERT_EQ(trimmed(result), "100 0 " + std::to_string(100 * kReply));
  v1::AccessLogStatus status;
  wait_for(
      [&] {
        status = mesh_->traffic(2).access_log();
        return status.events_lost() > lost_before;
      },
      10s, "node 2 to report lost events");
  // Every event is either in the log or counted as lost: nothing vanishes.
  wait_for([&] { return logged() - logged_before + status.events_lost() - lost_before >= 200; },
           10s, "the logged events");
  EXPECT_EQ(logged() - logged_before + (status.events_lost() - lost_before), 200u);
  bool reported = false;
  for (const auto &line : log_lines(path))
    reported |= line["event"] == "lost" && line["count"].get<uint64_t>() > 0;
  EXPECT_TRUE(reported) << "no {\"event\":\"lost\"} line in " << path;
  // The kernel's counter says the same.
  EXPECT_GE(mesh_->counter(2, "events_lost"), status.events_lost());
}

TEST_F(TelemetryLabTest, BpfMapsShowTheConfiguredServices) {
  // demo/web (2 VIPs), empty, dns (2), sticky, bulk: 7 VIP ports in sm_services.
  const std::string out = run(std::string(MESHCTL_BIN) + " --node " + mesh_->lab().node_name(1) +
                              " bpf maps -o json 2>&1");
  const auto at = out.rfind("\nexit ");
  ASSERT_EQ(out.substr(at), "\nexit 0") << out;
  const auto json = nlohmann::json::parse(out.substr(0, at));
  std::map<std::string, nlohmann::json> maps;
  for (const auto &m : json["maps"]) maps[m["name"]] = m;
  ASSERT_TRUE(maps.count("sm_services")) << out;
  EXPECT_EQ(maps["sm_services"]["entries"], "7") << maps["sm_services"].dump();
  // Every workload's addresses (client, three web pods) in sm_endpoints; node 1's two here.
  EXPECT_EQ(maps["sm_workloads"]["entries"], "2") << maps["sm_workloads"].dump();
  EXPECT_GT(std::stoull(maps["sm_traffic"]["memoryBytes"].get<std::string>()), 0u);
}

// In a pod: GET /metrics from addr:port; returns the body ("" when the answer is no HTTP).
std::string scrape(lab::Lab &lab, const std::string &pod, const std::string &addr, uint16_t port) {
  std::string response;
  lab.call_in_pod(
      pod,
      [&] {
        sockaddr_in sa{};
        sa.sin_family = AF_INET;
        sa.sin_port = htons(port);
        inet_pton(AF_INET, addr.c_str(), &sa.sin_addr);
        const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
        if (::connect(fd, reinterpret_cast<sockaddr *>(&sa), sizeof(sa)) != 0) return 1;
        const std::string req = "GET /metrics HTTP/1.0\r\nHost: sockmesh\r\n\r\n";
        if (::write(fd, req.data(), req.size()) != ssize_t(req.size())) return 1;
        char buf[65536];
        ssize_t r;
        while ((r = ::read(fd, buf, sizeof(buf))) > 0)
          (void)!::write(STDOUT_FILENO, buf, size_t(r));
        ::close(fd);
        return 0;
      },
      &response);
  const auto header_end = response.find("\r\n\r\n");
  if (response.rfind("HTTP/1.", 0) != 0 || header_end == std::string::npos) return "";
  return response.substr(header_end + 4);
}

// promtool's verdict on an exposition, and the families it has that docs/metrics.md does not name.
void expect_valid_and_documented(const std::string &metrics, const std::string &file) {
  std::ofstream(file) << metrics;
  const std::string promtool = run("promtool check metrics < " + file + " 2>&1");
  EXPECT_EQ(promtool.substr(promtool.rfind("\nexit ")), "\nexit 0") << promtool;
  std::ifstream doc_in(std::string(SOCKMESH_SOURCE_DIR) + "/docs/metrics.md");
  const std::string doc((std::istreambuf_iterator<char>(doc_in)), std::istreambuf_iterator<char>());
  ASSERT_FALSE(doc.empty());
  std::set<std::string> families;
  const std::regex type_line("^# TYPE ([a-z_:]+) ");
  std::istringstream lines(metrics);
  for (std::string line; std::getline(lines, line);) {
    std::smatch m;
    if (std::regex_search(line, m, type_line)) families.insert(m[1]);
  }
  EXPECT_GT(families.size(), 10u);
  for (const auto &family : families)
    EXPECT_NE(doc.find(family), std::string::npos) << family << " is not in docs/metrics.md";
}

TEST_F(TelemetryLabTest, LiveScrapesOfMeshdAndMeshcpPassPromtoolWithDocumentedNames) {
  auto &lab = mesh_->lab();
  ASSERT_EQ(trimmed(transfers(lab, "client", lab.pod_ip("web-v1-a"), kBulkPort, 1)),
            "1 0 " + std::to_string(kReply));
  // Scraped from a pod: lab addresses mean nothing in the host's network namespace. meshd on node
  // 1 serves :15020; meshcp runs in node 1's namespace too, on its default :15014.
  const std::string agent = scrape(lab, "client", lab.node_address(1), 15020);
  ASSERT_FALSE(agent.empty());
  expect_valid_and_documented(agent, mesh_->dir() + "/scrape-meshd.txt");
  // The traffic of the tests is there under its pair's labels.
  EXPECT_NE(agent.find("sockmesh_tcp_connections_opened_total{"), std::string::npos);
  EXPECT_NE(agent.find("source_workload=\"demo/client\""), std::string::npos);
  const std::string controlplane = scrape(lab, "client", lab.node_address(1), 15014);
  ASSERT_FALSE(controlplane.empty());
  expect_valid_and_documented(controlplane, mesh_->dir() + "/scrape-meshcp.txt");
  EXPECT_NE(controlplane.find("sockmesh_cp_"), std::string::npos);
}

// Sampled access log (file mode): about the configured share of connections is logged, each with
// both its lines.
class TelemetrySampledLabTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    mesh_ =
        new MeshLab({}, Source::kFile, {}, {},
                    {{1,
                      {"--access-log-mode", "sampled", "--access-log-sampling", "0.5",
                       "--access-log", "{dir}/access-sampled.jsonl", "--metrics-address", "off"}}});
  }
  static void TearDownTestSuite() {
    delete mesh_;
    mesh_ = nullptr;
  }
  static MeshLab *mesh_;
};
MeshLab *TelemetrySampledLabTest::mesh_ = nullptr;

TEST_F(TelemetrySampledLabTest, HalfTheConnectionsAreLoggedEachWithBothLines) {
  constexpr int kConnections = 600;
  const auto tally = connect_many(mesh_->lab(), "client", "10.96.0.10", 80, kConnections);
  ASSERT_EQ(tally.failures, 0) << tally.first_error;
  const std::string path = mesh_->dir() + "/access-sampled.jsonl";
  std::map<uint64_t, std::set<std::string>> events;
  size_t closes = 0;
  // Lines reach the file within the reader's period; wait until the log stands still.
  for (size_t last = SIZE_MAX; last != closes;) {
    std::this_thread::sleep_for(300ms);
    last = closes;
    events.clear();
    closes = 0;
    for (const auto &line : log_lines(path))
      if (line["destination"]["service"] == "demo/web") {
        events[line["connection"].get<uint64_t>()].insert(line["event"].get<std::string>());
        closes += line["event"] == "close";
      }
  }
  // 600 draws at p = 0.5: sigma = sqrt(600 * 0.25) ~ 12.2; 5 sigma ~ 61.
  EXPECT_NEAR(double(events.size()), kConnections * 0.5, 61.0);
  for (const auto &[cookie, kinds] : events)
    EXPECT_EQ(kinds, (std::set<std::string>{"open", "close"})) << "connection " << cookie;
  // The counters count every connection, sampled or not.
  uint64_t opened = 0;
  const auto report = mesh_->traffic(1);
  for (const auto &p : report.pairs())
    if (p.service() == "demo/web") opened += p.opened();
  EXPECT_EQ(opened, uint64_t(kConnections));
  EXPECT_EQ(report.access_log().mode(), "sampled");
  EXPECT_DOUBLE_EQ(report.access_log().sampling(), 0.5);
}

}  // namespace
}  // namespace sockmesh::testing
