// What the admin API shows, provided by the agent. Separate from the gRPC server so that only
// admin_server.cpp pays for gRPC's headers.
#pragma once

#include <chrono>

#include "sockmesh/v1/admin.pb.h"

namespace sockmesh::admin {

class AdminState {
 public:
  virtual ~AdminState() = default;
  // Called from gRPC threads: implementations synchronise.
  virtual v1::AgentStatus status() = 0;
  virtual v1::ListServicesResponse services() = 0;
  virtual v1::ListEndpointsResponse endpoints() = 0;
  // Blocks until the config generation differs from `generation` (true) or `limit` passes (false).
  virtual bool wait_for_change(uint64_t generation, std::chrono::milliseconds limit) = 0;
};

}  // namespace sockmesh::admin
