// The resilience report (admin.proto GetResilience, `meshctl describe service`, the
// sockmesh_service_* and sockmesh_backend_* metrics): per tracked service its settings as the
// agent applies them and the kernel's state from sm_service_states and sm_backend_states
// (bpf/include/sockmesh/resilience.h). Selecting what to report (from the desired state) is apart
// from reading the maps, so that both are tested without an agent: the reading on maps the test
// creates.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "reconcile/desired_state.h"
#include "sockmesh/v1/admin.pb.h"

namespace sockmesh::telemetry {

// One tracked service: its settings and each of its backends once.
struct ResilienceService {
  std::string service;  // "namespace/name"
  uint32_t policy = 0;  // enum sm_lb_policy
  reconcile::DesiredResilience settings;
  std::vector<reconcile::DesiredBackend> backends;
};

struct ResilienceSelection {
  std::vector<ResilienceService> tracked;  // sorted by namespace, then name
  std::vector<std::string> untracked;      // selected services with no TCP VIP, sorted
};

// The services of `desired` that the filter selects: every one when `name` is empty, else the
// services called `name` in namespace `ns` (any namespace when `ns` is empty). A service's VIPs of
// one family share one set of backends and so one state entry per backend: each backend is listed
// once, IPv4 first. Throws std::out_of_range when `name` selects no service.
ResilienceSelection select_resilience(const reconcile::DesiredState &desired, const std::string &ns,
                                      const std::string &name);

// The kernel's clock (CLOCK_MONOTONIC: what bpf_ktime_get_ns reads, and so ejected_until) and the
// wall clock, read back to back: their difference turns the kernel's times into unix times.
struct ClockPair {
  uint64_t monotonic_ns = 0;
  int64_t realtime_ns = 0;
};
ClockPair read_clocks();

// Reads each selected service's and backend's state entry from the two maps. A missing entry is
// reported as not tracked (no counts), not as zeros. Throws std::runtime_error when a map cannot
// be read.
v1::ResilienceReport resilience_report(const ResilienceSelection &selection, int service_states_fd,
                                       int backend_states_fd, const ClockPair &now);

}  // namespace sockmesh::telemetry
