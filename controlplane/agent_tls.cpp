#include "agent_tls.h"

#include <grpcpp/security/server_credentials.h>

namespace sockmesh::controlplane {

std::shared_ptr<grpc::ServerCredentials> agent_server_credentials(const IdentityAuthority &authority) {
  const auto &ca = authority.ca();
  const auto key = pki::PrivateKey::generate();
  const auto id = pki::SpiffeId{ca.trust_domain(), "/sockmesh/controlplane"};
  pki::IssueOptions options;
  options.ttl = std::chrono::hours(24 * 365);
  options.dns_names = {kControlPlaneTlsName};
  const std::string chain = ca.issue(pki::parse_csr(pki::make_csr(key, id)), id, options,
                                     std::chrono::system_clock::now());
  // Request a client certificate and verify it when given: JoinNode is called without one, every
  // other call checks peer_node().
  grpc::SslServerCredentialsOptions tls(GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_AND_VERIFY);
  tls.pem_root_certs = ca.bundle_pem();
  // The CA goes with the chain so that a joining node can pin it (meshd --ca-cert-hash).
  tls.pem_key_cert_pairs.push_back({key.pem(), chain + ca.certificate().pem()});
  return grpc::SslServerCredentials(tls);
}

std::optional<std::string> peer_node(const grpc::AuthContext &auth, const std::string &trust_domain) {
  const auto pems = auth.FindPropertyValues("x509_pem_cert");
  if (pems.empty()) return std::nullopt;
  try {
    const auto cert = pki::Certificate::from_pem(std::string(pems.front().data(), pems.front().size()));
    const auto id = cert.spiffe_id();
    if (!id || id->trust_domain != trust_domain || id->node_name().empty()) return std::nullopt;
    return id->node_name();
  } catch (const pki::PkiError &) {
    return std::nullopt;
  }
}

}  // namespace sockmesh::controlplane
