// Brings the kernel's load-balancing maps to a desired state with the fewest writes: a service
// whose slot content is unchanged is not touched; a changed one switches in one atomic write; all
// slot writes of one apply() go to the kernel in one batch.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <vector>

#include "reconcile/lb_maps.h"
#include "reconcile/resilience_states.h"

namespace sockmesh::reconcile {

struct ApplyStats {
  uint32_t added = 0;
  uint32_t updated = 0;
  uint32_t removed = 0;
  uint32_t unchanged = 0;
};

class Reconciler {
 public:
  // Adopts what the maps already hold. With `states`, keeps the resilience state entries in step
  // with the installed sets (created before a set names them, released once none does).
  explicit Reconciler(LbMaps &maps, ResilienceStates *states = nullptr);

  // Throws when a desired service does not fit the kernel (std::invalid_argument, before any
  // write) or a map write fails (std::runtime_error); after a failed write the reconciler
  // rewrites every slot it is unsure of at the next apply().
  ApplyStats apply(const DesiredState &desired);

  // The same for part of the state: the services in `changed` are added or replaced, those in
  // `removed` (and not in `changed`) removed; every other installed service is left as it is, so
  // the cost is that of the change, not of the whole state.
  ApplyStats update(const DesiredState &changed, const std::vector<ServiceKey> &removed);

  // Slot of a VIP port as installed, or -1.
  int64_t slot_of(const ServiceKey &key) const;
  size_t services() const { return installed_.size(); }
  // Map operations made so far: slots written or cleared, VIPs bound or unbound.
  uint64_t map_writes() const { return map_writes_; }

 private:
  struct Installed {
    uint32_t slot;
    SlotImage image;
    bool known = true;  // false after a failed write: the kernel may hold either image
  };
  uint32_t allocate_slot();
  ApplyStats commit(std::map<ServiceKey, SlotImage> images,
                    const std::vector<ServiceKey> &removals);

  LbMaps &maps_;
  ResilienceStates *states_ = nullptr;
  StateRefs refs_;  // state keys of the installed images
  std::map<ServiceKey, Installed> installed_;
  std::set<uint32_t> used_slots_;
  uint32_t next_slot_ = 0;
  uint64_t map_writes_ = 0;
};

}  // namespace sockmesh::reconcile
