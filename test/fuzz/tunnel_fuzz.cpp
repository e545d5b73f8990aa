// The cross-node tunnel's framing: the fuzzed bytes are what a remote agent sends, after the
// HTTP/2 client preface, inside an established mutual TLS 1.3 connection to a real
// proxy::TunnelServer (TlsChannel, H2Session over nghttp2, the CONNECT request handling, the
// streams and their relays). The harness is that agent: it connects over 127.0.0.1 with a
// workload SVID of a CA made here, writes the preface and the input, reads the answers until the
// server is quiet, and closes.
//
// The server allows only the destination 127.77.0.1:7, a local sink that reads and discards (the
// fuzzer never makes the server connect anywhere else: every other authority gets 403 or 400).
//
// Beyond "no crash" (ASan, UBSan, leaks on the server's side of every input): the server answers
// with HTTP/2 frames only (its preface SETTINGS first) and keeps accepting: a connection after
// any input still completes the TLS handshake.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "fuzz_check.h"
#include "proxy/tunnel_server.h"
#include "sockmesh/pki/pki.h"

namespace pki = sockmesh::pki;
namespace proxy = sockmesh::proxy;

namespace {

constexpr const char *kTrustDomain = "cluster.local";
constexpr std::string_view kPreface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
// How long the server may stay silent before the harness closes (it answers a local request in
// well under this).
constexpr int kQuietMs = 5;

pki::Credential issue(const pki::CertificateAuthority &ca, const pki::SpiffeId &id) {
  pki::PrivateKey key = pki::PrivateKey::generate();
  pki::Csr csr = pki::parse_csr(pki::make_csr(key, id));
  return pki::Credential{key, pki::Certificate::chain_from_pem(
                                  ca.issue(csr, id, {}, std::chrono::system_clock::now()))};
}

// The sink: accepts, reads and discards until the peer closes.
void sink(asio::ip::tcp::acceptor &acceptor) {
  acceptor.async_accept([&acceptor](const std::error_code &ec, asio::ip::tcp::socket s) {
    if (ec) return;
    auto socket = std::make_shared<asio::ip::tcp::socket>(std::move(s));
    auto buffer = std::make_shared<std::array<char, 4096>>();
    auto read = std::make_shared<std::function<void()>>();
    *read = [socket, buffer, read]() {
      socket->async_read_some(asio::buffer(*buffer),
                              [socket, buffer, read](const std::error_code &ec, size_t) {
                                if (ec) {
                                  *read = nullptr;  // breaks the cycle
                                  return;
                                }
                                (*read)();
                              });
    };
    (*read)();
    sink(acceptor);
  });
}

// A blocking OpenSSL call, again while a signal interrupted it: on a blocking socket OpenSSL says
// WANT_READ / WANT_WRITE only then (or when SO_RCVTIMEO passes: libFuzzer's -timeout reports a
// server that stalls).
template <typename Call>
int retried(SSL *ssl, Call call) {
  for (;;) {
    ERR_clear_error();
    errno = 0;
    const int r = call();
    if (r > 0) return r;
    const int e = SSL_get_error(ssl, r);
    if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE &&
        !(e == SSL_ERROR_SYSCALL && errno == EINTR))
      return r;
  }
}

