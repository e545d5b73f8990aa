// The node's own identity: its key (made here, never sent), the node certificate meshcp's CA
// issued for it, and the trust bundle, kept in <state-dir>/identity/ (key 0600). A node without
// them joins once: it checks meshcp's CA against --ca-cert-hash (or the hash of --ca-cert-file),
// then trades a bootstrap token (one-time per node, or the cluster's reusable one) and a CSR for a
// node certificate (Identity.JoinNode). No gRPC in this header.
#pragma once

#include <string>

#include "sockmesh/pki/pki.h"

namespace sockmesh::identity {

struct JoinOptions {
  std::string controlplane;  // meshcp's agent address, a gRPC target (unix:PATH or host:port)
  std::string token;         // --join-token; empty: the node must already have joined
  std::string ca_cert_hash;  // --ca-cert-hash "sha256:<hex>", required with a token
  // --join-token-file: the token stays mounted at every start (a DaemonSet), so it is used only
  // when the node has no usable identity (like kubelet's --bootstrap-kubeconfig); otherwise a token
  // always joins anew.
  bool token_only_when_needed = false;
};

// meshd's join flags as given on its command line.
struct JoinFlags {
  std::string token{};         // --join-token
  std::string token_file{};    // --join-token-file: a file holding the token
  std::string ca_cert_hash{};  // --ca-cert-hash
  std::string ca_cert_file{};  // --ca-cert-file: meshcp's CA certificate (PEM)
};
// The JoinOptions the flags mean (controlplane left empty): reads the files and checks them.
// Throws std::runtime_error with the line meshd prints: both --join-token and --join-token-file,
// a token file read_token_file refuses (sockmesh/common/token_file.h), a CA file ca_cert_file_hash
// refuses, or --ca-cert-hash and --ca-cert-file that disagree.
JoinOptions join_options(const JoinFlags &flags);

// "sha256:<hex>" of the first certificate in a PEM file (Certificate::sha256_fingerprint, what
// --ca-cert-hash pins); throws std::runtime_error "--ca-cert-file PATH: ..." when the file cannot
// be read, holds no PEM certificate, or its certificate is not a CA.
std::string ca_cert_file_hash(const std::string &path);

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
// Throws std::runtime_error naming what did not match. serving_trust_domain (optional) receives the
// trust domain of the serving certificate's SPIFFE ID (empty when it has none): a CA without a
// URI SAN names none itself.
std::string fetch_pinned_ca(const std::string &controlplane, const std::string &expected_hash,
                            std::string *serving_trust_domain = nullptr);

}  // namespace sockmesh::identity
