#include <gtest/gtest.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <csignal>
#include <functional>
#include <thread>

#include "helm_style_ca.h"
#include "pki_test_util.h"

namespace sockmesh::pki {
namespace {

using testing::error_of;
using testing::fixed_clock;
using testing::issue_credential;
using testing::test_now;

struct Side {
  bool ok = false;  // handshake done and (client) the server's byte received
  Verified peer;
  std::string alpn;
  int version = 0;
  long verify_result = X509_V_OK;
  std::string error;  // reason of the first queued OpenSSL error after a failure
};

std::string first_error() {
  unsigned long e = ERR_peek_error();
  const char *reason = e ? ERR_reason_error_string(e) : nullptr;
  return reason ? reason : "";
}
struct Outcome {
  Side server, client;
};

std::string alpn_of(SSL *ssl) {
  const unsigned char *p = nullptr;
  unsigned int len = 0;
  SSL_get0_alpn_selected(ssl, &p, &len);
  return std::string(reinterpret_cast<const char *>(p), len);
}

// A real handshake over a socketpair, one thread per side (blocking I/O). The client reads one
// byte the server writes after accepting: in TLS 1.3 the client's SSL_connect returns before the
// server has judged the client certificate, so a refusal only shows up on that read.
Outcome handshake(SSL_CTX *server_ctx, SSL_CTX *client_ctx,
                  const std::function<void(SSL *)> &tweak_client = {}) {
  std::signal(SIGPIPE, SIG_IGN);
  int fds[2];
  EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
  Outcome out;
  std::thread server([&] {
    SSL *ssl = SSL_new(server_ctx);
    SSL_set_fd(ssl, fds[0]);
    if (SSL_accept(ssl) == 1) out.server.ok = SSL_write(ssl, "k", 1) == 1;
    out.server.error = first_error();
    out.server.peer = peer_of(ssl);
    out.server.alpn = alpn_of(ssl);
    out.server.version = SSL_version(ssl);
    out.server.verify_result = SSL_get_verify_result(ssl);
    ERR_clear_error();
    SSL_free(ssl);
    shutdown(fds[0], SHUT_RDWR);  // unblocks the client's read after a refusal
  });
  SSL *ssl = SSL_new(client_ctx);
  SSL_set_fd(ssl, fds[1]);
  if (tweak_client) tweak_client(ssl);
  char byte = 0;
  if (SSL_connect(ssl) == 1) out.client.ok = SSL_read(ssl, &byte, 1) == 1 && byte == 'k';
  out.client.error = first_error();
  out.client.peer = peer_of(ssl);
  out.client.alpn = alpn_of(ssl);
  out.client.version = SSL_version(ssl);
  out.client.verify_result = SSL_get_verify_result(ssl);
  ERR_clear_error();
  SSL_free(ssl);
  shutdown(fds[1], SHUT_RDWR);
  server.join();
  close(fds[0]);
  close(fds[1]);
  return out;
}

class TlsTest : public ::testing::Test {
 protected:
  TimePoint now_ = test_now();
  CertificateAuthority ca_ = CertificateAuthority::create("td.test", fixed_clock(now_));
  SpiffeId server_id_ = SpiffeId::node("td.test", "server-node");
  SpiffeId client_id_ = SpiffeId::node("td.test", "client-node");
  Credential server_cred_ = issue_credential(ca_, server_id_, now_);
  Credential client_cred_ = issue_credential(ca_, client_id_, now_);
  SslCtxPtr server_ctx_ = make_server_context(server_cred_, ca_.bundle_pem(), "td.test");
};

TEST_F(TlsTest, MutualHandshakeExposesBothPeers) {
  auto client_ctx = make_client_context(client_cred_, ca_.bundle_pem(), "td.test");
  Outcome o = handshake(server_ctx_.get(), client_ctx.get());
  EXPECT_TRUE(o.server.ok);
  EXPECT_TRUE(o.client.ok);
  EXPECT_EQ(o.server.peer.id, client_id_);
  EXPECT_EQ(o.client.peer.id, server_id_);
  EXPECT_EQ(o.server.alpn, "h2");
  EXPECT_EQ(o.client.alpn, "h2");
  EXPECT_EQ(o.server.version, TLS1_3_VERSION);
  EXPECT_EQ(o.client.version, TLS1_3_VERSION);
  EXPECT_EQ(o.server.verify_result, X509_V_OK);
}

// Node agents whose certificates come from the chart's CA (no URI SAN, EKU serverAuth+clientAuth on
// the CA itself, which OpenSSL checks against the TLS purpose) handshake with each other.
TEST(TlsHelmCaTest, NodesOfAHelmStyleCaHandshake) {
  const auto helm = sockmesh::testing::make_helm_style_ca();
  const TimePoint now = test_now();
  const auto ca = CertificateAuthority::from_pem(helm.cert_pem, helm.key_pem, "cluster.local");
  const SpiffeId server_id = SpiffeId::node("cluster.local", "n1"),
                 client_id = SpiffeId::node("cluster.local", "n2");
  auto server_ctx =
      make_server_context(issue_credential(ca, server_id, now), ca.bundle_pem(), "cluster.local");
  auto client_ctx =
      make_client_context(issue_credential(ca, client_id, now), ca.bundle_pem(), "cluster.local");
  Outcome o = handshake(server_ctx.get(), client_ctx.get());
  EXPECT_TRUE(o.server.ok) << o.server.error;
  EXPECT_TRUE(o.client.ok) << o.client.error;
  EXPECT_EQ(o.server.peer.id, client_id);
  EXPECT_EQ(o.client.peer.id, server_id);
}

TEST_F(TlsTest, ServerRefusesAClientFromAnotherCa) {
  auto other = CertificateAuthority::create("td.test", fixed_clock(now_));
  auto intruder = issue_credential(other, client_id_, now_);
  // The intruder trusts the real CA, so it accepts the server; the server must refuse it.
  auto client_ctx = make_client_context(intruder, ca_.bundle_pem(), "td.test");
  Outcome o = handshake(server_ctx_.get(), client_ctx.get());
  EXPECT_FALSE(o.server.ok);
  EXPECT_FALSE(o.client.ok);
  EXPECT_EQ(o.server.peer.reject, Reject::kUnknownCa);
  EXPECT_EQ(o.server.peer.detail,
            "spiffe://td.test/sockmesh/node/client-node: unable to get local issuer certificate");
  EXPECT_EQ(o.server.verify_result, X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY);
  EXPECT_EQ(o.server.error, "certificate verify failed");
  EXPECT_EQ(o.client.error, "tlsv1 alert unknown ca");  // seen on the first read
  EXPECT_EQ(o.client.peer.id, server_id_);
}

TEST_F(TlsTest, ClientRefusesAServerOfAnotherTrustDomain) {
  auto other = CertificateAuthority::create("other.test", fixed_clock(now_));
  auto foreign = issue_credential(other, SpiffeId::node("other.test", "server-node"), now_);
  std::string both = ca_.bundle_pem() + other.bundle_pem();
  auto server_ctx = make_server_context(foreign, both, "other.test");
  auto client_ctx = make_client_context(client_cred_, both, "td.test");
  Outcome o = handshake(server_ctx.get(), client_ctx.get());
  EXPECT_FALSE(o.client.ok);
  EXPECT_FALSE(o.server.ok);
  EXPECT_EQ(o.client.peer.reject, Reject::kWrongTrustDomain);
  EXPECT_EQ(
      o.client.peer.detail,
      "spiffe://other.test/sockmesh/node/server-node: trust domain other.test, expected td.test");
  EXPECT_EQ(o.client.verify_result, X509_V_ERR_APPLICATION_VERIFICATION);
  EXPECT_EQ(o.client.error, "certificate verify failed");
  EXPECT_EQ(o.server.error, "sslv3 alert handshake failure");
  // The server never saw a client certificate: the client aborted first.
  EXPECT_EQ(o.server.peer.reject, Reject::kNoCertificate);
}

// A raw client context without a certificate (what a non-mesh TLS client looks like).
SslCtxPtr bare_client(bool alpn) {
  SslCtxPtr ctx(SSL_CTX_new(TLS_client_method()));
  SSL_CTX_set_min_proto_version(ctx.get(), TLS1_3_VERSION);
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_NONE, nullptr);
  static const unsigned char h2[] = {2, 'h', '2'};
  if (alpn) SSL_CTX_set_alpn_protos(ctx.get(), h2, sizeof h2);
  return ctx;
}

TEST_F(TlsTest, ClientWithoutCertificateIsRefused) {
  auto client_ctx = bare_client(true);
  Outcome o = handshake(server_ctx_.get(), client_ctx.get());
  EXPECT_FALSE(o.server.ok);
  EXPECT_FALSE(o.client.ok);
  EXPECT_EQ(o.server.peer.reject, Reject::kNoCertificate);
  EXPECT_EQ(o.server.peer.detail, "peer presented no certificate");
  EXPECT_EQ(o.server.error, "peer did not return a certificate");
  EXPECT_FALSE(o.server.peer.ok());
}

TEST_F(TlsTest, ServerRequiresH2) {
  auto client_ctx = make_client_context(client_cred_, ca_.bundle_pem(), "td.test");
  static const unsigned char http11[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
  Outcome wrong = handshake(server_ctx_.get(), client_ctx.get(),
                            [](SSL *ssl) { SSL_set_alpn_protos(ssl, http11, sizeof http11); });
  EXPECT_FALSE(wrong.server.ok);
  EXPECT_FALSE(wrong.client.ok);
  EXPECT_EQ(wrong.server.peer.reject, Reject::kNoCertificate);  // refused before certificates
  EXPECT_EQ(wrong.server.error, "no application protocol");
  EXPECT_EQ(wrong.client.error, "tlsv1 alert no application protocol");

  Outcome none = handshake(server_ctx_.get(), bare_client(false).get());
  EXPECT_FALSE(none.server.ok);
  EXPECT_FALSE(none.client.ok);
  EXPECT_EQ(none.server.error, "callback failed");  // the ClientHello callback: no ALPN at all

  static const unsigned char both[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1', 2, 'h', '2'};
  Outcome ok = handshake(server_ctx_.get(), client_ctx.get(),
                         [](SSL *ssl) { SSL_set_alpn_protos(ssl, both, sizeof both); });
  EXPECT_TRUE(ok.server.ok);
  EXPECT_EQ(ok.server.alpn, "h2");
  EXPECT_EQ(ok.client.alpn, "h2");
}

TEST_F(TlsTest, ContextRefusesMismatchedKeyAndEmptyChain) {
  Credential mismatched{PrivateKey::generate(), server_cred_.chain};
  std::string msg = error_of([&] { make_server_context(mismatched, ca_.bundle_pem(), "td.test"); });
  EXPECT_TRUE(msg.starts_with("server TLS context: loading the private key: error:") ||
              msg.starts_with("server TLS context: the key does not match the certificate: error:"))
      << msg;
  Credential empty{PrivateKey::generate(), {}};
  EXPECT_EQ(error_of([&] { make_client_context(empty, ca_.bundle_pem(), "td.test"); }),
            "client TLS context: the credential has no certificate");
  EXPECT_EQ(error_of([&] { make_client_context(client_cred_, "", "td.test"); }),
            "trust bundle: no certificate in it");
  EXPECT_EQ(ERR_peek_error(), 0u);
}

TEST_F(TlsTest, PeerOfBeforeAnyHandshakeIsNoCertificate) {
  SSL *ssl = SSL_new(server_ctx_.get());
  Verified v = peer_of(ssl);
  EXPECT_EQ(v.reject, Reject::kNoCertificate);
  SSL_free(ssl);
}

}  // namespace
}  // namespace sockmesh::pki
