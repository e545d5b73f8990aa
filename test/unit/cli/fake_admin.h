// An in-process node agent admin API serving fixed answers on a unix socket, for meshctl's tests.
#pragma once

#include <grpcpp/support/status.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <string>
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
  // GetTraffic answers these in turn, then the last one again (none: an empty report).
  std::vector<v1::TrafficReport> traffic;
  v1::ListMapsResponse maps;
  // DumpMap answers dumps[name] as is, NOT_FOUND with the agent's message for any other name.
  // dump_requests records every request (read it once the command has returned).
  std::map<std::string, v1::DumpMapResponse> dumps;
  std::vector<v1::DumpMapRequest> dump_requests;
  // GetFastPath answers fast_path, or fails with fast_path_error when that is not OK.
  v1::FastPathReport fast_path;
  grpc::Status fast_path_error;
  // GetResilience answers `resilience` narrowed to the request's service (its untracked list
  // too), NOT_FOUND when the request names a service in neither, or fails with resilience_error
  // when that is not OK. resilience_requests records every request.
  v1::ResilienceReport resilience;
  grpc::Status resilience_error;
  std::vector<v1::GetResilienceRequest> resilience_requests;
  // How long GetStatus takes to answer.
  std::chrono::milliseconds status_delay{0};
  // WatchServices sends these, then ends the stream with watch_end, or, with watch_holds_open,
  // waits until the client cancels.
  std::vector<v1::ListServicesResponse> watch_updates;
  grpc::Status watch_end;
  bool watch_holds_open = false;
  // How many GetTraffic calls were answered.
  int traffic_calls() const;

 private:
  mutable std::mutex mutex_;
  std::size_t traffic_served_ = 0;

  struct Server;
  std::unique_ptr<Server> server_;
};

}  // namespace sockmesh::cli::testing
