// What the admin API shows, provided by the agent. Separate from the gRPC server so that only
// admin_server.cpp pays for gRPC's headers.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "sockmesh/v1/admin.pb.h"

namespace sockmesh::admin {

class AdminState {
 public:
  virtual ~AdminState() = default;
  // Called from gRPC threads: implementations synchronise.
  virtual v1::AgentStatus status() = 0;
  virtual v1::ListServicesResponse services() = 0;
  virtual v1::ListEndpointsResponse endpoints() = 0;
  // Traffic per service, backend and workload pair (kernel counters) and the access log's state.
  virtual v1::TrafficReport traffic() = 0;
  // The node's BPF maps with fill level and memory.
  virtual v1::ListMapsResponse maps() = 0;
  // One map's entries, decoded. Throws std::out_of_range for a map that is not the node's.
  virtual v1::DumpMapResponse dump_map(const std::string &name, uint32_t limit) = 0;
  // The same-node fast path: on or off and why, per workload, the counters.
  virtual v1::FastPathReport fast_path() = 0;
  // Resilience at connect(): every tracked service when `name` is empty, else the services called
  // `name` in `ns` (any namespace when empty). Throws std::out_of_range when `name` names none.
  virtual v1::ResilienceReport resilience(const std::string &ns, const std::string &name) = 0;
  // Blocks until the config generation differs from `generation` (true) or `limit` passes (false).
  virtual bool wait_for_change(uint64_t generation, std::chrono::milliseconds limit) = 0;
};

}  // namespace sockmesh::admin
