#include "telemetry/resilience_report.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <time.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <map>
#include <set>
#include <stdexcept>
#include <tuple>
#include <utility>

#include "sockmesh/lb_maps.h"
#include "sockmesh/resilience.h"

namespace sockmesh::telemetry {
namespace {

std::pair<std::string, std::string> split_service(const std::string &service) {
  const auto slash = service.find('/');
  if (slash == std::string::npos) return {"", service};
  return {service.substr(0, slash), service.substr(slash + 1)};
}

v1::LbPolicy lb_policy_of(uint32_t policy) {
  switch (policy) {
    case SM_LB_ROUND_ROBIN:
      return v1::LB_POLICY_ROUND_ROBIN;
    case SM_LB_MAGLEV:
      return v1::LB_POLICY_MAGLEV;
    case SM_LB_LEAST_CONN:
      return v1::LB_POLICY_LEAST_CONNECTIONS;
    default:
      return v1::LB_POLICY_RANDOM;
  }
}

// "ECONNRESET"; the number for an errno glibc has no name for.
std::string errno_name(uint32_t number) {
  if (number == 0) return "";
  if (const char *name = strerrorname_np(int(number))) return name;
  return fmt::format("errno {}", number);
}

// The settings in the units a person wrote them in (resources.proto), from the kernel's.
void fill_settings(const ResilienceService &s, v1::ResilienceSettings *out) {
  const auto &r = s.settings;
  constexpr uint64_t kNsPerMs = 1000000, kNsPerS = 1000000000;
  out->set_lb_policy(lb_policy_of(s.policy));
  out->set_max_connections(r.max_connections);
  out->set_max_connections_per_backend(r.max_backend_connections);
  out->set_consecutive_failures(r.consecutive_failures);
  out->set_base_ejection_ms(r.base_ejection_ns / kNsPerMs);
  out->set_max_ejection_ms(r.max_ejection_ns / kNsPerMs);
  out->set_max_ejection_percent(r.max_ejection_percent);
  if (r.rate_interval_ns != 0) {
    // The interval is 1e9 / rate rounded down: the nearest integer gives the rate back.
    out->set_rate_per_second(uint32_t(std::llround(double(kNsPerS) / double(r.rate_interval_ns))));
    out->set_rate_burst(uint32_t(r.rate_burst_ns / r.rate_interval_ns + 1));
    out->set_rate_per_source(r.rate_per_source);
  }
  if (r.fault_ppm != 0) {
    out->set_fault_percent(double(r.fault_ppm) / 10000.0);
    out->set_fault_error(errno_name(r.fault_errno));
    out->set_fault_scoped(r.fault_scoped);
  }
}

sm_backend_key backend_key(uint64_t service_id, const reconcile::DesiredBackend &b) {
  sm_backend_key key{};  // the padding is part of the key: zero
  key.service = service_id;
  std::memcpy(key.addr, b.addr.bytes.data(), b.addr.family == AF_INET ? 4 : 16);
  key.port = htons(b.port);
  key.family = b.addr.family == AF_INET ? SM_AF_INET : SM_AF_INET6;
  return key;
}

// true when found, false when the map has no such entry; throws on any other failure.
template <typename Key, typename Value>
bool lookup(int fd, const char *map, const Key &key, Value *value) {
  if (fd < 0) throw std::runtime_error(fmt::format("{} is not loaded", map));
  if (bpf_map_lookup_elem(fd, &key, value) == 0) return true;
  if (errno == ENOENT) return false;
  throw std::runtime_error(fmt::format("cannot read {}: {}", map, std::strerror(errno)));
}

uint64_t clamp_active(int64_t active) {
  // Releases can run ahead of charges for a moment (a connection charged before the entry was
  // recreated): never report fewer than none.
  return active < 0 ? 0 : uint64_t(active);
}

void fill_backend(const sm_backend_state &st, const ClockPair &now, v1::BackendResilience *out) {
  out->set_tracked(true);
  out->set_active_connections(clamp_active(st.active));
  out->set_connects(st.connects);
  out->set_failures(st.failures);
  out->set_consecutive_failures(st.consecutive);
  out->set_overflows(st.overflows);
  out->set_ejections_in_a_row(st.ejections);
  out->set_ejections_total(st.ejections_total);
  const bool ejected = sm_rs_ejected(&st, now.monotonic_ns);
  out->set_ejected(ejected);
  if (st.ejected_until != 0) {
    const int64_t ahead_ns = int64_t(st.ejected_until - now.monotonic_ns);  // < 0 once past
    out->set_ejected_until_unix_ms((now.realtime_ns + ahead_ns) / 1000000);
    if (ejected) out->set_ejection_remaining_ms((ahead_ns + 999999) / 1000000);
  }
}

}  // namespace

ResilienceSelection select_resilience(const reconcile::DesiredState &desired, const std::string &ns,
                                      const std::string &name) {
  struct Entry {
    ResilienceService service;
    bool tracked = false;
    std::set<std::tuple<reconcile::IpAddress, uint16_t>> listed;
  };
  std::map<std::pair<std::string, std::string>, Entry> by_name;
  // desired is ordered by VIP, IPv4 first: backends come IPv4 first, each VIP's in its order.
  for (const auto &[key, service] : desired) {
    auto split = split_service(service.service);
    if (!name.empty() && (split.second != name || (!ns.empty() && split.first != ns))) continue;
    Entry &entry = by_name[std::move(split)];
    if (service.resilience.service_id == 0) continue;  // a UDP VIP: nothing tracked
    if (!entry.tracked) {
      entry.tracked = true;
      entry.service.service = service.service;
      entry.service.policy = service.policy;
      entry.service.settings = service.resilience;
    }
    for (const auto &backend : service.backends)
      if (entry.listed.insert({backend.addr, backend.port}).second)
        entry.service.backends.push_back(backend);
  }
  if (!name.empty() && by_name.empty()) {
    throw std::out_of_range(ns.empty()
                                ? fmt::format("service \"{}\" (any namespace) not found", name)
                                : fmt::format("service \"{}/{}\" not found", ns, name));
  }
  ResilienceSelection out;
  for (auto &[id, entry] : by_name) {
    if (entry.tracked)
      out.tracked.push_back(std::move(entry.service));
    else
      out.untracked.push_back(id.first + "/" + id.second);
  }
  return out;
}

ClockPair read_clocks() {
  timespec mono{}, real{};
  clock_gettime(CLOCK_MONOTONIC, &mono);
  clock_gettime(CLOCK_REALTIME, &real);
  return {.monotonic_ns = uint64_t(mono.tv_sec) * 1000000000ull + uint64_t(mono.tv_nsec),
          .realtime_ns = int64_t(real.tv_sec) * 1000000000ll + real.tv_nsec};
}

v1::ResilienceReport resilience_report(const ResilienceSelection &selection, int service_states_fd,
                                       int backend_states_fd, const ClockPair &now) {
  v1::ResilienceReport report;
  report.set_unix_ms(now.realtime_ns / 1000000);
  for (const auto &name : selection.untracked) report.add_untracked_services(name);
  for (const auto &s : selection.tracked) {
    auto *out = report.add_services();
    const auto [ns, name] = split_service(s.service);
    out->set_namespace_(ns);
    out->set_name(name);
    const uint64_t id = s.settings.service_id;
    out->set_service_id(fmt::format("{:016x}", id));
    fill_settings(s, out->mutable_settings());

    sm_service_state st{};
    auto *state = out->mutable_state();
    if (lookup(service_states_fd, "sm_service_states", id, &st)) {
      state->set_tracked(true);
      state->set_active_connections(clamp_active(st.active));
      state->set_overflows(st.overflows);
      state->set_no_backend(st.no_backend);
      state->set_rate_limited(st.rate_limited);
      state->set_faults(st.faults);
    }

    for (const auto &b : s.backends) {
      auto *backend = out->add_backends();
      backend->set_workload(b.workload);
      backend->set_address(reconcile::format_endpoint(b.addr, b.port));
      backend->set_weight(b.weight);
      sm_backend_state bst{};
      if (lookup(backend_states_fd, "sm_backend_states", backend_key(id, b), &bst))
        fill_backend(bst, now, backend);
    }
  }
  return report;
}

}  // namespace sockmesh::telemetry
