#include "reconcile/reconciler.h"

#include <stdexcept>
#include <vector>

namespace sockmesh::reconcile {

Reconciler::Reconciler(LbMaps &maps, ResilienceStates *states) : maps_(maps), states_(states) {
  for (auto &kernel : maps_.read_all()) {
    used_slots_.insert(kernel.slot);
    next_slot_ = std::max(next_slot_, kernel.slot + 1);
    refs_.add(kernel.image);
    installed_[kernel.key] = {kernel.slot, std::move(kernel.image), true};
  }
  // An earlier agent's entries: those its sets still name stay with their counts.
  if (states_) states_->keep_only(refs_.all());
}

namespace {

void append(StateKeys &to, const StateKeys &from) {
  to.services.insert(to.services.end(), from.services.begin(), from.services.end());
  to.backends.insert(to.backends.end(), from.backends.begin(), from.backends.end());
}

}  // namespace

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
  // Everything is translated to kernel images first: a service that does not fit fails the whole
  // apply before anything is written.
  std::map<ServiceKey, SlotImage> images;
  for (const auto &[key, service] : desired) images[key] = to_slot_image(service);
  std::vector<ServiceKey> removals;
  for (const auto &[key, installed] : installed_)
    if (!desired.count(key)) removals.push_back(key);
  return commit(std::move(images), removals);
}

ApplyStats Reconciler::update(const DesiredState &changed, const std::vector<ServiceKey> &removed) {
  std::map<ServiceKey, SlotImage> images;
  for (const auto &[key, service] : changed) images[key] = to_slot_image(service);
  std::vector<ServiceKey> removals;
  for (const auto &key : removed)
    if (!changed.count(key) && installed_.count(key)) removals.push_back(key);
  return commit(std::move(images), removals);
}

ApplyStats Reconciler::commit(std::map<ServiceKey, SlotImage> images,
                              const std::vector<ServiceKey> &removals) {
  ApplyStats stats;

  // Resilience state entries exist before any set names them; the images being replaced or
  // removed give theirs up only after the writes (a key both sides share is never released).
  StateKeys to_create;
  std::vector<SlotImage> replaced;
  if (states_) {
    for (const auto &[key, image] : images) {
      auto it = installed_.find(key);
      if (it != installed_.end() && it->second.known && it->second.image == image) continue;
      append(to_create, refs_.missing(image));
    }
    states_->create(to_create);
  }

  // Removals: unbind first (new connects stop finding the service), then empty the slots.
  std::vector<uint32_t> cleared;
  for (const auto &key : removals) {
    auto it = installed_.find(key);
    if (it == installed_.end()) continue;
    maps_.unbind(it->first);
    map_writes_++;
    cleared.push_back(it->second.slot);
    if (states_) replaced.push_back(it->second.image);
    installed_.erase(it);
    stats.removed++;
  }
  if (!cleared.empty()) {
    maps_.clear_slots(cleared);
    map_writes_ += cleared.size();
    for (uint32_t slot : cleared) used_slots_.erase(slot);
  }

  std::vector<std::pair<uint32_t, const SlotImage *>> writes;
  std::vector<std::pair<ServiceKey, uint32_t>> binds;
  for (const auto &[key, image] : images) {
    auto it = installed_.find(key);
    if (it == installed_.end()) {
      uint32_t slot = allocate_slot();
      writes.emplace_back(slot, &image);
      binds.emplace_back(key, slot);
    } else if (it->second.known && it->second.image == image) {
      stats.unchanged++;
    } else {
      writes.emplace_back(it->second.slot, &image);
      stats.updated++;
    }
  }

  try {
    if (!writes.empty()) maps_.write_slots(writes);  // the sets exist before any VIP names them
    map_writes_ += writes.size();
  } catch (...) {
    for (const auto &[key, slot] : binds) used_slots_.erase(slot);
    for (auto &[key, installed] : installed_)
      if (images.count(key)) installed.known = false;
    throw;
  }
  for (auto &[key, image] : images) {
    auto it = installed_.find(key);
    if (it == installed_.end()) continue;  // bound below
    if (!it->second.known || !(it->second.image == image)) {
      if (states_) {
        refs_.add(image);
        replaced.push_back(std::move(it->second.image));
      }
      it->second = {it->second.slot, std::move(image), true};
    }
  }

  for (size_t i = 0; i < binds.size(); i++) {
    const auto &[key, slot] = binds[i];
    try {
      maps_.bind(key, slot);
      map_writes_++;
    } catch (...) {
      for (size_t j = i; j < binds.size(); j++) used_slots_.erase(binds[j].second);
      throw;
    }
    if (states_) refs_.add(images.at(key));
    installed_[key] = {slot, std::move(images.at(key)), true};
    stats.added++;
  }
  if (states_) {
    StateKeys released;
    for (const auto &image : replaced) append(released, refs_.remove(image));
    states_->release(released);
  }
  return stats;
}

int64_t Reconciler::slot_of(const ServiceKey &key) const {
  auto it = installed_.find(key);
  return it == installed_.end() ? -1 : int64_t(it->second.slot);
}

}  // namespace sockmesh::reconcile
