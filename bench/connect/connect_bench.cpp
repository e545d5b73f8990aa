// connect_bench: connect() latency through a VIP at 10 to 10,000 services, sockmesh against
// kube-proxy-style iptables DNAT and a direct connect, plus meshd's memory and the BPF map memory
// (docs/benchmarks.md "connect"). `run` needs root and an otherwise idle machine; run.sh drives it.
#include <arpa/inet.h>
#include <fmt/format.h>
#include <signal.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <random>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "connect_loop.h"
#include "kernel_memory.h"
#include "kube_proxy_rules.h"
#include "mesh_config.h"
#include "meshd_lab.h"
#include "report.h"
#include "service_plan.h"
#include "sockmesh/common/paths.h"
#include "sockmesh/lab/lab.h"

namespace sockmesh::bench {
namespace {

using Clock = std::chrono::steady_clock;

struct RunOptions {
  std::vector<int> services{10, 1000, 10000};
  int endpoints = 10;
  int connects = 20000;
  int warmup = 1000;
  int rounds = 5;
  uint64_t seed = 1;
  std::string out;
  std::string meshd = MESHD_BIN;
  std::string iptables_restore = "iptables-restore";
  std::string git_rev;
  int apply_timeout_s = 600;
};

// The pods: `mesh` is the cgroup meshd captures, `ipt` holds the iptables rules in its netns,
// `base` has neither (and so no conntrack either).
const std::vector<Variant> kVariants = {
    {"no-mesh", "base", false, "backend address, no hook, no iptables rules: the baseline"},
    {"direct-mesh", "mesh", false,
     "backend address from the captured pod: sockmesh's hook, not a VIP"},
    {"direct-ipt", "ipt", false,
     "backend address from the iptables pod: walks KUBE-SERVICES, no match"},
    {"sockmesh", "mesh", true, "VIP from the captured pod: balanced by sockmesh's connect4 hook"},
    {"iptables", "ipt", true, "VIP from the iptables pod: kube-proxy-style DNAT"},
};

// Uniform over the services (VIP variants) or over all backends (direct variants); the same
// sequence for every variant of one (service count, round), so they connect to the same places.
std::vector<sockaddr_in> make_targets(const ServicePlan &plan, bool to_vip, size_t count,
                                      uint64_t seed, int round) {
  std::seed_seq seq{seed, uint64_t(plan.services), uint64_t(round), uint64_t(to_vip)};
  std::mt19937_64 rng(seq);
  std::uniform_int_distribution<int> service(0, plan.services - 1), endpoint(0, plan.endpoints - 1);
  std::vector<sockaddr_in> out;
  out.reserve(count);
  for (size_t i = 0; i < count; i++) {
    int s = service(rng);
    out.push_back(to_vip ? socket_address(vip_address(s), kVipPort)
                         : socket_address(backend_address(plan, s, endpoint(rng)), kBackendPort));
  }
  return out;
}

void require_reachable(lab::Lab &lab, const std::string &pod, const ServicePlan &plan) {
  for (int s : {0, plan.services - 1}) {
    int err = probe(lab, pod, vip_address(s), kVipPort);
    if (err != 0)
      throw std::runtime_error(fmt::format("pod {}: connect to {}:{} (service {}) failed: {}", pod,
                                           to_string(vip_address(s)), kVipPort, s,
                                           std::strerror(err)));
  }
}

long count_rules(const std::string &iptables_save_text) {
  long rules = 0;
  std::istringstream lines(iptables_save_text);
  for (std::string line; std::getline(lines, line);) rules += line.rfind("-A ", 0) == 0;
  return rules;
}

// iptables-restore -> iptables-save / iptables (likewise for iptables-legacy-restore).
std::string sibling_binary(const std::string &restore, const std::string &suffix) {
  auto at = restore.rfind("-restore");
  if (at == std::string::npos)
    throw std::runtime_error("--iptables-restore: no \"-restore\" in " + restore);
  return restore.substr(0, at) + suffix + restore.substr(at + 8);
}

BenchResult run(const RunOptions &options, const std::string &invoked_as, const std::string &dir) {
  for (int n : options.services) check_plan({n, options.endpoints});
  BenchResult result;
  result.variants = kVariants;

  lab::LabSpec spec;
  spec.nodes = 1;
  spec.pods = {{"mesh", 1, ""}, {"ipt", 1, ""}, {"base", 1, ""}};
  auto lab = lab::Lab::up(spec);
  const std::string node = lab->node_name(1);

  for (const auto &pod : spec.pods)
    run_checked(*lab, pod.name, {"ip", "route", "add", "local", kBackendRange, "dev", "lo"});
  // kube-proxy's VIPs are routed like any remote address (the default route) and DNATed in OUTPUT;
  // the lab's unreachable route would fail the connect before the nat table is consulted.
  run_checked(*lab, "ipt", {"ip", "route", "del", "unreachable", kVipRange});
  for (const auto &pod : spec.pods)
    lab->spawn_in_pod(pod.name, {self_exe(), "serve", "--port", std::to_string(kBackendPort)},
                      dir + "/serve-" + pod.name + ".log");

  Meshd meshd = start_meshd(*lab, 1, options.meshd, lab->pod_cgroup("mesh"), dir,
                            std::chrono::seconds(options.apply_timeout_s));
  for (const auto &pod : spec.pods)
    wait_for_server(*lab, pod.name, backend_address({1, 1}, 0, 0), kBackendPort);

  const std::string rules_file = dir + "/kube-proxy.rules";
  std::string version;
  run_checked(*lab, "ipt", {options.iptables_restore, "--version"}, &version);
  while (!version.empty() && version.back() == '\n') version.pop_back();

  utsname uts{};
  uname(&uts);
  result.meta = {{"command", invoked_as},
                 {"git_rev", options.git_rev},
                 {"kernel", uts.release},
                 {"cpus", std::thread::hardware_concurrency()},
                 {"iptables", version},
                 {"meshd", options.meshd},
                 {"lab_run_id", lab->run_id()},
                 {"services", options.services},
                 {"endpoints", options.endpoints},
                 {"connects", options.connects},
                 {"warmup", options.warmup},
                 {"rounds", options.rounds},
                 {"seed", options.seed},
                 {"meshd_memory_idle", process_memory(meshd.pid)},
                 {"started_unix_s", std::chrono::duration_cast<std::chrono::seconds>(
                                        std::chrono::system_clock::now().time_since_epoch())
                                        .count()}};

  for (int n : options.services) {
    ServicePlan plan{n, options.endpoints};
    ScaleResult scale;
    scale.services = n;
    std::fprintf(stderr, "connect_bench: %d services x %d endpoints: configuring\n", n,
                 plan.endpoints);

    Applied applied = apply_config(meshd, mesh_config_yaml(plan, node), n);
    scale.meshd_apply_us = applied.duration_us;
    scale.meshd_vips = applied.vips;
    scale.meshd = process_memory(meshd.pid);
    scale.maps = node_map_memory(paths::pin_dir(node));

    // Empty the nat table (rules, then chains) so that every load starts from nothing.
    const std::string iptables = sibling_binary(options.iptables_restore, "");
    run_checked(*lab, "ipt", {iptables, "-w", "-t", "nat", "-F"});
    run_checked(*lab, "ipt", {iptables, "-w", "-t", "nat", "-X"});
    write_file(rules_file, kube_proxy_rules(plan));
    auto load_start = Clock::now();
    run_checked(*lab, "ipt", {options.iptables_restore, "-w", "--noflush", rules_file});
    scale.iptables_load_s = std::chrono::duration<double>(Clock::now() - load_start).count();
    std::string saved;
    run_checked(*lab, "ipt", {sibling_binary(options.iptables_restore, "-save"), "-t", "nat"},
                &saved);
    scale.iptables_rules = count_rules(saved);
    if (scale.iptables_rules != kube_proxy_rule_count(plan))
      throw std::runtime_error(fmt::format("the ipt pod's nat table has {} rules, expected {}",
                                           scale.iptables_rules, kube_proxy_rule_count(plan)));
    require_reachable(*lab, "mesh", plan);
    require_reachable(*lab, "ipt", plan);

    size_t count = size_t(options.warmup) + size_t(options.connects);
    for (int round = 0; round < options.rounds; round++) {
      auto vip_targets = make_targets(plan, true, count, options.seed, round);
      auto direct_targets = make_targets(plan, false, count, options.seed, round);
      for (const auto &variant : kVariants) {
        auto stats = sample_in_pod(*lab, variant.pod, variant.to_vip ? vip_targets : direct_targets,
                                   size_t(options.warmup));
        std::fprintf(
            stderr,
            "connect_bench: services=%d round=%d/%d %-11s p50=%.1fus p99=%.1fus mean=%.1fus "
            "failed=%ld overflows=%ld ct_drops=%ld\n",
            n, round + 1, options.rounds, variant.name.c_str(), stats.p50_us, stats.p99_us,
            stats.mean_us, stats.failures, stats.listen_overflows, stats.conntrack_drops);
        result.samples.push_back({n, variant.name, round, stats});
      }
    }

    applied = apply_config(meshd, kNoServices, 0);
    scale.meshd_remove_us = applied.duration_us;
    result.scales.push_back(scale);
  }
  lab->down();
  return result;
}

}  // namespace
}  // namespace sockmesh::bench

