// resilience_bench: what M8's resilience costs connect() (every feature on against M2's plain load
// balancing, interleaved) and how soon connects avoid a backend that died (docs/benchmarks.md
// "resilience"). `run` needs root and an otherwise idle machine; run.sh drives it.
#include <fmt/format.h>
#include <sys/utsname.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <iostream>
#include <set>
#include <stdexcept>
#include <thread>

#include "connect_loop.h"
#include "cost.h"
#include "ejection.h"
#include "kernel_maps.h"
#include "meshd_lab.h"
#include "report.h"
#include "service_plan.h"
#include "sockmesh/common/paths.h"
#include "sockmesh/lab/lab.h"

namespace sockmesh::bench {
namespace {

constexpr const char *kPod = "mesh";

struct RunOptions {
  CostOptions cost;
  EjectionOptions ejection;
  std::vector<std::string> parts{"cost", "dead-backend"};
  std::string out;
  std::string meshd = MESHD_BIN;
  std::string git_rev;
  int apply_timeout_s = 120;
};

ResilienceResult run(const RunOptions &o, const std::string &invoked_as, const std::string &dir) {
  const std::set<std::string> parts(o.parts.begin(), o.parts.end());
  for (const auto &p : parts)
    if (p != "cost" && p != "dead-backend")
      throw std::invalid_argument("--parts: unknown part " + p);
  check_plan({3 * o.cost.services, o.cost.endpoints});

  lab::LabSpec spec;
  spec.nodes = 1;
  spec.pods = {{kPod, 1, ""}};
  auto lab = lab::Lab::up(spec);
  run_checked(*lab, kPod, {"ip", "route", "add", "local", kBackendRange, "dev", "lo"});
  lab->spawn_in_pod(kPod, {self_exe(), "serve", "--port", std::to_string(kBackendPort)},
                    dir + "/serve.log");
  Meshd meshd = start_meshd(*lab, 1, o.meshd, lab->pod_cgroup(kPod), dir,
                            std::chrono::seconds(o.apply_timeout_s));
  wait_for_server(*lab, kPod, backend_address({1, 1}, 0, 0), kBackendPort);
  KernelMaps maps(paths::pin_dir(lab->node_name(1)));

  utsname uts{};
  uname(&uts);
  ResilienceResult result;
  result.connects_per_sample = long(o.cost.warmup) + o.cost.connects;
  result.meta = {{"command", invoked_as},
                 {"git_rev", o.git_rev},
                 {"kernel", uts.release},
                 {"cpus", std::thread::hardware_concurrency()},
                 {"meshd", o.meshd},
                 {"lab_run_id", lab->run_id()},
                 {"parts", o.parts},
                 {"all_on_spec", all_on_spec()},
                 {"services_per_variant", o.cost.services},
                 {"endpoints", o.cost.endpoints},
                 {"connects", o.cost.connects},
                 {"warmup", o.cost.warmup},
                 {"rounds", o.cost.rounds},
                 {"seed", o.cost.seed},
                 {"thresholds", o.ejection.thresholds},
                 {"paces_us", o.ejection.paces_us},
                 {"repeats", o.ejection.repeats},
                 {"before", o.ejection.before},
                 {"after", o.ejection.after},
                 {"started_unix_s", std::chrono::duration_cast<std::chrono::seconds>(
                                        std::chrono::system_clock::now().time_since_epoch())
                                        .count()}};

  if (parts.count("cost")) result.cost = run_cost(*lab, meshd, maps, kPod, o.cost);
  if (parts.count("dead-backend"))
    result.trials = run_ejection(*lab, meshd, maps, kPod, o.ejection);
  return result;  // the lab goes down with its handle
}

void add_run_options(CLI::App *cmd, RunOptions &o) {
  cmd->add_option("--parts", o.parts, "cost, dead-backend or both")->delimiter(',');
  cmd->add_option("--services", o.cost.services, "Services per VIP variant");
  cmd->add_option("--endpoints", o.cost.endpoints, "Endpoints per service of the cost part");
  cmd->add_option("--connects", o.cost.connects, "Timed connects per sample");
  cmd->add_option("--warmup", o.cost.warmup, "Untimed connects before each sample");
  cmd->add_option("--rounds", o.cost.rounds, "Rounds of all cost variants, interleaved");
  cmd->add_option("--seed", o.cost.seed, "Seed of the destination sequences");
  cmd->add_option("--thresholds", o.ejection.thresholds, "consecutiveFailures of the trials")
      ->delimiter(',');
  cmd->add_option("--paces", o.ejection.paces_us,
                  "Microseconds between the trials' connects (0: back to back)")
      ->delimiter(',');
  cmd->add_option("--repeats", o.ejection.repeats, "Trials of each (threshold, pace)");
  cmd->add_option("--before", o.ejection.before, "Connects before the kill");
  cmd->add_option("--after", o.ejection.after, "Connects after the threshold-th refusal");
  cmd->add_option("--out", o.out, "Write the JSON results here");
  cmd->add_option("--meshd", o.meshd, "meshd binary");
  cmd->add_option("--git-rev", o.git_rev, "Recorded in the results");
  cmd->add_option("--apply-timeout", o.apply_timeout_s,
                  "Seconds to wait for meshd to apply a config");
}

}  // namespace
}  // namespace sockmesh::bench

int main(int argc, char **argv) {
  using namespace sockmesh::bench;
  RunOptions o;
  uint16_t port = kBackendPort;
  CLI::App app{
      "resilience_bench: connect() cost with every resilience feature on against M2's plain load "
      "balancing, and the time from a backend's death to the first connect that avoids it "
      "(docs/benchmarks.md \"resilience\"). Use bench/resilience/run.sh."};
  app.require_subcommand(1);
  add_run_options(app.add_subcommand("run", "Run both parts in a lab (root; nothing else may run)"),
                  o);
  auto *serve_cmd = app.add_subcommand("serve", "Accept and close on 0.0.0.0:PORT (in a pod)");
  serve_cmd->add_option("--port", port);
  auto *spec_cmd = app.add_subcommand("all-on-spec", "Print the all-on services' spec fields");
  CLI11_PARSE(app, argc, argv);

  if (*serve_cmd) return serve_accept_close(port);
  if (*spec_cmd) {
    std::cout << all_on_spec() << "\n";
    return 0;
  }
  return run_reported("resilience_bench", o.out, [&](const std::string &dir) {
    ResilienceResult result = run(o, command_line(argc, argv), dir);
    return RunReport{result_json(result), result_markdown(result)};
  });
}
