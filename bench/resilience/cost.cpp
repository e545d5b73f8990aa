#include "cost.h"

#include <arpa/inet.h>
#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <random>
#include <stdexcept>
#include <utility>

#include "mesh_config.h"

namespace sockmesh::bench {
namespace {

enum Block { kPlain = 0, kTracked = 1, kAllOn = 2, kBlocks = 3 };

// The client's workload number, and another one that the all-on services' scoped fault applies
// to: the client's connects look the scope up and miss, as those of a workload outside the scope.
constexpr uint32_t kClientWorkload = 7, kFaultWorkload = 8;

// One service of a variant as the kernel holds it after meshd applied it.
struct KernelService {
  sm_resilience rs{};  // as applied (plain: before the bench cleared it)
  std::vector<std::pair<in_addr, uint16_t>> backends;
};

std::vector<std::vector<KernelService>> read_services(const KernelMaps &maps,
                                                      const CostOptions &o) {
  std::vector<std::vector<KernelService>> out(kBlocks);
  for (int b = 0; b < kBlocks; b++)
    for (int s = 0; s < o.services; s++) {
      sm_backend_set set = maps.backend_set(vip_address(b * o.services + s), kVipPort);
      KernelService k;
      k.rs = set.rs;
      for (uint32_t i = 0; i < set.count && i < SM_MAX_BACKENDS; i++) {
        in_addr addr{};
        addr.s_addr = set.backends[i].addr[0];
        k.backends.push_back({addr, ntohs(set.backends[i].port)});
      }
      if (k.rs.service == 0 || int(k.backends.size()) != o.endpoints)
        throw std::runtime_error(
            fmt::format("service {} of block {}: the kernel has {} backends, service id {}", s, b,
                        k.backends.size(), k.rs.service));
      out[size_t(b)].push_back(k);
    }
  return out;
}

// Throws unless the all-on services carry every setting all_on_spec() wrote.
void check_all_on(const KernelService &k, const sm_backend_set &set) {
  const sm_resilience &rs = k.rs;
  bool ok = set.policy == SM_LB_LEAST_CONN && rs.max_connections == 1000000 &&
            rs.max_backend_connections == 1000000 && rs.consecutive_failures == 5 &&
            rs.rate_interval_ns == 1000 && (rs.flags & SM_RS_RATE_PER_SOURCE) &&
            (rs.flags & SM_RS_FAULT_SCOPED) && rs.fault_ppm == 1;
  if (!ok)
    throw std::runtime_error(
        fmt::format("an all-on service's settings in the kernel are not all on: policy {} max {} "
                    "per backend {} "
                    "failures {} rate interval {} ns flags {:#x} fault ppm {}",
                    set.policy, rs.max_connections, rs.max_backend_connections,
                    rs.consecutive_failures, rs.rate_interval_ns, rs.flags, rs.fault_ppm));
}

CostCheck kernel_counts(const KernelMaps &maps, const std::string &variant,
                        const std::vector<KernelService> &services) {
  CostCheck c;
  c.variant = variant;
  for (const auto &k : services) {
    sm_service_state svc = maps.service_state(k.rs.service);
    c.source_buckets += maps.has_rate_source(k.rs.service, kClientWorkload);
    c.refused += svc.overflows + svc.no_backend + svc.rate_limited + svc.faults;
    for (const auto &[addr, port] : k.backends) {
      sm_backend_state st = maps.backend_state(k.rs.service, addr, port);
      c.charged += st.connects;
      c.failures += st.failures;
    }
  }
  return c;
}

// Round r's destinations as (service, endpoint) pairs, the same for every variant: the VIP variants
// go to service s of their block, direct to endpoint j of plain's service s.
std::vector<std::pair<int, int>> round_draws(const CostOptions &o, size_t count, int round) {
  std::seed_seq seq{o.seed, uint64_t(round), uint64_t(o.services)};
  std::mt19937_64 rng(seq);
  std::uniform_int_distribution<int> service(0, o.services - 1), endpoint(0, o.endpoints - 1);
  std::vector<std::pair<int, int>> draws(count);
  for (auto &d : draws) d = {service(rng), endpoint(rng)};
  return draws;
}

std::vector<sockaddr_in> targets_of(const CostVariant &v, const ServicePlan &plan,
                                    const CostOptions &o,
                                    const std::vector<std::pair<int, int>> &draws) {
  std::vector<sockaddr_in> out;
  out.reserve(draws.size());
  for (auto [s, j] : draws)
    out.push_back(v.block < 0 ? socket_address(backend_address(plan, kPlain * o.services + s, j),
                                               kBackendPort)
                              : socket_address(vip_address(v.block * o.services + s), kVipPort));
  return out;
}

}  // namespace

const std::vector<CostVariant> &cost_variants() {
  static const std::vector<CostVariant> variants = {
      {"direct", -1, "a backend address (a plain service's), no VIP: the hook's pass-through"},
      {"plain", kPlain,
       "RANDOM, the set's resilience cleared by the bench: M2's path, nothing tracked"},
      {"tracked", kTracked, "RANDOM, no settings: connections counted per backend and service"},
      {"all-on", kAllOn,
       "LEAST_CONNECTIONS, circuit breaker, outlier detection, per-source rate limit, scoped fault "
       "injection, none of them ever triggering"},
  };
  return variants;
}

std::string all_on_spec() {
  return "lbPolicy: LEAST_CONNECTIONS, "
         "circuitBreaker: {maxConnections: 1000000, maxConnectionsPerBackend: 1000000}, "
         "outlierDetection: {consecutiveFailures: 5, baseEjectionTime: 30s}, "
         "rateLimit: {connectionsPerSecond: 1000000, burst: 1000000, perSourceWorkload: true}, "
         "faultInjection: {abort: {percent: 0.0001}, sources: {namespaces: [elsewhere]}}";
}

CostResult run_cost(lab::Lab &lab, Meshd &meshd, KernelMaps &maps, const std::string &pod,
                    const CostOptions &o) {
  const ServicePlan plan{kBlocks * o.services, o.endpoints};
  MeshConfigOptions config;
  config.spec = [&](int s) { return s / o.services == kAllOn ? all_on_spec() : std::string(); };
  apply_config(meshd, mesh_config_yaml(plan, lab.node_name(1), config), plan.services);

  auto services = read_services(maps, o);
  for (int s = 0; s < o.services; s++)
    check_all_on(services[kAllOn][size_t(s)],
                 maps.backend_set(vip_address(kAllOn * o.services + s), kVipPort));
  // plain: M2's path. The kernel skips every resilience step for a set whose rs.service is 0; the
  // agent rewrites a set only when its service changes, and nothing changes until the next config.
  for (int s = 0; s < o.services; s++) {
    in_addr vip = vip_address(kPlain * o.services + s);
    sm_backend_set set = maps.backend_set(vip, kVipPort);
    set.rs = sm_resilience{};
    maps.write_backend_set(vip, kVipPort, set);
    if (maps.backend_set(vip, kVipPort).rs.service != 0)
      throw std::runtime_error("plain: the backend set kept its service id after the rewrite");
  }
  // The client as a mesh workload (meshd in file mode numbers none): the per-source bucket and the
  // fault's scope are then looked up for it, as for any client in the mesh.
  maps.add_workload(lab.pod_cgroup(pod), kClientWorkload);
  for (const auto &k : services[kAllOn]) maps.add_fault_source(k.rs.service, kFaultWorkload);

  for (const auto &v : cost_variants()) {
    auto to = targets_of(v, plan, o, {{0, 0}, {o.services - 1, o.endpoints - 1}});
    for (const auto &t : to)
      if (int err = probe(lab, pod, t.sin_addr, ntohs(t.sin_port)); err != 0)
        throw std::runtime_error(fmt::format("{}: a connect to {}:{} failed: {}", v.name,
                                             to_string(t.sin_addr), ntohs(t.sin_port),
                                             std::strerror(err)));
  }

  CostResult result;
  std::vector<CostCheck> before;
  for (const auto &v : cost_variants())
    if (v.block >= 0) before.push_back(kernel_counts(maps, v.name, services[size_t(v.block)]));

  const auto &variants = cost_variants();
  const size_t count = size_t(o.warmup) + size_t(o.connects);
  for (int round = 0; round < o.rounds; round++) {
    auto draws = round_draws(o, count, round);
    for (size_t k = 0; k < variants.size(); k++) {
      const auto &v = variants[(size_t(round) + k) % variants.size()];
      auto stats = sample_in_pod(lab, pod, targets_of(v, plan, o, draws), size_t(o.warmup));
      std::fprintf(stderr,
                   "resilience_bench: cost round=%d/%d %-7s p50=%.1fus p99=%.1fus failed=%ld\n",
                   round + 1, o.rounds, v.name.c_str(), stats.p50_us, stats.p99_us, stats.failures);
      result.samples.push_back({v.name, round, stats});
    }
  }

  for (const auto &b : before) {
    const auto &v = *std::find_if(variants.begin(), variants.end(),
                                  [&](const CostVariant &x) { return x.name == b.variant; });
    CostCheck after = kernel_counts(maps, v.name, services[size_t(v.block)]);
    after.charged -= b.charged;
    after.refused -= b.refused;
    after.failures -= b.failures;  // source_buckets: a state, not a count
    result.checks.push_back(after);
  }
  return result;
}

}  // namespace sockmesh::bench
