#include "metrics_exporter.h"

#include <prometheus/client_metric.h>
#include <prometheus/collectable.h>
#include <prometheus/exposer.h>
#include <prometheus/metric_family.h>

#include <chrono>
#include <exception>
#include <string>
#include <vector>

#include "identity_authority.h"
#include "sockmesh/common/metrics_support.h"
#include "state.h"

namespace sockmesh::controlplane {
namespace {

using metrics::Families;
using metrics::kCounter;
using metrics::kGauge;
using prometheus::MetricFamily;

double number(const std::string &s) {
  try {
    return s.empty() ? 0 : std::stod(s);
  } catch (const std::exception &) {
    return 0;
  }
}

class Collector final : public prometheus::Collectable {
 public:
  Collector(const State &state, const IdentityAuthority &authority, std::string version)
      : state_(state), authority_(authority), version_(std::move(version)) {}

  std::vector<MetricFamily> Collect() const override {
    Families f;
    v1::ControlPlaneStatus status;
    state_.status(&status);

    auto &info = f.add("sockmesh_cp_info",
                       "The control plane: version and trust domain (always 1).", kGauge);
    Families::sample(info,
                     {{"version", version_}, {"trust_domain", authority_.ca().trust_domain()}}, 1);
    f.single("sockmesh_cp_state_version", "The state version: increases with every stored change.",
             kGauge, number(status.version()));
    auto &resources = f.add("sockmesh_cp_resources", "Resources in the state, by kind.", kGauge);
    auto by_kind = state_.resources_by_kind();
    for (const char *kind : {"workload", "service", "node", "authorizationpolicy"}) by_kind[kind];
    for (const auto &[kind, count] : by_kind)
      Families::sample(resources, {{"kind", kind}}, double(count));
    auto &changes = f.add("sockmesh_cp_changes_total",
                          "Apply and Delete requests, by operation and result (applied, unchanged, "
                          "refused, failed); dry runs are not counted.",
                          kCounter);
    for (const auto &[key, count] : state_.changes())
      Families::sample(changes, {{"operation", key.first}, {"result", key.second}}, double(count));

    uint64_t connected = 0;
    auto &agent_up =
        f.add("sockmesh_cp_agent_connected",
              "1 while the node's agent has a discovery stream open, 0 after it left.", kGauge);
    auto &acked = f.add("sockmesh_cp_agent_acked_version",
                        "The state version the node's agent last ACKed (0: none yet).", kGauge);
    auto &nacked =
        f.add("sockmesh_cp_agent_nacked",
              "1 while the node's agent's last answer was a NACK (refused push).", kGauge);
    for (const auto &a : status.agents()) {
      connected += a.connected() ? 1 : 0;
      Families::sample(agent_up, {{"node", a.node()}}, a.connected() ? 1 : 0);
      Families::sample(acked, {{"node", a.node()}}, number(a.acked_version()));
      Families::sample(nacked, {{"node", a.node()}}, a.nacked_version().empty() ? 0 : 1);
    }
    f.single("sockmesh_cp_agents_connected", "Node agents with a discovery stream open.", kGauge,
             double(connected));
    f.single("sockmesh_cp_agents_known", "Node agents seen since start.", kGauge,
             double(status.agents_size()));
    const Agents::Counters c = state_.agents().counters();
    f.single("sockmesh_cp_discovery_streams_total",
             "Discovery streams agents opened (named a node).", kCounter, double(c.streams));
    f.single("sockmesh_cp_pushes_total", "Pushes sent to agents.", kCounter, double(c.pushes));
    f.single("sockmesh_cp_pushed_resources_total",
             "Resources added or changed, summed over pushes.", kCounter,
             double(c.pushed_resources));
    f.single("sockmesh_cp_pushed_removals_total", "Resource removals, summed over pushes.",
             kCounter, double(c.pushed_removals));
    f.single("sockmesh_cp_acks_total", "Pushes agents ACKed (applied).", kCounter, double(c.acks));
    f.single("sockmesh_cp_nacks_total", "Pushes agents NACKed (refused; nothing applied).",
             kCounter, double(c.nacks));

    auto &issued = f.add("sockmesh_cp_identity_issued_total",
                         "Certificates the CA issued, by kind: node (joins and renewals) and "
                         "workload (X.509-SVIDs).",
                         kCounter);
    auto issued_by_kind = authority_.issued();
    for (const char *kind : {"node", "workload"}) issued_by_kind[kind];
    for (const auto &[kind, count] : issued_by_kind)
      Families::sample(issued, {{"kind", kind}}, double(count));
    auto &joins = f.add("sockmesh_cp_identity_joins_total",
                        "Nodes that joined, by the token they presented: node_token (one-time, "
                        "per node) or cluster_token (--bootstrap-token-file).",
                        kCounter);
    auto joins_by_method = authority_.joins();
    for (const char *method : {"node_token", "cluster_token"}) joins_by_method[method];
    for (const auto &[method, count] : joins_by_method)
      Families::sample(joins, {{"method", method}}, double(count));
    auto &refusals =
        f.add("sockmesh_cp_identity_refusals_total",
              "Requests the CA refused, by reason (token_used, workload_on_other_node, "
              "...).",
              kCounter);
    for (const auto &[reason, count] : authority_.refusals())
      Families::sample(refusals, {{"reason", reason}}, double(count));
    using namespace std::chrono;
    f.single(
        "sockmesh_cp_ca_certificate_expiry_timestamp_seconds",
        "When the CA certificate expires (unix time).", kGauge,
        double(duration_cast<seconds>(authority_.ca().certificate().not_after().time_since_epoch())
                   .count()));
    add_process_metrics(f);
    return f.take();
  }

 private:
  const State &state_;
  const IdentityAuthority &authority_;
  const std::string version_;
};

}  // namespace

struct MetricsServer::Impl {
  std::shared_ptr<Collector> collector;
  std::unique_ptr<prometheus::Exposer> exposer;
  int port = 0;
};

MetricsServer::MetricsServer(const std::string &address, const State &state,
                             const IdentityAuthority &authority, const std::string &version)
    : impl_(std::make_unique<Impl>()) {
  const int port = metrics::parse_port(address);
  impl_->collector = std::make_shared<Collector>(state, authority, version);
  auto endpoint = metrics::start_exposer(address, port);
  impl_->exposer = std::move(endpoint.exposer);
  impl_->port = endpoint.port;
  impl_->exposer->RegisterCollectable(impl_->collector);
}

MetricsServer::~MetricsServer() = default;

int MetricsServer::port() const {
  return impl_->port;
}

}  // namespace sockmesh::controlplane
