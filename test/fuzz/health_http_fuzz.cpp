// meshd's health server (agent/admin/health_server.cpp): the fuzzed bytes are what a client (a
// kubelet probe, or anything that reaches port 15021) writes on one connection to a real
// HealthServer on 127.0.0.1, whose request line the server reads by hand. The harness writes the
// input, half-closes, and reads the answer to the end.
//
// Beyond "no crash": a request whose header ends (CRLF CRLF) within the server's limit gets one
// well-formed answer (an HTTP/1.1 status line with one of the documented codes, a Content-Length
// that is the body's length); a request without it gets none (the server waits for the rest, then
// the client's end); a header over the limit gets 431.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>

#include "admin/admin_state.h"
#include "admin/health_server.h"
#include "fuzz_check.h"

namespace admin = sockmesh::admin;
namespace v1 = sockmesh::v1;

namespace {

constexpr int64_t kNow = 1'800'000'000'000;
constexpr size_t kMaxRequest = 8192;

// A ready agent in control-plane mode.
class State : public admin::AdminState {
 public:
  v1::AgentStatus status() override {
    v1::AgentStatus s;
    auto *p = s.add_programs();
    p->set_name("sm_connect4");
    p->set_attach_type("cgroup/connect4");
    p->set_attached(true);
    auto *config = s.mutable_config();
    config->set_source("controlplane:unix:/x/xds.sock");
    config->set_generation(1);
    config->set_applied_unix_ms(kNow - 1000);
    config->set_stream_state("connected");
    s.mutable_mesh()->set_node_certificate_not_after_unix_ms(kNow + 60'000);
    return s;
  }
  v1::ListServicesResponse services() override { return {}; }
  v1::ListEndpointsResponse endpoints() override { return {}; }
  v1::TrafficReport traffic() override { return {}; }
  v1::ListMapsResponse maps() override { return {}; }
  v1::DumpMapResponse dump_map(const std::string &, uint32_t) override { return {}; }
  v1::FastPathReport fast_path() override { return {}; }
  v1::ResilienceReport resilience(const std::string &, const std::string &) override { return {}; }
  bool wait_for_change(uint64_t, std::chrono::milliseconds) override { return false; }
};

struct Server {
  Server() {
    spdlog::set_level(spdlog::level::off);
    signal(SIGPIPE, SIG_IGN);  // the server closes after its answer, maybe before the input ends
    admin::HealthOptions opts;
    opts.address = "127.0.0.1:0";
    opts.max_request_bytes = kMaxRequest;
    opts.now_unix_ms = [] { return kNow; };
    server = std::make_unique<admin::HealthServer>(opts, state);
  }
  State state;
  std::unique_ptr<admin::HealthServer> server;
};

std::string exchange(uint16_t port, std::string_view request) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  FUZZ_CHECK(fd >= 0, "socket");
  timeval tv{10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(port);
  int rc;
  while ((rc = connect(fd, reinterpret_cast<sockaddr *>(&a), sizeof a)) != 0 && errno == EINTR) {
  }
  FUZZ_CHECK(rc == 0, "connect");
  for (size_t done = 0; done < request.size();) {
    const ssize_t n = ::send(fd, request.data() + done, request.size() - done, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;  // libFuzzer's SIGALRM (-timeout)
    if (n <= 0) break;                      // answered and closed already
    done += size_t(n);
  }
  ::shutdown(fd, SHUT_WR);
  std::string answer;
  char buffer[4096];
  for (;;) {
    const ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      FUZZ_CHECK(n == 0 || errno == ECONNRESET, "no end of the answer within 10 s");
      break;
    }
    answer.append(buffer, size_t(n));
  }
  ::close(fd);
  return answer;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  // For the whole run; its thread is stopped at exit, before the libraries' own exit handlers.
  static Server *server = [] {
    auto *s = new Server();
    std::atexit([] { server->server.reset(); });
    return s;
  }();
  const std::string_view request(reinterpret_cast<const char *>(data), size);
  const std::string answer = exchange(uint16_t(server->server->port()), request);
  const std::string r(request);

  const size_t end = request.find("\r\n\r\n");
  if (end == std::string_view::npos && size < kMaxRequest) {
    FUZZ_CHECK(answer.empty(), "an answer to an unfinished request: " + answer);
    return 0;
  }
  if (end == std::string_view::npos || end + 4 > kMaxRequest) {
    FUZZ_CHECK(answer.starts_with("HTTP/1.1 431 "),
               "not 431 for a header over the limit: " + answer);
  }
  FUZZ_CHECK(answer.starts_with("HTTP/1.1 "), "no status line: " + answer);
  const int code = std::stoi(answer.substr(9, 3));
  FUZZ_CHECK(code == 200 || code == 400 || code == 404 || code == 405 || code == 431 || code == 503,
             answer);
  const size_t head = answer.find("\r\n\r\n");
  FUZZ_CHECK(head != std::string::npos, "no end of the answer's header: " + answer);
  const std::string length_field = "\r\nContent-Length: ";
  const size_t at = answer.find(length_field);
  FUZZ_CHECK(at != std::string::npos && at < head, answer);
  const size_t length = std::stoul(answer.substr(at + length_field.size()));
  FUZZ_CHECK(answer.size() - head - 4 == length, "Content-Length is not the body's: " + answer);
  return 0;
}
