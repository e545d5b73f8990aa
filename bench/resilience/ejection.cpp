#include "ejection.h"

#include <fmt/format.h>
#include <unistd.h>

#include <cstdio>
#include <stdexcept>

#include "mesh_config.h"
#include "service_plan.h"

namespace sockmesh::bench {
namespace {

constexpr int kBackends = 3;
// Not connect's 8080: the pod's accept-and-close server listens on 0.0.0.0:8080, and a connect to
// a closed specific listener would fall through to it instead of being refused.
constexpr uint16_t kTrialPort = 9090;
constexpr uint64_t kBaseEjectionNs = 30ull * 1000000000ull;

struct Trial {
  int threshold = 0, pace_us = 0, repeat = 0;
};

}  // namespace

std::vector<TrialResult> run_ejection(lab::Lab &lab, Meshd &meshd, const KernelMaps &maps,
                                      const std::string &pod, const EjectionOptions &o) {
  // Repeats outermost: every (threshold, pace) once, then again, so that a slow spell of the
  // machine hits them alike.
  std::vector<Trial> trials;
  for (int r = 0; r < o.repeats; r++)
    for (int n : o.thresholds)
      for (int pace : o.paces_us) trials.push_back({n, pace, r});
  const ServicePlan plan{int(trials.size()), kBackends};
  MeshConfigOptions config;
  config.prefix = "dead-";
  config.backend_port = kTrialPort;
  config.spec = [&](int s) {
    return fmt::format("outlierDetection: {{consecutiveFailures: {}, baseEjectionTime: 30s}}",
                       trials[size_t(s)].threshold);
  };
  apply_config(meshd, mesh_config_yaml(plan, lab.node_name(1), config), plan.services);

  std::vector<TrialResult> results;
  for (size_t i = 0; i < trials.size(); i++) {
    const Trial &t = trials[i];
    const int s = int(i);
    TrialPlan p;
    p.vip = socket_address(vip_address(s), kVipPort);
    for (int j = 0; j < kBackends; j++)
      p.backends.push_back(socket_address(backend_address(plan, s, j), kTrialPort));
    p.dead = t.repeat % kBackends;
    p.pace_us = t.pace_us;
    p.before = o.before;
    p.after = o.after;
    p.threshold = t.threshold;
    sm_backend_set set = maps.backend_set(p.vip.sin_addr, kVipPort);
    if (set.rs.consecutive_failures != uint32_t(t.threshold) ||
        set.rs.base_ejection_ns != kBaseEjectionNs)
      throw std::runtime_error(
          fmt::format("trial service {}: the kernel has consecutive_failures {} base {} ns", s,
                      set.rs.consecutive_failures, set.rs.base_ejection_ns));

    std::string out;
    int rc = lab.call_in_pod(
        pod,
        [&] {
          ::dprintf(STDOUT_FILENO, "%s\n", nlohmann::json(run_trial(p)).dump().c_str());
          return 0;
        },
        &out);
    if (rc != 0) throw std::runtime_error(fmt::format("trial {} in pod {} exited {}", s, pod, rc));
    TrialRun run = nlohmann::json::parse(out).get<TrialRun>();

    const sm_backend_state dead =
        maps.backend_state(set.rs.service, p.backends[size_t(p.dead)].sin_addr, kTrialPort);
    TrialResult r = analyze_trial(p, run, dead.ejected_until, set.rs.base_ejection_ns);
    r.repeat = t.repeat;
    r.kernel_failures = dead.failures;
    r.kernel_ejections = dead.ejections_total;
    std::fprintf(
        stderr,
        "resilience_bench: dead backend N=%d pace=%dus repeat=%d refused=%ld ejected=%.0fus "
        "(kernel %.0fus) avoided=%.0fus to-dead-after=%ld\n",
        r.threshold, r.pace_us, r.repeat + 1, r.refused, r.ejection_us, r.kernel_ejection_us,
        r.avoided_us, r.to_dead_after);
    results.push_back(r);
  }
  return results;
}

}  // namespace sockmesh::bench
