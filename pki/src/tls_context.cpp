// TLS 1.3 mutual-auth contexts for agent-to-agent tunnels. Peer certificates are judged by the same
// verify_leaf as verify_svid (through a cert verify callback), and the verdict is kept on the SSL
// so the tunnel can log and count why a peer was refused even when the handshake failed.
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/tls1.h>

#include "internal.h"
#include "openssl_util.h"

namespace sockmesh::pki {
namespace {

// What a context verifies peers against; owned by the SSL_CTX through ex_data.
struct PeerPolicy {
  detail::X509StorePtr store;  // the bundle, parsed once (X509_STORE lookups are thread-safe)
  std::string trust_domain;
};

void free_policy(void *, void *ptr, CRYPTO_EX_DATA *, int, long, void *) {
  delete static_cast<PeerPolicy *>(ptr);
}

void free_verified(void *, void *ptr, CRYPTO_EX_DATA *, int, long, void *) {
  delete static_cast<Verified *>(ptr);
}

// SSL_dup copies ex_data pointers unless a dup callback replaces them: give the copy its own
// Verified so both SSLs can free theirs.
int dup_verified(CRYPTO_EX_DATA *, const CRYPTO_EX_DATA *, void **from_d, int, long, void *) {
  if (*from_d) *from_d = new Verified(*static_cast<Verified *>(*from_d));
  return 1;
}

int policy_index() {
  static const int idx = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, free_policy);
  return idx;
}

int verified_index() {
  static const int idx = SSL_get_ex_new_index(0, nullptr, nullptr, dup_verified, free_verified);
  return idx;
}

void record(SSL *ssl, Verified verified) {
  auto *fresh = new Verified(std::move(verified));
  delete static_cast<Verified *>(SSL_get_ex_data(ssl, verified_index()));
  SSL_set_ex_data(ssl, verified_index(), fresh);
}

// Replaces OpenSSL's X509_verify_cert for the peer chain. Runs only when the peer sent at least one
// certificate (an empty Certificate message fails earlier on SSL_VERIFY_FAIL_IF_NO_PEER_CERT, which
// is why peer_of defaults to kNoCertificate).
int verify_peer(X509_STORE_CTX *store_ctx, void *) {
  auto *ssl = static_cast<SSL *>(
      X509_STORE_CTX_get_ex_data(store_ctx, SSL_get_ex_data_X509_STORE_CTX_idx()));
  X509 *leaf = X509_STORE_CTX_get0_cert(store_ctx);
  if (!ssl || !leaf) {
    X509_STORE_CTX_set_error(store_ctx, X509_V_ERR_UNSPECIFIED);
    return 0;
  }
  auto *policy =
      static_cast<PeerPolicy *>(SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), policy_index()));
  if (!policy) {
    X509_STORE_CTX_set_error(store_ctx, X509_V_ERR_UNSPECIFIED);
    record(ssl, Verified{std::nullopt, Reject::kBadCertificate, "context has no trust bundle"});
    return 0;
  }
  int x509_error = X509_V_OK;
  Verified verified;
  try {
    // untrusted = the peer's whole chain (OpenSSL passes the leaf in it too; harmless).
    verified =
        detail::verify_leaf(leaf, X509_STORE_CTX_get0_untrusted(store_ctx), policy->store.get(),
                            policy->trust_domain, std::chrono::system_clock::now(), &x509_error);
  } catch (const PkiError &e) {  // never let an exception cross OpenSSL's C frames
    verified = Verified{std::nullopt, Reject::kBadCertificate, e.what()};
    x509_error = X509_V_ERR_UNSPECIFIED;
  }
  bool ok = verified.ok();
  record(ssl, std::move(verified));
  // The error set here becomes SSL_get_verify_result and picks the alert the peer receives
  // (unknown_ca, certificate_expired, ...).
  X509_STORE_CTX_set_error(store_ctx, ok ? X509_V_OK : x509_error);
  return ok ? 1 : 0;
}

constexpr unsigned char kAlpnH2[] = {2, 'h', '2'};

// Server: pick "h2" or refuse. The tunnel speaks HTTP/2 only, so a peer that cannot is not one.
int select_alpn(SSL *, const unsigned char **out, unsigned char *outlen, const unsigned char *in,
                unsigned int inlen, void *) {
  for (unsigned int i = 0; i < inlen;) {
    unsigned int len = in[i];
    if (i + 1 + len > inlen) break;  // malformed list
    if (len == 2 && in[i + 1] == 'h' && in[i + 2] == '2') {
      *out = in + i + 1;
      *outlen = 2;
      return SSL_TLSEXT_ERR_OK;
    }
    i += 1 + len;
  }
  return SSL_TLSEXT_ERR_ALERT_FATAL;
}

