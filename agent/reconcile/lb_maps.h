// The kernel side of load balancing as the reconciler sees it: the service map and the backend
// sets. An interface so the reconciler's diffing is unit-tested against a fake; BpfLbMaps is the
// real one.
#pragma once

#include <cstdint>
#include <vector>

#include "reconcile/desired_state.h"
#include "sockmesh/lb_maps.h"

namespace sockmesh::reconcile {

struct KernelService {
  ServiceKey key;
  uint32_t slot = 0;
  sm_backend_set set{};
};

class LbMaps {
 public:
  virtual ~LbMaps() = default;
  // Everything the maps hold now (adopted at start: a restarted agent rewrites nothing that is
  // right).
  virtual std::vector<KernelService> read_all() = 0;
  // Install `set` as the whole backend set of `slot`, atomically replacing what was there.
  virtual void write_set(uint32_t slot, const sm_backend_set &set) = 0;
  // Make connects to `key` use `slot`.
  virtual void bind(const ServiceKey &key, uint32_t slot) = 0;
  virtual void unbind(const ServiceKey &key) = 0;
  virtual void clear_slot(uint32_t slot) = 0;
};

// Kernel layout of a desired service's backends (network byte order, cumulative weights).
sm_backend_set to_backend_set(const DesiredService &service);
bool same_set(const sm_backend_set &a, const sm_backend_set &b);

}  // namespace sockmesh::reconcile
