// A tunnel client and server on one io_context thread over 127.0.0.1, with certificates from a
// CA made here, and blocking test sockets for the application and destination ends.
#pragma once

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <spdlog/cfg/env.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "proxy/tunnel_client.h"
#include "proxy/tunnel_server.h"
#include "sockmesh/pki/pki.h"

namespace sockmesh::proxy::testing {

using namespace std::chrono_literals;

constexpr const char *kTrustDomain = "cluster.local";

// ---- blocking sockets ----------------------------------------------------------------------
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd &&o) noexcept : fd_(o.release()) {}
  Fd &operator=(Fd &&o) noexcept {
    if (this != &o) {
      close();
      fd_ = o.release();
    }
    return *this;
  }
  ~Fd() { close(); }
  int get() const { return fd_; }
  int release() {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }
  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  // Closes with SO_LINGER{1,0}: the peer gets a reset.
  void reset() {
    linger l{1, 0};
    setsockopt(fd_, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    close();
  }
  void shutdown_write() { ::shutdown(fd_, SHUT_WR); }

 private:
  int fd_ = -1;
};

// Blocking calls on test sockets give up after this long instead of hanging the test.
constexpr std::chrono::seconds kIoTimeout{30};

inline void set_io_timeouts(int fd) {
  timeval tv{static_cast<time_t>(kIoTimeout.count()), 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

inline Fd listen_loopback(uint16_t *port) {
  Fd fd(socket(AF_INET, SOCK_STREAM, 0));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(fd.get(), reinterpret_cast<sockaddr *>(&a), sizeof a) != 0 ||
      listen(fd.get(), 1024) != 0) {
    throw std::runtime_error(std::string("listen: ") + strerror(errno));
  }
  socklen_t len = sizeof a;
  getsockname(fd.get(), reinterpret_cast<sockaddr *>(&a), &len);
  *port = ntohs(a.sin_port);
  return fd;
}

inline Fd connect_loopback(uint16_t port) {
  Fd fd(socket(AF_INET, SOCK_STREAM, 0));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(port);
  if (connect(fd.get(), reinterpret_cast<sockaddr *>(&a), sizeof a) != 0) {
    throw std::runtime_error(std::string("connect: ") + strerror(errno));
  }
  set_io_timeouts(fd.get());
  return fd;
}

// An invalid Fd when nothing connects within `limit`.
inline Fd accept_within(int listener, std::chrono::milliseconds limit = 10s) {
  pollfd p{listener, POLLIN, 0};
  if (poll(&p, 1, static_cast<int>(limit.count())) != 1) return Fd();
  Fd fd(accept(listener, nullptr, nullptr));
  if (fd.get() >= 0) set_io_timeouts(fd.get());
  return fd;
}

inline bool write_all(int fd, const void *data, size_t n) {
  auto *p = static_cast<const uint8_t *>(data);
  while (n > 0) {
    ssize_t w = ::send(fd, p, n, MSG_NOSIGNAL);
    if (w <= 0) {
      if (w < 0 && errno == EINTR) continue;
      return false;
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}
inline bool write_all(int fd, const std::string &s) {
  return write_all(fd, s.data(), s.size());
}

// Exactly n bytes ("" and false on EOF, error or timeout first).
inline bool read_exact(int fd, void *out, size_t n) {
  auto *p = static_cast<uint8_t *>(out);
  while (n > 0) {
    ssize_t r = ::recv(fd, p, n, 0);
    if (r <= 0) {
      if (r < 0 && errno == EINTR) continue;
      return false;
    }
    p += r;
    n -= static_cast<size_t>(r);
  }
  return true;
}
inline std::string read_string(int fd, size_t n) {
  std::string s(n, '\0');
  return read_exact(fd, s.data(), n) ? s : std::string();
}

enum class End { kEof, kReset, kTimeout, kOther };
inline const char *end_name(End e) {
  switch (e) {
    case End::kEof:
      return "EOF";
    case End::kReset:
      return "ECONNRESET";
    case End::kTimeout:
      return "timeout";
    case End::kOther:
      return "other error";
  }
  return "?";
}
// Reads (discarding) until the stream ends; how it ended.
inline End read_to_end(int fd, size_t *bytes = nullptr) {
  char buf[65536];
  for (;;) {
    ssize_t r = ::recv(fd, buf, sizeof buf, 0);
    if (r > 0) {
      if (bytes) *bytes += static_cast<size_t>(r);
      continue;
    }
    if (r == 0) return End::kEof;
    if (errno == EINTR) continue;
    if (errno == ECONNRESET) return End::kReset;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return End::kTimeout;
    return End::kOther;
  }
}

// ---- patterns ------------------------------------------------------------------------------
// Byte i of pattern `seed` is byte i of the AES-128-CTR keystream keyed by the seed: it depends on
// seed and i, so loss, duplication or reordering anywhere shows up as a mismatch at a known offset
// (and OpenSSL makes it fast enough for 256 MiB in a sanitizer build).
inline void fill_pattern(uint64_t seed, uint64_t offset, uint8_t *out, size_t n) {
  if (offset % 16 != 0) throw std::logic_error("fill_pattern: offset must be a multiple of 16");
  uint8_t key[16] = {};
  std::memcpy(key, &seed, sizeof seed);
  uint8_t iv[16] = {};
  uint64_t block = offset / 16;
  for (int i = 0; i < 8; ++i) iv[15 - i] = static_cast<uint8_t>(block >> (8 * i));
  std::memset(out, 0, n);
  EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
  int len = 0;
  if (ctx == nullptr || EVP_EncryptInit_ex(ctx, EVP_aes_128_ctr(), nullptr, key, iv) != 1 ||
      EVP_EncryptUpdate(ctx, out, &len, out, static_cast<int>(n)) != 1) {
    EVP_CIPHER_CTX_free(ctx);
    throw std::runtime_error("fill_pattern: AES-CTR failed");
  }
  EVP_CIPHER_CTX_free(ctx);
}
inline std::string pattern(uint64_t seed, size_t n) {
  std::string s(n, '\0');
  fill_pattern(seed, 0, reinterpret_cast<uint8_t *>(s.data()), n);
  return s;
}

constexpr size_t kPatternBlock = 256 * 1024;

// Writes `total` bytes of pattern `seed`; then shuts the write side when `shut`. "" or the error.
inline std::string send_pattern(int fd, uint64_t seed, size_t total, bool shut,
                                std::atomic<size_t> *progress = nullptr) {
  std::vector<uint8_t> block(kPatternBlock);
  for (size_t at = 0; at < total; at += kPatternBlock) {
    size_t n = std::min(kPatternBlock, total - at);
    fill_pattern(seed, at, block.data(), n);
    if (!write_all(fd, block.data(), n)) {
      return "write failed at " + std::to_string(at) + ": " + strerror(errno);
    }
    if (progress) *progress += n;
  }
  if (shut) ::shutdown(fd, SHUT_WR);
  return "";
}

// Writes pattern `seed` until `stop` (never blocking for long, so that the socket can be reset
// from another thread: a close waits for a blocked writer). Returns the bytes written.
inline size_t pump_pattern(int fd, uint64_t seed, const std::atomic<bool> &stop) {
  std::vector<uint8_t> block(kPatternBlock);
  size_t at = 0;
  size_t filled_at = SIZE_MAX;
  size_t sent = 0;  // of the current block
  while (!stop.load()) {
    if (filled_at != at) {
      fill_pattern(seed, at, block.data(), block.size());
      filled_at = at;
      sent = 0;
    }
    pollfd p{fd, POLLOUT, 0};
    if (poll(&p, 1, 10) != 1) continue;
    ssize_t w = ::send(fd, block.data() + sent, block.size() - sent, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EAGAIN || errno == EINTR) continue;
      break;
    }
    sent += static_cast<size_t>(w);
    if (sent == block.size()) at += block.size();
  }
  return at + sent;
}

// Reads to EOF and checks it is exactly `total` bytes of pattern `seed`. "" or what differed.
inline std::string expect_pattern(int fd, uint64_t seed, size_t total) {
  std::vector<uint8_t> got(kPatternBlock);
  std::vector<uint8_t> want(kPatternBlock);
  size_t at = 0;
  for (;;) {
    size_t n = std::min(kPatternBlock, total - at);
    size_t have = 0;
    while (have < n) {
      ssize_t r = ::recv(fd, got.data() + have, n - have, 0);
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) {
        return "stream ended after " + std::to_string(at + have) + " of " + std::to_string(total) +
               " bytes (" + (r == 0 ? "EOF" : strerror(errno)) + ")";
      }
      have += static_cast<size_t>(r);
    }
    if (n == 0) break;
    fill_pattern(seed, at, want.data(), n);
    if (std::memcmp(got.data(), want.data(), n) != 0) {
      size_t i = 0;
      while (got[i] == want[i]) ++i;
      return "byte " + std::to_string(at + i) + " differs";
    }
    at += n;
    if (at == total) break;
  }
  char extra;
  ssize_t r = ::recv(fd, &extra, 1, 0);
  if (r != 0) {
    return r > 0 ? "more than " + std::to_string(total) + " bytes"
                 : std::string("no EOF after the data: ") + strerror(errno);
  }
  return "";
}

template <typename Pred>
bool wait_until(Pred pred, std::chrono::milliseconds limit = 10s) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(2ms);
  }
  return true;
}

