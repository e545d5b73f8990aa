// LbMaps on the real kernel maps sm_services and sm_backend_sets.
#pragma once

#include "reconcile/lb_maps.h"
#include "sockmesh/common/unique_fd.h"

namespace sockmesh::reconcile {

class BpfLbMaps : public LbMaps {
 public:
  // The fds stay owned by the caller (the loaded datapath).
  BpfLbMaps(int services_fd, int backend_sets_fd)
      : services_fd_(services_fd), sets_fd_(backend_sets_fd) {}

  std::vector<KernelService> read_all() override;
  void write_slots(const std::vector<std::pair<uint32_t, const SlotImage*>>& writes) override;
  void bind(const ServiceKey& key, uint32_t slot) override;
  void unbind(const ServiceKey& key) override;
  void clear_slots(const std::vector<uint32_t>& slots) override;

 private:
  // Swaps inner maps into slots: one batch (one kernel wait for readers) where the kernel
  // supports batch updates of map-in-map, else one update per slot.
  void install(const std::vector<uint32_t>& slots, const std::vector<int>& inner_fds);

  int services_fd_;
  int sets_fd_;
  UniqueFd empty_;  // the inner map cleared slots point to (no backends)
};

}  // namespace sockmesh::reconcile
