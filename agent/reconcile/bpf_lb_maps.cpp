#include "reconcile/bpf_lb_maps.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>

#include "sockmesh/common/unique_fd.h"

namespace sockmesh::reconcile {
namespace {

[[noreturn]] void fail(const std::string &what, int err) {
  throw std::runtime_error(what + ": " + std::strerror(err));
}

sm_service_key to_kernel(const ServiceKey &key) {
  sm_service_key out{};
  out.addr = htonl(key.addr);
  out.port = htons(key.port);
  out.proto = key.proto;
  return out;
}

ServiceKey from_kernel(const sm_service_key &key) {
  return {ntohl(key.addr), ntohs(key.port), key.proto};
}

}  // namespace

std::vector<KernelService> BpfLbMaps::read_all() {
  std::vector<KernelService> out;
  sm_service_key key{}, next{};
  const void *prev = nullptr;
  while (bpf_map_get_next_key(services_fd_, prev, &next) == 0) {
    key = next;
    prev = &key;
    sm_service_value value{};
    if (bpf_map_lookup_elem(services_fd_, &key, &value) != 0) continue;  // deleted meanwhile
    KernelService service;
    service.key = from_kernel(key);
    service.slot = value.set_slot;
    uint32_t inner_id = 0;
    if (bpf_map_lookup_elem(sets_fd_, &value.set_slot, &inner_id) == 0) {
      UniqueFd inner(bpf_map_get_fd_by_id(inner_id));
      uint32_t zero = 0;
      if (inner.get() >= 0) bpf_map_lookup_elem(inner.get(), &zero, &service.set);
    }
    out.push_back(service);
  }
  return out;
}

void BpfLbMaps::write_set(uint32_t slot, const sm_backend_set &set) {
  // A fresh inner map per write: the swap below is the atomic switch, and the kernel frees the
  // old inner map only after every program that may hold it has finished.
  UniqueFd inner(bpf_map_create(BPF_MAP_TYPE_ARRAY, "sm_bset", sizeof(uint32_t),
                                sizeof(sm_backend_set), 1, nullptr));
  if (inner.get() < 0) fail("create backend-set map for slot " + std::to_string(slot), errno);
  uint32_t zero = 0;
  if (bpf_map_update_elem(inner.get(), &zero, &set, BPF_ANY) != 0)
    fail("fill backend-set map for slot " + std::to_string(slot), errno);
  int inner_fd = inner.get();
  if (bpf_map_update_elem(sets_fd_, &slot, &inner_fd, BPF_ANY) != 0)
    fail("install backend set in slot " + std::to_string(slot), errno);
}

void BpfLbMaps::bind(const ServiceKey &key, uint32_t slot) {
  sm_service_key k = to_kernel(key);
  sm_service_value value{};
  value.set_slot = slot;
  if (bpf_map_update_elem(services_fd_, &k, &value, BPF_ANY) != 0)
    fail("bind " + format_key(key) + " to slot " + std::to_string(slot), errno);
}

void BpfLbMaps::unbind(const ServiceKey &key) {
  sm_service_key k = to_kernel(key);
  if (bpf_map_delete_elem(services_fd_, &k) != 0 && errno != ENOENT)
    fail("unbind " + format_key(key), errno);
}

void BpfLbMaps::clear_slot(uint32_t slot) {
  if (bpf_map_delete_elem(sets_fd_, &slot) != 0 && errno != ENOENT)
    fail("clear slot " + std::to_string(slot), errno);
}

}  // namespace sockmesh::reconcile