// ---- credentials ---------------------------------------------------------------------------
inline pki::Credential issue(const pki::CertificateAuthority &ca, const pki::SpiffeId &id,
                             pki::TimePoint now = std::chrono::system_clock::now(),
                             pki::IssueOptions options = {}) {
  pki::PrivateKey key = pki::PrivateKey::generate();
  pki::Csr csr = pki::parse_csr(pki::make_csr(key, id));
  return pki::Credential{key, pki::Certificate::chain_from_pem(ca.issue(csr, id, options, now))};
}

// ---- the fixture ---------------------------------------------------------------------------
class TunnelTest : public ::testing::Test {
 public:  // also for the tests' helper functions
  const pki::SpiffeId source_id = pki::SpiffeId::workload(kTrustDomain, "shop", "web");
  const pki::SpiffeId node_id = pki::SpiffeId::node(kTrustDomain, "n2");

  void SetUp() override {
    spdlog::cfg::load_env_levels();  // SPDLOG_LEVEL=debug shows the tunnel's decisions
    ca_ = std::make_unique<pki::CertificateAuthority>(
        pki::CertificateAuthority::create(kTrustDomain, pki::system_clock()));
    node_credential = issue(*ca_, node_id);
    set_server_context(
        share_context(pki::make_server_context(*node_credential, ca_->bundle_pem(), kTrustDomain)));
    source_credential = issue(*ca_, source_id);
    set_client_credential(source_id, *source_credential, 1);
    dest_listener = listen_loopback(&dest_port);
    app_listener = listen_loopback(&app_port);
    start_server();
    start_client();
    for (int i = 0; i < client_threads_; ++i) threads_.emplace_back([this] { io.run(); });
    threads_.emplace_back([this] { server_io.run(); });
  }

