// meshd: the sockmesh node agent.
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <iostream>

#include "agent.h"
#include "loader/datapath.h"
#include "sockmesh/common/paths.h"

namespace {

int uninstall(const std::string &node) {
  sockmesh::check_node_name(node);
  int lock = sockmesh::lock_node(node);  // refuses while an agent serves the node
  sockmesh::loader::Datapath::uninstall(node);
  close(lock);
  std::string run_dir = sockmesh::paths::run_dir(node);
  unlink((run_dir + "/meshd.lock").c_str());
  unlink((run_dir + "/admin.sock").c_str());
  rmdir(run_dir.c_str());
  std::cout << "meshd: node \"" << node << "\" uninstalled: programs detached, pins removed\n";
  return 0;
}

}  // namespace

int main(int argc, char **argv) {
  CLI::App app{
      "meshd: the sockmesh node agent. Loads the kernel data path, pins it under "
      "/sys/fs/bpf/sockmesh/<node>/, attaches it to the node's workload cgroup and keeps "
      "the kernel maps in step with the config. SIGTERM stops the agent and keeps the data "
      "path running; SIGHUP re-reads the config."};
  app.set_version_flag("--version", SOCKMESH_VERSION);
  std::string node, cgroup, config, level = "info";
  app.add_option("--node", node, "Name of this node (pins and admin socket are per node)");
  app.add_option("--cgroup", cgroup,
                 "cgroup v2 directory whose processes (and descendants) are the node's workloads");
  std::string controlplane, state_dir;
  app.add_option("--config", config,
                 "File mode: YAML file of resources (docs/config.md); re-read on change");
  app.add_option("--controlplane", controlplane,
                 "Control-plane mode: meshcp's discovery address, a gRPC target such as "
                 "unix:/run/sockmesh/meshcp/xds.sock or host:port (mutual TLS with the node's "
                 "certificate)");
  sockmesh::identity::JoinFlags join;
  app.add_option(
      "--join-token", join.token,
      "Control-plane mode: the one-time token of `meshctl node add NODE` (or the cluster's "
      "bootstrap token), for a node that has not joined yet (its identity is then kept in "
      "<state-dir>/identity). Shown by ps: prefer --join-token-file");
  app.add_option(
      "--join-token-file", join.token_file,
      "Control-plane mode: a file holding the join token, one line (e.g. the cluster's bootstrap "
      "token from a mounted Kubernetes Secret), instead of --join-token. Used only when the node "
      "has no usable identity of the pinned CA in <state-dir>/identity, so it can stay mounted");
  app.add_option(
      "--ca-cert-hash", join.ca_cert_hash,
      "With a join token: the sha256:<hex> fingerprint of meshcp's CA that `meshctl node "
      "add` printed; meshd refuses a control plane that does not present it");
  app.add_option(
      "--ca-cert-file", join.ca_cert_file,
      "With a join token, instead of --ca-cert-hash: meshcp's CA certificate (PEM, e.g. the "
      "tls.crt of the CA's Secret); meshd pins its SHA-256 fingerprint as --ca-cert-hash does. "
      "Given both, they must name the same CA");
  uint16_t outbound_port = 15001, tunnel_port = 15008;
  app.add_option("--outbound-port", outbound_port,
                 "Control-plane mode: port of the listener captured connections are redirected to "
                 "(on the node's address)")
      ->check(CLI::Range(1, 65535))
      ->capture_default_str();
  app.add_option(
         "--tunnel-port", tunnel_port,
         "Control-plane mode: port of the mTLS tunnel listener other nodes' agents connect to")
      ->check(CLI::Range(1, 65535))
      ->capture_default_str();
  app.add_option("--state-dir", state_dir,
                 "Control-plane mode: where the last-known-good state is kept "
                 "(default /var/lib/sockmesh/<node>)");
  std::string fast_path = "on";
  app.add_option("--fast-path", fast_path,
                 "Control-plane mode: same-node traffic between workloads, and between a workload "
                 "and this agent, moves socket to socket in the kernel, skipping TCP/IP "
                 "(docs/fastpath.md): on or off. On a kernel without what it needs it stays off "
                 "(meshctl fastpath says why)")
      ->check(CLI::IsMember({"on", "off"}))
      ->capture_default_str();
  std::string fast_path_agent_hops = "off";
  app.add_option("--fast-path-agent-hops", fast_path_agent_hops,
                 "Control-plane mode, with --fast-path on: the hops between a workload and this "
                 "agent (a captured connection to it, a tunnelled stream delivered by it) ride the "
                 "fast path too: on or off. Off by default: measured slower than TCP/IP, and the "
                 "agent's TLS-bound reader lets a bulk sender run ahead (docs/fastpath.md)")
      ->check(CLI::IsMember({"on", "off"}))
      ->capture_default_str();
  // Telemetry (docs/metrics.md).
  sockmesh::AgentOptions defaults;
  std::string traffic_counters = "on";
  app.add_option("--traffic-counters", traffic_counters,
                 "Count every mesh connection in the kernel per service, backend and workload pair "
                 "(connections, bytes, RTT, retransmits): on or off. Off also turns the access log "
                 "off")
      ->check(CLI::IsMember({"on", "off"}))
      ->capture_default_str();
  auto access_log = defaults.access_log;
  app.add_option("--access-log-mode", access_log.mode,
                 "Connection events (open, close) as JSON lines: off, sampled (a share of the "
                 "connections, --access-log-sampling) or all")
      ->check(CLI::IsMember({"off", "sampled", "all"}))
      ->capture_default_str();
  app.add_option("--access-log-sampling", access_log.sampling,
                 "With --access-log-mode sampled: the share of connections logged, in (0, 1)")
      ->capture_default_str();
  app.add_option("--access-log", access_log.path,
                 "File the access log is appended to; - for standard output")
      ->capture_default_str();
  uint32_t ring_bytes = defaults.events_ring_bytes;
  app.add_option("--access-log-ring-bytes", ring_bytes,
                 "Size of the kernel's event ring buffer: a power of two from 4096. Events that "
                 "find it full are counted as lost and reported in the log")
      ->check([](const std::string &text) -> std::string {
        unsigned long long v = 0;
        try {
          v = std::stoull(text);
        } catch (...) {
          return "not a number";
        }
        if (v < 4096 || v > (1ull << 30) || (v & (v - 1)) != 0)
          return "must be a power of two from 4096 to 1073741824";
        return "";
      })
      ->capture_default_str();
  std::string metrics_address = defaults.metrics_address;
  app.add_option("--metrics-address", metrics_address,
                 "host:port of the Prometheus endpoint (/metrics), or off")
      ->capture_default_str();
  std::string health_address = defaults.health_address;
  app.add_option("--health-address", health_address,
                 "host:port of the health probes, or off. GET /healthz/live: 200 while every BPF "
                 "program is loaded and attached (never depends on the control plane); GET "
                 "/healthz/ready: 200 when live, a config was applied, and in control-plane mode "
                 "the discovery stream is connected and the node certificate unexpired. 503 and "
                 "the failing checks otherwise (docs/metrics.md)")
      ->capture_default_str();
  unsigned drain_seconds = 30;
  app.add_option("--drain-seconds", drain_seconds,
                 "Upgrades: an agent started for a node that another agent serves takes over its "
                 "listening sockets (docs/upgrades.md); the previous agent then carries its open "
                 "proxied connections for at most this long before it exits")
      ->check(CLI::Range(0u, 86400u))
      ->capture_default_str();
  bool bpf_run_stats = false;
  app.add_flag("--bpf-run-stats", bpf_run_stats,
               "Have the kernel count run time and runs of every BPF program while meshd runs "
               "(sockmesh_bpf_program_run*; costs two clock reads per program run)");
  app.add_option("--log-level", level, "trace, debug, info, warn, error")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error"}));

  auto *uninstall_cmd = app.add_subcommand(
      "uninstall", "Detach the programs of a node and remove its pins (the agent must be stopped)");
  std::string uninstall_node;
  uninstall_cmd->add_option("--node", uninstall_node, "Node to uninstall")->required();
  app.require_subcommand(0, 1);
  CLI11_PARSE(app, argc, argv);

  spdlog::set_level(spdlog::level::from_str(level));
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e level=%l %v");
  try {
    if (*uninstall_cmd) return uninstall(uninstall_node);
    for (auto [value, flag] : {std::pair{&node, "--node"}, {&cgroup, "--cgroup"}})
      if (value->empty()) throw std::runtime_error(std::string(flag) + " is required");
    if (config.empty() == controlplane.empty())
      throw std::runtime_error("give exactly one of --config FILE and --controlplane ADDR");
    if (state_dir.empty()) state_dir = "/var/lib/sockmesh/" + node;
    for (auto [value, flag] :
         {std::pair{&join.token, "--join-token"}, {&join.token_file, "--join-token-file"}})
      if (!value->empty() && controlplane.empty())
        throw std::runtime_error(std::string(flag) + " needs --controlplane");
    sockmesh::telemetry::check_access_log_options(access_log);
    if (traffic_counters == "off" && access_log.mode != "off")
      throw std::runtime_error("--access-log-mode " + access_log.mode +
                               " needs --traffic-counters on (events come from the counted "
                               "connections)");
    sockmesh::AgentOptions options;
    options.node = node;
    options.workload_cgroup = cgroup;
    options.config_path = config;
    options.controlplane = controlplane;
    options.state_dir = state_dir;
    options.join = sockmesh::identity::join_options(join);
    options.outbound_port = outbound_port;
    options.tunnel_port = tunnel_port;
    options.traffic_counters = traffic_counters == "on";
    options.access_log = access_log;
    options.events_ring_bytes = ring_bytes;
    options.metrics_address = metrics_address;
    options.bpf_run_stats = bpf_run_stats;
    options.health_address = health_address;
    options.fast_path = fast_path == "on";
    options.fast_path_agent_hops = fast_path_agent_hops == "on";
    options.drain = std::chrono::seconds(drain_seconds);
    sockmesh::Agent agent(options);
    agent.run();
    if (agent.handed_over()) agent.drain();
    return 0;
  } catch (const std::exception &e) {
    std::cerr << "meshd: " << e.what() << "\n";
    return 1;
  }
}
