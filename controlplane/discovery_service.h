// The Discovery service (proto/sockmesh/v1/discovery.proto): one push stream per agent.
#pragma once

#include "sockmesh/v1/discovery.grpc.pb.h"
#include "state.h"

namespace sockmesh::controlplane {

class DiscoveryService final : public v1::Discovery::CallbackService {
 public:
  // Streams must come from a node certificate of trust_domain naming the stream's node.
  DiscoveryService(State &state, std::string trust_domain)
      : state_(state), trust_domain_(std::move(trust_domain)) {}
  grpc::ServerBidiReactor<v1::DiscoveryRequest, v1::DiscoveryResponse> *Stream(
      grpc::CallbackServerContext *context) override;

 private:
  State &state_;
  std::string trust_domain_;
};

}  // namespace sockmesh::controlplane
