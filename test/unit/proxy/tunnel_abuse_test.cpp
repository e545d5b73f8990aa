// A peer that misbehaves on the tunnel port: garbage instead of TLS, a handshake that never ends
// (slowloris), a flood of connections from one address, a flood of streams on one connection,
// frames the protocol forbids. Each is refused and counted with its reason, holds no more than
// its bound, and the tunnel goes on carrying for well-behaved peers.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <nghttp2/nghttp2.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <random>
#include <string_view>

#include "tunnel_fixture.h"

namespace sockmesh::proxy::testing {
namespace {

uint64_t count(const std::map<std::string, uint64_t> &m, const std::string &key) {
  auto it = m.find(key);
  return it == m.end() ? 0 : it->second;
}

// A TCP connection to the server from a chosen loopback address.
Fd connect_from(const char *source, uint16_t port) {
  Fd fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in from{};
  from.sin_family = AF_INET;
  inet_pton(AF_INET, source, &from.sin_addr);
  EXPECT_EQ(bind(fd.get(), reinterpret_cast<sockaddr *>(&from), sizeof(from)), 0) << source;
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(port);
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(connect(fd.get(), reinterpret_cast<sockaddr *>(&to), sizeof(to)), 0);
  return fd;
}

// Whether the server closed the connection within `limit` (EOF or a reset on read).
bool closed_within(int fd, std::chrono::milliseconds limit) {
  pollfd p{fd, POLLIN, 0};
  if (poll(&p, 1, int(limit.count())) <= 0) return false;
  char buf[256];
  for (;;) {
    const ssize_t n = read(fd, buf, sizeof buf);
    if (n <= 0) return true;  // 0: EOF; < 0: reset
  }
}

// One carried connection with a few bytes each way: the tunnel still works.
void still_carries(TunnelTest &t) {
  TunnelTest::Carried c = t.carry();
  Fd dest = t.accept_destination();
  ASSERT_GE(dest.get(), 0);
  EXPECT_EQ(send_pattern(c.app.get(), 1, 1000, true), "");
  EXPECT_EQ(expect_pattern(dest.get(), 1, 1000), "");
  EXPECT_EQ(send_pattern(dest.get(), 2, 1000, true), "");
  EXPECT_EQ(expect_pattern(c.app.get(), 2, 1000), "");
  EXPECT_EQ(c.wait().outcome, StreamEnd::Outcome::kClosed);
}

// A peer agent with a valid SVID whose HTTP/2 (nghttp2, as a client) sends what the test says
// before it has read anything from the server: no regard for the server's SETTINGS, as a flooding
// or broken peer would do. Records the RST_STREAM and GOAWAY frames it gets back.
class RawPeer {
 public:
  explicit RawPeer(TunnelTest &t)
      : ctx_(pki::make_client_context(*t.source_credential, t.ca().bundle_pem(), kTrustDomain)) {
    fd_ = connect_loopback(t.server->local_endpoint().port());
    timeval tv{5, 0};
    setsockopt(fd_.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ssl_ = SSL_new(ctx_.get());
    SSL_set_fd(ssl_, fd_.get());
    handshaken_ = SSL_connect(ssl_) == 1;
    nghttp2_session_callbacks *cbs = nullptr;
    nghttp2_session_callbacks_new(&cbs);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, &RawPeer::frame_recv);
    nghttp2_option *opt = nullptr;
    nghttp2_option_new(&opt);
    nghttp2_option_set_peer_max_concurrent_streams(opt, 100000);  // never holds a request back
    nghttp2_session_client_new2(&session_, cbs, this, opt);
    nghttp2_option_del(opt);
    nghttp2_session_callbacks_del(cbs);
    nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, nullptr, 0);
  }
  ~RawPeer() {
    nghttp2_session_del(session_);
    SSL_free(ssl_);
  }
  RawPeer(const RawPeer &) = delete;
  RawPeer &operator=(const RawPeer &) = delete;

