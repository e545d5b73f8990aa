// LbMaps on the real kernel maps sm_services and sm_backend_sets.
#pragma once

#include "reconcile/lb_maps.h"

namespace sockmesh::reconcile {

class BpfLbMaps : public LbMaps {
 public:
  // The fds stay owned by the caller (the loaded datapath).
  BpfLbMaps(int services_fd, int backend_sets_fd)
      : services_fd_(services_fd), sets_fd_(backend_sets_fd) {}

  std::vector<KernelService> read_all() override;
  void write_set(uint32_t slot, const sm_backend_set &set) override;
  void bind(const ServiceKey &key, uint32_t slot) override;
  void unbind(const ServiceKey &key) override;
  void clear_slot(uint32_t slot) override;

 private:
  int services_fd_;
  int sets_fd_;
};

}  // namespace sockmesh::reconcile