int main(int argc, char **argv) {
  using namespace sockmesh::bench;
  CLI::App app{
      "connect_bench: connect() latency through a VIP at 10 to 10,000 services, sockmesh against "
      "kube-proxy-style iptables DNAT and a direct connect, plus meshd RSS and BPF map memory "
      "(docs/benchmarks.md). Use bench/connect/run.sh."};
  app.require_subcommand(1);

  RunOptions options;
  auto *run_cmd =
      app.add_subcommand("run", "Run the benchmark in a lab (root; nothing else may run)");
  run_cmd->add_option("--services", options.services, "Service counts, in order")->delimiter(',');
  run_cmd->add_option("--endpoints", options.endpoints, "Endpoints per service");
  run_cmd->add_option("--connects", options.connects, "Timed connects per sample (K)");
  run_cmd->add_option("--warmup", options.warmup, "Untimed connects before each sample");
  run_cmd->add_option("--rounds", options.rounds, "Rounds of all variants, interleaved");
  run_cmd->add_option("--seed", options.seed, "Seed of the target sequences");
  run_cmd->add_option("--out", options.out, "Write the JSON results here");
  run_cmd->add_option("--meshd", options.meshd, "meshd binary");
  run_cmd->add_option("--iptables-restore", options.iptables_restore,
                      "iptables-restore binary (iptables-legacy-restore for the legacy backend)");
  run_cmd->add_option("--git-rev", options.git_rev, "Recorded in the results");
  run_cmd->add_option("--apply-timeout", options.apply_timeout_s,
                      "Seconds to wait for meshd to apply a config");

  uint16_t port = sockmesh::bench::kBackendPort;
  auto *serve_cmd =
      app.add_subcommand("serve", "Accept and close on 0.0.0.0:PORT (run inside a pod)");
  serve_cmd->add_option("--port", port);

  ServicePlan plan{10, 10};
  std::string node = "n1";
  auto *rules_cmd = app.add_subcommand("rules", "Print the iptables-restore input for a plan");
  rules_cmd->add_option("--services", plan.services);
  rules_cmd->add_option("--endpoints", plan.endpoints);
  auto *config_cmd = app.add_subcommand("mesh-config", "Print meshd's config for a plan");
  config_cmd->add_option("--services", plan.services);
  config_cmd->add_option("--endpoints", plan.endpoints);
  config_cmd->add_option("--node", node);
  CLI11_PARSE(app, argc, argv);

  try {
    if (*serve_cmd) return serve_accept_close(port);
    if (*rules_cmd) {
      std::cout << kube_proxy_rules(plan);
      return 0;
    }
    if (*config_cmd) {
      std::cout << mesh_config_yaml(plan, node);
      return 0;
    }
  } catch (const std::exception &e) {
    std::cerr << "connect_bench: " << e.what() << "\n";
    return 1;
  }

  return run_reported("connect_bench", options.out, [&](const std::string &dir) {
    BenchResult result = run(options, command_line(argc, argv), dir);
    return RunReport{result_json(result), result_markdown(result)};
  });
}
