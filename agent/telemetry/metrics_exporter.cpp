#include "telemetry/metrics_exporter.h"

#include <bpf/bpf.h>
#include <prometheus/client_metric.h>
#include <prometheus/collectable.h>
#include <prometheus/exposer.h>
#include <prometheus/histogram.h>
#include <prometheus/metric_family.h>
#include <prometheus/metric_type.h>
#include <prometheus/registry.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <map>
#include <stdexcept>
#include <tuple>
#include <vector>

#include "admin/admin_state.h"
#include "sockmesh/common/metrics_support.h"

namespace sockmesh::telemetry {
namespace {

using metrics::Families;
using metrics::kCounter;
using metrics::kGauge;
using metrics::Labels;
using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

bool kernel_stats_enabled() {
  std::ifstream in("/proc/sys/kernel/bpf_stats_enabled");
  int v = 0;
  return (in >> v) && v == 1;
}

std::string service_label(const std::string &service) {
  return service.empty() ? "unknown" : service;
}

// Traffic pairs with identical labels (e.g. one service's VIPs on two ports reaching one backend
// address) are summed: a series is one label set.
struct PairSum {
  uint64_t balanced = 0, captured = 0, no_backend = 0, denied = 0;
  uint64_t opened = 0, failed = 0, closed = 0, active = 0, reset = 0;
  uint64_t bytes_sent = 0, bytes_received = 0, fast_sent = 0, fast_received = 0;
  uint64_t retransmits = 0, srtt_samples = 0, srtt_us_sum = 0;
};
using PairKey =
    std::tuple<std::string, std::string, std::string, std::string, std::string, std::string>;

Labels pair_labels(const PairKey &k) {
  return {{"source_workload", std::get<0>(k)},       {"source_principal", std::get<1>(k)},
          {"destination_service", std::get<2>(k)},   {"destination_workload", std::get<3>(k)},
          {"destination_principal", std::get<4>(k)}, {"destination_backend", std::get<5>(k)}};
}

void add_traffic(Families &f, const v1::TrafficReport &traffic) {
  std::map<PairKey, PairSum> pairs;
  for (const auto &p : traffic.pairs()) {
    PairSum &s = pairs[{p.source_workload(), p.source_principal(), service_label(p.service()),
                        p.destination_workload(), p.destination_principal(), p.backend()}];
    s.balanced += p.balanced();
    s.captured += p.captured();
    s.no_backend += p.no_backend();
    s.denied += p.denied();
    s.opened += p.opened();
    s.failed += p.failed();
    s.closed += p.closed();
    s.active += p.active();
    s.reset += p.reset();
    s.bytes_sent += p.bytes_sent();
    s.bytes_received += p.bytes_received();
    s.fast_sent += p.fastpath_bytes_sent();
    s.fast_received += p.fastpath_bytes_received();
    s.retransmits += p.retransmits();
    s.srtt_samples += p.srtt_samples();
    s.srtt_us_sum += p.srtt_us_sum();
  }
  struct Field {
    const char *name, *help;
    MetricType type;
    uint64_t PairSum::*value;
  };
  static const Field fields[] = {
      {"sockmesh_tcp_connections_opened_total",
       "TCP connections established, counted at the client's node.", kCounter, &PairSum::opened},
      {"sockmesh_tcp_connections_closed_total", "TCP connections established, then closed.",
       kCounter, &PairSum::closed},
      {"sockmesh_tcp_connections_failed_total",
       "TCP connections never established: refused, unreachable or timed out.", kCounter,
       &PairSum::failed},
      {"sockmesh_tcp_connections_reset_total",
       "Closed TCP connections that ended by a reset or an abort instead of FIN.", kCounter,
       &PairSum::reset},
      {"sockmesh_tcp_connections_active", "TCP connections open now (opened - closed).", kGauge,
       &PairSum::active},
      {"sockmesh_tcp_sent_bytes_total",
       "Payload bytes the client sent and the peer acknowledged, all paths.", kCounter,
       &PairSum::bytes_sent},
      {"sockmesh_tcp_received_bytes_total", "Payload bytes the client received, all paths.",
       kCounter, &PairSum::bytes_received},
      {"sockmesh_tcp_fastpath_sent_bytes_total",
       "Of sockmesh_tcp_sent_bytes_total, bytes carried socket to socket (sockmap).", kCounter,
       &PairSum::fast_sent},
      {"sockmesh_tcp_fastpath_received_bytes_total",
       "Of sockmesh_tcp_received_bytes_total, bytes carried socket to socket (sockmap).", kCounter,
       &PairSum::fast_received},
      {"sockmesh_tcp_retransmits_total", "TCP segments retransmitted.", kCounter,
       &PairSum::retransmits},
  };
  for (const Field &field : fields) {
    auto &family = f.add(field.name, field.help, field.type);
    for (const auto &[key, sum] : pairs)
      Families::sample(family, pair_labels(key), double(sum.*field.value));
  }
  auto &srtt = f.add("sockmesh_tcp_srtt_seconds",
                     "Smoothed RTT readings of TCP connections (one per closed connection and one "
                     "per second of a live one): rate(_sum)/rate(_count) is the mean.",
                     MetricType::Summary);
  for (const auto &[key, sum] : pairs) {
    ClientMetric m;
    m.label = pair_labels(key);
    m.summary.sample_count = sum.srtt_samples;
    m.summary.sample_sum = double(sum.srtt_us_sum) / 1e6;
    srtt.metric.push_back(std::move(m));
  }
  auto &decisions = f.add("sockmesh_connect_decisions_total",
                          "connect() decisions of the kernel's load balancer: balanced (to a "
                          "backend), captured (through the agent), no_backend, denied (policy).",
                          kCounter);
  for (const auto &[key, sum] : pairs) {
    const std::pair<const char *, uint64_t> by_decision[] = {{"balanced", sum.balanced},
                                                             {"captured", sum.captured},
                                                             {"no_backend", sum.no_backend},
                                                             {"denied", sum.denied}};
    for (const auto &[decision, value] : by_decision) {
      Labels labels = pair_labels(key);
      labels.push_back({"decision", decision});
      Families::sample(decisions, std::move(labels), double(value));
    }
  }
  f.single("sockmesh_traffic_untracked_total",
           "Connections the kernel could not count under their tuple (counter map full) and "
           "records of connections opened before the agent's restart.",
           kCounter, double(traffic.untracked()));
  const auto &log = traffic.access_log();
  f.single("sockmesh_access_log_events_read_total",
           "Connection events the agent took from the kernel's ring buffer.", kCounter,
           double(log.events_read()));
  f.single("sockmesh_access_log_lines_written_total",
           "Access log lines written (connection events and loss reports).", kCounter,
           double(log.lines_written()));
  f.single("sockmesh_access_log_events_lost_total",
           "Connection events the kernel could not queue (ring buffer full).", kCounter,
           double(log.events_lost()));
  f.single("sockmesh_access_log_write_errors_total", "Access log lines the log file did not take.",
           kCounter, double(log.write_errors()));
}

void add_maps(Families &f, const v1::ListMapsResponse &maps) {
  auto &entries = f.add("sockmesh_bpf_map_entries",
                        "Entries in use in a BPF map, counted by the agent (absent for maps whose "
                        "entries the kernel gives no way to count).",
                        kGauge);
  auto &max =
      f.add("sockmesh_bpf_map_max_entries",
            "Capacity of a BPF map (absent for maps without one: sk_storage, ringbuf).", kGauge);
  auto &memory =
      f.add("sockmesh_bpf_map_memory_bytes", "The kernel's memlock figure for a BPF map.", kGauge);
  for (const auto &m : maps.maps()) {
    if (m.entries_known()) Families::sample(entries, {{"map", m.name()}}, double(m.entries()));
    if (m.max_entries() > 0) Families::sample(max, {{"map", m.name()}}, double(m.max_entries()));
    Families::sample(memory, {{"map", m.name()}}, double(m.memory_bytes()));
  }
}

// run_cnt and run_time_ns of each program, summed by name; programs the kernel does not show
// (gone, or no privilege) are left out.
void add_programs(Families &f, const v1::AgentStatus &status) {
  std::map<std::string, std::pair<uint64_t, uint64_t>> by_name;
  std::map<uint32_t, bool> seen;
  for (const auto &p : status.programs()) {
    if (p.id() == 0 || seen[p.id()]) continue;
    seen[p.id()] = true;
    const int fd = bpf_prog_get_fd_by_id(p.id());
    if (fd < 0) continue;
    bpf_prog_info info{};
    uint32_t len = sizeof(info);
    if (bpf_obj_get_info_by_fd(fd, &info, &len) == 0) {
      auto &[runs, ns] = by_name[p.name()];
      runs += info.run_cnt;
      ns += info.run_time_ns;
    }
    close(fd);
  }
  auto &runs = f.add("sockmesh_bpf_program_runs_total",
                     "Runs of a BPF program the kernel counted (only while BPF run-time "
                     "statistics are enabled: sockmesh_bpf_stats_enabled).",
                     kCounter);
  auto &seconds = f.add("sockmesh_bpf_program_run_seconds_total",
                        "Time a BPF program ran, as the kernel counted it (only while BPF "
                        "run-time statistics are enabled).",
                        kCounter);
  for (const auto &[name, v] : by_name) {
    Families::sample(runs, {{"program", name}}, double(v.first));
    Families::sample(seconds, {{"program", name}}, double(v.second) / 1e9);
  }
}

void add_tunnel(Families &f, const v1::MeshStatus &mesh) {
  struct Field {
    const char *name, *help;
    MetricType type;
    uint64_t (v1::TunnelEndStatus::*value)() const;
  };
  static const Field fields[] = {
      {"sockmesh_tunnel_connections_opened_total",
       "Tunnel connections (mutual TLS) opened: outbound to peers, inbound from them.", kCounter,
       &v1::TunnelEndStatus::connections_opened},
      {"sockmesh_tunnel_connections_active", "Tunnel connections open now.", kGauge,
       &v1::TunnelEndStatus::connections_active},
      {"sockmesh_tunnel_handshakes_failed_total", "TLS handshakes of the tunnel that failed.",
       kCounter, &v1::TunnelEndStatus::handshakes_failed},
      {"sockmesh_tunnel_streams_opened_total", "Tunnel streams (HTTP/2 CONNECT) opened.", kCounter,
       &v1::TunnelEndStatus::streams_opened},
      {"sockmesh_tunnel_streams_closed_total", "Tunnel streams closed.", kCounter,
       &v1::TunnelEndStatus::streams_closed},
      {"sockmesh_tunnel_streams_reset_total", "Tunnel streams reset.", kCounter,
       &v1::TunnelEndStatus::streams_reset},
      {"sockmesh_tunnel_streams_refused_total", "Tunnel streams refused.", kCounter,
       &v1::TunnelEndStatus::streams_refused},
      {"sockmesh_tunnel_sent_bytes_total", "Bytes written into the tunnel.", kCounter,
       &v1::TunnelEndStatus::bytes_to_tunnel},
      {"sockmesh_tunnel_received_bytes_total", "Bytes read from the tunnel.", kCounter,
       &v1::TunnelEndStatus::bytes_from_tunnel},
      {"sockmesh_tunnel_pool_hits_total",
       "Streams that reused a pooled tunnel connection to the peer.", kCounter,
       &v1::TunnelEndStatus::pool_hits},
      {"sockmesh_tunnel_pool_misses_total", "Streams that needed a new tunnel connection.",
       kCounter, &v1::TunnelEndStatus::pool_misses},
      {"sockmesh_tunnel_buffered_bytes", "Bytes buffered in the tunnel now.", kGauge,
       &v1::TunnelEndStatus::buffered_bytes},
  };
  const std::pair<const char *, const v1::TunnelEndStatus *> ends[] = {
      {"outbound", &mesh.outbound()}, {"inbound", &mesh.inbound()}};
  for (const Field &field : fields) {
    auto &family = f.add(field.name, field.help, field.type);
    for (const auto &[direction, end] : ends)
      Families::sample(family, {{"direction", direction}}, double((end->*field.value)()));
  }
  auto &refusals = f.add("sockmesh_tunnel_peer_refusals_total",
                         "Tunnel peers refused, by reason (unknown_ca, expired, ...).", kCounter);
  for (const auto &[direction, end] : ends) {
    const std::map<std::string, uint64_t> sorted(end->refusals().begin(), end->refusals().end());
    for (const auto &[reason, count] : sorted)
      Families::sample(refusals, {{"direction", direction}, {"reason", reason}}, double(count));
  }
  f.single("sockmesh_tunnel_captured_accepted_total",
           "Connections the agent's outbound listener accepted (captured by the kernel).", kCounter,
           double(mesh.captured_accepted()));
  auto &dropped = f.add("sockmesh_tunnel_outbound_dropped_total",
                        "Captured connections accepted but not carried, by reason.", kCounter);
  const std::map<std::string, uint64_t> drops(mesh.outbound_dropped().begin(),
                                              mesh.outbound_dropped().end());
  for (const auto &[reason, count] : drops)
    Families::sample(dropped, {{"reason", reason}}, double(count));
  f.single("sockmesh_identity_node_certificate_expiry_timestamp_seconds",
           "When the node certificate expires (unix time).", kGauge,
           double(mesh.node_certificate_not_after_unix_ms()) / 1e3);
  f.single("sockmesh_identity_renewal_ok",
           "1 when the last identity renewal succeeded, 0 while it fails (and is retried).", kGauge,
           mesh.identity_error() == "ok" ? 1 : 0);
  auto &svids =
      f.add("sockmesh_identity_svid_expiry_timestamp_seconds",
            "When the X.509-SVID the agent holds for a workload identity expires.", kGauge);
  for (const auto &s : mesh.svids())
    Families::sample(svids, {{"spiffe_id", s.spiffe_id()}, {"workload", s.workload()}},
                     double(s.not_after_unix_ms()) / 1e3);
}

void add_denials(Families &f, const v1::AgentStatus &status) {
  auto &denials = f.add("sockmesh_policy_denials_total",
                        "Connections refused by authorization policy, by deciding rule: in the "
                        "kernel at connect() (same node) or by the tunnel's inbound agent.",
                        kCounter);
  std::map<std::pair<std::string, std::string>, uint64_t> sums;
  for (const auto &d : status.mesh().kernel_denials()) sums[{d.rule(), "kernel"}] += d.count();
  for (const auto &[rule, count] : status.mesh().inbound().denials())
    sums[{rule, "tunnel"}] += count;
  for (const auto &[key, count] : sums)
    Families::sample(denials, {{"rule", key.first}, {"enforced_by", key.second}}, double(count));
}

// The same-node fast path (FastPathReport, what `meshctl fastpath` shows). The kernel's four
// fallback reasons always have a series, so that rate() sees the first fallback.
void add_fast_path(Families &f, const v1::FastPathReport &fp) {
  f.single("sockmesh_fastpath_enabled",
           "1 while same-node connections ride the fast path (switched on and supported by the "
           "kernel), else 0: meshctl fastpath says why.",
           kGauge, fp.enabled() ? 1 : 0);
  f.single("sockmesh_fastpath_sockets",
           "Sockets in the fast-path map (sm_fastpath) now, the agent's included.", kGauge,
           double(fp.sockets()));
  auto &workload_sockets = f.add("sockmesh_fastpath_workload_sockets",
                                 "A workload's sockets in the fast-path map now.", kGauge);
  std::map<std::string, uint64_t> by_workload;
  for (const auto &w : fp.workloads()) by_workload[w.workload()] += w.sockets();
  for (const auto &[workload, sockets] : by_workload)
    Families::sample(workload_sockets, {{"workload", workload}}, double(sockets));
  f.single("sockmesh_fastpath_redirected_messages_total",
           "Messages (sendmsg calls) the kernel redirected socket to socket (sk_msg).", kCounter,
           double(fp.redirected_messages()));
  f.single("sockmesh_fastpath_redirected_bytes_total",
           "Bytes the kernel redirected socket to socket, skipping TCP/IP.", kCounter,
           double(fp.redirected_bytes()));
  auto &fallbacks = f.add("sockmesh_fastpath_fallbacks_total",
                          "Times a same-node socket or message took TCP/IP instead of the fast "
                          "path, by reason (no_netns, map_full, peer_missing, peer_gone).",
                          kCounter);
  std::map<std::string, uint64_t> by_reason = {
      {"no_netns", 0}, {"map_full", 0}, {"peer_missing", 0}, {"peer_gone", 0}};
  for (const auto &[reason, count] : fp.fallbacks()) by_reason[reason] = count;
  for (const auto &[reason, count] : by_reason)
    Families::sample(fallbacks, {{"reason", reason}}, double(count));
}

// Resilience at connect() (ResilienceReport, what `meshctl resilience` shows): per tracked service
// and per backend, labelled like the traffic families' services and backends. Entries the kernel
// has no state for have no series; every tracked service has all four refusal reasons.
void add_resilience(Families &f, const v1::ResilienceReport &report) {
  auto &service_active = f.add("sockmesh_service_active_connections",
                               "Connections the kernel charges to a service on this node now "
                               "(what maxConnections limits).",
                               kGauge);
  auto &refused = f.add("sockmesh_service_refused_connections_total",
                        "Connects to a service refused at connect() by resilience, by reason: "
                        "overflow (maxConnections), no_backend (every backend ejected or full), "
                        "rate_limited, fault (fault injection).",
                        kCounter);
  for (const auto &s : report.services()) {
    if (!s.state().tracked()) continue;
    const std::string service = s.namespace_() + "/" + s.name();
    Families::sample(service_active, {{"service", service}},
                     double(s.state().active_connections()));
    const std::pair<const char *, uint64_t> by_reason[] = {
        {"overflow", s.state().overflows()},
        {"no_backend", s.state().no_backend()},
        {"rate_limited", s.state().rate_limited()},
        {"fault", s.state().faults()}};
    for (const auto &[reason, count] : by_reason)
      Families::sample(refused, {{"service", service}, {"reason", reason}}, double(count));
  }
  struct Field {
    const char *name, *help;
    MetricType type;
    double (*value)(const v1::BackendResilience &);
  };
  static const Field fields[] = {
      {"sockmesh_backend_active_connections",
       "Connections the kernel charges to a backend of a service on this node now (what "
       "maxConnectionsPerBackend limits).",
       kGauge, [](const v1::BackendResilience &b) { return double(b.active_connections()); }},
      {"sockmesh_backend_connects_total", "Connects charged to a backend of a service.", kCounter,
       [](const v1::BackendResilience &b) { return double(b.connects()); }},
      {"sockmesh_backend_failures_total",
       "Failures counted against a backend (refused, timed out, retransmission storm).", kCounter,
       [](const v1::BackendResilience &b) { return double(b.failures()); }},
      {"sockmesh_backend_ejected", "1 while outlier detection keeps a backend out, else 0.", kGauge,
       [](const v1::BackendResilience &b) { return b.ejected() ? 1.0 : 0.0; }},
      {"sockmesh_backend_ejections_total", "Times outlier detection ejected a backend.", kCounter,
       [](const v1::BackendResilience &b) { return double(b.ejections_total()); }},
      {"sockmesh_backend_overflows_total",
       "Connects that found a backend at maxConnectionsPerBackend.", kCounter,
       [](const v1::BackendResilience &b) { return double(b.overflows()); }},
  };
  for (const Field &field : fields) {
    auto &family = f.add(field.name, field.help, field.type);
    for (const auto &s : report.services()) {
      const std::string service = s.namespace_() + "/" + s.name();
      for (const auto &b : s.backends()) {
        if (!b.tracked()) continue;
        Families::sample(
            family, {{"service", service}, {"backend", b.address()}, {"workload", b.workload()}},
            field.value(b));
      }
    }
  }
}

// Everything computed at scrape time from the admin state.
class ScrapeCollector final : public prometheus::Collectable {
 public:
  ScrapeCollector(admin::AdminState &state, const bool &stats_held)
      : state_(state), stats_held_(stats_held) {}

