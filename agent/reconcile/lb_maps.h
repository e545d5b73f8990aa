// The kernel side of load balancing as the reconciler sees it: the service map and the slots
// holding each service's backends. An interface so the reconciler's diffing is unit-tested against
// a fake; BpfLbMaps is the real one.
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include "reconcile/desired_state.h"
#include "sockmesh/lb_maps.h"

namespace sockmesh::reconcile {

// Everything one slot holds: the backend set and, for Maglev, the table (one byte per entry).
struct SlotImage {
  sm_backend_set set{};
  std::vector<uint8_t> maglev;
  bool operator==(const SlotImage& other) const;
};

struct KernelService {
  ServiceKey key;
  uint32_t slot = 0;
  SlotImage image;
};

class LbMaps {
 public:
  virtual ~LbMaps() = default;
  // Everything the maps hold now (adopted at start: a restarted agent rewrites nothing that is right).
  virtual std::vector<KernelService> read_all() = 0;
  // Installs each image as the whole content of its slot, each slot switching atomically. One
  // call for many slots: the kernel's wait for readers is paid once per call, not per slot.
  virtual void write_slots(const std::vector<std::pair<uint32_t, const SlotImage*>>& writes) = 0;
  // Make connects to `key` use `slot`.
  virtual void bind(const ServiceKey& key, uint32_t slot) = 0;
  virtual void unbind(const ServiceKey& key) = 0;
  // Empties slots no service uses any more.
  virtual void clear_slots(const std::vector<uint32_t>& slots) = 0;
};

// Kernel layout of a desired service (network byte order, cumulative weights, Maglev table).
// Throws std::invalid_argument when it does not fit the kernel's limits.
SlotImage to_slot_image(const DesiredService& service);

}  // namespace sockmesh::reconcile
