#include "reconcile/translate.h"

#include <netinet/in.h>

#include <cerrno>

#include <algorithm>
#include <map>
#include <optional>
#include <tuple>

#include "sockmesh/lb_maps.h"
#include "sockmesh/resources/names.h"
#include "sockmesh/resources/resilience.h"
#include "sockmesh/v1/resources.pb.h"

namespace sockmesh::reconcile {
namespace {

bool has_labels(const v1::Workload& workload, const v1::Subset& subset) {
  const auto& labels = workload.metadata().labels();
  return std::all_of(subset.labels().begin(), subset.labels().end(), [&](const auto& kv) {
    auto it = labels.find(kv.first);
    return it != labels.end() && it->second == kv.second;
  });
}

// The workload's address of one family, if it has one.
std::optional<IpAddress> address_of(const v1::Workload& workload, uint8_t family) {
  for (const auto& text : workload.addresses()) {
    IpAddress addr = parse_ip(text);
    if (addr.family == family) return addr;
  }
  return std::nullopt;
}

struct Candidate {
  const v1::Endpoint* endpoint;
  const v1::Workload* workload;
  IpAddress addr;
  int subset;  // index into service.subsets(), -1 for none
};

// Weights of a service without subsets are the endpoints' own. With subsets, each subset's share
// is divided among its endpoints by their weights; shares of subsets without a usable endpoint go
// to the others (docs/config.md).
void assign_weights(const v1::Service& service, const std::vector<Candidate>& candidates,
                    std::vector<DesiredBackend>& out) {
  if (service.subsets().empty()) {
    for (size_t i = 0; i < candidates.size(); i++) out[i].weight = candidates[i].endpoint->weight();
    return;
  }
  std::vector<uint64_t> subset_sum(service.subsets().size(), 0);
  for (const auto& c : candidates)
    if (c.subset >= 0) subset_sum[c.subset] += c.endpoint->weight();
  uint64_t live_subset_weight = 0;
  for (int s = 0; s < service.subsets().size(); s++)
    if (subset_sum[s] > 0) live_subset_weight += service.subsets(s).weight();
  for (size_t i = 0; i < candidates.size(); i++) {
    const auto& c = candidates[i];
    if (c.subset < 0 || live_subset_weight == 0 || subset_sum[c.subset] == 0) {
      out[i].weight = 0;
      continue;
    }
    uint64_t num = uint64_t(service.subsets(c.subset).weight()) * c.endpoint->weight() * kSplitScale;
    uint64_t den = live_subset_weight * subset_sum[c.subset];
    out[i].weight = uint32_t((num + den / 2) / den);
  }
}

uint32_t kernel_policy(v1::LbPolicy policy) {
  switch (policy) {
    case v1::LB_POLICY_ROUND_ROBIN:
      return SM_LB_ROUND_ROBIN;
    case v1::LB_POLICY_MAGLEV:
      return SM_LB_MAGLEV;
    case v1::LB_POLICY_LEAST_CONNECTIONS:
      return SM_LB_LEAST_CONN;
    default:
      return SM_LB_RANDOM;
  }
}

// The service as a VIP of `family` serves it: the endpoints whose workloads have an address of
// that family.
DesiredService translate_service(const v1::Service& service, uint8_t family,
                                 const std::map<std::string, const v1::Workload*>& workloads) {
  std::vector<Candidate> candidates;
  for (const auto& endpoint : service.endpoints()) {
    auto it = workloads.find(service.metadata().namespace_() + "/" + endpoint.workload());
    if (it == workloads.end()) continue;  // refused by validate()
    auto addr = address_of(*it->second, family);
    if (!addr) continue;
    int subset = -1;
    for (int s = 0; s < service.subsets().size() && subset < 0; s++)
      if (has_labels(*it->second, service.subsets(s))) subset = s;
    candidates.push_back({&endpoint, it->second, *addr, subset});
  }
  std::sort(candidates.begin(), candidates.end(), [](const Candidate& a, const Candidate& b) {
    return std::tuple(a.workload->metadata().name(), a.endpoint->port()) <
           std::tuple(b.workload->metadata().name(), b.endpoint->port());
  });

  DesiredService out;
  out.service = resources::resource_id(service.metadata());
  out.policy = kernel_policy(service.lb_policy());
  if (out.policy == SM_LB_MAGLEV)
    out.maglev_size = service.maglev().table_size() ? service.maglev().table_size()
                                                    : SM_MAGLEV_DEFAULT_SIZE;
  out.backends.resize(candidates.size());
  for (size_t i = 0; i < candidates.size(); i++) {
    const auto& c = candidates[i];
    auto& backend = out.backends[i];
    backend.addr = c.addr;
    backend.port = uint16_t(c.endpoint->port());
    backend.workload = resources::resource_id(c.workload->metadata());
    backend.subset = c.subset >= 0 ? service.subsets(c.subset).name() : "";
  }
  assign_weights(service, candidates, out.backends);
  return out;
}

constexpr uint64_t kNsPerMs = 1000000;

}  // namespace

DesiredResilience resilience_of(const v1::Service &service) {
  namespace r = resources;
  DesiredResilience out;
  out.service_id = service_id_of(resources::resource_id(service.metadata()));
  if (service.has_circuit_breaker()) {
    out.max_connections = service.circuit_breaker().max_connections();
    out.max_backend_connections = service.circuit_breaker().max_connections_per_backend();
  }
  if (service.has_outlier_detection()) {
    const auto &od = service.outlier_detection();
    out.consecutive_failures =
        od.consecutive_failures() ? od.consecutive_failures() : r::kDefaultConsecutiveFailures;
    const uint64_t base = od.base_ejection_time_ms() ? od.base_ejection_time_ms() : r::kDefaultBaseEjectionMs;
    uint64_t max = od.max_ejection_time_ms() ? od.max_ejection_time_ms() : r::kDefaultMaxEjectionMs;
    if (max < base) max = base;  // only a default max can be below a given base
    out.base_ejection_ns = base * kNsPerMs;
    out.max_ejection_ns = max * kNsPerMs;
    out.max_ejection_percent =
        od.has_max_ejection_percent() ? od.max_ejection_percent() : r::kDefaultMaxEjectionPercent;
  }
  if (service.has_rate_limit() && service.rate_limit().connections_per_second() > 0) {
    const auto &rl = service.rate_limit();
    const uint64_t rate = rl.connections_per_second();
    const uint64_t burst = rl.burst() ? rl.burst() : rate;
    out.rate_interval_ns = 1000000000ull / rate;
    out.rate_burst_ns = (burst - 1) * out.rate_interval_ns;
    out.rate_per_source = rl.per_source_workload();
  }
  if (service.has_fault_injection() && service.fault_injection().has_abort()) {
    const auto &fi = service.fault_injection();
    out.fault_ppm = r::fault_percent_ppm(fi.abort().percent());
    out.fault_errno = uint32_t(r::fault_errno(fi.abort().error()).value_or(ECONNREFUSED));
    out.fault_scoped = fi.has_sources();
  }
  return out;
}

namespace {

uint8_t ip_proto(v1::Protocol protocol) {
  return protocol == v1::PROTOCOL_UDP ? IPPROTO_UDP : IPPROTO_TCP;
}

}  // namespace

DesiredState translate(const v1::Snapshot& snapshot) {
  std::map<std::string, const v1::Workload*> workloads;
  for (const auto& workload : snapshot.workloads())
    workloads[resources::resource_id(workload.metadata())] = &workload;

  DesiredState state;
  for (const auto& service : snapshot.services()) {
    std::map<uint8_t, DesiredService> by_family;
    for (const auto& vip : service.vips()) {
      ServiceKey key = key_of(vip);
      auto it = by_family.find(key.addr.family);
      if (it == by_family.end())
        it = by_family.emplace(key.addr.family, translate_service(service, key.addr.family, workloads)).first;
      auto &desired = state[key] = it->second;
      // Resilience decides TCP connects only; a UDP VIP is balanced as before.
      if (key.proto == IPPROTO_TCP) desired.resilience = resilience_of(service);
    }
  }
  return state;
}

ServiceKey key_of(const v1::VirtualAddress& vip) {
  return {parse_ip(vip.address()), uint16_t(vip.port()), ip_proto(vip.protocol())};
}

}  // namespace sockmesh::reconcile
