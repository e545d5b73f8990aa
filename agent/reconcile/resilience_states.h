// The state entries of resilience (bpf/include/sockmesh/resilience.h) in step with the installed
// backend sets: the kernel only looks entries up, so every tracked service and each of its
// backends must have one before a set names them, and an entry goes once no set names it and no
// live connection is charged to it (docs/resilience.md, "State entries").
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "reconcile/lb_maps.h"
#include "sockmesh/resilience.h"

namespace sockmesh::reconcile {

// What one slot image asks the state maps for.
struct StateKeys {
  std::vector<uint64_t> services;
  std::vector<sm_backend_key> backends;
};

// Every key `image` needs (nothing for an untracked set: rs.service 0).
StateKeys state_keys_of(const SlotImage &image);

// The kernel side, an interface so the bookkeeping is unit-tested against a fake.
class ResilienceStates {
 public:
  virtual ~ResilienceStates() = default;
  // Creates the entries that do not exist yet (zeroed, with a fresh generation); existing ones
  // keep their counts.
  virtual void create(const StateKeys &keys) = 0;
  // These are no longer needed: removed now when nothing is charged to them, later otherwise.
  virtual void release(const StateKeys &keys) = 0;
  // At start: every entry not in `keep` is released.
  virtual void keep_only(const StateKeys &keep) = 0;
};

// Reference counts of state keys across installed images: several VIP ports of one service share
// its service entry and its backends' entries, which live while any of them does.
class StateRefs {
 public:
  // The image's keys nothing needs yet (to create before the image is written).
  StateKeys missing(const SlotImage &image) const;
  // Adds the image's keys; returns those it is the first to need.
  StateKeys add(const SlotImage &image);
  // Removes them; returns those nothing needs any more.
  StateKeys remove(const SlotImage &image);
  StateKeys all() const;

 private:
  std::map<uint64_t, uint32_t> services_;
  std::map<std::string, uint32_t> backends_;  // key: the bytes of sm_backend_key
};

}  // namespace sockmesh::reconcile
