#include "identity_service.h"

#include "agent_tls.h"

namespace sockmesh::controlplane {
namespace {

grpc::Status status_of(const IdentityRefused &e) {
  using Code = IdentityRefused::Code;
  switch (e.code()) {
    case Code::kInvalidArgument: return {grpc::StatusCode::INVALID_ARGUMENT, e.what()};
    case Code::kUnauthenticated: return {grpc::StatusCode::UNAUTHENTICATED, e.what()};
    case Code::kPermissionDenied: return {grpc::StatusCode::PERMISSION_DENIED, e.what()};
    case Code::kNotFound: return {grpc::StatusCode::NOT_FOUND, e.what()};
  }
  return {grpc::StatusCode::INTERNAL, e.what()};
}

// Runs fn; a refusal becomes its status, anything else INTERNAL with its text.
template <typename Fn>
grpc::Status answer(Fn &&fn) {
  try {
    fn();
    return grpc::Status::OK;
  } catch (const IdentityRefused &e) {
    return status_of(e);
  } catch (const std::exception &e) {
    return {grpc::StatusCode::INTERNAL, e.what()};
  }
}

}  // namespace

grpc::Status IdentityService::caller(grpc::ServerContext *context, std::string *node) const {
  const auto auth = context->auth_context();
  const auto peer = auth ? peer_node(*auth, authority_.ca().trust_domain()) : std::nullopt;
  if (!peer)
    return {grpc::StatusCode::UNAUTHENTICATED,
            "this call needs a node certificate (join first with meshd --join-token)"};
  *node = *peer;
  return grpc::Status::OK;
}

grpc::Status IdentityService::JoinNode(grpc::ServerContext *, const v1::JoinNodeRequest *request,
                                       v1::JoinNodeResponse *response) {
  return answer([&] { *response = authority_.join(*request); });
}

grpc::Status IdentityService::SignWorkloads(grpc::ServerContext *context,
                                            const v1::SignWorkloadsRequest *request,
                                            v1::SignWorkloadsResponse *response) {
  std::string node;
  if (auto s = caller(context, &node); !s.ok()) return s;
  return answer([&] { *response = authority_.sign_workloads(node, *request); });
}

grpc::Status IdentityService::RenewNode(grpc::ServerContext *context, const v1::RenewNodeRequest *request,
                                        v1::JoinNodeResponse *response) {
  std::string node;
  if (auto s = caller(context, &node); !s.ok()) return s;
  return answer([&] { *response = authority_.renew_node(node, *request); });
}

}  // namespace sockmesh::controlplane