  std::vector<MetricFamily> Collect() const override {
    Families f;
    const v1::AgentStatus status = state_.status();
    const v1::TrafficReport traffic = state_.traffic();
    const v1::ListMapsResponse maps = state_.maps();
    const v1::FastPathReport fast_path = state_.fast_path();
    v1::ResilienceReport resilience;
    try {
      resilience = state_.resilience("", "");
    } catch (const std::exception &) {
      // The resilience maps could not be read: their families have no series this scrape, the
      // rest is served.
    }

    sample_info(f, status);
    add_traffic(f, traffic);

    auto &events =
        f.add("sockmesh_datapath_events_total",
              "The data path's counters (sm_counters), summed over CPUs, by name.", kCounter);
    for (const auto &c : status.counters())
      Families::sample(events, {{"counter", c.name()}}, double(c.value()));
    add_denials(f, status);
    add_fast_path(f, fast_path);
    add_resilience(f, resilience);

    add_maps(f, maps);
    add_programs(f, status);
    f.single("sockmesh_bpf_stats_enabled",
             "1 while the kernel counts BPF program run time (meshd --bpf-run-stats, or "
             "kernel.bpf_stats_enabled=1).",
             kGauge, stats_held_ || kernel_stats_enabled() ? 1 : 0);

    const auto &config = status.config();
    f.single("sockmesh_config_generation",
             "Config generation: increases with every applied change.", kGauge,
             double(config.generation()));
    f.single("sockmesh_config_last_apply_timestamp_seconds",
             "When the last config change was applied (unix time).", kGauge,
             double(config.applied_unix_ms()) / 1e3);
    f.single("sockmesh_config_last_error_timestamp_seconds",
             "When the last config input was rejected (unix time; 0: none since start).", kGauge,
             double(config.last_error_unix_ms()) / 1e3);
    f.single("sockmesh_config_services", "Services in the applied config.", kGauge,
             double(config.services()));
    f.single("sockmesh_config_workloads", "Workloads in the applied config.", kGauge,
             double(config.workloads()));
    f.single("sockmesh_config_map_writes_total",
             "BPF map operations the agent made to apply config (slot writes, binds, unbinds).",
             kCounter, double(config.map_writes()));
    if (config.source().rfind("controlplane:", 0) == 0)
      f.single("sockmesh_controlplane_stream_up",
               "1 while the discovery stream to the control plane is connected.", kGauge,
               config.stream_state() == "connected" ? 1 : 0);

    if (status.has_mesh()) add_tunnel(f, status.mesh());
    add_process_metrics(f);
    return f.take();
  }

