#include "reconcile/reconciler.h"

#include <stdexcept>
#include <vector>

namespace sockmesh::reconcile {

Reconciler::Reconciler(LbMaps &maps) : maps_(maps) {
  for (const auto &kernel : maps_.read_all()) {
    installed_[kernel.key] = {kernel.slot, kernel.set};
    used_slots_.insert(kernel.slot);
    next_slot_ = std::max(next_slot_, kernel.slot + 1);
  }
}

// Slots are handed out round-robin rather than lowest-free, so a slot released by a removed
// service is not reused at once while a connect() may still be reading it.
uint32_t Reconciler::allocate_slot() {
  for (uint32_t i = 0; i < SM_MAX_SERVICES; i++) {
    uint32_t slot = (next_slot_ + i) % SM_MAX_SERVICES;
    if (!used_slots_.count(slot)) {
      next_slot_ = (slot + 1) % SM_MAX_SERVICES;
      used_slots_.insert(slot);
      return slot;
    }
  }
  throw std::runtime_error("no free backend-set slot: more than " +
                           std::to_string(SM_MAX_SERVICES) + " service ports");
}

ApplyStats Reconciler::apply(const DesiredState &desired) {
  ApplyStats stats;

  // Removals first, so their slots are free for additions.
  std::vector<ServiceKey> gone;
  for (const auto &[key, installed] : installed_)
    if (!desired.count(key)) gone.push_back(key);
  for (const auto &key : gone) {
    uint32_t slot = installed_.at(key).slot;
    maps_.unbind(key);  // new connects pass through from here on
    installed_.erase(key);
    maps_.clear_slot(slot);
    used_slots_.erase(slot);
    stats.removed++;
  }

  for (const auto &[key, service] : desired) {
    sm_backend_set set = to_backend_set(service);
    auto it = installed_.find(key);
    if (it != installed_.end()) {
      if (same_set(it->second.set, set)) {
        stats.unchanged++;
        continue;
      }
      maps_.write_set(it->second.slot, set);  // the one atomic switch of this service
      it->second.set = set;
      stats.updated++;
      continue;
    }
    uint32_t slot = allocate_slot();
    try {
      maps_.write_set(slot, set);  // the set exists before any connect can find the VIP
      maps_.bind(key, slot);
    } catch (...) {
      try {
        maps_.clear_slot(slot);
      } catch (...) {
        // the slot stays unbound either way; reported through the first error
      }
      used_slots_.erase(slot);
      throw;
    }
    installed_[key] = {slot, set};
    stats.added++;
  }
  return stats;
}

int64_t Reconciler::slot_of(const ServiceKey &key) const {
  auto it = installed_.find(key);
  return it == installed_.end() ? -1 : int64_t(it->second.slot);
}

}  // namespace sockmesh::reconcile
