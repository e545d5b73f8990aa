// Brings the kernel's load-balancing maps to a desired state with the fewest writes: a service
// whose backend set is unchanged is not touched; a changed one switches in one atomic write.
#pragma once

#include <cstdint>
#include <map>
#include <set>

#include "reconcile/lb_maps.h"

namespace sockmesh::reconcile {

struct ApplyStats {
  uint32_t added = 0;
  uint32_t updated = 0;
  uint32_t removed = 0;
  uint32_t unchanged = 0;
};

class Reconciler {
 public:
  // Adopts what the maps already hold.
  explicit Reconciler(LbMaps &maps);

  // Throws std::runtime_error when a map write fails; what was written before stays written and
  // is known to the reconciler, so the next apply() continues from the true kernel state.
  ApplyStats apply(const DesiredState &desired);

  // Slot of a VIP port as installed, or -1.
  int64_t slot_of(const ServiceKey &key) const;
  size_t services() const { return installed_.size(); }

 private:
  struct Installed {
    uint32_t slot;
    sm_backend_set set;
  };
  uint32_t allocate_slot();

  LbMaps &maps_;
  std::map<ServiceKey, Installed> installed_;
  std::set<uint32_t> used_slots_;
  uint32_t next_slot_ = 0;
};

}  // namespace sockmesh::reconcile