  bool handshaken() const { return handshaken_; }
  void connect_request(const std::string &authority) {
    nghttp2_nv nva[] = {nv(":method", "CONNECT"), nv(":authority", authority)};
    nghttp2_submit_request(session_, nullptr, nva, 2, nullptr, nullptr);
  }
  // What nghttp2 has queued (the preface and SETTINGS first), then `raw`, in one write.
  bool send(std::string_view raw = {}) {
    std::string out;
    const uint8_t *data = nullptr;
    for (ssize_t n; (n = nghttp2_session_mem_send(session_, &data)) > 0;)
      out.append(reinterpret_cast<const char *>(data), size_t(n));
    out += raw;
    return SSL_write(ssl_, out.data(), int(out.size())) == int(out.size());
  }
  // Reads until `done` holds or the server closes or is silent for 5 s; whether `done` held.
  template <typename Pred>
  bool read_until(Pred done) {
    char buf[16384];
    while (!done()) {
      const int n = SSL_read(ssl_, buf, sizeof buf);
      if (n <= 0) return done();
      if (nghttp2_session_mem_recv(session_, reinterpret_cast<uint8_t *>(buf), size_t(n)) < 0)
        return done();
    }
    return true;
  }
  // Whether the server ended the connection within 5 s: a TLS close_notify, or the TCP connection
  // closed or reset under TLS (not a read timeout, nor a TLS error of another kind).
  bool closed_by_server() {
    char buf[4096];
    for (;;) {
      const int n = SSL_read(ssl_, buf, sizeof buf);
      if (n > 0) continue;
      const int e = SSL_get_error(ssl_, n);
      return e == SSL_ERROR_ZERO_RETURN || (e == SSL_ERROR_SYSCALL && errno != EAGAIN);
    }
  }

  int refused_streams = 0;  // RST_STREAM REFUSED_STREAM
  int goaways = 0;
  uint32_t goaway_error = 0;

 private:
  static nghttp2_nv nv(std::string_view name, std::string_view value) {
    return {reinterpret_cast<uint8_t *>(const_cast<char *>(name.data())),
            reinterpret_cast<uint8_t *>(const_cast<char *>(value.data())), name.size(),
            value.size(), NGHTTP2_NV_FLAG_NONE};
  }
  static int frame_recv(nghttp2_session *, const nghttp2_frame *frame, void *self) {
    auto &p = *static_cast<RawPeer *>(self);
    if (frame->hd.type == NGHTTP2_RST_STREAM &&
        frame->rst_stream.error_code == NGHTTP2_REFUSED_STREAM)
      ++p.refused_streams;
    if (frame->hd.type == NGHTTP2_GOAWAY) {
      ++p.goaways;
      p.goaway_error = frame->goaway.error_code;
    }
    return 0;
  }

