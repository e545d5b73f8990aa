// Well-known paths shared by meshd, meshctl and the lab (DESIGN.md "Pins").
#pragma once

#include <string>
#include <string_view>

namespace sockmesh::paths {

// Root of the per-node pin directories on bpffs.
inline constexpr std::string_view kPinRoot = "/sys/fs/bpf/sockmesh";
// Root of the per-node runtime directories (admin socket); root-only (0700).
inline constexpr std::string_view kRunRoot = "/run/sockmesh";

// /sys/fs/bpf/sockmesh/<node>: every pinned map and link of one node agent.
inline std::string pin_dir(std::string_view node) {
  return std::string(kPinRoot) + "/" + std::string(node);
}

// /run/sockmesh/<node>: runtime files of one node agent.
inline std::string run_dir(std::string_view node) {
  return std::string(kRunRoot) + "/" + std::string(node);
}

// /run/sockmesh/<node>/admin.sock: the agent's gRPC admin API.
inline std::string admin_socket(std::string_view node) { return run_dir(node) + "/admin.sock"; }

}  // namespace sockmesh::paths
