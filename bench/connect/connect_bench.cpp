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
#include <fstream>
#include <iostream>
#include <map>
#include <random>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "connect_loop.h"
#include "kernel_memory.h"
#include "kube_proxy_rules.h"
#include "mesh_config.h"
#include "report.h"
#include "service_plan.h"
#include "sockmesh/common/paths.h"
#include "sockmesh/lab/lab.h"

namespace sockmesh::bench {
namespace {

using namespace std::chrono_literals;
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

// The pods: `mesh` is the cgroup meshd captures, `ipt` holds the iptables rules in its netns, `base`
// has neither (and so no conntrack either).
const std::vector<Variant> kVariants = {
    {"no-mesh", "base", false, "backend address, no hook, no iptables rules: the baseline"},
    {"direct-mesh", "mesh", false, "backend address from the captured pod: sockmesh's hook, not a VIP"},
    {"direct-ipt", "ipt", false, "backend address from the iptables pod: walks KUBE-SERVICES, no match"},
    {"sockmesh", "mesh", true, "VIP from the captured pod: balanced by sockmesh's connect4 hook"},
    {"iptables", "ipt", true, "VIP from the iptables pod: kube-proxy-style DNAT"},
};

// meshd's config with no resources. Not an empty file: meshd (agent.cpp, reload) skips a text equal
// to its last rejected one, which starts out empty, so a change to an empty file is never applied.
constexpr const char* kNoServices = "# connect_bench: no services\n";

std::string self_exe() { return std::filesystem::read_symlink("/proc/self/exe"); }

void write_file(const std::string& path, const std::string& text) {
  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc | std::ios::binary);
    out << text;
    if (!out.flush()) throw std::runtime_error("cannot write " + tmp);
  }
  std::filesystem::rename(tmp, path);  // meshd must never read a half-written config
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

void run_checked(lab::Lab& lab, const std::string& pod, const std::vector<std::string>& argv,
                 std::string* out = nullptr) {
  int rc = lab.run_in_pod(pod, argv, out);
  if (rc != 0) {
    std::string command;
    for (const auto& a : argv) command += (command.empty() ? "" : " ") + a;
    throw std::runtime_error(fmt::format("in pod {}: `{}` exited {}", pod, command, rc));
  }
}

bool alive(pid_t pid) {
  std::ifstream in(fmt::format("/proc/{}/stat", pid));
  std::string stat;
  if (!std::getline(in, stat)) return false;
  auto paren = stat.rfind(')');
  return paren != std::string::npos && paren + 2 < stat.size() && stat[paren + 2] != 'Z';
}

// meshd's `event=config_applied` lines (agent/agent.cpp), read back from its log.
struct Applied {
  long generation = 0, services = 0, vips = 0, duration_us = 0;
};

Applied wait_applied(const std::string& log_path, pid_t meshd, long services, long after_generation,
                     std::chrono::seconds limit) {
  auto deadline = Clock::now() + limit;
  for (;;) {
    std::istringstream lines(read_file(log_path));
    for (std::string line; std::getline(lines, line);) {
      if (line.find("event=config_rejected") != std::string::npos ||
          line.find("event=config_apply_failed") != std::string::npos)
        throw std::runtime_error("meshd did not apply the config: " + line);
      if (line.find("event=config_applied") == std::string::npos) continue;
      std::map<std::string, long> fields;
      std::istringstream words(line);
      for (std::string word; words >> word;) {
        auto eq = word.find('=');
        if (eq != std::string::npos && eq + 1 < word.size() && std::isdigit(word[eq + 1]))
          fields[word.substr(0, eq)] = std::stol(word.substr(eq + 1));
      }
      Applied a{fields["generation"], fields["services"], fields["vips"], fields["duration_us"]};
      if (a.generation > after_generation && a.services == services) return a;
    }
    if (!alive(meshd)) throw std::runtime_error("meshd exited; its log: " + log_path);
    if (Clock::now() > deadline)
      throw std::runtime_error(fmt::format("meshd did not apply {} services within {} s (log: {})",
                                           services, limit.count(), log_path));
    std::this_thread::sleep_for(20ms);
  }
}

sockaddr_in socket_address(in_addr addr, uint16_t port) {
  sockaddr_in out{};
  out.sin_family = AF_INET;
  out.sin_addr = addr;
  out.sin_port = htons(port);
  return out;
}

// Uniform over the services (VIP variants) or over all backends (direct variants); the same
// sequence for every variant of one (service count, round), so they connect to the same places.
std::vector<sockaddr_in> make_targets(const ServicePlan& plan, bool to_vip, size_t count,
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

SampleStats sample_in_pod(lab::Lab& lab, const std::string& pod, const std::vector<sockaddr_in>& targets,
                          size_t warmup) {
  std::string out;
  int rc = lab.call_in_pod(
      pod,
      [&] {
        std::printf("%s\n", nlohmann::json(time_connects(targets, warmup)).dump().c_str());
        return 0;
      },
      &out);
  if (rc != 0) throw std::runtime_error(fmt::format("connect loop in pod {} exited {}", pod, rc));
  return nlohmann::json::parse(out).get<SampleStats>();
}

// One connect from the pod to addr:port; 0 or the errno.
int probe(lab::Lab& lab, const std::string& pod, in_addr addr, uint16_t port) {
  return lab.call_in_pod(pod, [&] {
    auto stats = time_connects({socket_address(addr, port)}, 0);
    return stats.failures ? stats.first_errno : 0;
  });
}

void wait_for_server(lab::Lab& lab, const std::string& pod) {
  auto deadline = Clock::now() + 10s;
  while (probe(lab, pod, backend_address({1, 1}, 0, 0), kBackendPort) != 0) {
    if (Clock::now() > deadline) throw std::runtime_error("no server on :8080 in pod " + pod);
    std::this_thread::sleep_for(20ms);
  }
}

void require_reachable(lab::Lab& lab, const std::string& pod, const ServicePlan& plan) {
  for (int s : {0, plan.services - 1}) {
    int err = probe(lab, pod, vip_address(s), kVipPort);
    if (err != 0)
      throw std::runtime_error(fmt::format("pod {}: connect to {}:{} (service {}) failed: {}", pod,
                                           to_string(vip_address(s)), kVipPort, s, std::strerror(err)));
  }
}

long count_rules(const std::string& iptables_save_text) {
  long rules = 0;
  std::istringstream lines(iptables_save_text);
  for (std::string line; std::getline(lines, line);) rules += line.rfind("-A ", 0) == 0;
  return rules;
}

// iptables-restore -> iptables-save / iptables (likewise for iptables-legacy-restore).
std::string sibling_binary(const std::string& restore, const std::string& suffix) {
  auto at = restore.rfind("-restore");
  if (at == std::string::npos) throw std::runtime_error("--iptables-restore: no \"-restore\" in " + restore);
  return restore.substr(0, at) + suffix + restore.substr(at + 8);
}

std::string command_line(int argc, char** argv) {
  std::string out;
  for (int i = 0; i < argc; i++) out += (i ? " " : "") + std::string(argv[i]);
  return out;
}

BenchResult run(const RunOptions& options, const std::string& invoked_as, const std::string& dir) {
  for (int n : options.services) check_plan({n, options.endpoints});
  BenchResult result;
  result.variants = kVariants;

  lab::LabSpec spec;
  spec.nodes = 1;
  spec.pods = {{"mesh", 1, ""}, {"ipt", 1, ""}, {"base", 1, ""}};
  auto lab = lab::Lab::up(spec);
  const std::string node = lab->node_name(1);

  for (const auto& pod : spec.pods)
    run_checked(*lab, pod.name, {"ip", "route", "add", "local", kBackendRange, "dev", "lo"});
  // kube-proxy's VIPs are routed like any remote address (the default route) and DNATed in OUTPUT;
  // the lab's unreachable route would fail the connect before the nat table is consulted.
  run_checked(*lab, "ipt", {"ip", "route", "del", "unreachable", kVipRange});
  for (const auto& pod : spec.pods)
    lab->spawn_in_pod(pod.name, {self_exe(), "serve", "--port", std::to_string(kBackendPort)},
                      dir + "/serve-" + pod.name + ".log");

  std::filesystem::create_directories(dir + "/config");
  const std::string config = dir + "/config/mesh.yaml";
  const std::string meshd_log = dir + "/meshd.log";
  write_file(config, kNoServices);
  pid_t meshd = lab->spawn_in_node(
      1, {options.meshd, "--node", node, "--cgroup", lab->pod_cgroup("mesh"), "--config", config}, meshd_log);
  auto limit = std::chrono::seconds(options.apply_timeout_s);
  long generation = wait_applied(meshd_log, meshd, 0, 0, limit).generation;
  for (const auto& pod : spec.pods) wait_for_server(*lab, pod.name);

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
                 {"meshd_memory_idle", process_memory(meshd)},
                 {"started_unix_s", std::chrono::duration_cast<std::chrono::seconds>(
                                        std::chrono::system_clock::now().time_since_epoch())
                                        .count()}};

  for (int n : options.services) {
    ServicePlan plan{n, options.endpoints};
    ScaleResult scale;
    scale.services = n;
    std::fprintf(stderr, "connect_bench: %d services x %d endpoints: configuring\n", n, plan.endpoints);

    write_file(config, mesh_config_yaml(plan, node));
    Applied applied = wait_applied(meshd_log, meshd, n, generation, limit);
    generation = applied.generation;
    scale.meshd_apply_us = applied.duration_us;
    scale.meshd_vips = applied.vips;
    scale.meshd = process_memory(meshd);
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
    run_checked(*lab, "ipt", {sibling_binary(options.iptables_restore, "-save"), "-t", "nat"}, &saved);
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
      for (const auto& variant : kVariants) {
        auto stats = sample_in_pod(*lab, variant.pod, variant.to_vip ? vip_targets : direct_targets,
                                   size_t(options.warmup));
        std::fprintf(stderr,
                     "connect_bench: services=%d round=%d/%d %-11s p50=%.1fus p99=%.1fus mean=%.1fus "
                     "failed=%ld overflows=%ld ct_drops=%ld\n",
                     n, round + 1, options.rounds, variant.name.c_str(), stats.p50_us, stats.p99_us,
                     stats.mean_us, stats.failures, stats.listen_overflows, stats.conntrack_drops);
        result.samples.push_back({n, variant.name, round, stats});
      }
    }

    write_file(config, kNoServices);
    applied = wait_applied(meshd_log, meshd, 0, generation, limit);
    generation = applied.generation;
    scale.meshd_remove_us = applied.duration_us;
    result.scales.push_back(scale);
  }
  lab->down();
  return result;
}

}  // namespace
}  // namespace sockmesh::bench

