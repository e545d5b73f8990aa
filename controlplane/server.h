// meshcp's servers: Discovery and Identity on the agents' listen addresses (TLS with meshcp's CA,
// docs/security.md), ControlPlane on the root-only API socket.
#pragma once

#include <grpcpp/server.h>

#include <memory>
#include <string>
#include <vector>

#include "api_service.h"
#include "discovery_service.h"
#include "identity_service.h"

namespace sockmesh::controlplane {

class Servers {
 public:
  // listen: "unix:PATH" or "host:port". api_socket: a path; its directory is made 0700 and the
  // socket 0600. Throws std::runtime_error when a server cannot start.
  Servers(State &state, IdentityAuthority &authority, const std::vector<std::string> &listen,
          const std::string &api_socket);
  // Ends every discovery stream with UNAVAILABLE "meshcp is stopping", then stops both servers.
  void shutdown();
  ~Servers();

 private:
  State &state_;
  DiscoveryService discovery_;
  ApiService api_;
  IdentityService identity_;
  std::unique_ptr<grpc::Server> discovery_server_;
  std::unique_ptr<grpc::Server> api_server_;
};

// Creates the socket's directory with mode 0700 (root only) and removes a stale socket.
void prepare_socket_dir(const std::string &socket_path);

}  // namespace sockmesh::controlplane