 private:
  static void sample_info(Families &f, const v1::AgentStatus &status) {
    auto &info =
        f.add("sockmesh_agent_info", "The agent: node name and version (always 1).", kGauge);
    Families::sample(info, {{"node", status.node()}, {"version", status.version()}}, 1);
  }

  admin::AdminState &state_;
  const bool &stats_held_;
};

}  // namespace

struct MetricsServer::Impl {
  int stats_fd = -1;
  bool stats_held = false;
  std::shared_ptr<prometheus::Registry> registry = std::make_shared<prometheus::Registry>();
  prometheus::Histogram *apply = nullptr;
  std::shared_ptr<ScrapeCollector> collector;
  std::unique_ptr<prometheus::Exposer> exposer;
  int port = 0;

  ~Impl() {
    exposer.reset();  // no scrape runs past here
    if (stats_fd >= 0) close(stats_fd);
  }
};

MetricsServer::MetricsServer(const MetricsOptions &opts, admin::AdminState &state)
    : impl_(std::make_unique<Impl>()) {
  const int port = metrics::parse_port(opts.address);
  if (opts.bpf_run_stats) {
    impl_->stats_fd = bpf_enable_stats(BPF_STATS_RUN_TIME);
    if (impl_->stats_fd < 0)
      throw std::runtime_error(std::string("cannot enable BPF run-time statistics "
                                           "(--bpf-run-stats): ") +
                               std::strerror(errno));
    impl_->stats_held = true;
  }
  impl_->apply = &prometheus::BuildHistogram()
                      .Name("sockmesh_config_apply_duration_seconds")
                      .Help("Time to apply one config change to the kernel maps.")
                      .Register(*impl_->registry)
                      .Add({}, prometheus::Histogram::BucketBoundaries{0.0005, 0.001, 0.0025, 0.005,
                                                                       0.01, 0.025, 0.05, 0.1, 0.25,
                                                                       0.5, 1, 2.5, 5, 10});
  impl_->collector = std::make_shared<ScrapeCollector>(state, impl_->stats_held);
  auto endpoint = metrics::start_exposer(opts.address, port);
  impl_->exposer = std::move(endpoint.exposer);
  impl_->port = endpoint.port;
  impl_->exposer->RegisterCollectable(impl_->registry);
  impl_->exposer->RegisterCollectable(impl_->collector);
}

MetricsServer::~MetricsServer() = default;

void MetricsServer::observe_apply(double seconds) {
  impl_->apply->Observe(seconds);
}

int MetricsServer::port() const {
  return impl_->port;
}

bool MetricsServer::bpf_stats_held() const {
  return impl_->stats_held;
}

}  // namespace sockmesh::telemetry