// The ALPN select callback is not called at all when the ClientHello has no ALPN extension; refuse
// that case here so "no h2" always fails the handshake.
int require_alpn(SSL *ssl, int *alert, void *) {
  const unsigned char *ext = nullptr;
  size_t len = 0;
  if (!SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_application_layer_protocol_negotiation, &ext,
                                 &len)) {
    *alert = SSL_AD_NO_APPLICATION_PROTOCOL;
    return SSL_CLIENT_HELLO_ERROR;
  }
  return SSL_CLIENT_HELLO_SUCCESS;
}

SslCtxPtr make_context(bool server, const Credential &own, std::string_view bundle_pem,
                       std::string_view trust_domain) {
  const char *side = server ? "server TLS context" : "client TLS context";
  auto fail = [&](const std::string &what) {
    detail::throw_openssl(std::string(side) + ": " + what);
  };
  if (own.chain.empty()) throw PkiError(std::string(side) + ": the credential has no certificate");
  if (!detail::valid_trust_domain(trust_domain))
    throw PkiError(std::string(side) + ": invalid trust domain \"" + std::string(trust_domain) +
                   "\"");

  SslCtxPtr ctx(SSL_CTX_new(TLS_method()));
  if (!ctx) fail("SSL_CTX_new");
  // Policy first: once attached, SSL_CTX_free releases it on every later error path.
  auto policy = std::make_unique<PeerPolicy>();
  policy->store.reset(detail::make_store(bundle_pem));
  policy->trust_domain = std::string(trust_domain);
  if (!SSL_CTX_set_ex_data(ctx.get(), policy_index(), policy.get())) fail("storing the policy");
  policy.release();
  (void)verified_index();  // register the SSL index before any SSL exists

  if (!SSL_CTX_set_min_proto_version(ctx.get(), TLS1_3_VERSION) ||
      !SSL_CTX_set_max_proto_version(ctx.get(), TLS1_3_VERSION))
    fail("restricting to TLS 1.3");

  if (SSL_CTX_use_certificate(ctx.get(), own.chain[0].get()) != 1) fail("loading the certificate");
  for (size_t i = 1; i < own.chain.size(); ++i)
    if (!SSL_CTX_add1_chain_cert(ctx.get(), own.chain[i].get())) fail("adding a chain certificate");
  if (SSL_CTX_use_PrivateKey(ctx.get(), own.key.get()) != 1) fail("loading the private key");
  if (SSL_CTX_check_private_key(ctx.get()) != 1) fail("the key does not match the certificate");

  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
  SSL_CTX_set_cert_verify_callback(ctx.get(), verify_peer, nullptr);

  // No resumption: every pooled tunnel is long-lived, so a full handshake per connection costs
  // nothing measurable, and a resumed session would skip the verify callback, leaving peer_of with
  // no verdict and the peer unchecked against a rotated bundle.
  SSL_CTX_set_options(ctx.get(), SSL_OP_NO_TICKET);
  SSL_CTX_set_session_cache_mode(ctx.get(), SSL_SESS_CACHE_OFF);
  if (server && !SSL_CTX_set_num_tickets(ctx.get(), 0)) fail("disabling tickets");

  if (server) {
    SSL_CTX_set_alpn_select_cb(ctx.get(), select_alpn, nullptr);
    SSL_CTX_set_client_hello_cb(ctx.get(), require_alpn, nullptr);
  } else if (SSL_CTX_set_alpn_protos(ctx.get(), kAlpnH2, sizeof kAlpnH2) != 0) {  // 0 = success
    fail("setting ALPN");
  }
  detail::clear_errors();
  return ctx;
}

}  // namespace

SslCtxPtr make_server_context(const Credential &own, std::string_view bundle_pem,
                              std::string_view trust_domain) {
  return make_context(true, own, bundle_pem, trust_domain);
}

SslCtxPtr make_client_context(const Credential &own, std::string_view bundle_pem,
                              std::string_view trust_domain) {
  return make_context(false, own, bundle_pem, trust_domain);
}

Verified peer_of(const SSL *ssl) {
  if (ssl) {
    if (auto *v = static_cast<const Verified *>(SSL_get_ex_data(ssl, verified_index()))) return *v;
  }
  return Verified{std::nullopt, Reject::kNoCertificate, "peer presented no certificate"};
}

}  // namespace sockmesh::pki
