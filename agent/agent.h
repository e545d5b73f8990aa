// meshd's top level: owns the data path, the reconciler, the config source and the admin API,
// and runs the event loop (config changes, signals).
#pragma once

#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "admin/admin_state.h"
#include "identity/node_identity.h"
#include "loader/features.h"
#include "reconcile/desired_state.h"
#include "sockmesh/v1/discovery.pb.h"
#include "sockmesh/v1/resources.pb.h"
#include "telemetry/access_log.h"
#include "upgrade/handover.h"

namespace sockmesh {

namespace loader {
class Datapath;
}
namespace reconcile {
struct ApplyStats;
class BpfLbMaps;
class BpfResilienceStates;
class FaultSourceMap;
class KernelUpstreamReports;
class Reconciler;
}  // namespace reconcile
namespace admin {
class AdminServer;
class HealthServer;
}  // namespace admin
namespace identity {
class Rotator;
}
namespace proxy {
class NodeProxy;
}
namespace reconcile {
class CaptureMaps;
class PolicyMaps;
struct MeshView;
}
namespace telemetry {
class AccessLog;
class MapInspector;
class MetricsServer;
class TrafficCounters;
struct Names;
}  // namespace telemetry
namespace fastpath {
class FastPath;
}
namespace xds {
struct Delta;
struct KnownGood;
class DiscoveryClient;
class LastKnownGood;
}  // namespace xds

struct AgentOptions {
  std::string node;
  std::string workload_cgroup;  // absolute path of a cgroup v2 directory
  std::string config_path;      // file mode: a YAML file of resources
  std::string controlplane;     // control-plane mode: the discovery stream's gRPC target
  std::string state_dir;        // control-plane mode: where the last-known-good state is kept
  identity::JoinOptions join;   // control-plane mode: how a node that has not joined joins
  uint16_t outbound_port = 15001;  // control-plane mode: captured connections land here
  uint16_t tunnel_port = 15008;    // control-plane mode: the tunnel from other nodes' agents
  // Telemetry (docs/metrics.md): per-connection counters in the kernel, the access log, the
  // Prometheus endpoint ("off": none).
  bool traffic_counters = true;
  telemetry::AccessLogOptions access_log;
  uint32_t events_ring_bytes = 4u << 20;
  std::string metrics_address = "0.0.0.0:15020";
  bool bpf_run_stats = false;
  // Kubernetes probes (docs/metrics.md, "Health probes"): /healthz/live and /healthz/ready on
  // this "host:port" ("off": none), started once the agent is up.
  std::string health_address = "0.0.0.0:15021";
  // The same-node fast path (docs/fastpath.md), when the kernel supports it; the hops to and from
  // the agent too only when asked.
  bool fast_path = true;
  bool fast_path_agent_hops = false;
  // After handing its listeners to the agent that replaces it (docs/upgrades.md), how long this
  // one goes on carrying its open proxied connections before it exits, closing what is left.
  std::chrono::seconds drain = std::chrono::seconds(30);
};

class Agent : public admin::AdminState {
 public:
  // Checks the options and the environment, reads the config (an unreadable or invalid file at
  // start is an error: nothing is changed), loads the data path and applies the config.
  // Throws std::runtime_error with a one-line reason.
  explicit Agent(AgentOptions options);
  ~Agent() override;

  // Serves until SIGTERM or SIGINT (SIGHUP re-reads the config), or until an agent started for
  // the same node asked for the listeners and got them (handed_over()). Pins and links stay.
  void run();
  bool handed_over() const { return handed_over_; }
  // After a handover: lets go of the node at once (control-plane stream, maps, event ring, admin,
  // health and metrics endpoints, the node lock) and carries the open proxied connections until
  // they end or the drain window passes.
  void drain();

  v1::AgentStatus status() override;
  v1::ListServicesResponse services() override;
  v1::ListEndpointsResponse endpoints() override;
  v1::TrafficReport traffic() override;
  v1::ListMapsResponse maps() override;
  v1::DumpMapResponse dump_map(const std::string &name, uint32_t limit) override;
  v1::FastPathReport fast_path() override;
  v1::ResilienceReport resilience(const std::string &ns, const std::string &name) override;
  bool wait_for_change(uint64_t generation, std::chrono::milliseconds limit) override;

