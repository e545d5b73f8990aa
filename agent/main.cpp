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
  sockmesh::identity::JoinOptions join;
  app.add_option("--join-token", join.token,
                 "Control-plane mode: the one-time token of `meshctl node add NODE`, for a node that "
                 "has not joined yet (its identity is then kept in <state-dir>/identity)");
  app.add_option("--ca-cert-hash", join.ca_cert_hash,
                 "With --join-token: the sha256:<hex> fingerprint of meshcp's CA that `meshctl node "
                 "add` printed; meshd refuses a control plane that does not present it");
  uint16_t outbound_port = 15001, tunnel_port = 15008;
  app.add_option("--outbound-port", outbound_port,
                 "Control-plane mode: port of the listener captured connections are redirected to "
                 "(on the node's address)")
      ->check(CLI::Range(1, 65535))
      ->capture_default_str();
  app.add_option("--tunnel-port", tunnel_port,
                 "Control-plane mode: port of the mTLS tunnel listener other nodes' agents connect to")
      ->check(CLI::Range(1, 65535))
      ->capture_default_str();
  app.add_option("--state-dir", state_dir,
                 "Control-plane mode: where the last-known-good state is kept "
                 "(default /var/lib/sockmesh/<node>)");
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
    if (!join.token.empty() && controlplane.empty())
      throw std::runtime_error("--join-token needs --controlplane");
    sockmesh::Agent agent({node, cgroup, config, controlplane, state_dir, join, outbound_port, tunnel_port});
    agent.run();
    return 0;
  } catch (const std::exception &e) {
    std::cerr << "meshd: " << e.what() << "\n";
    return 1;
  }
}
