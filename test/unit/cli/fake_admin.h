// An in-process node agent admin API serving fixed answers on a unix socket, for meshctl's tests.
#pragma once

#include <grpcpp/support/status.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <vector>

#include "sockmesh/v1/admin.pb.h"

namespace sockmesh::cli::testing {

class FakeAdmin {
 public:
  // Serves until destroyed; the socket is created at socket_path.
  explicit FakeAdmin(const std::filesystem::path &socket_path);
  ~FakeAdmin();

  // What the agent answers; set before running a command.
  v1::AgentStatus status;
  v1::ListServicesResponse services;
  v1::ListEndpointsResponse endpoints;
  // How long GetStatus takes to answer.
  std::chrono::milliseconds status_delay{0};
  // WatchServices sends these, then ends the stream with watch_end, or, with watch_holds_open,
  // waits until the client cancels.
  std::vector<v1::ListServicesResponse> watch_updates;
  grpc::Status watch_end;
  bool watch_holds_open = false;

 private:
  struct Server;
  std::unique_ptr<Server> server_;
};

}  // namespace sockmesh::cli::testing
