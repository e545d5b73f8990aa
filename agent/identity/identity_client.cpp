#include "identity/identity_client.h"

#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>

#include <chrono>
#include <stdexcept>

#include "identity/channel_credentials.h"
#include "sockmesh/v1/identity.grpc.pb.h"

namespace sockmesh::identity {

struct IdentityClient::Impl {
  std::unique_ptr<v1::Identity::Stub> stub;
};

IdentityClient::IdentityClient(const std::string &controlplane, const ChannelSecurity &security)
    : impl_(std::make_unique<Impl>()) {
  impl_->stub = v1::Identity::NewStub(secure_channel(controlplane, security));
}

IdentityClient::~IdentityClient() = default;

namespace {

template <typename Request, typename Response, typename Method>
Response call(v1::Identity::Stub &stub, Method method, const Request &request, const char *name) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  Response response;
  const grpc::Status status = (stub.*method)(&context, request, &response);
  if (!status.ok())
    throw std::runtime_error(std::string("meshcp refused ") + name + ": " + status.error_message());
  return response;
}

}  // namespace

v1::JoinNodeResponse IdentityClient::join(const v1::JoinNodeRequest &request) {
  return call<v1::JoinNodeRequest, v1::JoinNodeResponse>(*impl_->stub, &v1::Identity::Stub::JoinNode,
                                                         request, "JoinNode");
}

v1::SignWorkloadsResponse IdentityClient::sign(const v1::SignWorkloadsRequest &request) {
  return call<v1::SignWorkloadsRequest, v1::SignWorkloadsResponse>(
      *impl_->stub, &v1::Identity::Stub::SignWorkloads, request, "SignWorkloads");
}

v1::JoinNodeResponse IdentityClient::renew_node(const v1::RenewNodeRequest &request) {
  return call<v1::RenewNodeRequest, v1::JoinNodeResponse>(*impl_->stub, &v1::Identity::Stub::RenewNode,
                                                          request, "RenewNode");
}

}  // namespace sockmesh::identity