  pki::SslCtxPtr ctx_;
  Fd fd_;
  SSL *ssl_ = nullptr;
  bool handshaken_ = false;
  nghttp2_session *session_ = nullptr;
};

TEST_F(TunnelTest, GarbageInsteadOfTlsIsClosedAndCountedAndCostsNothingAfter) {
  std::mt19937 random(7);
  std::string garbage(64 << 10, '\0');
  for (auto &c : garbage) c = char(random());
  garbage[0] = 0x16;  // a TLS handshake record's type, with a nonsensical rest
  for (int i = 0; i < 10; ++i) {
    Fd fd = connect_loopback(server->local_endpoint().port());
    (void)!write(fd.get(), garbage.data(), garbage.size());
    EXPECT_TRUE(closed_within(fd.get(), 2s)) << "connection " << i;
  }
  EXPECT_TRUE(wait_until([&] { return count(server->stats().refusals, "handshake_failed") == 10; }))
      << ::testing::PrintToString(server->stats().refusals);
  EXPECT_EQ(server->stats().connections_opened, 0u);
  EXPECT_TRUE(wait_until([&] { return server->connections().empty(); }));
  still_carries(*this);
}

TEST_F(TunnelTest, AHandshakeThatNeverEndsIsClosedAtTheHandshakeTimeout) {
  TunnelLimits limits;
  limits.handshake_timeout = 300ms;
  start_server(limits);
  Fd fd = connect_loopback(server->local_endpoint().port());
  const char partial[] = {0x16, 0x03, 0x01, 0x02, 0x00};  // a ClientHello's record header, no body
  ASSERT_EQ(write(fd.get(), partial, sizeof partial), ssize_t(sizeof partial));
  const auto begin = std::chrono::steady_clock::now();
  EXPECT_TRUE(closed_within(fd.get(), 3s));
  EXPECT_GE(std::chrono::steady_clock::now() - begin, 250ms);
  EXPECT_TRUE(wait_until([&] { return count(server->stats().refusals, "handshake_timeout") == 1; }))
      << ::testing::PrintToString(server->stats().refusals);
  EXPECT_EQ(server->stats().handshakes_failed, 1u);
  still_carries(*this);
}

TEST_F(TunnelTest, ConnectionsBeyondThePerPeerLimitAreClosedAtAcceptOtherPeersAreNot) {
  TunnelLimits limits;
  limits.max_inbound_connections_per_peer = 3;
  start_server(limits);
  const uint16_t port = server->local_endpoint().port();
  std::vector<Fd> held;
  for (int i = 0; i < 3; ++i) held.push_back(connect_from("127.0.0.5", port));  // handshaking
  Fd fourth = connect_from("127.0.0.5", port);
  EXPECT_TRUE(closed_within(fourth.get(), 2s)) << "the fourth connection from one address";
  EXPECT_TRUE(wait_until([&] {
    return count(server->stats().refusals, "peer_connection_limit") == 1;
  })) << ::testing::PrintToString(server->stats().refusals);
  Fd other = connect_from("127.0.0.6", port);
  EXPECT_FALSE(closed_within(other.get(), 300ms)) << "another address is held to its own limit";
  // One of the first three goes: its address may connect again.
  held.pop_back();
  ASSERT_TRUE(wait_until([&] { return count(server->stats().refusals, "handshake_failed") >= 1; }));
  Fd again = connect_from("127.0.0.5", port);
  EXPECT_FALSE(closed_within(again.get(), 300ms));
  EXPECT_EQ(count(server->stats().refusals, "peer_connection_limit"), 1u);
  still_carries(*this);  // from 127.0.0.1
}

// A peer that opens more streams than the server's SETTINGS_MAX_CONCURRENT_STREAMS (sent before it
// read them): the streams over the limit are refused with REFUSED_STREAM, each counted, and the
// connection stays up; those within it are served.
TEST_F(TunnelTest, StreamsOverTheConcurrentLimitAreRefusedAndCounted) {
  TunnelLimits limits;
  limits.max_concurrent_streams = 4;
  start_server(limits);
  RawPeer peer(*this);
  ASSERT_TRUE(peer.handshaken());
  for (int i = 0; i < 10; ++i) peer.connect_request(destination());
  ASSERT_TRUE(peer.send());
  EXPECT_TRUE(peer.read_until([&] { return peer.refused_streams == 6; }))
      << "refused " << peer.refused_streams;
  EXPECT_TRUE(wait_until([&] { return count(server->stats().refusals, "stream_limit") == 6; }))
      << ::testing::PrintToString(server->stats().refusals);
  EXPECT_EQ(peer.goaways, 0);
  for (int i = 0; i < 4; ++i) EXPECT_GE(accept_destination().get(), 0) << "stream " << i;
  EXPECT_EQ(server->connections().size(), 1u);
  still_carries(*this);
}

// A frame the protocol forbids (DATA on stream 0): the server ends the connection with GOAWAY
// PROTOCOL_ERROR, counted as h2_protocol_error.
TEST_F(TunnelTest, AFrameTheProtocolForbidsEndsTheConnectionWithGoawayAndIsCounted) {
  RawPeer peer(*this);
  ASSERT_TRUE(peer.handshaken());
  const char data_on_stream_0[9] = {0, 0, 0, NGHTTP2_DATA, 0, 0, 0, 0, 0};
  ASSERT_TRUE(peer.send(std::string_view(data_on_stream_0, sizeof data_on_stream_0)));
  EXPECT_TRUE(peer.read_until([&] { return peer.goaways == 1; }));
  EXPECT_EQ(peer.goaway_error, uint32_t(NGHTTP2_PROTOCOL_ERROR));
  EXPECT_TRUE(peer.closed_by_server());
  EXPECT_TRUE(wait_until([&] { return count(server->stats().refusals, "h2_protocol_error") == 1; }))
      << ::testing::PrintToString(server->stats().refusals);
  EXPECT_TRUE(wait_until([&] { return server->connections().empty(); }));
  still_carries(*this);
}

}  // namespace
}  // namespace sockmesh::proxy::testing
