#include "sockmesh/cli/target.h"

#include <fmt/format.h>

#include <algorithm>
#include <system_error>
#include <vector>

#include "sockmesh/cli/error.h"

namespace sockmesh::cli {
namespace fs = std::filesystem;
namespace {

// Same layout as paths::admin_socket(node), under a run root that tests can move.
fs::path node_socket(const fs::path &run_root, const std::string &node) {
  return run_root / node / "admin.sock";
}

// Nodes under run_root whose directory holds an admin.sock, sorted by name.
std::vector<std::string> nodes_with_socket(const fs::path &run_root) {
  std::vector<std::string> nodes;
  std::error_code ec;
  fs::directory_iterator it(run_root, ec);
  if (ec == std::errc::no_such_file_or_directory) return nodes;
  if (ec == std::errc::permission_denied) {
    throw CliError(
        fmt::format("cannot list node agents under {}: permission denied (run meshctl as "
                    "root, or pick an agent with --admin-socket)",
                    run_root.string()));
  }
  if (ec)
    throw CliError(
        fmt::format("cannot list node agents under {}: {}", run_root.string(), ec.message()));
  for (const auto &entry : it) {
    std::error_code exists_ec;
    if (entry.is_directory(exists_ec) && fs::exists(entry.path() / "admin.sock", exists_ec)) {
      nodes.push_back(entry.path().filename().string());
    }
  }
  std::sort(nodes.begin(), nodes.end());
  return nodes;
}

}  // namespace

std::string AdminTarget::describe() const {
  if (node.empty()) return fmt::format("the agent at {}", socket_path.string());
  return fmt::format("the agent of node \"{}\" at {}", node, socket_path.string());
}

AdminTarget resolve_target(const TargetOptions &options, const fs::path &run_root) {
  if (!options.admin_socket.empty()) return {.node = "", .socket_path = options.admin_socket};
  if (!options.node.empty()) {
    if (options.node.find('/') != std::string::npos || options.node == "." ||
        options.node == "..") {
      throw CliError(fmt::format("--node: \"{}\" is not a node name", options.node));
    }
    return {.node = options.node, .socket_path = node_socket(run_root, options.node)};
  }
  const auto nodes = nodes_with_socket(run_root);
  if (nodes.empty()) {
    throw CliError(
        fmt::format("no node agent found under {} (is meshd running? pick one with --node)",
                    run_root.string()));
  }
  if (nodes.size() > 1) {
    throw CliError(fmt::format("several node agents run here ({}): pick one with --node",
                               fmt::join(nodes, ", ")));
  }
  return {.node = nodes.front(), .socket_path = node_socket(run_root, nodes.front())};
}

}  // namespace sockmesh::cli
