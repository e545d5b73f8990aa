#include "reconcile/bpf_lb_maps.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <netinet/in.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>

namespace sockmesh::reconcile {
namespace {

[[noreturn]] void fail(const std::string& what, int err) {
  throw std::runtime_error(what + ": " + std::strerror(err));
}

sm_service_key to_kernel(const ServiceKey& key) {
  sm_service_key out{};
  std::memcpy(out.addr, key.addr.bytes.data(), sizeof(out.addr));
  out.family = key.addr.family == AF_INET6 ? SM_AF_INET6 : SM_AF_INET;
  out.port = htons(key.port);
  out.proto = key.proto;
  return out;
}

ServiceKey from_kernel(const sm_service_key& key) {
  ServiceKey out;
  out.addr.family = key.family == SM_AF_INET6 ? AF_INET6 : AF_INET;
  std::memcpy(out.addr.bytes.data(), key.addr, sizeof(key.addr));
  out.port = ntohs(key.port);
  out.proto = key.proto;
  return out;
}

uint32_t chunks_for(size_t table_bytes) {
  return uint32_t((table_bytes + SM_MAGLEV_CHUNK - 1) / SM_MAGLEV_CHUNK);
}

// A new inner map holding `image`: element 0 the set, then the Maglev table in chunks.
UniqueFd make_inner(const SlotImage& image) {
  uint32_t entries = 1 + chunks_for(image.maglev.size());
  // BPF_F_INNER_MAP as on the template in bpf/lib/maps.h: the kernel requires equal flags, and
  // the flag lets inner maps differ in size (Maglev tables).
  LIBBPF_OPTS(bpf_map_create_opts, opts, .map_flags = BPF_F_INNER_MAP);
  UniqueFd inner(bpf_map_create(BPF_MAP_TYPE_ARRAY, "sm_bset", sizeof(uint32_t),
                                sizeof(sm_backend_set), entries, &opts));
  if (!inner.valid()) fail("create backend-set map", errno);
  uint32_t key = 0;
  if (bpf_map_update_elem(inner.get(), &key, &image.set, BPF_ANY) != 0)
    fail("fill backend-set map", errno);
  std::vector<uint8_t> chunk(SM_MAGLEV_CHUNK);
  for (uint32_t c = 0; c < entries - 1; c++) {
    size_t begin = size_t(c) * SM_MAGLEV_CHUNK;
    size_t n = std::min(SM_MAGLEV_CHUNK, image.maglev.size() - begin);
    std::fill(chunk.begin(), chunk.end(), 0);
    std::memcpy(chunk.data(), image.maglev.data() + begin, n);
    key = c + 1;
    if (bpf_map_update_elem(inner.get(), &key, chunk.data(), BPF_ANY) != 0)
      fail("fill Maglev table", errno);
  }
  return inner;
}

SlotImage read_inner(int inner_fd) {
  SlotImage image;
  uint32_t key = 0;
  if (bpf_map_lookup_elem(inner_fd, &key, &image.set) != 0) return image;
  if (image.set.policy != SM_LB_MAGLEV || image.set.maglev_size == 0) return image;
  image.maglev.resize(image.set.maglev_size);
  std::vector<uint8_t> chunk(SM_MAGLEV_CHUNK);
  for (uint32_t c = 0; c < chunks_for(image.maglev.size()); c++) {
    key = c + 1;
    if (bpf_map_lookup_elem(inner_fd, &key, chunk.data()) != 0) break;
    size_t begin = size_t(c) * SM_MAGLEV_CHUNK;
    std::memcpy(image.maglev.data() + begin, chunk.data(),
                std::min(SM_MAGLEV_CHUNK, image.maglev.size() - begin));
  }
  return image;
}

}  // namespace

std::vector<KernelService> BpfLbMaps::read_all() {
  std::vector<KernelService> out;
  sm_service_key key{}, next{};
  const void* prev = nullptr;
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
      if (inner.valid()) service.image = read_inner(inner.get());
    }
    out.push_back(std::move(service));
  }
  return out;
}

void BpfLbMaps::install(const std::vector<uint32_t>& slots, const std::vector<int>& inner_fds) {
  if (slots.empty()) return;
  LIBBPF_OPTS(bpf_map_batch_opts, opts);
  uint32_t count = uint32_t(slots.size());
  if (bpf_map_update_batch(sets_fd_, slots.data(), inner_fds.data(), &count, &opts) == 0) return;
  int err = errno;
  if (err != EINVAL && err != ENOTSUP && err != EOPNOTSUPP && err != 524 /* ENOTSUPP */)
    fail("install " + std::to_string(slots.size()) + " backend sets", err);
  for (size_t i = 0; i < slots.size(); i++)
    if (bpf_map_update_elem(sets_fd_, &slots[i], &inner_fds[i], BPF_ANY) != 0)
      fail("install backend set in slot " + std::to_string(slots[i]), errno);
}

void BpfLbMaps::write_slots(const std::vector<std::pair<uint32_t, const SlotImage*>>& writes) {
  std::vector<UniqueFd> inners;
  std::vector<uint32_t> slots;
  std::vector<int> fds;
  for (const auto& [slot, image] : writes) {
    inners.push_back(make_inner(*image));
    slots.push_back(slot);
    fds.push_back(inners.back().get());
  }
  install(slots, fds);
}

void BpfLbMaps::clear_slots(const std::vector<uint32_t>& slots) {
  if (!empty_.valid()) empty_ = make_inner(SlotImage{});
  install(slots, std::vector<int>(slots.size(), empty_.get()));
}

void BpfLbMaps::bind(const ServiceKey& key, uint32_t slot) {
  sm_service_key k = to_kernel(key);
  sm_service_value value{};
  value.set_slot = slot;
  if (bpf_map_update_elem(services_fd_, &k, &value, BPF_ANY) != 0)
    fail("bind " + format_key(key) + " to slot " + std::to_string(slot), errno);
}

void BpfLbMaps::unbind(const ServiceKey& key) {
  sm_service_key k = to_kernel(key);
  if (bpf_map_delete_elem(services_fd_, &k) != 0 && errno != ENOENT)
    fail("unbind " + format_key(key), errno);
}

}  // namespace sockmesh::reconcile