  void TearDown() override {
    if (client) client->stop();
    if (server) server->stop();
    guard_.reset();
    server_guard_.reset();
    // Everything must wind down by itself once stopped: a handler left pending is a leak.
    auto ran = std::async(std::launch::async, [this] {
      for (std::thread &t : threads_) t.join();
    });
    if (ran.wait_for(10s) != std::future_status::ready) {
      ADD_FAILURE() << "an io_context still had work 10 s after stop()";
      io.stop();
      server_io.stop();
    }
    ran.wait();
    client.reset();
    server.reset();
  }

  const pki::CertificateAuthority &ca() const { return *ca_; }

  void start_server(TunnelLimits limits = {}) {
    if (server) server->stop();
    server = std::make_unique<TunnelServer>(
        share_io_ ? io : server_io, asio::ip::tcp::endpoint(asio::ip::address_v4::loopback(), 0),
        [this] {
          std::lock_guard lock(mutex_);
          return server_context_;
        },
        [this](const pki::SpiffeId &peer, const asio::ip::tcp::endpoint &destination) {
          std::lock_guard lock(mutex_);
          return policy_ ? policy_(peer, destination) : Decision{true, "allow-all", ""};
        },
        limits);
  }

  void start_client(TunnelLimits limits = {}) {
    if (client) client->stop();
    client = std::make_unique<TunnelClient>(
        io,
        [this](const pki::SpiffeId &source) -> std::shared_ptr<const Credentialed> {
          std::lock_guard lock(mutex_);
          auto it = credentials_.find(source.str());
          return it == credentials_.end() ? nullptr : it->second;
        },
        limits);
  }