 private:
  void start();
  void release_node();
  bool controlplane_mode() const { return !options_.controlplane.empty(); }
  // A push (delta given) or the persisted state at start (no delta): validated, then applied.
  std::optional<v1::ErrorDetail> apply_candidate(const xds::KnownGood &candidate,
                                                 const xds::Delta *delta);
  // The fast path for a push that only adds, changes or removes Services (an operator's usual
  // change): checks and applies just those, with work proportional to the change. nullopt when
  // the push is not of that kind (the full path takes it); else "" or why it was refused or
  // failed (*errors holds the validation errors, if any). mu_ held.
  std::optional<std::string> apply_service_change(const xds::KnownGood &state,
                                                  const xds::Delta &delta,
                                                  std::vector<std::string> *errors);
  // The last-known-good writer: persists the ACKed state at most about once a second, off the
  // stream's path (serializing 110,000 resources and fsyncing 12 MB per push would delay the
  // next push by a hundred milliseconds); a stop writes what is unwritten.
  // After the kernel took a change, or refused it (mu_ held).
  void record_applied(const reconcile::ApplyStats &stats, int64_t micros, std::string_view path);
  void sync_fault_sources();
  void set_report_slots();
  std::string record_kernel_failure(const std::exception &e);
  void request_persist();
  void persist_loop();
  void stop_persisting();
  // Re-reads the config file; applies it whole or keeps the previous state and records why not.
  void reload();
  // Translates and reconciles; returns "" or why the kernel could not be brought there.
  // The snapshot is consumed (emptied) on success.
  std::string apply_locked(v1::Snapshot &snapshot);
  // After a state was applied: when it may have changed workloads or nodes (delta null: all),
  // rebuilds the mesh view and hands it to identities (and, with it, capture and the tunnel).
  void mesh_state_applied(const xds::KnownGood &state, const xds::Delta *delta);
  // Telemetry: the kernel's switch, the access log and the metrics endpoint (after the data path).
  void start_telemetry();
  // The health probes' server, last in start(): its answers come from status().
  void start_health();
  // The numbers and addresses of the kernel's maps, named from the applied state.
  std::shared_ptr<const telemetry::Names> names();
  // Hands the access log the names of the state just applied.
  void refresh_log_names();

  // Gives the serving agent's listeners to the agent that asked (upgrade::HandoverListener);
  // false, still serving, when they could not be sent.
  bool hand_over(UniqueFd connection);
  void serve_handover();
  void take_over();
  void wait_for_local_svids(std::chrono::milliseconds limit);

  AgentOptions options_;
  int lock_fd_ = -1;
  std::optional<upgrade::Handover>
      handover_;  // from the agent this one replaces, until start() ends
  std::unique_ptr<upgrade::HandoverListener> handover_listener_;
  UniqueFd handed_to_;  // the connection of the agent that took the listeners
  bool handed_over_ = false;
  bool upgrading_ = false;  // a handover socket was there at start: take_over() after the load
  std::chrono::system_clock::time_point started_;

  std::vector<loader::Feature> features_;  // probed at start; constant afterwards
  std::unique_ptr<loader::Datapath> datapath_;
  std::unique_ptr<reconcile::BpfLbMaps> lb_maps_;
  std::unique_ptr<reconcile::BpfResilienceStates> resilience_states_;  // before reconciler_
  std::unique_ptr<reconcile::Reconciler> reconciler_;
  std::unique_ptr<reconcile::FaultSourceMap> fault_sources_;
  std::unique_ptr<admin::AdminServer> admin_;
  std::unique_ptr<xds::LastKnownGood> lkg_;
  std::unique_ptr<xds::DiscoveryClient> client_;
  std::unique_ptr<identity::Rotator> rotator_;  // control-plane mode: node cert and SVIDs
  std::unique_ptr<reconcile::CaptureMaps> capture_maps_;  // control-plane mode
  std::unique_ptr<reconcile::PolicyMaps> policy_maps_;    // control-plane mode
  std::unique_ptr<fastpath::FastPath> fast_path_;         // control-plane mode
  std::unique_ptr<reconcile::KernelUpstreamReports> upstream_reports_;  // before proxy_
  std::unique_ptr<proxy::NodeProxy> proxy_;               // control-plane mode
  std::unique_ptr<telemetry::TrafficCounters> traffic_;
  std::unique_ptr<telemetry::AccessLog> access_log_;     // when its mode is not off
  std::unique_ptr<telemetry::MapInspector> inspector_;
  std::unique_ptr<telemetry::MetricsServer> metrics_;    // unless its address is "off"
  std::unique_ptr<admin::HealthServer> health_;          // unless its address is "off"
  std::string trust_domain_;                    // control-plane mode, from the node certificate
  std::shared_ptr<const reconcile::MeshView> mesh_view_;  // under mu_
  std::thread persist_thread_;
  std::mutex persist_mu_;
  std::condition_variable persist_cv_;
  bool persist_dirty_ = false;
  bool persist_stop_ = false;

  std::mutex mu_;                          // guards what follows, read by admin threads
  std::condition_variable changed_;        // notified when generation_ moves
  uint64_t applied_text_ = 0;              // digest of the applied file's text
  std::optional<uint64_t> rejected_text_;  // digest of the last refused file's text, if any
  v1::Snapshot snapshot_;                  // as applied, less the workloads (counted in workloads_)
  uint32_t workloads_ = 0;
  reconcile::DesiredState desired_;
  bool desired_is_whole_ = false;  // desired_ is the kernel's state for the whole config
  // The VIP ports of each service in desired_ ("namespace/name"), so that a change finds them
  // without walking desired_.
  std::map<std::string, std::vector<reconcile::ServiceKey>> service_keys_;
  uint64_t generation_ = 0;
  std::string system_version_;  // control-plane mode: the state version applied
  int64_t applied_unix_ms_ = 0;
  std::string last_error_;
  int64_t last_error_unix_ms_ = 0;
};

// Validates a node name (DNS-1123 label); throws std::runtime_error with the reason.
void check_node_name(const std::string &node);

// Holds /run/sockmesh/<node>/meshd.lock: one agent per node. Returns the fd; throws naming the pid
// of the agent holding it.
int lock_node(const std::string &node);

}  // namespace sockmesh