int main(int argc, char** argv) {
  using namespace sockmesh::bench;
  CLI::App app{
      "connect_bench: connect() latency through a VIP at 10 to 10,000 services, sockmesh against "
      "kube-proxy-style iptables DNAT and a direct connect, plus meshd RSS and BPF map memory "
      "(docs/benchmarks.md). Use bench/connect/run.sh."};
  app.require_subcommand(1);

  RunOptions options;
  auto* run_cmd = app.add_subcommand("run", "Run the benchmark in a lab (root; nothing else may run)");
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
  run_cmd->add_option("--apply-timeout", options.apply_timeout_s, "Seconds to wait for meshd to apply a config");

  uint16_t port = sockmesh::bench::kBackendPort;
  auto* serve_cmd = app.add_subcommand("serve", "Accept and close on 0.0.0.0:PORT (run inside a pod)");
  serve_cmd->add_option("--port", port);

  ServicePlan plan{10, 10};
  std::string node = "n1";
  auto* rules_cmd = app.add_subcommand("rules", "Print the iptables-restore input for a plan");
  rules_cmd->add_option("--services", plan.services);
  rules_cmd->add_option("--endpoints", plan.endpoints);
  auto* config_cmd = app.add_subcommand("mesh-config", "Print meshd's config for a plan");
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
  } catch (const std::exception& e) {
    std::cerr << "connect_bench: " << e.what() << "\n";
    return 1;
  }

  if (geteuid() != 0) {
    std::cerr << "connect_bench: run needs root (network namespaces, cgroups, BPF)\n";
    return 1;
  }
  char tmpl[] = "/tmp/sockmesh-bench-XXXXXX";
  if (!mkdtemp(tmpl)) {
    std::cerr << "connect_bench: mkdtemp: " << std::strerror(errno) << "\n";
    return 1;
  }
  std::string dir = tmpl;
  try {
    BenchResult result = run(options, sockmesh::bench::command_line(argc, argv), dir);
    if (!options.out.empty()) {
      auto parent = std::filesystem::path(options.out).parent_path();
      if (!parent.empty()) std::filesystem::create_directories(parent);
      std::ofstream out(options.out, std::ios::trunc);
      out << result_json(result).dump(2) << "\n";
      if (!out.flush()) throw std::runtime_error("cannot write " + options.out);
      std::cerr << "connect_bench: results in " << options.out << "\n";
    }
    std::cout << result_markdown(result);
    std::filesystem::remove_all(dir);
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "connect_bench: " << e.what() << "\nconnect_bench: logs kept in " << dir << "\n";
    return 1;
  }
}
