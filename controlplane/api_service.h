// The ControlPlane service (proto/sockmesh/v1/controlplane.proto) for meshctl, on the root-only
// API socket.
#pragma once

#include "sockmesh/v1/controlplane.grpc.pb.h"
#include "state.h"

namespace sockmesh::controlplane {

class ApiService final : public v1::ControlPlane::Service {
 public:
  explicit ApiService(State &state) : state_(state) {}

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
    return grpc::Status::OK;
  }

 private:
  State &state_;
};

}  // namespace sockmesh::controlplane
