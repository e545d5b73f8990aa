// The node's own identity: its key (made here, never sent), the node certificate meshcp's CA
// issued for it, and the trust bundle, kept in <state-dir>/identity/ (key 0600). A node without
// them joins once: it checks meshcp's CA against --ca-cert-hash, then trades the one-time
// bootstrap token and a CSR for a node certificate (Identity.JoinNode). No gRPC in this header.
#pragma once

#include <string>

#include "sockmesh/pki/pki.h"

namespace sockmesh::identity {

struct JoinOptions {
  std::string controlplane;  // meshcp's agent address, a gRPC target (unix:PATH or host:port)
  std::string token;         // --join-token; empty: the node must already have joined
  std::string ca_cert_hash;  // --ca-cert-hash "sha256:<hex>", required with a token
};

struct NodeIdentity {
  std::string node;
  std::string trust_domain;
  pki::PrivateKey key;
  std::string certificate_pem;  // leaf first
  std::string bundle_pem;

  pki::Credential credential() const;
  // Loads <dir>/node.key, node.crt, bundle.pem when present and the certificate is for `node` and
  // unexpired; otherwise joins with `join` (throws std::runtime_error saying what to do when there
  // is no token, the CA does not match the hash, or meshcp refuses the token) and writes them.
  static NodeIdentity load_or_join(const std::string &dir, const std::string &node,
                                   const JoinOptions &join, const pki::Clock &clock);
  // Writes key, certificate and bundle to dir (atomically each).
  void save(const std::string &dir) const;
};

// The CA certificate meshcp's TLS listener presents, fetched without trusting it, kept only if its
// SHA-256 fingerprint is `expected_hash`, and checked to have signed the serving certificate.
// Throws std::runtime_error naming what did not match.
std::string fetch_pinned_ca(const std::string &controlplane, const std::string &expected_hash);

}  // namespace sockmesh::identity
