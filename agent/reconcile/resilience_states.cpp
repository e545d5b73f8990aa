#include "reconcile/resilience_states.h"

#include <cstring>

namespace sockmesh::reconcile {
namespace {

std::string bytes_of(const sm_backend_key &key) {
  return std::string(reinterpret_cast<const char *>(&key), sizeof(key));
}

sm_backend_key key_of_bytes(const std::string &bytes) {
  sm_backend_key key{};
  std::memcpy(&key, bytes.data(), sizeof(key));
  return key;
}

}  // namespace

StateKeys state_keys_of(const SlotImage &image) {
  StateKeys out;
  const auto &set = image.set;
  if (set.rs.service == 0) return out;
  out.services.push_back(set.rs.service);
  for (uint32_t i = 0; i < set.count && i < SM_MAX_BACKENDS; i++) {
    const auto &be = set.backends[i];
    sm_backend_key key{};  // padding zero: the kernel hashes every byte
    key.service = set.rs.service;
    std::memcpy(key.addr, be.addr, sizeof(key.addr));
    key.port = be.port;
    key.family = be.family;
    out.backends.push_back(key);
  }
  return out;
}

StateKeys StateRefs::missing(const SlotImage &image) const {
  StateKeys out;
  const auto keys = state_keys_of(image);
  for (uint64_t s : keys.services)
    if (!services_.count(s)) out.services.push_back(s);
  for (const auto &b : keys.backends)
    if (!backends_.count(bytes_of(b))) out.backends.push_back(b);
  return out;
}

StateKeys StateRefs::add(const SlotImage &image) {
  StateKeys fresh;
  const auto keys = state_keys_of(image);
  for (uint64_t s : keys.services)
    if (services_[s]++ == 0) fresh.services.push_back(s);
  for (const auto &b : keys.backends)
    if (backends_[bytes_of(b)]++ == 0) fresh.backends.push_back(b);
  return fresh;
}

StateKeys StateRefs::remove(const SlotImage &image) {
  StateKeys gone;
  const auto keys = state_keys_of(image);
  for (uint64_t s : keys.services) {
    auto it = services_.find(s);
    if (it == services_.end()) continue;
    if (--it->second == 0) {
      services_.erase(it);
      gone.services.push_back(s);
    }
  }
  for (const auto &b : keys.backends) {
    auto it = backends_.find(bytes_of(b));
    if (it == backends_.end()) continue;
    if (--it->second == 0) {
      backends_.erase(it);
      gone.backends.push_back(b);
    }
  }
  return gone;
}

StateKeys StateRefs::all() const {
  StateKeys out;
  for (const auto &[s, n] : services_) out.services.push_back(s);
  for (const auto &[b, n] : backends_) out.backends.push_back(key_of_bytes(b));
  return out;
}

}  // namespace sockmesh::reconcile
