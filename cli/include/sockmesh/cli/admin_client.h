// The client of the node agent's admin API. Only admin_client.cpp includes gRPC: its headers are
// slow to parse, and nothing else needs them.
#pragma once

#include <chrono>
#include <memory>

#include "sockmesh/cli/target.h"
#include "sockmesh/v1/admin.pb.h"

namespace sockmesh::cli {

class AdminClient {
 public:
  // Every call gives the agent `timeout` to answer. Throws CliError when the socket does not exist
  // or cannot be opened.
  AdminClient(AdminTarget target, std::chrono::milliseconds timeout);
  ~AdminClient();
  AdminClient(const AdminClient&) = delete;
  AdminClient& operator=(const AdminClient&) = delete;

  // Each throws CliError naming the agent and the reason when the call fails.
  v1::AgentStatus get_status();
  v1::ListServicesResponse list_services();
  v1::ListEndpointsResponse list_endpoints();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace sockmesh::cli
