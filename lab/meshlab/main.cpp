// meshlab: the multi-node lab from a shell (docs/lab.md).
#include <signal.h>
#include <unistd.h>

#include <cerrno>

#include <cstdio>
#include <iostream>
#include <stdexcept>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "sockmesh/lab/echo_server.h"
#include "sockmesh/lab/lab.h"

namespace lab = sockmesh::lab;

namespace {

// NAME@NODE[:IP]
lab::PodSpec parse_pod(const std::string& text) {
  auto at = text.find('@');
  if (at == std::string::npos) throw std::runtime_error(fmt::format("--pod \"{}\": expected NAME@NODE[:IP]", text));
  lab::PodSpec p;
  p.name = text.substr(0, at);
  std::string rest = text.substr(at + 1);
  auto colon = rest.find(':');
  if (colon != std::string::npos) {
    p.ip = rest.substr(colon + 1);
    rest = rest.substr(0, colon);
  }
  try {
    size_t used = 0;
    p.node = std::stoi(rest, &used);
    if (used != rest.size()) throw std::invalid_argument(rest);
  } catch (const std::exception&) {
    throw std::runtime_error(fmt::format("--pod \"{}\": node must be a number, got \"{}\"", text, rest));
  }
  return p;
}

void print_lab(const lab::Lab& l) {
  std::cout << "RUN_ID=" << l.run_id() << "\n";
  for (int i = 1; i <= l.node_count(); ++i) {
    // New fields go at the end of a line: scripts may read the earlier ones by position.
    std::cout << fmt::format(
        "node {} name={} netns={} address={} pod_cidr={} workload_cgroup={} agent_cgroup={} address6={} "
        "pod_cidr6={}\n",
        i, l.node_name(i), l.node_netns(i), l.node_address(i), l.node_pod_cidr(i), l.workload_cgroup(i),
        l.agent_cgroup(i), l.node_address6(i), l.node_pod_cidr6(i));
  }
  for (const auto& pod : l.pods()) {
    std::cout << fmt::format("pod {} node={} netns={} ip={} cgroup={} ip6={}\n", pod, l.pod_node(pod),
                             l.pod_netns(pod), l.pod_ip(pod), l.pod_cgroup(pod), l.pod_ip6(pod));
  }
  std::cout.flush();
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"meshlab: a multi-node sockmesh lab on one machine (network namespaces + cgroups). Needs root."};
  app.require_subcommand(1);

  auto* up = app.add_subcommand("up", "Create a lab and print RUN_ID=<run> and its nodes and pods");
  int nodes = 2;
  std::vector<std::string> pod_args;
  std::string up_run_id;
  pid_t owner = 0;
  bool hold = false;
  up->add_option("--nodes", nodes, "Number of nodes (1..200)")->capture_default_str();
  up->add_option("--pod", pod_args, "A pod: NAME@NODE[:IP] (IP from 10.78.<node>.0/24; default: next free from .10)");
  up->add_option("--run-id", up_run_id, "Run id, 1-12 characters of [a-z0-9] (default: random 5 hex digits)");
  up->add_option("--owner-pid", owner,
                 "The lab is stale once this process is gone (default: meshlab's parent, e.g. the calling script)");
  up->add_flag("--hold", hold,
               "Stay in the foreground owning the lab; SIGINT/SIGTERM tear it down (default owner: meshlab itself)");

  auto* exec = app.add_subcommand("exec", "Run a command in a pod or on a node (its cgroup and netns)");
  std::string exec_run, exec_pod, exec_log;
  int exec_node = 0;
  bool background = false;
  std::vector<std::string> command;
  exec->add_option("run", exec_run, "Run id")->required();
  auto* pod_opt = exec->add_option("--pod", exec_pod, "Pod name");
  auto* node_opt = exec->add_option("--node", exec_node, "Node number (1-based); runs in the node's agent cgroup");
  pod_opt->excludes(node_opt);
  node_opt->excludes(pod_opt);
  auto* bg_opt = exec->add_flag("--background", background,
                                "Start in the background, print its pid; it is killed at `meshlab down`");
  exec->add_option("--log", exec_log, "With --background: append stdout/stderr here (default: discarded)")
      ->needs(bg_opt);
  exec->add_option("command", command, "The command, after --")->required();

  auto* down = app.add_subcommand("down", "Tear a lab down (processes, cgroups, netns, pins, run dirs, state)");
  std::string down_run;
  down->add_option("run", down_run, "Run id")->required();

  auto* gc = app.add_subcommand("gc", "Tear down the labs whose owner process is gone");
  auto* list = app.add_subcommand("list", "List labs: run id, owner pid (live or gone; gone ones are removed by the next up or gc)");
  auto* info = app.add_subcommand("info", "Print a lab's state (JSON)");
  std::string info_run;
  info->add_option("run", info_run, "Run id")->required();

  auto* echo = app.add_subcommand("echo-server", "Serve HTTP (TCP) and a UDP echo on [::]:PORT, dual-stack, answering NAME (a test workload)");
  uint16_t echo_port = 0;
  std::string echo_name;
  echo->add_option("--port", echo_port, "TCP and UDP port")->required();
  echo->add_option("--name", echo_name, "Body of every reply")->required();

  CLI11_PARSE(app, argc, argv);

  try {
    if (*up) {
      lab::LabSpec spec;
      spec.nodes = nodes;
      spec.run_id = up_run_id;
      spec.owner = owner > 0 ? owner : (hold ? ::getpid() : ::getppid());
      for (const auto& p : pod_args) spec.pods.push_back(parse_pod(p));
      auto l = lab::Lab::up(spec);
      print_lab(*l);
      if (!hold) {
        l->detach();
        return 0;
      }
      // The library's handlers tear the lab down on SIGINT/SIGTERM/SIGHUP and re-raise.
      for (;;) ::pause();
    }
    if (*exec) {
      if (exec_pod.empty() && exec_node == 0) throw std::runtime_error("exec: give --pod NAME or --node I");
      auto l = lab::Lab::attach(exec_run);
      if (background) {
        const std::string log = exec_log.empty() ? "/dev/null" : exec_log;
        pid_t pid = exec_pod.empty() ? l->spawn_in_node(exec_node, command, log)
                                     : l->spawn_in_pod(exec_pod, command, log);
        std::cout << pid << "\n";
        return 0;
      }
      return exec_pod.empty() ? l->run_in_node(exec_node, command) : l->run_in_pod(exec_pod, command);
    }
    if (*down) {
      lab::Lab::attach(down_run)->down();
      return 0;
    }
    if (*gc) {
      for (const auto& id : lab::remove_stale_labs()) std::cout << "removed " << id << "\n";
      return 0;
    }
    if (*list) {
      for (const auto& id : lab::list_labs()) {
        try {
          auto state = nlohmann::json::parse(lab::Lab::attach(id)->state_json());
          pid_t pid = state["owner_pid"].get<pid_t>();
          const bool alive = ::kill(pid, 0) == 0 || errno == EPERM;
          std::cout << fmt::format("{} owner={} ({}) nodes={} pods={}\n", id, pid, alive ? "live" : "gone",
                                   state["nodes"].size(), state["pods"].size());
        } catch (const std::exception&) {
          std::cout << id << " unreadable\n";
        }
      }
      return 0;
    }
    if (*info) {
      std::cout << lab::Lab::attach(info_run)->state_json() << "\n";
      return 0;
    }
    if (*echo) return lab::run_echo_server(echo_port, echo_name);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "meshlab: %s\n", e.what());
    return 1;
  }
  return 0;
}
