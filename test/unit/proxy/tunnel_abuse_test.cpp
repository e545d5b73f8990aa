// A peer that misbehaves on the tunnel port: garbage instead of TLS, a handshake that never ends
// (slowloris), a flood of connections from one address. Each is closed and counted with its
// reason, holds no more than its bound, and the tunnel goes on carrying for well-behaved peers.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <random>

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

}  // namespace
}  // namespace sockmesh::proxy::testing
