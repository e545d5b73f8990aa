// The ControlPlane service (proto/sockmesh/v1/controlplane.proto) for meshctl, on the root-only
// API socket.
#pragma once

#include <stdexcept>

#include "identity_authority.h"
#include "sockmesh/v1/controlplane.grpc.pb.h"
#include "state.h"

namespace sockmesh::controlplane {

class ApiService final : public v1::ControlPlane::Service {
 public:
  ApiService(State &state, IdentityAuthority &authority) : state_(state), authority_(authority) {}

  grpc::Status Apply(grpc::ServerContext *, const v1::ApplyRequest *request,
                     v1::ApplyResponse *response) override {
    return state_.apply(*request, response);
  }
  grpc::Status Delete(grpc::ServerContext *, const v1::DeleteRequest *request,
                      v1::ApplyResponse *response) override {
    return state_.remove(*request, response);
  }
  grpc::Status List(grpc::ServerContext *, const v1::ListRequest *request,
                    v1::ListResponse *response) override {
    return state_.list(request->kind(), response);
  }
  grpc::Status GetStatus(grpc::ServerContext *, const v1::ControlPlaneStatusRequest *,
                         v1::ControlPlaneStatus *response) override {
    state_.status(response);
    for (const auto &[reason, count] : authority_.refusals())
      (*response->mutable_identity_refusals())[reason] = count;
    return grpc::Status::OK;
  }
  grpc::Status AddNode(grpc::ServerContext *, const v1::AddNodeRequest *request,
                       v1::AddNodeResponse *response) override {
    try {
      *response = authority_.add_node(*request);
      return grpc::Status::OK;
    } catch (const std::invalid_argument &e) {
      return {grpc::StatusCode::INVALID_ARGUMENT, e.what()};
    } catch (const std::exception &e) {
      return {grpc::StatusCode::INTERNAL, e.what()};
    }
  }
  grpc::Status ListIdentities(grpc::ServerContext *, const v1::ListIdentitiesRequest *request,
                              v1::ListIdentitiesResponse *response) override {
    *response = authority_.list(*request);
    return grpc::Status::OK;
  }

 private:
  State &state_;
  IdentityAuthority &authority_;
};

}  // namespace sockmesh::controlplane
