// The agent's gRPC admin API on a unix socket that only root can reach: the socket's directory is
// 0700 and the socket 0600, both owned by root.
#pragma once

#include <memory>
#include <string>

#include "admin/admin_state.h"

namespace sockmesh::admin {

class AdminServer {
 public:
  // Serves until destroyed. Throws std::runtime_error when the socket cannot be bound.
  AdminServer(const std::string &socket_path, AdminState &state);
  // Calls in progress get a moment to finish, then are cancelled.
  ~AdminServer();
  // Removes the socket file now (and not at destruction): the next agent binds its own there while
  // this one still finishes its calls (an upgrade's handover).
  void release_path();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace sockmesh::admin
