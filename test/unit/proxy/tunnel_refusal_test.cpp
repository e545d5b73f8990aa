// Who may use the tunnel: refused peers (counted with pki's reason names), the client's check of
// the node it reached, authorization, unreachable destinations, and credential rotation.
#include <openssl/ssl.h>

#include "tunnel_fixture.h"

namespace sockmesh::proxy::testing {
namespace {

using Outcome = StreamEnd::Outcome;

uint64_t count(const std::map<std::string, uint64_t> &m, const std::string &key) {
  auto it = m.find(key);
  return it == m.end() ? 0 : it->second;
}

// The server refuses the client's certificate during the handshake: counted with `reason` on
// the server, and the application connection is reset, never carried.
void expect_refused_by_server(TunnelTest &t, TunnelTest::Carried &c, const std::string &reason) {
  EXPECT_TRUE(wait_until([&] { return count(t.server->stats().refusals, reason) == 1; }))
      << "server refusals: " << ::testing::PrintToString(t.server->stats().refusals);
  EXPECT_EQ(t.server->stats().handshakes_failed, 1u);
  EXPECT_EQ(t.server->stats().connections_opened, 0u);
  EXPECT_EQ(end_name(read_to_end(c.app.get())), std::string("ECONNRESET"));
  CarryResult r = c.wait();
  EXPECT_NE(r.outcome, Outcome::kClosed);
  EXPECT_EQ(r.bytes_from_tunnel, 0u);
  EXPECT_FALSE(t.accept_destination(0ms).get() >= 0) << "the destination was reached";
}

TEST_F(TunnelTest, ClientCertificateFromAnotherCaIsRefusedAsUnknownCa) {
  auto other = pki::CertificateAuthority::create(kTrustDomain, pki::system_clock());
  set_client_credential(source_id, issue(other, source_id), 1);
  Carried c = carry();
  expect_refused_by_server(*this, c, "unknown_ca");
}

TEST_F(TunnelTest, ClientFromAnotherTrustDomainIsRefusedAsWrongTrustDomain) {
  // The server trusts the other domain's root (a federated bundle) but serves only its own.
  auto other = pki::CertificateAuthority::create("other.example", pki::system_clock());
  set_server_context(share_context(pki::make_server_context(
      *node_credential, ca().bundle_pem() + other.bundle_pem(), kTrustDomain)));
  auto foreign = pki::SpiffeId::workload("other.example", "shop", "web");
  set_client_credential(source_id, issue(other, foreign), 1);
  Carried c = carry();
  expect_refused_by_server(*this, c, "wrong_trust_domain");
}

TEST_F(TunnelTest, ExpiredClientSvidIsRefusedAsExpired) {
  pki::IssueOptions shortlived;
  shortlived.ttl = std::chrono::seconds(60);
  auto two_hours_ago = std::chrono::system_clock::now() - std::chrono::hours(2);
  set_client_credential(source_id, issue(ca(), source_id, two_hours_ago, shortlived), 1);
  Carried c = carry();
  expect_refused_by_server(*this, c, "expired");
}

// A plain TLS 1.3 client without certificate; `alpn` offers h2. True when the server let it
// read anything.
bool raw_tls_client_talks(uint16_t port, bool alpn) {
  SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
  SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
  static const unsigned char kH2[] = {2, 'h', '2'};
  if (alpn) SSL_CTX_set_alpn_protos(ctx, kH2, sizeof kH2);
  SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
  Fd fd = connect_loopback(port);
  SSL *ssl = SSL_new(ctx);
  SSL_set_fd(ssl, fd.get());
  SSL_connect(ssl);  // may complete: TLS 1.3 clients finish before the server judges them
  char byte;
  bool talked = SSL_read(ssl, &byte, 1) > 0;
  SSL_free(ssl);
  SSL_CTX_free(ctx);
  return talked;
}

TEST_F(TunnelTest, ClientWithoutCertificateIsRefusedAsNoCertificate) {
  EXPECT_FALSE(raw_tls_client_talks(server->local_endpoint().port(), true));
  EXPECT_TRUE(wait_until([&] { return count(server->stats().refusals, "no_certificate") == 1; }))
      << ::testing::PrintToString(server->stats().refusals);
  EXPECT_EQ(server->stats().connections_opened, 0u);
}

TEST_F(TunnelTest, FailuresBeforeAnyCertificateAreNotCountedAsNoCertificate) {
  // No h2 offered: refused at the ClientHello.
  EXPECT_FALSE(raw_tls_client_talks(server->local_endpoint().port(), false));
  // Not TLS at all: a TCP connection that closes.
  { Fd probe = connect_loopback(server->local_endpoint().port()); }
  EXPECT_TRUE(wait_until([&] { return count(server->stats().refusals, "handshake_failed") == 2; }))
      << ::testing::PrintToString(server->stats().refusals);
  EXPECT_EQ(count(server->stats().refusals, "no_certificate"), 0u);
  EXPECT_EQ(server->stats().handshakes_failed, 2u);
}

TEST_F(TunnelTest, ClientRefusesANodeThatIsNotTheExpectedOne) {
  Peer impostor{server->local_endpoint(), pki::SpiffeId::node(kTrustDomain, "n3")};
  Carried c = carry(destination(), impostor, source_id);
  EXPECT_EQ(end_name(read_to_end(c.app.get())), std::string("ECONNRESET"));
  CarryResult r = c.wait();
  EXPECT_EQ(r.outcome, Outcome::kFailed);
  EXPECT_NE(r.detail.find("expected spiffe://cluster.local/sockmesh/node/n3"), std::string::npos)
      << r.detail;
  EXPECT_EQ(count(client->stats().refusals, "peer_id_mismatch"), 1u);
  EXPECT_EQ(client->connections(), 0u);
  EXPECT_FALSE(accept_destination(0ms).get() >= 0) << "the destination was reached";
}

TEST_F(TunnelTest, UnreachableNodeResetsTheApplication) {
  uint16_t closed_port = 0;
  { Fd gone = listen_loopback(&closed_port); }
  Peer nobody{asio::ip::tcp::endpoint(asio::ip::address_v4::loopback(), closed_port), node_id};
  Carried c = carry(destination(), nobody, source_id);
  EXPECT_EQ(end_name(read_to_end(c.app.get())), std::string("ECONNRESET"));
  CarryResult r = c.wait();
  EXPECT_EQ(r.outcome, Outcome::kFailed);
  EXPECT_NE(r.detail.find("connect to 127.0.0.1:" + std::to_string(closed_port)), std::string::npos)
      << r.detail;
  EXPECT_TRUE(wait_until([&] { return client->connections() == 0; }));
}

TEST_F(TunnelTest, DeniedConnectIsAnswered403AndResetsTheApplication) {
  std::vector<std::string> asked;
  set_policy([&](const pki::SpiffeId &peer, const asio::ip::tcp::endpoint &to) {
    asked.push_back(peer.str() + " -> " + to.address().to_string() + ":" +
                    std::to_string(to.port()));
    return Decision{false, "deny-shop-to-db", "shop/web may not reach the database"};
  });
  Carried c = carry();
  EXPECT_EQ(end_name(read_to_end(c.app.get())), std::string("ECONNRESET"));
  CarryResult r = c.wait();
  EXPECT_EQ(r.outcome, Outcome::kRefused);
  EXPECT_EQ(r.status, 403);
  TunnelStats s = server->stats();
  EXPECT_EQ(count(s.denials, "deny-shop-to-db"), 1u);
  EXPECT_EQ(s.responses[403], 1u);
  EXPECT_EQ(client->stats().responses[403], 1u);
  EXPECT_EQ(client->stats().streams_refused, 1u);
  ASSERT_EQ(asked.size(), 1u);
  EXPECT_EQ(asked[0], source_id.str() + " -> " + destination());
  EXPECT_FALSE(accept_destination(0ms).get() >= 0) << "a denied destination was connected";
  set_policy(nullptr);
}

TEST_F(TunnelTest, RefusingDestinationIsAnswered502AndResetsTheApplication) {
  uint16_t closed_port = 0;
  { Fd gone = listen_loopback(&closed_port); }
  Carried c = carry("127.0.0.1:" + std::to_string(closed_port), node(), source_id);
  EXPECT_EQ(end_name(read_to_end(c.app.get())), std::string("ECONNRESET"));
  CarryResult r = c.wait();
  EXPECT_EQ(r.outcome, Outcome::kRefused);
  EXPECT_EQ(r.status, 502);
  EXPECT_EQ(server->stats().responses[502], 1u);
}

TEST_F(TunnelTest, SilentDestinationIsAnswered504) {
  TunnelLimits quick;
  quick.connect_timeout = 300ms;
  start_server(quick);
  // A listener whose accept queue is full drops further SYNs: connecting to it hangs.
  Fd full(socket(AF_INET, SOCK_STREAM, 0));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  ASSERT_EQ(bind(full.get(), reinterpret_cast<sockaddr *>(&a), sizeof a), 0);
  ASSERT_EQ(listen(full.get(), 0), 0);
  getsockname(full.get(), reinterpret_cast<sockaddr *>(&a), &len);
  uint16_t port = ntohs(a.sin_port);
  std::vector<Fd> queued;
  for (int i = 0; i < 2; ++i) {
    queued.emplace_back(socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0));
    connect(queued.back().get(), reinterpret_cast<sockaddr *>(&a), sizeof a);
  }
  Carried c = carry("127.0.0.1:" + std::to_string(port), node(), source_id);
  EXPECT_EQ(end_name(read_to_end(c.app.get())), std::string("ECONNRESET"));
  CarryResult r = c.wait();
  EXPECT_EQ(r.outcome, Outcome::kRefused);
  EXPECT_EQ(r.status, 504);
  EXPECT_EQ(server->stats().responses[504], 1u);
}

TEST_F(TunnelTest, MalformedAuthorityIsAnswered400) {
  Carried c = carry("db.shop.svc:5432", node(), source_id);
  EXPECT_EQ(end_name(read_to_end(c.app.get())), std::string("ECONNRESET"));
  EXPECT_EQ(c.wait().status, 400);
}

TEST_F(TunnelTest, UnknownSourceIdentityIsNotCarried) {
  Carried c = carry(destination(), node(), pki::SpiffeId::workload(kTrustDomain, "x", "y"));
  EXPECT_EQ(end_name(read_to_end(c.app.get())), std::string("ECONNRESET"));
  CarryResult r = c.wait();
  EXPECT_EQ(r.outcome, Outcome::kFailed);
  EXPECT_EQ(client->connections(), 0u);
}

TEST_F(TunnelTest, RotatedCredentialGoesOnANewConnectionWhileOldStreamsRunOn) {
  const std::string old_leaf = source_credential->chain[0].sha256_fingerprint();
  Carried first = carry();
  Fd first_dest = accept_destination();
  ASSERT_GE(first_dest.get(), 0);
  ASSERT_TRUE(write_all(first.app.get(), "before"));
  EXPECT_EQ(read_string(first_dest.get(), 6), "before");

  // The SVID is renewed: same identity, new key and certificate, next generation.
  pki::Credential renewed = issue(ca(), source_id);
  const std::string new_leaf = renewed.chain[0].sha256_fingerprint();
  ASSERT_NE(old_leaf, new_leaf);
  set_client_credential(source_id, renewed, 2);
  Carried second = carry();
  Fd second_dest = accept_destination();
  ASSERT_GE(second_dest.get(), 0);

  EXPECT_TRUE(wait_until([&] { return client->connections() == 2; }));
  std::vector<InboundConnection> conns;
  ASSERT_TRUE(wait_until([&] { return (conns = server->connections()).size() == 2; }));
  std::map<std::string, InboundConnection> by_leaf;
  for (const auto &c : conns) by_leaf[c.peer_certificate] = c;
  ASSERT_EQ(by_leaf.count(old_leaf), 1u);
  ASSERT_EQ(by_leaf.count(new_leaf), 1u) << "the new stream did not present the new certificate";
  EXPECT_EQ(by_leaf[old_leaf].streams_total, 1u);
  EXPECT_EQ(by_leaf[new_leaf].streams_total, 1u);
  EXPECT_EQ(by_leaf[new_leaf].peer, source_id.str());

  // The stream opened before the rotation keeps carrying bytes both ways.
  std::string more = pattern(5, 100000);
  ASSERT_TRUE(write_all(first.app.get(), more));
  EXPECT_EQ(read_string(first_dest.get(), more.size()), more);
  ASSERT_TRUE(write_all(first_dest.get(), "after"));
  EXPECT_EQ(read_string(first.app.get(), 5), "after");
  // The new one works too.
  ASSERT_TRUE(write_all(second.app.get(), "new"));
  EXPECT_EQ(read_string(second_dest.get(), 3), "new");

  // When the old stream ends, its drained connection is closed; the new one stays pooled.
  first.app.shutdown_write();
  EXPECT_EQ(read_to_end(first_dest.get()), End::kEof);
  first_dest.close();
  EXPECT_EQ(read_to_end(first.app.get()), End::kEof);
  EXPECT_EQ(first.wait().outcome, Outcome::kClosed);
  EXPECT_TRUE(wait_until([&] { return client->connections() == 1; }));
  EXPECT_TRUE(wait_until([&] {
    auto now = server->connections();
    return now.size() == 1 && now[0].peer_certificate == new_leaf;
  }));
  // And a third stream reuses the new connection.
  Carried third = carry();
  Fd third_dest = accept_destination();
  ASSERT_GE(third_dest.get(), 0);
  EXPECT_EQ(client->connections(), 1u);
  EXPECT_EQ(client->stats().pool_hits, 1u);
}

TEST_F(TunnelTest, EachSourceIdentityGetsItsOwnConnection) {
  const pki::SpiffeId other = pki::SpiffeId::workload(kTrustDomain, "shop", "api");
  set_client_credential(other, issue(ca(), other), 1);
  Carried web = carry(destination(), node(), source_id);
  Fd web_dest = accept_destination();
  Carried api = carry(destination(), node(), other);
  Fd api_dest = accept_destination();
  ASSERT_GE(web_dest.get(), 0);
  ASSERT_GE(api_dest.get(), 0);
  Carried web_again = carry(destination(), node(), source_id);
  Fd web_again_dest = accept_destination();
  ASSERT_GE(web_again_dest.get(), 0);

  EXPECT_EQ(client->connections(), 2u);
  EXPECT_EQ(client->stats().pool_misses, 2u);
  EXPECT_EQ(client->stats().pool_hits, 1u);
  std::map<std::string, uint64_t> streams_by_peer;
  ASSERT_TRUE(wait_until([&] {
    streams_by_peer.clear();
    for (const auto &c : server->connections()) streams_by_peer[c.peer] = c.streams_total;
    return streams_by_peer.size() == 2 && streams_by_peer[source_id.str()] == 2;
  })) << ::testing::PrintToString(streams_by_peer);
  EXPECT_EQ(streams_by_peer[other.str()], 1u);
}

TEST(ParseAuthority, AcceptsIpPortAndBracketedIpv6Only) {
  auto v4 = parse_authority("10.78.1.5:8080");
  ASSERT_TRUE(v4);
  EXPECT_EQ(v4->address().to_string(), "10.78.1.5");
  EXPECT_EQ(v4->port(), 8080);
  auto v6 = parse_authority("[fd00:78::5]:443");
  ASSERT_TRUE(v6);
  EXPECT_EQ(v6->address().to_string(), "fd00:78::5");
  EXPECT_EQ(v6->port(), 443);
  for (const char *bad :
       {"", "10.0.0.1", "10.0.0.1:", "10.0.0.1:0", "10.0.0.1:65536", "10.0.0.1:80x", "fd00::1:80",
        "[10.0.0.1]:80", "[fd00::1]80", "host.example:80", "[fd00::1:80"}) {
    EXPECT_FALSE(parse_authority(bad)) << bad;
  }
}

}  // namespace
}  // namespace sockmesh::proxy::testing
