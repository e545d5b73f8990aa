// Which node agent meshctl talks to: --node, --admin-socket, or the only agent running here.
#pragma once

#include <filesystem>
#include <string>

namespace sockmesh::cli {

// The admin socket of one node agent.
struct AdminTarget {
  std::string node;  // empty when given as --admin-socket
  std::filesystem::path socket_path;

  // `the agent of node "n1" at /run/sockmesh/n1/admin.sock`, or `the agent at <path>`.
  std::string describe() const;
};

struct TargetOptions {
  std::string node;          // --node
  std::string admin_socket;  // --admin-socket
};

// Resolves the options against run_root (paths::kRunRoot outside tests): an explicit socket wins,
// then the node's socket under run_root, else the only <run_root>/<node>/admin.sock that exists.
// Throws CliError when no agent or several agents are found.
AdminTarget resolve_target(const TargetOptions &options, const std::filesystem::path &run_root);

}  // namespace sockmesh::cli
