// Shared by tests that run meshcp's servers in process: its CA and bootstrap tokens, and node
// credentials obtained the way a node gets them (a token, a CSR for a key made here, JoinNode).
#pragma once

#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>

#include <memory>
#include <string>

#include "bootstrap_tokens.h"
#include "identity_authority.h"
#include "sockmesh/pki/pki.h"

namespace sockmesh::controlplane::testing {

struct NodeCredentials {
  std::string bundle_pem, key_pem, certificate_pem;
};

class TestIdentity {
 public:
  TestIdentity(const std::string &dir, const State &state, IdentityTtls ttls = {},
               pki::Clock clock = pki::system_clock())
      : TestIdentity(dir, state, pki::CertificateAuthority::create("cluster.local", clock), "",
                     ttls, clock) {}
  // A given CA (for "cluster.local") and cluster bootstrap token ("" for none).
  TestIdentity(const std::string &dir, const State &state, pki::CertificateAuthority ca,
               const std::string &cluster_token, IdentityTtls ttls = {},
               pki::Clock clock = pki::system_clock())
      : tokens_(dir + "/bootstrap-tokens", clock, cluster_token),
        authority_(std::move(ca), tokens_, state, ttls, clock) {}

  IdentityAuthority &authority() { return authority_; }

  NodeCredentials join(const std::string &node) {
    v1::AddNodeRequest add;
    add.set_node(node);
    const auto key = pki::PrivateKey::generate();
    v1::JoinNodeRequest join;
    join.set_node(node);
    join.set_token(authority_.add_node(add).token());
    join.set_csr_pem(pki::make_csr(key, pki::SpiffeId::node("cluster.local", node)));
    const auto joined = authority_.join(join);
    return {joined.trust_bundle_pem(), key.pem(), joined.certificate_pem()};
  }

  // A channel to meshcp's agent listener as `node` (empty credentials: no client certificate).
  static std::shared_ptr<grpc::Channel> channel(const std::string &target,
                                                const NodeCredentials &node,
                                                grpc::ChannelArguments args = {}) {
    grpc::SslCredentialsOptions tls;
    tls.pem_root_certs = node.bundle_pem;
    tls.pem_private_key = node.key_pem;
    tls.pem_cert_chain = node.certificate_pem;
    args.SetSslTargetNameOverride("meshcp");
    return grpc::CreateCustomChannel(target, grpc::SslCredentials(tls), args);
  }

 private:
  BootstrapTokens tokens_;
  IdentityAuthority authority_;
};

}  // namespace sockmesh::controlplane::testing
