#include "kernel_maps.h"

#include <bpf/bpf.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "sockmesh/capture_maps.h"
#include "sockmesh/lb_maps.h"

namespace sockmesh::bench {
namespace {

[[noreturn]] void fail(const std::string &what, int err) {
  throw std::runtime_error(what + ": " + std::strerror(err));
}

int open_pin(const std::string &pin_dir, const char *name) {
  std::string path = pin_dir + "/" + name;
  int fd = bpf_obj_get(path.c_str());
  if (fd < 0) fail("open pinned map " + path, errno);
  return fd;
}

sm_service_key vip_key(in_addr vip, uint16_t port) {
  sm_service_key key{};
  key.addr[0] = vip.s_addr;
  key.port = htons(port);
  key.proto = IPPROTO_TCP;
  key.family = SM_AF_INET;
  return key;
}

std::string vip_text(in_addr vip, uint16_t port) {
  const auto *b = reinterpret_cast<const uint8_t *>(&vip.s_addr);
  return fmt::format("{}.{}.{}.{}:{}", b[0], b[1], b[2], b[3], port);
}

}  // namespace

KernelMaps::KernelMaps(const std::string &pin_dir) : pin_dir_(pin_dir) {
  try {
    services_ = open_pin(pin_dir, "sm_services");
    sets_ = open_pin(pin_dir, "sm_backend_sets");
    service_states_ = open_pin(pin_dir, "sm_service_states");
    backend_states_ = open_pin(pin_dir, "sm_backend_states");
    workloads_ = open_pin(pin_dir, "sm_workloads");
    fault_sources_ = open_pin(pin_dir, "sm_fault_sources");
    rate_sources_ = open_pin(pin_dir, "sm_rate_sources");
  } catch (...) {
    close_all();  // no destructor runs after a constructor throws
    throw;
  }
}

KernelMaps::~KernelMaps() {
  close_all();
}

void KernelMaps::close_all() {
  for (int *fd : {&services_, &sets_, &service_states_, &backend_states_, &workloads_,
                  &fault_sources_, &rate_sources_})
    if (*fd >= 0) {
      ::close(*fd);
      *fd = -1;
    }
}

int KernelMaps::inner_fd(in_addr vip, uint16_t port) const {
  auto key = vip_key(vip, port);
  sm_service_value value{};
  if (bpf_map_lookup_elem(services_, &key, &value) != 0)
    fail("VIP " + vip_text(vip, port) + " in sm_services", errno);
  // From user space an ARRAY_OF_MAPS lookup answers the inner map's id.
  uint32_t id = 0;
  if (bpf_map_lookup_elem(sets_, &value.set_slot, &id) != 0)
    fail(fmt::format("slot {} of sm_backend_sets", value.set_slot), errno);
  int fd = bpf_map_get_fd_by_id(id);
  if (fd < 0) fail(fmt::format("inner map {} of slot {}", id, value.set_slot), errno);
  return fd;
}

sm_backend_set KernelMaps::backend_set(in_addr vip, uint16_t port) const {
  int fd = inner_fd(vip, port);
  uint32_t zero = 0;
  sm_backend_set set{};
  int rc = bpf_map_lookup_elem(fd, &zero, &set);
  int err = errno;
  ::close(fd);
  if (rc != 0) fail("backend set of " + vip_text(vip, port), err);
  return set;
}

void KernelMaps::write_backend_set(in_addr vip, uint16_t port, const sm_backend_set &set) {
  int fd = inner_fd(vip, port);
  uint32_t zero = 0;
  int rc = bpf_map_update_elem(fd, &zero, &set, BPF_EXIST);
  int err = errno;
  ::close(fd);
  if (rc != 0) fail("write the backend set of " + vip_text(vip, port), err);
}

sm_service_state KernelMaps::service_state(uint64_t service, bool *found) const {
  sm_service_state st{};
  bool ok = bpf_map_lookup_elem(service_states_, &service, &st) == 0;
  if (found) *found = ok;
  return ok ? st : sm_service_state{};
}

sm_backend_state KernelMaps::backend_state(uint64_t service, in_addr addr, uint16_t port,
                                           bool *found) const {
  sm_backend_key key{};
  key.service = service;
  key.addr[0] = addr.s_addr;
  key.port = htons(port);
  key.family = SM_AF_INET;
  sm_backend_state st{};
  bool ok = bpf_map_lookup_elem(backend_states_, &key, &st) == 0;
  if (found) *found = ok;
  return ok ? st : sm_backend_state{};
}

void KernelMaps::add_workload(const std::string &cgroup_dir, uint32_t id) {
  struct stat st {};
  if (::stat(cgroup_dir.c_str(), &st) != 0) fail("stat cgroup " + cgroup_dir, errno);
  uint64_t cgroup_id = st.st_ino;  // on cgroup v2 the inode number is the cgroup id
  sm_workload wl{};
  wl.id = id;
  if (bpf_map_update_elem(workloads_, &cgroup_id, &wl, BPF_ANY) != 0)
    fail("write sm_workloads for " + cgroup_dir, errno);
}

void KernelMaps::add_fault_source(uint64_t service, uint32_t id) {
  sm_rate_source_key key{};
  key.service = service;
  key.workload = id;
  uint32_t one = 1;
  if (bpf_map_update_elem(fault_sources_, &key, &one, BPF_ANY) != 0)
    fail("write sm_fault_sources", errno);
}

bool KernelMaps::has_rate_source(uint64_t service, uint32_t id) const {
  sm_rate_source_key key{};
  key.service = service;
  key.workload = id;
  uint64_t tat = 0;
  return bpf_map_lookup_elem(rate_sources_, &key, &tat) == 0;
}

}  // namespace sockmesh::bench
