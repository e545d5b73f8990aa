// The client of the node agent's admin API. Only admin_client.cpp includes gRPC: its headers are
// slow to parse, and nothing else needs them.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <stop_token>
#include <string>

#include "sockmesh/cli/target.h"
#include "sockmesh/v1/admin.pb.h"

namespace sockmesh::cli {

class AdminClient {
 public:
  // Every call gives the agent `timeout` to answer and is cancelled when `interrupted` is
  // requested. Throws CliError when the socket does not exist or cannot be opened.
  AdminClient(AdminTarget target, std::chrono::milliseconds timeout,
              std::stop_token interrupted = {});
  ~AdminClient();
  AdminClient(const AdminClient &) = delete;
  AdminClient &operator=(const AdminClient &) = delete;

  // Each throws CliError naming the agent and the reason when the call fails, Interrupted when
  // the operator interrupted it.
  v1::AgentStatus get_status();
  v1::ListServicesResponse list_services();
  v1::ListEndpointsResponse list_endpoints();
  v1::TrafficReport get_traffic();
  v1::ListMapsResponse list_maps();
  // limit 0: the agent's default (1000). A map the agent does not have (NOT_FOUND) throws
  // CliError with the agent's message ("no map X on this node; `meshctl bpf maps` lists them").
  v1::DumpMapResponse dump_map(const std::string &name, std::uint32_t limit);

  // The same-node fast path. An agent that has no GetFastPath (UNIMPLEMENTED: older than the fast
  // path) throws CliError saying so.
  v1::FastPathReport get_fast_path();

  // Resilience at connect(): every tracked service when `name` is empty, else the services called
  // `name` in `ns` (any namespace when `ns` is empty). A service the agent does not hold
  // (NOT_FOUND) and an agent without GetResilience (UNIMPLEMENTED) throw CliError saying so.
  v1::ResilienceReport get_resilience(const std::string &ns, const std::string &name);

  // Calls on_update with each answer of WatchServices until the operator interrupts (then returns)
  // or the agent ends the stream (then throws CliError "<agent> closed the watch: <reason>").
  // `timeout` bounds the wait for the first answer only; failures before it read like those above.
  void watch_services(const std::function<void(const v1::ListServicesResponse &)> &on_update);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace sockmesh::cli
