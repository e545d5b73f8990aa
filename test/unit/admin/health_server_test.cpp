// The health probes' HTTP server (admin/health_server.h) on loopback with a fake AdminState:
// 200/503 per path from a live status, 404, 405, 400, 431, a slow client cut off without pinning
// the server, the connection cap, a status() that throws, and the address errors.
#include "admin/health_server.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "admin/admin_state.h"

namespace sockmesh::admin {
namespace {

using namespace std::chrono_literals;

constexpr int64_t kNow = 1'800'000'000'000;

class FakeState : public AdminState {
 public:
  FakeState() {
    auto *p = status_.add_programs();
    p->set_name("sm_connect4");
    p->set_id(10);
    p->set_attach_type("cgroup/connect4");
    p->set_link_id(20);
    p->set_attached(true);
    auto *config = status_.mutable_config();
    config->set_source("controlplane:unix:/x/xds.sock");
    config->set_generation(1);
    config->set_applied_unix_ms(kNow - 1000);
    config->set_stream_state("connected");
    status_.mutable_mesh()->set_node_certificate_not_after_unix_ms(kNow + 60'000);
  }
  v1::AgentStatus status() override {
    std::lock_guard lock(mu_);
    ++calls_;
    if (!throws_.empty()) throw std::runtime_error(throws_);
    return status_;
  }
  template <typename F>
  void edit(F f) {
    std::lock_guard lock(mu_);
    f(status_);
  }
  void throw_with(std::string what) {
    std::lock_guard lock(mu_);
    throws_ = std::move(what);
  }
  int calls() {
    std::lock_guard lock(mu_);
    return calls_;
  }
  v1::ListServicesResponse services() override { return {}; }
  v1::ListEndpointsResponse endpoints() override { return {}; }
  v1::TrafficReport traffic() override { return {}; }
  v1::ListMapsResponse maps() override { return {}; }
  v1::DumpMapResponse dump_map(const std::string &, uint32_t) override { return {}; }
  v1::FastPathReport fast_path() override { return {}; }
  v1::ResilienceReport resilience(const std::string &, const std::string &) override { return {}; }
  bool wait_for_change(uint64_t, std::chrono::milliseconds) override { return false; }

 private:
  std::mutex mu_;
  v1::AgentStatus status_;
  std::string throws_;
  int calls_ = 0;
};

int connect_to(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  timeval tv{10, 0};  // a hung server fails the test instead of hanging it
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(uint16_t(port));
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr *>(&sa), sizeof(sa)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

// Everything the server sends until it closes ("" when nothing).
std::string read_all(int fd) {
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = read(fd, buf, sizeof(buf))) > 0) out.append(buf, size_t(n));
  return out;
}

std::string round_trip(int port, const std::string &request) {
  const int fd = connect_to(port);
  if (fd < 0) return "connect failed";
  size_t sent = 0;
  while (sent < request.size()) {
    const ssize_t n = write(fd, request.data() + sent, request.size() - sent);
    if (n <= 0) break;
    sent += size_t(n);
  }
  std::string out = read_all(fd);
  close(fd);
  return out;
}

struct Answer {
  int code = 0;
  std::string head, body;
};

Answer parse(const std::string &raw) {
  Answer a;
  const auto end = raw.find("\r\n\r\n");
  if (raw.rfind("HTTP/1.1 ", 0) != 0 || end == std::string::npos) return a;
  a.code = std::stoi(raw.substr(9, 3));
  a.head = raw.substr(0, end);
  a.body = raw.substr(end + 4);
  return a;
}

Answer get(int port, const std::string &path, const std::string &method = "GET") {
  return parse(round_trip(
      port,
      method + " " + path + " HTTP/1.1\r\nHost: probe\r\nUser-Agent: kube-probe/1.30\r\n\r\n"));
}

std::vector<std::string> check_names(const nlohmann::json &body) {
  std::vector<std::string> out;
  for (const auto &c : body["checks"]) out.push_back(c["name"]);
  return out;
}

class HealthServerTest : public ::testing::Test {
 protected:
  HealthOptions options(std::string address = "127.0.0.1:0") {
    HealthOptions o;
    o.address = std::move(address);
    o.now_unix_ms = [] { return kNow; };
    return o;
  }
  FakeState state_;
};

TEST_F(HealthServerTest, ReadyAndLiveAnswer200WithTheChecks) {
  HealthServer server(options(), state_);
  ASSERT_GT(server.port(), 0);
  const Answer ready = get(server.port(), "/healthz/ready");
  ASSERT_EQ(ready.code, 200) << ready.head;
  EXPECT_NE(ready.head.find("Content-Type: application/json\r\n"), std::string::npos);
  EXPECT_NE(ready.head.find("Connection: close"), std::string::npos);
  EXPECT_NE(ready.head.find("Content-Length: " + std::to_string(ready.body.size())),
            std::string::npos);
  const auto body = nlohmann::json::parse(ready.body);
  EXPECT_EQ(body["status"], "ok");
  EXPECT_EQ(check_names(body),
            (std::vector<std::string>{"programs_attached", "config_applied", "controlplane_stream",
                                      "node_certificate"}));
  const Answer live = get(server.port(), "/healthz/live");
  ASSERT_EQ(live.code, 200);
  EXPECT_EQ(check_names(nlohmann::json::parse(live.body)),
            (std::vector<std::string>{"programs_attached"}));
  // A query string is no other path.
  EXPECT_EQ(get(server.port(), "/healthz/ready?verbose=1").code, 200);
}

TEST_F(HealthServerTest, EveryRequestReadsTheStatusAgain) {
  HealthServer server(options(), state_);
  ASSERT_EQ(get(server.port(), "/healthz/ready").code, 200);
  state_.edit([](v1::AgentStatus &s) { s.mutable_config()->set_stream_state("backoff"); });
  const Answer ready = get(server.port(), "/healthz/ready");
  EXPECT_EQ(ready.code, 503);
  EXPECT_EQ(
      ready.body,
      R"({"status":"fail","checks":[)"
      R"({"name":"programs_attached","ok":true,"detail":"1 programs attached"},)"
      R"({"name":"config_applied","ok":true,"detail":"generation 1 applied 1 s ago"},)"
      R"({"name":"controlplane_stream","ok":false,"detail":"stream to unix:/x/xds.sock is backoff"},)"
      R"({"name":"node_certificate","ok":true,"detail":"valid for 60 s more"}]})"
      "\n");
  EXPECT_EQ(get(server.port(), "/healthz/live").code, 200);  // the control plane is not liveness
  state_.edit([](v1::AgentStatus &s) { s.mutable_programs(0)->set_attached(false); });
  const Answer live = get(server.port(), "/healthz/live");
  EXPECT_EQ(live.code, 503);
  EXPECT_EQ(nlohmann::json::parse(live.body)["checks"][0]["ok"], false);
  EXPECT_EQ(state_.calls(), 4);
}

TEST_F(HealthServerTest, TheInjectedTimeDecidesTheCertificate) {
  auto opts = options();
  opts.now_unix_ms = [] { return kNow + 61'000; };
  HealthServer server(opts, state_);
  const Answer ready = get(server.port(), "/healthz/ready");
  EXPECT_EQ(ready.code, 503);
  EXPECT_NE(ready.body.find(R"("name":"node_certificate","ok":false,"detail":"expired 1 s ago")"),
            std::string::npos)
      << ready.body;
}

TEST_F(HealthServerTest, UnknownPathIs404OtherMethodIs405) {
  HealthServer server(options(), state_);
  for (const std::string path : {"/", "/metrics", "/healthz", "/healthz/live/x", "/healthz/readyz"})
    EXPECT_EQ(get(server.port(), path).code, 404) << path;
  EXPECT_EQ(get(server.port(), "/metrics", "POST").code, 404);
  for (const std::string method : {"POST", "PUT", "DELETE", "HEAD", "OPTIONS"}) {
    const Answer a = get(server.port(), "/healthz/ready", method);
    EXPECT_EQ(a.code, 405) << method;
    EXPECT_NE(a.head.find("\r\nAllow: GET"), std::string::npos) << a.head;
  }
  // A POST with a body still gets its answer (the unread body does not reset it away).
  const Answer posted = parse(round_trip(
      server.port(),
      "POST /healthz/live HTTP/1.1\r\nContent-Length: 5000\r\n\r\n" + std::string(5000, 'x')));
  EXPECT_EQ(posted.code, 405);
  EXPECT_EQ(state_.calls(), 0);  // none of these asked for the status
}

TEST_F(HealthServerTest, MalformedRequestIs400) {
  HealthServer server(options(), state_);
  for (const std::string request :
       {"GET\r\n\r\n", "GET /healthz/ready\r\n\r\n", "GET /healthz/ready SPDY/3\r\n\r\n",
        " /healthz/ready HTTP/1.1\r\n\r\n"})
    EXPECT_EQ(parse(round_trip(server.port(), request)).code, 400) << request;
}

TEST_F(HealthServerTest, OversizedHeaderIs431) {
  HealthServer server(options(), state_);
  const std::string request =
      "GET /healthz/ready HTTP/1.1\r\nX-Big: " + std::string(9000, 'a') + "\r\n\r\n";
  EXPECT_EQ(parse(round_trip(server.port(), request)).code, 431);
  // Just under the limit is fine.
  const std::string fits =
      "GET /healthz/ready HTTP/1.1\r\nX-Big: " + std::string(8000, 'a') + "\r\n\r\n";
  EXPECT_EQ(parse(round_trip(server.port(), fits)).code, 200);
}

TEST_F(HealthServerTest, SlowClientIsCutOffAndDoesNotPinTheServer) {
  auto opts = options();
  opts.timeout = 300ms;
  HealthServer server(opts, state_);
  const int idle = connect_to(server.port());
  ASSERT_GE(idle, 0);
  ASSERT_EQ(write(idle, "GET /healthz/re", 15), 15);  // and nothing more
  // Others are answered meanwhile.
  EXPECT_EQ(get(server.port(), "/healthz/ready").code, 200);
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(read_all(idle), "");  // closed without an answer
  const auto waited = std::chrono::steady_clock::now() - start;
  EXPECT_LT(waited, 3s);
  close(idle);
}

TEST_F(HealthServerTest, ConnectionsBeyondTheCapAreClosed) {
  auto opts = options();
  opts.max_connections = 2;
  HealthServer server(opts, state_);
  std::vector<int> idle;
  for (int i = 0; i < 2; ++i) {
    idle.push_back(connect_to(server.port()));
    ASSERT_GE(idle.back(), 0);
  }
  std::this_thread::sleep_for(100ms);                       // both accepted
  EXPECT_EQ(get(server.port(), "/healthz/ready").code, 0);  // closed unanswered
  for (int fd : idle) close(fd);
  // Their slots come back once the server sees them closed.
  Answer again;
  for (int i = 0; i < 50 && again.code == 0; ++i) {
    std::this_thread::sleep_for(20ms);
    again = get(server.port(), "/healthz/ready");
  }
  EXPECT_EQ(again.code, 200);
}

TEST_F(HealthServerTest, StatusThatThrowsIs503) {
  HealthServer server(options(), state_);
  state_.throw_with("agent is stopping");
  for (const std::string path : {"/healthz/live", "/healthz/ready"}) {
    const Answer a = get(server.port(), path);
    EXPECT_EQ(a.code, 503) << path;
    EXPECT_EQ(
        a.body,
        R"({"status":"fail","checks":[{"name":"status","ok":false,"detail":"agent is stopping"}]})"
        "\n")
        << path;
  }
}

TEST_F(HealthServerTest, StopsWithAClientConnected) {
  auto server = std::make_unique<HealthServer>(options(), state_);
  const int idle = connect_to(server->port());
  ASSERT_GE(idle, 0);
  std::this_thread::sleep_for(50ms);
  server.reset();
  EXPECT_EQ(read_all(idle), "");
  close(idle);
}

TEST_F(HealthServerTest, AddressErrorsAreOneLine) {
  auto message = [&](const std::string &address) -> std::string {
    try {
      HealthServer server(options(address), state_);
    } catch (const std::runtime_error &e) {
      return e.what();
    }
    return "(started)";
  };
  EXPECT_EQ(message("15021"), "health address \"15021\" is not host:port");
  EXPECT_EQ(message("0.0.0.0:"), "health address \"0.0.0.0:\" is not host:port");
  EXPECT_EQ(message("0.0.0.0:99999"), "health address \"0.0.0.0:99999\" has no valid port");
  EXPECT_EQ(message("0.0.0.0:http"), "health address \"0.0.0.0:http\" has no valid port");
  EXPECT_EQ(message("localhost:15021"),
            "health address \"localhost:15021\" needs an IPv4 address or [IPv6] address as host");
  EXPECT_EQ(message("::1:15021"),
            "health address \"::1:15021\" needs an IPv4 address or [IPv6] address as host");
  HealthServer taken(options(), state_);
  const std::string address = "127.0.0.1:" + std::to_string(taken.port());
  EXPECT_EQ(message(address), "cannot serve health probes on " + address +
                                  ": Address already in use (choose another --health-address, "
                                  "or \"off\")");
}

TEST_F(HealthServerTest, ServesOnIpv6Loopback) {
  std::unique_ptr<HealthServer> server;
  try {
    server = std::make_unique<HealthServer>(options("[::1]:0"), state_);
  } catch (const std::runtime_error &e) {
    GTEST_SKIP() << "no IPv6 loopback: " << e.what();
  }
  EXPECT_GT(server->port(), 0);
}

}  // namespace
}  // namespace sockmesh::admin
