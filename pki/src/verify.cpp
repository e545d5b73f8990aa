// SVID verification: the chain against the trust bundle (OpenSSL's path validation), then the
// mesh's own rules (a leaf, one SPIFFE ID, our trust domain). Shared by verify_svid and the TLS
// verify callback so a handshake and an offline check always agree.
#include <openssl/pem.h>

#include "internal.h"
#include "openssl_util.h"

namespace sockmesh::pki {
namespace {

Reject map_x509_error(int err) {
  switch (err) {
    case X509_V_ERR_CERT_HAS_EXPIRED:
      return Reject::kExpired;
    case X509_V_ERR_CERT_NOT_YET_VALID:
      return Reject::kNotYetValid;
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
      return Reject::kUnknownCa;
    default:
      return Reject::kBadCertificate;
  }
}

Verified refuse(Reject reason, std::string detail) {
  return Verified{std::nullopt, reason, std::move(detail)};
}

}  // namespace

std::string_view reason_name(Reject reason) {
  switch (reason) {
    case Reject::kNoCertificate:
      return "no_certificate";
    case Reject::kUnknownCa:
      return "unknown_ca";
    case Reject::kExpired:
      return "expired";
    case Reject::kNotYetValid:
      return "not_yet_valid";
    case Reject::kNoSpiffeId:
      return "no_spiffe_id";
    case Reject::kWrongTrustDomain:
      return "wrong_trust_domain";
    case Reject::kBadCertificate:
      return "bad_certificate";
  }
  return "unknown";
}

namespace detail {

X509_STORE *make_store(std::string_view bundle_pem) {
  auto roots = Certificate::chain_from_pem(bundle_pem);
  if (roots.empty()) throw PkiError("trust bundle: no certificate in it");
  X509StorePtr store(X509_STORE_new());
  if (!store) throw_openssl("trust bundle: X509_STORE_new");
  for (const auto &root : roots)
    if (!X509_STORE_add_cert(store.get(), root.get()))  // takes its own reference
      throw_openssl("trust bundle: adding " + describe(root.get()));
  return store.release();
}

Verified verify_leaf(X509 *leaf, STACK_OF(X509) * untrusted, X509_STORE *store,
                     std::string_view trust_domain, TimePoint now, int *x509_error) {
  *x509_error = X509_V_OK;
  const std::string who = describe(leaf);
  X509StoreCtxPtr ctx(X509_STORE_CTX_new());
  if (!ctx || !X509_STORE_CTX_init(ctx.get(), store, leaf, untrusted))
    throw_openssl("verify: X509_STORE_CTX_init");
  // The verification time is the caller's clock, not the host's: tests (and a replay of an old
  // decision) move it.
  X509_VERIFY_PARAM_set_time(X509_STORE_CTX_get0_param(ctx.get()),
                             std::chrono::system_clock::to_time_t(now));
  if (X509_verify_cert(ctx.get()) != 1) {
    int err = X509_STORE_CTX_get_error(ctx.get());
    int depth = X509_STORE_CTX_get_error_depth(ctx.get());
    clear_errors();
    *x509_error = err == X509_V_OK ? X509_V_ERR_UNSPECIFIED : err;
    std::string detail = who + ": " + X509_verify_cert_error_string(*x509_error);
    if (depth > 0) detail += " (at chain depth " + std::to_string(depth) + ")";
    return refuse(map_x509_error(*x509_error), detail);
  }
  // A CA certificate presented as a peer identity would let its holder mint others: never a leaf.
  if (X509_get_extension_flags(leaf) & EXFLAG_CA) {
    *x509_error = X509_V_ERR_INVALID_CA;
    return refuse(Reject::kBadCertificate, who + ": is a CA certificate, not a leaf");
  }
  auto uris = uri_sans(leaf);
  std::optional<SpiffeId> id;
  if (uris.size() == 1) id = SpiffeId::parse(uris[0]);
  if (!id) {
    *x509_error = X509_V_ERR_APPLICATION_VERIFICATION;
    std::string why = uris.empty()      ? "no URI SAN"
                      : uris.size() > 1 ? std::to_string(uris.size()) + " URI SANs"
                                        : "URI SAN is not a valid SPIFFE ID";
    return refuse(Reject::kNoSpiffeId, who + ": no SPIFFE ID (" + why + ")");
  }
  if (id->trust_domain != trust_domain) {
    *x509_error = X509_V_ERR_APPLICATION_VERIFICATION;
    return refuse(Reject::kWrongTrustDomain, id->str() + ": trust domain " + id->trust_domain +
                                                 ", expected " + std::string(trust_domain));
  }
  return Verified{std::move(id), std::nullopt, {}};
}

}  // namespace detail

Verified verify_svid(const std::vector<Certificate> &chain, std::string_view bundle_pem,
                     std::string_view trust_domain, TimePoint now) {
  if (chain.empty()) return refuse(Reject::kNoCertificate, "no certificate presented");
  detail::X509StorePtr store(detail::make_store(bundle_pem));
  // untrusted = everything after the leaf: intermediates may help build the path but are never
  // anchors.
  STACK_OF(X509) *untrusted = sk_X509_new_null();
  if (!untrusted) detail::throw_openssl("verify: sk_X509_new_null");
  for (size_t i = 1; i < chain.size(); ++i) {
    if (!sk_X509_push(untrusted, chain[i].get())) {  // borrowed: freed with sk_X509_free below
      sk_X509_free(untrusted);
      detail::throw_openssl("verify: building the chain");
    }
  }
  int x509_error = 0;
  Verified result;
  try {
    result =
        detail::verify_leaf(chain[0].get(), untrusted, store.get(), trust_domain, now, &x509_error);
  } catch (...) {
    sk_X509_free(untrusted);
    throw;
  }
  sk_X509_free(untrusted);
  return result;
}

}  // namespace sockmesh::pki