struct Server {
  Server() {
    spdlog::set_level(spdlog::level::off);
    signal(SIGPIPE, SIG_IGN);  // the server may close while the input is being written
    ca = std::make_unique<pki::CertificateAuthority>(
        pki::CertificateAuthority::create(kTrustDomain, pki::system_clock()));
    auto node = issue(*ca, pki::SpiffeId::node(kTrustDomain, "n2"));
    server_context =
        proxy::share_context(pki::make_server_context(node, ca->bundle_pem(), kTrustDomain));
    auto workload = issue(*ca, pki::SpiffeId::workload(kTrustDomain, "shop", "web"));
    client_context =
        proxy::share_context(pki::make_client_context(workload, ca->bundle_pem(), kTrustDomain));

    const asio::ip::tcp::endpoint sink_at(asio::ip::make_address("127.77.0.1"), 7);
    std::error_code ec;
    sink_acceptor.open(sink_at.protocol(), ec);
    // Several fuzzing processes may share the address: each sink only discards.
    if (!ec) setsockopt(sink_acceptor.native_handle(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    if (!ec) sink_acceptor.set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) sink_acceptor.bind(sink_at, ec);
    if (!ec) sink_acceptor.listen(asio::socket_base::max_listen_connections, ec);
    if (!ec) sink(sink_acceptor);

    server = std::make_unique<proxy::TunnelServer>(
        io, asio::ip::tcp::endpoint(asio::ip::address_v4::loopback(), 0),
        [this] { return server_context; },
        [sink_at](const pki::SpiffeId &, const asio::ip::tcp::endpoint &destination) {
          return destination == sink_at ? proxy::Decision{true, "sink", ""}
                                        : proxy::Decision{false, "fuzz", "only the sink"};
        });
    port = server->local_endpoint().port();
    thread = std::thread([this] { io.run(); });
  }

  // At exit the server's thread stops first: OpenSSL's own exit handler (registered before this
  // one, so run after it) frees what that thread would still use.
  void stop() {
    io.stop();
    if (thread.joinable()) thread.join();
  }

  // One connection: handshake, preface + input, answers until quiet, close.
  void send(const uint8_t *data, size_t size) {
    const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    FUZZ_CHECK(fd >= 0, "socket");
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(port);
    // Every blocking call is retried after EINTR: libFuzzer's SIGALRM (-timeout) interrupts them.
    int rc;
    while ((rc = connect(fd, reinterpret_cast<sockaddr *>(&a), sizeof a)) != 0 && errno == EINTR) {
    }
    FUZZ_CHECK(rc == 0, "connect");
    const int on = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
    timeval tv{10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    SSL *ssl = SSL_new(client_context.get());
    SSL_set_fd(ssl, fd);
    FUZZ_CHECK(retried(ssl, [&] { return SSL_connect(ssl); }) == 1,
               "the TLS handshake fails after an earlier input");
    std::string out(kPreface);
    out.append(reinterpret_cast<const char *>(data), size);
    // The server may close early (a protocol error): a failed write is an answer, not a bug.
    bool open =
        retried(ssl, [&] { return SSL_write(ssl, out.data(), static_cast<int>(out.size())); }) > 0;
    std::string answer;
    while (open) {
      if (SSL_pending(ssl) == 0) {
        pollfd p{fd, POLLIN, 0};
        int ready;
        while ((ready = poll(&p, 1, kQuietMs)) < 0 && errno == EINTR) {
        }
        if (ready != 1) break;
      }
      char buffer[16384];
      const int n = retried(ssl, [&] { return SSL_read(ssl, buffer, sizeof buffer); });
      if (n <= 0) break;
      answer.append(buffer, size_t(n));
    }
    // The server speaks first: its SETTINGS frame (type 4 on stream 0) leads every answer.
    if (answer.size() >= 9)
      FUZZ_CHECK(answer[3] == 4 && answer.substr(5, 4) == std::string(4, '\0'),
                 "the answer does not start with SETTINGS");
    ERR_clear_error();
    SSL_shutdown(ssl);
    SSL_free(ssl);
    ::close(fd);
  }

  int one = 1;
  asio::io_context io;
  asio::executor_work_guard<asio::io_context::executor_type> guard{io.get_executor()};
  asio::ip::tcp::acceptor sink_acceptor{io};
  std::unique_ptr<pki::CertificateAuthority> ca;
  proxy::SslCtx server_context;
  proxy::SslCtx client_context;
  std::unique_ptr<proxy::TunnelServer> server;
  uint16_t port = 0;
  std::thread thread;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  // Lives for the whole run (libFuzzer exits without unwinding): never destroyed.
  static Server *server = [] {
    auto *s = new Server();
    std::atexit([] { server->stop(); });
    return s;
  }();
  server->send(data, size);
  return 0;
}
