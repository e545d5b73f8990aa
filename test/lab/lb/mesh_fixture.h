// A two-node lab running meshd on each node with a config file per node, plus helpers to query
// the agents and drive connections from inside a pod.
#pragma once

#include <grpcpp/support/status.h>
#include <sys/types.h>

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "sockmesh/lab/lab.h"
#include "sockmesh/v1/admin.grpc.pb.h"
#include "sockmesh/v1/controlplane.grpc.pb.h"

namespace sockmesh::testing {

struct Subsets {
  uint32_t v1 = 80;
  uint32_t v2 = 20;
};

// Where the agents get their configuration from.
enum class Source { kFile, kControlPlane };

class MeshLab {
 public:
  // Pods: client (n1), web-v1-a (n1), web-v1-b (n2), web-v2-a (n2); echo servers on :8080 in the
  // web pods; service demo/web at 10.96.0.10:80 split v1/v2 by `subsets`; service demo/empty at
  // 10.96.0.11:80 with no endpoints. meshd on both nodes.
  // kControlPlane: meshcp runs on node 1 (unix sockets in the test's directory) and the agents
  // use --controlplane; the config is applied through meshcp's API.
  // extra_pods: more pods (no echo server, no workload resource: the test declares them);
  // meshcp_args: more flags for meshcp (e.g. --svid-ttl).
  // meshd_args: more flags for the agent of each node (e.g. the access log's); "{dir}" in one
  // stands for dir(). A node given --join-token-file joins with it, not with a one-time token.
  explicit MeshLab(Subsets subsets = {}, Source source = Source::kFile,
                   std::vector<lab::PodSpec> extra_pods = {},
                   std::vector<std::string> meshcp_args = {},
                   std::map<int, std::vector<std::string>> meshd_args = {});
  ~MeshLab();

  lab::Lab &lab() { return *lab_; }
  // The test's directory (configs, logs); removed with the lab.
  const std::string &dir() const { return dir_; }
  std::string config_path(int node) const;
  // The config text for a given split (and optionally an extra YAML fragment appended).
  std::string config_text(Subsets subsets) const;
  // Writes the config of `node` atomically (rename), as an operator's tool would.
  void write_config(int node, const std::string &text);
  const std::string &written_config(int node) { return written_[node]; }
  v1::AgentStatus status(int node);
  v1::TrafficReport traffic(int node);
  v1::FastPathReport fast_path(int node);
  // One service's resilience state on node's agent (GetResilience).
  v1::ResilienceReport resilience(int node, const std::string &ns, const std::string &name);
  // Waits until node's agent reports a generation > `after` (or a last_error when expect_error).
  v1::AgentStatus wait_generation(int node, uint64_t after);
  v1::AgentStatus wait_error(int node);
  uint64_t counter(int node, const std::string &name);
  pid_t agent_pid(int node) const { return agents_.at(node); }

  // Control-plane mode.
  // Applies every resource of a YAML text (which must load cleanly on its own).
  grpc::Status apply(const std::string &yaml, v1::ApplyResponse *response = nullptr);
  // Applies resources as given, without validating them first (to test meshcp's checks).
  grpc::Status apply_resources(const std::vector<v1::Resource> &resources,
                               v1::ApplyResponse *response = nullptr);
  // Deletes resources by name ("service/demo/web").
  grpc::Status remove(const std::vector<std::string> &names);
  // The agent's log so far.
  std::string agent_log(int node) const;
  // The discovery address the agents are given.
  std::string controlplane_target() const { return "unix:" + dir_ + "/xds.sock"; }
  std::string api_socket() const { return dir_ + "/api.sock"; }
  v1::ControlPlaneStatus controlplane_status();
  void start_controlplane();
  void kill_controlplane();  // SIGKILL, as a crash
  void start_agent(int node);
  void stop_agent(int node);  // SIGTERM: pins stay
  void kill_agent(int node);  // SIGKILL, as a crash: pins stay
  // The extra flags of node's agent from its next start_agent() on.
  void set_meshd_args(int node, std::vector<std::string> args) {
    meshd_args_[node] = std::move(args);
  }
  // Waits until every agent ACKed the control plane's current version; returns that version.
  std::string wait_all_acked();

 private:
  std::unique_ptr<v1::ControlPlane::Stub> controlplane_stub() const;
  // One channel per node's admin socket for the whole test: a channel made and dropped per call
  // leaves gRPC's threads freeing it while the test forks its next pod call.
  std::unique_ptr<v1::Admin::Stub> admin_stub(int node);
  std::map<int, std::shared_ptr<grpc::Channel>> admin_channels_;
  std::unique_ptr<lab::Lab> lab_;
  std::string dir_;
  std::map<int, pid_t> agents_;
  Source source_;
  pid_t controlplane_ = 0;
  std::vector<std::string> meshcp_args_;
  std::map<int, std::vector<std::string>> meshd_args_;
  std::map<int, std::string> written_;  // last text written per node
};

// The errno of a connect() of the given socket type to the unix socket at `path`, made as user
// nobody (0: it connected; -1: the child could not tell).
int connect_as_nobody(const std::string &path, int type);

// Result of many connections made from inside a pod.
struct ConnectTally {
  std::map<std::string, int> bodies;  // echo server name -> count
  int failures = 0;
  int wrong_peer = 0;  // getpeername() differed from the address connected to
  std::string first_error;
};

// Connects `count` times to ip:port from inside `pod`, reading each response; with `at_least`,
// goes on until that much time has passed too.
ConnectTally connect_many(lab::Lab &lab, const std::string &pod, const std::string &ip,
                          uint16_t port, int count,
                          std::chrono::milliseconds at_least = std::chrono::milliseconds(0));

}  // namespace sockmesh::testing
