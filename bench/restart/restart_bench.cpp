// restart_bench: how long meshd takes from its start until its config is applied, with 10,000
// services: a cold start (nothing pinned: every program loaded and attached, every map entry
// written) against a restart that adopts what an earlier agent pinned (identical programs kept,
// entries compared and left as they are). The two alternate, cold then restart, for --rounds
// rounds. `run` needs root and an otherwise idle machine; run.sh drives it.
#include <fmt/format.h>
#include <signal.h>
#include <sys/utsname.h>
#include <sys/wait.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <thread>

#include "mesh_config.h"
#include "meshd_lab.h"
#include "service_plan.h"
#include "sockmesh/lab/lab.h"

namespace sockmesh::bench {
namespace {

using Clock = std::chrono::steady_clock;

struct RunOptions {
  int services = 10000;
  int endpoints = 10;
  int rounds = 5;
  std::string out;
  std::string meshd = MESHD_BIN;
  std::string git_rev;
  int apply_timeout_s = 300;
};

// One start of meshd: from its spawn until the apply of every service is in its log.
struct Start {
  std::string variant;  // "cold" or "restart"
  double seconds = 0;   // spawn to applied
  Applied applied;
  size_t rss_kib = 0, fds = 0;     // meshd right after the apply
  long probe_ms = 0, load_ms = 0;  // its kernel feature probe and BPF load (event=datapath_ready)
};

// A numeric field of the first log line with `event`, or -1.
long log_field(const std::string &log, const std::string &event, const std::string &field) {
  const std::string text = read_file(log);
  const size_t line = text.find("event=" + event + " ");
  if (line == std::string::npos) return -1;
  const size_t end = text.find('\n', line);
  const size_t at = text.find(" " + field + "=", line);
  if (at == std::string::npos || at > end) return -1;
  return std::stol(text.substr(at + field.size() + 2));
}

size_t rss_kib(pid_t pid) {
  std::ifstream status(fmt::format("/proc/{}/status", pid));
  for (std::string line; std::getline(status, line);)
    if (line.rfind("VmRSS:", 0) == 0) return std::stoul(line.substr(6));
  return 0;
}

size_t fds(pid_t pid) {
  size_t n = 0;
  for ([[maybe_unused]] const auto &e :
       std::filesystem::directory_iterator(fmt::format("/proc/{}/fd", pid)))
    ++n;
  return n;
}

Start start_once(lab::Lab &lab, const RunOptions &o, const std::string &dir,
                 const std::string &config, const std::string &variant, int round) {
  Meshd meshd;
  meshd.config = config;
  meshd.log = fmt::format("{}/meshd-{}-{}.log", dir, variant, round);
  meshd.limit = std::chrono::seconds(o.apply_timeout_s);
  const auto begin = Clock::now();
  meshd.pid =
      lab.spawn_in_node(1,
                        {o.meshd, "--node", lab.node_name(1), "--cgroup", lab.pod_cgroup("mesh"),
                         "--config", config, "--metrics-address", "off", "--health-address", "off"},
                        meshd.log);
  Start s;
  s.variant = variant;
  s.applied = wait_applied(meshd, o.services, 0);
  s.seconds = std::chrono::duration<double>(Clock::now() - begin).count();
  s.rss_kib = rss_kib(meshd.pid);
  s.fds = fds(meshd.pid);
  s.probe_ms = log_field(meshd.log, "datapath_ready", "probe_ms");
  s.load_ms = log_field(meshd.log, "datapath_ready", "load_ms");
  kill(meshd.pid, SIGTERM);  // pins stay
  waitpid(meshd.pid, nullptr, 0);
  return s;
}

struct Summary {
  double median = 0, min = 0, max = 0;
};
Summary summarize(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  if (v.empty()) return {};
  return {v[v.size() / 2], v.front(), v.back()};
}

RunReport run(const RunOptions &o, const std::string &invoked_as, const std::string &dir) {
  const ServicePlan plan{o.services, o.endpoints};
  check_plan(plan);
  lab::LabSpec spec;
  spec.nodes = 1;
  spec.pods = {{"mesh", 1, ""}};
  auto lab = lab::Lab::up(spec);
  const std::string config = dir + "/mesh.yaml";
  write_file(config, mesh_config_yaml(plan, lab->node_name(1)));
  std::vector<Start> starts;
  for (int round = 0; round < o.rounds; ++round) {
    // Cold: nothing pinned for the node.
    if (lab.get()->run_in_node(1, {o.meshd, "uninstall", "--node", lab->node_name(1)}) != 0)
      throw std::runtime_error("meshd uninstall failed");
    starts.push_back(start_once(*lab, o, dir, config, "cold", round));
    if (starts.back().applied.added == 0) throw std::runtime_error("the cold start added nothing");
    // Restart: what the cold start pinned is there.
    starts.push_back(start_once(*lab, o, dir, config, "restart", round));
    const Applied &a = starts.back().applied;
    if (a.added + a.updated + a.removed != 0)
      throw std::runtime_error(
          fmt::format("the restart rewrote entries: added={} updated={} removed={}", a.added,
                      a.updated, a.removed));
  }
  nlohmann::json json;
  utsname uts{};
  uname(&uts);
  json["tool"] = "restart_bench";
  json["invoked_as"] = invoked_as;
  json["git_rev"] = o.git_rev;
  json["kernel"] = uts.release;
  json["services"] = o.services;
  json["endpoints"] = o.endpoints;
  json["rounds"] = o.rounds;
  std::string md = fmt::format(
      "meshd start to config applied, {} services x {} endpoints, {} rounds (cold, restart "
      "interleaved)\n\n"
      "| variant | start → applied (s) median | min–max | feature probe (ms) | BPF load (ms) | "
      "apply (ms) | RSS after (MiB) | fds after |\n"
      "|---|---|---|---|---|---|---|---|\n",
      o.services, o.endpoints, o.rounds);
  std::map<std::string, Summary> medians;
  for (const std::string variant : {"cold", "restart"}) {
    std::vector<double> seconds, apply_ms, rss, probe, load;
    size_t fd_count = 0;
    for (const auto &s : starts) {
      if (s.variant != variant) continue;
      seconds.push_back(s.seconds);
      apply_ms.push_back(double(s.applied.duration_us) / 1000);
      probe.push_back(double(s.probe_ms));
      load.push_back(double(s.load_ms));
      rss.push_back(double(s.rss_kib) / 1024);
      fd_count = s.fds;
      json["starts"].push_back({{"variant", s.variant},
                                {"seconds", s.seconds},
                                {"apply_us", s.applied.duration_us},
                                {"added", s.applied.added},
                                {"unchanged", s.applied.unchanged},
                                {"rss_kib", s.rss_kib},
                                {"probe_ms", s.probe_ms},
                                {"load_ms", s.load_ms},
                                {"fds", s.fds}});
    }
    const Summary t = summarize(seconds), a = summarize(apply_ms), r = summarize(rss);
    medians[variant] = t;
    md += fmt::format("| {} | {:.2f} | {:.2f}–{:.2f} | {:.0f} | {:.0f} | {:.0f} | {:.1f} | {} |\n",
                      variant, t.median, t.min, t.max, summarize(probe).median,
                      summarize(load).median, a.median, r.median, fd_count);
  }
  md +=
      fmt::format("\nrestart / cold: {:.2f}\n", medians["restart"].median / medians["cold"].median);
  return RunReport{json, md};
}

}  // namespace
}  // namespace sockmesh::bench

int main(int argc, char **argv) {
  using namespace sockmesh::bench;
  RunOptions o;
  CLI::App app{
      "restart_bench: meshd's start until its config is applied, cold against a restart that "
      "adopts the "
      "pinned state (docs/benchmarks.md \"restart\"). Use bench/restart/run.sh."};
  app.require_subcommand(1);
  auto *cmd = app.add_subcommand("run", "Run in a lab (root; nothing else may run)");
  cmd->add_option("--services", o.services, "Services (one VIP each)")->capture_default_str();
  cmd->add_option("--endpoints", o.endpoints, "Endpoints per service")->capture_default_str();
  cmd->add_option("--rounds", o.rounds, "Rounds of one cold start and one restart")
      ->capture_default_str();
  cmd->add_option("--out", o.out, "Write the results as JSON here");
  cmd->add_option("--meshd", o.meshd, "meshd binary")->capture_default_str();
  cmd->add_option("--git-rev", o.git_rev, "Recorded with the results");
  cmd->add_option("--apply-timeout", o.apply_timeout_s, "Seconds to wait for one start's apply")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  return run_reported("restart_bench", o.out, [&](const std::string &dir) {
    return run(o, command_line(argc, argv), dir);
  });
}