  void set_server_context(SslCtx context) {
    std::lock_guard lock(mutex_);
    server_context_ = std::move(context);
  }
  // The source's credential as the client presents it, against this CA's bundle.
  void set_client_credential(const pki::SpiffeId &source, const pki::Credential &credential,
                             uint64_t generation, const std::string &bundle = "") {
    auto c = std::make_shared<Credentialed>();
    c->context = share_context(pki::make_client_context(
        credential, bundle.empty() ? ca_->bundle_pem() : bundle, kTrustDomain));
    c->generation = generation;
    std::lock_guard lock(mutex_);
    credentials_[source.str()] = std::move(c);
  }
  void set_policy(Authorizer policy) {
    std::lock_guard lock(mutex_);
    policy_ = std::move(policy);
  }

  Peer node() const { return Peer{server->local_endpoint(), node_id}; }
  std::string destination() const { return "127.0.0.1:" + std::to_string(dest_port); }

  struct Carried {
    Fd app;  // the application's end
    std::shared_future<CarryResult> result;
    // The carry's result, or a failed one when it did not end within the limit.
    CarryResult wait(std::chrono::seconds limit = 10s) const {
      if (result.wait_for(limit) != std::future_status::ready) {
        CarryResult r;
        r.detail = "test: no result in time";
        return r;
      }
      return result.get();
    }
  };
  // An application connection handed to the tunnel client (the agent end of a loopback pair).
  Carried carry(const std::string &to, const Peer &via, const pki::SpiffeId &as) {
    Fd app = connect_loopback(app_port);
    Fd agent_end = accept_within(app_listener.get());
    if (agent_end.get() < 0) throw std::runtime_error("test: no agent end");
    asio::ip::tcp::socket socket(io);
    socket.assign(asio::ip::tcp::v4(), agent_end.release());
    auto done = std::make_shared<std::promise<CarryResult>>();
    Carried c{std::move(app), done->get_future().share()};
    client->carry(std::move(socket), as, via, to,
                  [done](const CarryResult &r) { done->set_value(r); });
    return c;
  }
  Carried carry() { return carry(destination(), node(), source_id); }
  // The destination's end of the connection the server made for a carry.
  Fd accept_destination(std::chrono::milliseconds limit = 10s) {
    return accept_within(dest_listener.get(), limit);
  }

  // The two agents run on threads of their own, as on two nodes: `io` for the client (and the
  // application sockets), `server_io` for the server; or both on `io` (share_io_), as one
  // agent's two ends share a thread. `io` may be run by several threads (client_threads_).
  asio::io_context io;
  asio::io_context server_io;
  std::unique_ptr<TunnelServer> server;
  std::unique_ptr<TunnelClient> client;
  std::optional<pki::Credential> node_credential;
  std::optional<pki::Credential> source_credential;
  Fd dest_listener;
  uint16_t dest_port = 0;
  Fd app_listener;
  uint16_t app_port = 0;

 private:
  std::unique_ptr<pki::CertificateAuthority> ca_;
  asio::executor_work_guard<asio::io_context::executor_type> guard_{io.get_executor()};
  asio::executor_work_guard<asio::io_context::executor_type> server_guard_{
      server_io.get_executor()};
  std::vector<std::thread> threads_;

 protected:
  bool share_io_ = false;
  int client_threads_ = 1;
  std::mutex mutex_;
  SslCtx server_context_;
  std::map<std::string, std::shared_ptr<const Credentialed>> credentials_;
  Authorizer policy_;
};

}  // namespace sockmesh::proxy::testing
