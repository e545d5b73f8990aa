// What resilience_bench reads and writes in a node's pinned BPF maps (/sys/fs/bpf/sockmesh/<node>/,
// layouts in bpf/include/sockmesh/): a VIP's backend set, the per-service and per-backend
// resilience state, and the two entries meshd in file mode does not write (a client workload's
// number and a fault source). Everything through libbpf's syscall wrappers, no bpftool.
#pragma once

#include <netinet/in.h>

#include <cstdint>
#include <string>
#include <vector>

#include "sockmesh/resilience.h"

namespace sockmesh::bench {

class KernelMaps {
 public:
  explicit KernelMaps(const std::string &pin_dir);  // throws naming the pin it cannot open
  ~KernelMaps();
  KernelMaps(const KernelMaps &) = delete;
  KernelMaps &operator=(const KernelMaps &) = delete;

  // The backend set (element 0 of the slot's inner map) of the TCP VIP addr:port. Throws when the
  // VIP is not in sm_services.
  sm_backend_set backend_set(in_addr vip, uint16_t port) const;
  // Writes it back into the same inner map (not a swap: the agent keeps the slot and its inner map,
  // and rewrites neither while the service is unchanged).
  void write_backend_set(in_addr vip, uint16_t port, const sm_backend_set &set);

  // All-zero when the entry is missing (and *found false).
  sm_service_state service_state(uint64_t service, bool *found = nullptr) const;
  sm_backend_state backend_state(uint64_t service, in_addr addr, uint16_t port,
                                 bool *found = nullptr) const;

  // Makes the cgroup a workload with number `id` to the kernel (sm_workloads, flags 0: not
  // captured), as the agent in control-plane mode does for a pod.
  void add_workload(const std::string &cgroup_dir, uint32_t id);
  // A scoped fault of `service` applies to workload `id` (sm_fault_sources).
  void add_fault_source(uint64_t service, uint32_t id);
  // Whether workload `id` has its own rate bucket for `service` (sm_rate_sources): the kernel took
  // the per-source path for its connects.
  bool has_rate_source(uint64_t service, uint32_t id) const;

 private:
  int inner_fd(in_addr vip, uint16_t port) const;  // the caller closes it
  void close_all();

  std::string pin_dir_;
  int services_ = -1, sets_ = -1, service_states_ = -1, backend_states_ = -1, workloads_ = -1,
      fault_sources_ = -1, rate_sources_ = -1;
};

}  // namespace sockmesh::bench
