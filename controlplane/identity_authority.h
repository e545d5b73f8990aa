// meshcp's certificate authority, as node agents meet it: nodes join with a one-time bootstrap
// token (or the reusable cluster token) and get a node certificate; with it they get X.509-SVIDs
// for the workloads placed on their own node, and nothing else. gRPC-free (identity_service.h
// adapts it) so that every refusal can be unit-tested with an injectable clock.
#pragma once

#include <chrono>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string>

#include "bootstrap_tokens.h"
#include "sockmesh/pki/pki.h"
#include "sockmesh/v1/controlplane.pb.h"
#include "sockmesh/v1/identity.pb.h"
#include "state.h"

namespace sockmesh::controlplane {

// A refused request: reason() is the counter label, code() the gRPC status code to answer.
class IdentityRefused : public std::runtime_error {
 public:
  enum class Code { kInvalidArgument, kUnauthenticated, kPermissionDenied, kNotFound };
  IdentityRefused(Code code, std::string reason, const std::string &message)
      : std::runtime_error(message), code_(code), reason_(std::move(reason)) {}
  Code code() const { return code_; }
  const std::string &reason() const { return reason_; }

 private:
  Code code_;
  std::string reason_;
};

struct IdentityTtls {
  std::chrono::seconds node{24 * 3600};
  std::chrono::seconds svid{3600};
};

class IdentityAuthority {
 public:
  IdentityAuthority(pki::CertificateAuthority ca, BootstrapTokens &tokens, const State &state,
                    IdentityTtls ttls, pki::Clock clock);

  const pki::CertificateAuthority &ca() const { return ca_; }
  std::string ca_cert_hash() const { return ca_.certificate().sha256_fingerprint(); }

  // Each throws IdentityRefused (counted) or returns the answer. `node` of sign/renew is the
  // caller's node as its verified node certificate names it.
  v1::JoinNodeResponse join(const v1::JoinNodeRequest &request);
  v1::SignWorkloadsResponse sign_workloads(const std::string &node,
                                           const v1::SignWorkloadsRequest &request);
  v1::JoinNodeResponse renew_node(const std::string &node, const v1::RenewNodeRequest &request);

  v1::AddNodeResponse add_node(const v1::AddNodeRequest &request);
  v1::ListIdentitiesResponse list(const v1::ListIdentitiesRequest &request) const;
  // reason -> refusals since start.
  std::map<std::string, uint64_t> refusals() const;
  // Certificates issued since start, by kind: "node" (joins and renewals) and "workload" (SVIDs).
  std::map<std::string, uint64_t> issued() const;
  // Joins accepted since start, by method: "node_token" (one-time, per node) and "cluster_token".
  std::map<std::string, uint64_t> joins() const;

 private:
  [[noreturn]] void refuse(IdentityRefused::Code code, const std::string &reason,
                           const std::string &message);
  v1::JoinNodeResponse issue_node(const std::string &node, const std::string &csr_pem);
  void record(const std::string &node, const std::string &workload, const pki::Certificate &cert);

  pki::CertificateAuthority ca_;
  BootstrapTokens &tokens_;
  const State &state_;
  IdentityTtls ttls_;
  pki::Clock clock_;
  mutable std::mutex mu_;
  std::map<std::string, uint64_t> refusals_;
  std::map<std::string, uint64_t> issued_by_kind_;
  std::map<std::string, uint64_t> joins_;
  // (node, workload) -> the newest certificate issued; workload "" for the node's own.
  std::map<std::pair<std::string, std::string>, v1::IssuedCertificate> issued_;
};

}  // namespace sockmesh::controlplane
