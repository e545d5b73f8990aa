// The Discovery service (proto/sockmesh/v1/discovery.proto): one push stream per agent.
#pragma once

#include "sockmesh/v1/discovery.grpc.pb.h"
#include "state.h"

namespace sockmesh::controlplane {

class DiscoveryService final : public v1::Discovery::CallbackService {
 public:
  explicit DiscoveryService(State &state) : state_(state) {}
  grpc::ServerBidiReactor<v1::DiscoveryRequest, v1::DiscoveryResponse> *Stream(
      grpc::CallbackServerContext *context) override;

 private:
  State &state_;
};

}  // namespace sockmesh::controlplane
