// The client of meshcp's ControlPlane API (proto/sockmesh/v1/controlplane.proto), on its root-only
// unix socket.
#pragma once

#include <chrono>
#include <filesystem>
#include <memory>
#include <stop_token>
#include <string>
#include <string_view>
#include <vector>

#include "sockmesh/v1/controlplane.pb.h"

namespace sockmesh::cli {

// Where meshcp serves its API unless --controlplane says otherwise.
inline constexpr std::string_view kControlPlaneSocket = "/run/sockmesh/meshcp/api.sock";

class ControlPlaneClient {
 public:
  // Every call gives meshcp `timeout` to answer and is cancelled when `interrupted` is requested.
  // Throws CliError when the socket does not exist or cannot be opened.
  ControlPlaneClient(std::filesystem::path socket, std::chrono::milliseconds timeout,
                     std::stop_token interrupted = {});
  ~ControlPlaneClient();
  ControlPlaneClient(const ControlPlaneClient &) = delete;
  ControlPlaneClient &operator=(const ControlPlaneClient &) = delete;

  // Each throws CliError naming the control plane and the reason when the call fails, Interrupted
  // when the operator interrupted it. A change meshcp refuses (INVALID_ARGUMENT,
  // FAILED_PRECONDITION) throws "the control plane refused the change; nothing was applied:"
  // followed by meshcp's reasons, one indented line each.
  v1::ApplyResponse apply(const v1::ApplyRequest &request);
  v1::ApplyResponse remove(const std::vector<std::string> &names);
  // kind: "workload", "service", "node"; empty for every resource.
  v1::ListResponse list(std::string_view kind);
  v1::ControlPlaneStatus get_status();
  // A one-time bootstrap token for `node`; ttl_seconds 0: meshcp's default (24 h).
  v1::AddNodeResponse add_node(const std::string &node, std::int64_t ttl_seconds);
  // node empty: every node.
  v1::ListIdentitiesResponse list_identities(const std::string &node);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace sockmesh::cli
