// X.509 for the mesh: keys, CSRs, the CA, SPIFFE IDs, SVID verification with counted reasons, and
// the TLS 1.3 contexts the node agents use between each other. OpenSSL 3 underneath; one header so
// that meshd, meshcp and the tests share one vocabulary. No gRPC here.
#pragma once

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace sockmesh::pki {

// Every failure of this library: one line saying what was wrong with which input.
class PkiError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

using TimePoint = std::chrono::system_clock::time_point;
// Injectable time (tests move it; production is system_clock::now).
using Clock = std::function<TimePoint()>;
Clock system_clock();

// ---- SPIFFE IDs ------------------------------------------------------------------------------
// spiffe://<trust-domain>/<path>. Workloads: /ns/<namespace>/sa/<service-account>.
// Node agents: /sockmesh/node/<node-name> (meshcp's node certificates).
struct SpiffeId {
  std::string trust_domain;
  std::string path;  // starts with '/'

  // Parses and checks the URI (scheme, lowercase trust domain of [a-z0-9.-_], non-empty path of
  // non-empty segments, no query/fragment/port/userinfo, at most 2048 bytes). nullopt when invalid.
  static std::optional<SpiffeId> parse(std::string_view uri);
  static SpiffeId workload(std::string_view trust_domain, std::string_view ns, std::string_view sa);
  static SpiffeId node(std::string_view trust_domain, std::string_view node_name);

  std::string str() const;  // "spiffe://td/path"
  // The namespace / service account of a workload ID; empty when the path is not /ns/X/sa/Y.
  std::string ns() const;
  std::string service_account() const;
  // The node name of a node ID; empty when the path is not /sockmesh/node/X.
  std::string node_name() const;
  bool operator==(const SpiffeId &) const = default;
};

// ---- OpenSSL ownership -----------------------------------------------------------------------
struct PkeyFree {
  void operator()(EVP_PKEY *p) const;
};
struct X509Free {
  void operator()(X509 *p) const;
};
struct SslCtxFree {
  void operator()(SSL_CTX *p) const;
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;
using X509Ptr = std::unique_ptr<X509, X509Free>;
using SslCtxPtr = std::unique_ptr<SSL_CTX, SslCtxFree>;

// ---- Keys ------------------------------------------------------------------------------------
// ECDSA P-256 private key. Generated where it is used (node agent) and never sent anywhere.
class PrivateKey {
 public:
  static PrivateKey generate();
  static PrivateKey from_pem(std::string_view pem);  // PKCS#8 or SEC1; throws PkiError
  std::string pem() const;                           // PKCS#8
  std::string public_pem() const;                    // SubjectPublicKeyInfo
  EVP_PKEY *get() const { return key_.get(); }

 private:
  explicit PrivateKey(PkeyPtr key) : key_(std::move(key)) {}
  std::shared_ptr<EVP_PKEY> key_;
};

// ---- Certificates ----------------------------------------------------------------------------
class Certificate {
 public:
  static Certificate from_pem(
      std::string_view pem);  // the first certificate in pem; throws PkiError
  static std::vector<Certificate> chain_from_pem(
      std::string_view pem);  // every certificate, in order
  std::string pem() const;
  // The one URI SAN parsed as a SPIFFE ID; nullopt when absent, not SPIFFE, or more than one URI.
  std::optional<SpiffeId> spiffe_id() const;
  // A CA certificate's trust domain: its one URI SAN spiffe://<td> (no path); nullopt otherwise.
  std::optional<std::string> trust_domain() const;
  TimePoint not_before() const;
  TimePoint not_after() const;
  std::string serial_hex() const;
  std::string sha256_fingerprint() const;  // "sha256:<64 lowercase hex>" of the DER
  bool is_ca() const;
  X509 *get() const { return cert_.get(); }

 private:
  explicit Certificate(X509Ptr cert) : cert_(std::move(cert)) {}
  std::shared_ptr<X509> cert_;
  friend class CertificateAuthority;
};

// ---- CSRs ------------------------------------------------------------------------------------
// A PKCS#10 request for `id`, signed with `key` (proof the requester holds the key).
std::string make_csr(const PrivateKey &key, const SpiffeId &id);

struct Csr {
  SpiffeId id;             // the one URI SAN the request carries
  std::string public_pem;  // SubjectPublicKeyInfo of the requester's key
  std::string der;         // the request as received (DER)
};
// Parses a PEM CSR and checks its self-signature and that it names exactly one SPIFFE ID.
// Throws PkiError ("CSR: signature does not verify", "CSR: no SPIFFE ID URI SAN", ...).
Csr parse_csr(std::string_view pem);

// ---- The CA (meshcp) --------------------------------------------------------------------------
struct IssueOptions {
  std::chrono::seconds ttl{3600};
  // Backdating of not_before for clock skew between nodes.
  std::chrono::seconds backdate{60};
  // DNS SANs besides the URI SAN: only for meshcp's serving certificate, which gRPC clients check
  // by host name. Workload and node certificates have none.
  std::vector<std::string> dns_names;
};

class CertificateAuthority {
 public:
  // A new self-signed root for trust_domain (ECDSA P-256, 10 years, CA:TRUE pathlen 0, URI SAN
  // spiffe://<trust_domain>).
  static CertificateAuthority create(std::string_view trust_domain, const Clock &clock);
  // A supplied root (or intermediate) and its key (PKCS#8 or SEC1); throws PkiError if the key
  // does not match the certificate or it is not a CA. Its trust domain is its URI SAN
  // spiffe://<td>; a CA without any URI SAN (a plain CA such as Helm's genCA makes: CN only) is for
  // `trust_domain` when one is given. PkiError when it has URI SANs but not that one, or none and
  // no trust_domain is given.
  static CertificateAuthority from_pem(std::string_view cert_pem, std::string_view key_pem,
                                       std::string_view trust_domain = {});
  // Loads <dir>/ca.crt and <dir>/ca.key; when neither exists creates a root and writes them
  // (key 0600, written atomically). Throws when only one exists, or when the loaded trust domain
  // differs from trust_domain.
  static CertificateAuthority load_or_create(const std::string &dir, std::string_view trust_domain,
                                             const Clock &clock);

  const std::string &trust_domain() const { return trust_domain_; }
  const Certificate &certificate() const { return cert_; }
  std::string bundle_pem() const;  // the trust bundle agents verify peers against

  // Signs a leaf for the CSR's key with `id` as its only URI SAN (digitalSignature, serverAuth +
  // clientAuth, not a CA). `id` must be in this CA's trust domain; the CSR's own ID is ignored
  // (the caller decides what the requester is entitled to). not_after never passes the CA's.
  // Returns the leaf PEM followed by the CA's certificate only when the CA is an intermediate.
  std::string issue(const Csr &csr, const SpiffeId &id, const IssueOptions &options,
                    TimePoint now) const;

 private:
  CertificateAuthority(Certificate cert, PrivateKey key, std::string trust_domain);
  Certificate cert_;
  PrivateKey key_;
  std::string trust_domain_;
};

// ---- Verification ----------------------------------------------------------------------------
// Why a peer was refused. Stable names (reason_name) are used in counters and logs.
enum class Reject {
  kNoCertificate,     // "no_certificate": the peer presented none
  kUnknownCa,         // "unknown_ca": the chain does not lead to the trust bundle
  kExpired,           // "expired"
  kNotYetValid,       // "not_yet_valid"
  kNoSpiffeId,        // "no_spiffe_id": no (or more than one, or invalid) URI SAN
  kWrongTrustDomain,  // "wrong_trust_domain"
  kBadCertificate,    // "bad_certificate": anything else (signature, CA flag on a leaf, ...)
};
std::string_view reason_name(Reject reason);

struct Verified {
  std::optional<SpiffeId> id;    // set when accepted
  std::optional<Reject> reject;  // set when refused
  std::string detail;            // one line for logs when refused
  bool ok() const { return id.has_value(); }
};

// Checks a presented chain (leaf first) against the bundle at `now`, then the leaf's SPIFFE ID
// against trust_domain.
Verified verify_svid(const std::vector<Certificate> &chain, std::string_view bundle_pem,
                     std::string_view trust_domain, TimePoint now);

// ---- TLS between node agents -----------------------------------------------------------------
// What an agent presents: a key and its certificate chain (leaf first).
struct Credential {
  PrivateKey key;
  std::vector<Certificate> chain;
};

// TLS 1.3 only, mutual: the peer must present a certificate that verify_svid accepts against the
// bundle and trust domain (checked during the handshake; a refusal fails the handshake). ALPN "h2".
// Trust bundle and credential are fixed per context: on rotation make a new context (established
// connections keep the old one).
SslCtxPtr make_server_context(const Credential &own, std::string_view bundle_pem,
                              std::string_view trust_domain);
SslCtxPtr make_client_context(const Credential &own, std::string_view bundle_pem,
                              std::string_view trust_domain);
// After a handshake (or a failed one) on an SSL made from those contexts: the peer's verified
// SPIFFE ID, or why it was refused (kNoCertificate when the handshake failed before any).
Verified peer_of(const SSL *ssl);

// ---- Rotation --------------------------------------------------------------------------------
// When to renew a certificate: at half its lifetime (like SPIRE and Istio), so a renewal has the
// other half to succeed (retries with backoff) before the SVID expires.
TimePoint renew_at(const Certificate &cert);

}  // namespace sockmesh::pki
