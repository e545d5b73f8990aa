// The Identity service (proto/sockmesh/v1/identity.proto) on the agents' TLS listener: the gRPC
// face of IdentityAuthority. The caller's node comes from its verified node certificate.
#pragma once

#include "identity_authority.h"
#include "sockmesh/v1/identity.grpc.pb.h"

namespace sockmesh::controlplane {

class IdentityService final : public v1::Identity::Service {
 public:
  explicit IdentityService(IdentityAuthority &authority) : authority_(authority) {}

  grpc::Status JoinNode(grpc::ServerContext *, const v1::JoinNodeRequest *request,
                        v1::JoinNodeResponse *response) override;
  grpc::Status SignWorkloads(grpc::ServerContext *context, const v1::SignWorkloadsRequest *request,
                             v1::SignWorkloadsResponse *response) override;
  grpc::Status RenewNode(grpc::ServerContext *context, const v1::RenewNodeRequest *request,
                         v1::JoinNodeResponse *response) override;

 private:
  // The caller's node, or UNAUTHENTICATED.
  grpc::Status caller(grpc::ServerContext *context, std::string *node) const;

  IdentityAuthority &authority_;
};

}  // namespace sockmesh::controlplane
