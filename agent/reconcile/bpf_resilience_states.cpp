#include "reconcile/bpf_resilience_states.h"

#include <bpf/bpf.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <random>
#include <stdexcept>

namespace sockmesh::reconcile {
namespace {

[[noreturn]] void fail(const std::string &what, int err) {
  throw std::runtime_error(what + ": " + std::strerror(err));
}

// A generation the kernel compares on release: never 0, and unlikely to repeat one an earlier
// entry of the same key had (a connection charged to that entry then releases nothing here).
uint32_t fresh_gen() {
  static thread_local std::mt19937 rng{std::random_device{}()};
  uint32_t gen = 0;
  while (gen == 0) gen = rng();
  return gen;
}

std::string bytes_of(const sm_backend_key &key) {
  return std::string(reinterpret_cast<const char *>(&key), sizeof(key));
}

}  // namespace

BpfResilienceStates::BpfResilienceStates(int service_states_fd, int backend_states_fd)
    : services_fd_(service_states_fd), backends_fd_(backend_states_fd) {
  collector_ = std::thread([this] {
    std::unique_lock lock(mu_);
    while (!stop_) {
      wake_.wait_for(lock, std::chrono::seconds(1));
      if (stop_) break;
      lock.unlock();
      collect();
      lock.lock();
    }
  });
}

BpfResilienceStates::~BpfResilienceStates() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  wake_.notify_all();
  collector_.join();
}

void BpfResilienceStates::create(const StateKeys &keys) {
  std::lock_guard lock(mu_);
  for (uint64_t service : keys.services) {
    waiting_services_.erase(service);
    sm_service_state value{};
    value.gen = fresh_gen();
    if (bpf_map_update_elem(services_fd_, &service, &value, BPF_NOEXIST) != 0 && errno != EEXIST)
      fail("create a service's resilience state", errno);
  }
  for (const auto &key : keys.backends) {
    waiting_backends_.erase(bytes_of(key));
    sm_backend_state value{};
    value.gen = fresh_gen();
    if (bpf_map_update_elem(backends_fd_, &key, &value, BPF_NOEXIST) != 0 && errno != EEXIST)
      fail("create a backend's resilience state", errno);
  }
}

bool BpfResilienceStates::try_remove_service(uint64_t service) {
  sm_service_state value{};
  if (bpf_map_lookup_elem(services_fd_, &service, &value) != 0) return true;  // gone already
  if (value.active > 0) return false;
  bpf_map_delete_elem(services_fd_, &service);
  return true;
}

bool BpfResilienceStates::try_remove_backend(const sm_backend_key &key) {
  sm_backend_state value{};
  if (bpf_map_lookup_elem(backends_fd_, &key, &value) != 0) return true;
  if (value.active > 0) return false;
  bpf_map_delete_elem(backends_fd_, &key);
  return true;
}

void BpfResilienceStates::release(const StateKeys &keys) {
  std::lock_guard lock(mu_);
  for (uint64_t service : keys.services)
    if (!try_remove_service(service)) waiting_services_[service] = 0;
  for (const auto &key : keys.backends)
    if (!try_remove_backend(key)) waiting_backends_[bytes_of(key)] = key;
}

void BpfResilienceStates::keep_only(const StateKeys &keep) {
  std::map<uint64_t, int> wanted_services;
  for (uint64_t s : keep.services) wanted_services[s] = 0;
  std::map<std::string, int> wanted_backends;
  for (const auto &b : keep.backends) wanted_backends[bytes_of(b)] = 0;

  StateKeys stale;
  uint64_t service = 0, next_service = 0;
  const void *prev = nullptr;
  while (bpf_map_get_next_key(services_fd_, prev, &next_service) == 0) {
    service = next_service;
    prev = &service;
    if (!wanted_services.count(service)) stale.services.push_back(service);
  }
  sm_backend_key key{}, next_key{};
  prev = nullptr;
  while (bpf_map_get_next_key(backends_fd_, prev, &next_key) == 0) {
    key = next_key;
    prev = &key;
    if (!wanted_backends.count(bytes_of(key))) stale.backends.push_back(key);
  }
  release(stale);
  create(keep);
}

size_t BpfResilienceStates::waiting() const {
  std::lock_guard lock(mu_);
  return waiting_services_.size() + waiting_backends_.size();
}

void BpfResilienceStates::collect() {
  std::lock_guard lock(mu_);
  for (auto it = waiting_services_.begin(); it != waiting_services_.end();)
    it = try_remove_service(it->first) ? waiting_services_.erase(it) : std::next(it);
  for (auto it = waiting_backends_.begin(); it != waiting_backends_.end();)
    it = try_remove_backend(it->second) ? waiting_backends_.erase(it) : std::next(it);
}

}  // namespace sockmesh::reconcile
