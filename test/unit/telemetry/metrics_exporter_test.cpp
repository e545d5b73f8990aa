// meshd's Prometheus endpoint against a fake admin state with known numbers: the live HTTP
// endpoint is scraped, sample lines are compared exactly, and promtool checks the exposition.
#include "telemetry/metrics_exporter.h"

#include <bpf/bpf.h>
#include <gtest/gtest.h>
#include <linux/filter.h>
#include <unistd.h>

#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include "admin/admin_state.h"
#include "metrics_scrape.h"

namespace sockmesh::telemetry {
namespace {

using sockmesh::testing::http_get;
using sockmesh::testing::sample_lines;

class FakeAdminState : public admin::AdminState {
 public:
  v1::AgentStatus status() override {
    std::lock_guard lock(mu);
    return status_;
  }
  v1::ListServicesResponse services() override { return {}; }
  v1::ListEndpointsResponse endpoints() override { return {}; }
  v1::TrafficReport traffic() override {
    std::lock_guard lock(mu);
    return traffic_;
  }
  v1::ListMapsResponse maps() override {
    std::lock_guard lock(mu);
    return maps_;
  }
  v1::DumpMapResponse dump_map(const std::string &name, uint32_t) override {
    throw std::out_of_range(name);
  }
  v1::FastPathReport fast_path() override {
    std::lock_guard lock(mu);
    return fast_path_;
  }
  v1::ResilienceReport resilience(const std::string &, const std::string &) override {
    std::lock_guard lock(mu);
    if (resilience_fails) throw std::runtime_error("sm_service_states is not loaded");
    return resilience_;
  }
  bool wait_for_change(uint64_t, std::chrono::milliseconds) override { return false; }

  std::mutex mu;
  v1::ResilienceReport resilience_;
  bool resilience_fails = false;
  v1::AgentStatus status_;
  v1::TrafficReport traffic_;
  v1::ListMapsResponse maps_;
  v1::FastPathReport fast_path_;
};

v1::TrafficPair *pair(v1::TrafficReport &r, const std::string &service, const std::string &vip,
                      const std::string &backend) {
  auto *p = r.add_pairs();
  p->set_service(service);
  p->set_vip(vip);
  p->set_backend(backend);
  p->set_source_workload("demo/client");
  p->set_source_principal("spiffe://cluster.local/ns/demo/sa/client");
  p->set_destination_workload("demo/web-v1-a");
  p->set_destination_principal("spiffe://cluster.local/ns/demo/sa/web");
  return p;
}

void fill(FakeAdminState &s) {
  auto &st = s.status_;
  st.set_node("n1");
  st.set_version("0.1.0");
  auto *c = st.add_counters();
  c->set_name("connect_balanced");
  c->set_value(42);
  c = st.add_counters();
  c->set_name("connect_no_backend");
  c->set_value(3);
  auto *config = st.mutable_config();
  config->set_source("controlplane:unix:/run/sockmesh/meshcp/xds.sock");
  config->set_generation(7);
  config->set_applied_unix_ms(1700000000500);
  config->set_services(4);
  config->set_workloads(5);
  config->set_stream_state("connected");
  config->set_map_writes(99);
  auto *mesh = st.mutable_mesh();
  mesh->set_identity_error("ok");
  mesh->set_node_certificate_not_after_unix_ms(1700003600000);
  auto *d = mesh->add_kernel_denials();
  d->set_rule("DENY demo/deny-legacy rules[1]");
  d->set_count(6);
  (*mesh->mutable_inbound()->mutable_denials())["ALLOW demo/web (no rule matched)"] = 2;
  mesh->mutable_outbound()->set_connections_opened(11);
  mesh->mutable_outbound()->set_bytes_to_tunnel(1000);
  mesh->mutable_inbound()->set_streams_opened(8);
  (*mesh->mutable_inbound()->mutable_refusals())["unknown_ca"] = 1;
  mesh->set_captured_accepted(12);
  auto *svid = mesh->add_svids();
  svid->set_spiffe_id("spiffe://cluster.local/ns/demo/sa/client");
  svid->set_workload("demo/client");
  svid->set_not_after_unix_ms(1700001800000);

  auto &t = s.traffic_;
  auto *p = pair(t, "demo/web", "10.96.0.10:80/tcp", "10.78.1.10:8080");
  p->set_balanced(10);
  p->set_denied(1);
  p->set_opened(9);
  p->set_closed(7);
  p->set_active(2);
  p->set_failed(1);
  p->set_reset(1);
  p->set_bytes_sent(123456);
  p->set_bytes_received(654321);
  p->set_fastpath_bytes_sent(100000);
  p->set_fastpath_bytes_received(600000);
  p->set_retransmits(3);
  p->set_srtt_samples(4);
  p->set_srtt_us_sum(2000);
  // The same labels through another VIP of the service: summed into one series.
  p = pair(t, "demo/web", "10.96.0.10:8080/tcp", "10.78.1.10:8080");
  p->set_balanced(5);
  p->set_opened(5);
  p->set_active(1);
  p->set_srtt_samples(1);
  p->set_srtt_us_sum(500);
  // A connect straight to a workload's address: no service.
  p = pair(t, "", "", "10.78.1.11:9090");
  p->set_opened(1);
  t.set_untracked(4);
  auto *log = t.mutable_access_log();
  log->set_events_read(100);
  log->set_lines_written(98);
  log->set_events_lost(2);
  log->set_write_errors(0);

  auto *m = s.maps_.add_maps();
  m->set_name("sm_services");
  m->set_max_entries(65536);
  m->set_entries(4);
  m->set_entries_known(true);
  m->set_memory_bytes(5242880);
  m = s.maps_.add_maps();
  m->set_name("sm_sock_storage");
  m->set_entries_known(false);
  m->set_memory_bytes(4096);

  auto &fp = s.fast_path_;
  fp.set_enabled(true);
  fp.set_switched_on(true);
  fp.set_supported(true);
  fp.set_sockets(5);
  fp.set_max_sockets(65536);
  fp.set_node_sockets(1);
  fp.set_sockets_added(120);
  fp.set_redirected_messages(1234);
  fp.set_redirected_bytes(4718592);
  (*fp.mutable_fallbacks())["no_netns"] = 2;
  (*fp.mutable_fallbacks())["peer_missing"] = 1;
  auto *w = fp.add_workloads();
  w->set_workload("demo/web-v1-a");
  w->set_netns_cookie(4026532002);
  w->set_sockets(1);
  w = fp.add_workloads();
  w->set_workload("demo/client");
  w->set_netns_cookie(4026532001);
  w->set_sockets(3);
  w = fp.add_workloads();
  w->set_workload("demo/batch");  // netns unknown: no sockets
  w->set_netns_unknown_reason("no process in its cgroup yet");

  // demo/web: one busy backend, one ejected, one the kernel has no entry for; demo/api: no
  // service entry yet.
  auto *rs = s.resilience_.add_services();
  rs->set_namespace_("demo");
  rs->set_name("web");
  rs->mutable_state()->set_tracked(true);
  rs->mutable_state()->set_active_connections(12);
  rs->mutable_state()->set_overflows(3);
  rs->mutable_state()->set_rate_limited(41);
  rs->mutable_state()->set_faults(7);
  auto *b = rs->add_backends();
  b->set_workload("demo/web-v1-a");
  b->set_address("10.78.1.10:8080");
  b->set_tracked(true);
  b->set_active_connections(4);
  b->set_connects(1203);
  b = rs->add_backends();
  b->set_workload("demo/web-v2-a");
  b->set_address("10.78.2.11:8080");
  b->set_tracked(true);
  b->set_connects(17);
  b->set_failures(9);
  b->set_ejected(true);
  b->set_ejections_total(2);
  b->set_overflows(1);
  b = rs->add_backends();
  b->set_workload("demo/web-v2-b");
  b->set_address("10.78.2.12:8080");
  rs = s.resilience_.add_services();
  rs->set_namespace_("demo");
  rs->set_name("api");
}

const std::string kPair =
    "source_workload=\"demo/client\",source_principal=\"spiffe://cluster.local/ns/demo/sa/client\","
    "destination_service=\"demo/web\",destination_workload=\"demo/web-v1-a\","
    "destination_principal=\"spiffe://cluster.local/ns/demo/sa/web\","
    "destination_backend=\"10.78.1.10:8080\"";
const std::string kNoService =
    "source_workload=\"demo/client\",source_principal=\"spiffe://cluster.local/ns/demo/sa/client\","
    "destination_service=\"unknown\",destination_workload=\"demo/web-v1-a\","
    "destination_principal=\"spiffe://cluster.local/ns/demo/sa/web\","
    "destination_backend=\"10.78.1.11:9090\"";

class MetricsExporterTest : public ::testing::Test {
 protected:
  void SetUp() override { fill(state); }
  FakeAdminState state;
};

TEST_F(MetricsExporterTest, ServesTheAdminStateAsPrometheusText) {
  MetricsServer server({"127.0.0.1:0", false}, state);
  ASSERT_GT(server.port(), 0);
  server.observe_apply(0.003);
  server.observe_apply(0.2);
  const auto response = http_get(server.port());
  ASSERT_EQ(response.status, 200) << response.headers;
  const auto lines = sample_lines(response.body);
  const std::string expected[] = {
      "sockmesh_tcp_connections_opened_total{" + kPair + "} 14",
      "sockmesh_tcp_connections_opened_total{" + kNoService + "} 1",
      "sockmesh_tcp_connections_closed_total{" + kPair + "} 7",
      "sockmesh_tcp_connections_failed_total{" + kPair + "} 1",
      "sockmesh_tcp_connections_reset_total{" + kPair + "} 1",
      "sockmesh_tcp_connections_active{" + kPair + "} 3",
      "sockmesh_tcp_sent_bytes_total{" + kPair + "} 123456",
      "sockmesh_tcp_received_bytes_total{" + kPair + "} 654321",
      "sockmesh_tcp_fastpath_sent_bytes_total{" + kPair + "} 100000",
      "sockmesh_tcp_fastpath_received_bytes_total{" + kPair + "} 600000",
      "sockmesh_tcp_retransmits_total{" + kPair + "} 3",
      "sockmesh_tcp_srtt_seconds_count{" + kPair + "} 5",
      "sockmesh_tcp_srtt_seconds_sum{" + kPair + "} 0.0025",
      "sockmesh_connect_decisions_total{" + kPair + ",decision=\"balanced\"} 15",
      "sockmesh_connect_decisions_total{" + kPair + ",decision=\"denied\"} 1",
      "sockmesh_connect_decisions_total{" + kPair + ",decision=\"captured\"} 0",
      "sockmesh_datapath_events_total{counter=\"connect_balanced\"} 42",
      "sockmesh_datapath_events_total{counter=\"connect_no_backend\"} 3",
      "sockmesh_policy_denials_total{rule=\"DENY demo/deny-legacy "
      "rules[1]\",enforced_by=\"kernel\"} 6",
      "sockmesh_policy_denials_total{rule=\"ALLOW demo/web (no rule "
      "matched)\",enforced_by=\"tunnel\"} 2",
      "sockmesh_traffic_untracked_total 4",
      "sockmesh_access_log_events_read_total 100",
      "sockmesh_access_log_lines_written_total 98",
      "sockmesh_access_log_events_lost_total 2",
      "sockmesh_access_log_write_errors_total 0",
      "sockmesh_bpf_map_entries{map=\"sm_services\"} 4",
      "sockmesh_bpf_map_max_entries{map=\"sm_services\"} 65536",
      "sockmesh_bpf_map_memory_bytes{map=\"sm_services\"} 5242880",
      "sockmesh_bpf_map_memory_bytes{map=\"sm_sock_storage\"} 4096",
      "sockmesh_config_generation 7",
      "sockmesh_config_last_apply_timestamp_seconds 1700000000.5",
      "sockmesh_config_services 4",
      "sockmesh_config_workloads 5",
      "sockmesh_config_map_writes_total 99",
      "sockmesh_controlplane_stream_up 1",
      "sockmesh_tunnel_connections_opened_total{direction=\"outbound\"} 11",
      "sockmesh_tunnel_sent_bytes_total{direction=\"outbound\"} 1000",
      "sockmesh_tunnel_streams_opened_total{direction=\"inbound\"} 8",
      "sockmesh_tunnel_peer_refusals_total{direction=\"inbound\",reason=\"unknown_ca\"} 1",
      "sockmesh_tunnel_captured_accepted_total 12",
      "sockmesh_identity_renewal_ok 1",
      "sockmesh_identity_svid_expiry_timestamp_seconds{spiffe_id=\"spiffe://cluster.local/ns/demo/"
      "sa/client\",workload=\"demo/client\"} 1700001800",
      "sockmesh_agent_info{node=\"n1\",version=\"0.1.0\"} 1",
      "sockmesh_fastpath_enabled 1",
      "sockmesh_fastpath_sockets 5",
      "sockmesh_fastpath_workload_sockets{workload=\"demo/batch\"} 0",
      "sockmesh_fastpath_workload_sockets{workload=\"demo/client\"} 3",
      "sockmesh_fastpath_workload_sockets{workload=\"demo/web-v1-a\"} 1",
      "sockmesh_fastpath_redirected_messages_total 1234",
      "sockmesh_fastpath_redirected_bytes_total 4718592",
      "sockmesh_fastpath_fallbacks_total{reason=\"no_netns\"} 2",
      "sockmesh_fastpath_fallbacks_total{reason=\"map_full\"} 0",
      "sockmesh_fastpath_fallbacks_total{reason=\"peer_missing\"} 1",
      "sockmesh_fastpath_fallbacks_total{reason=\"peer_gone\"} 0",
      "sockmesh_config_apply_duration_seconds_count 2",
      "sockmesh_config_apply_duration_seconds_bucket{le=\"0.0025\"} 0",
      "sockmesh_config_apply_duration_seconds_bucket{le=\"0.005\"} 1",
      "sockmesh_config_apply_duration_seconds_bucket{le=\"0.25\"} 2",
  };
  for (const auto &line : expected) EXPECT_TRUE(lines.contains(line)) << "missing: " << line;
  // Maps without a count or a capacity have no such sample.
  EXPECT_EQ(response.body.find("sockmesh_bpf_map_entries{map=\"sm_sock_storage\"}"),
            std::string::npos);
  EXPECT_EQ(response.body.find("sockmesh_bpf_map_max_entries{map=\"sm_sock_storage\"}"),
            std::string::npos);
  // process_*, promtool, and every family it serves documented.
  sockmesh::testing::expect_complete_exposition(response.body);
}

TEST_F(MetricsExporterTest, ReadsTheStateAtEveryScrape) {
  MetricsServer server({"127.0.0.1:0", false}, state);
  {
    std::lock_guard lock(state.mu);
    state.status_.mutable_config()->set_generation(8);
    state.status_.mutable_config()->set_stream_state("backoff");
    state.traffic_.Clear();
  }
  const auto lines = sample_lines(http_get(server.port()).body);
  EXPECT_TRUE(lines.contains("sockmesh_config_generation 8"));
  EXPECT_TRUE(lines.contains("sockmesh_controlplane_stream_up 0"));
  for (const auto &line : lines)
    EXPECT_EQ(line.rfind("sockmesh_tcp_", 0), std::string::npos) << line;
}

// The fast path's families: every sample, exactly, and a report read again at the next scrape.
TEST_F(MetricsExporterTest, FastPathFamilies) {
  MetricsServer server({"127.0.0.1:0", false}, state);
  const auto fast_path_lines = [&] {
    std::vector<std::string> out;
    for (const auto &line : sample_lines(http_get(server.port()).body))
      if (line.rfind("sockmesh_fastpath_", 0) == 0) out.push_back(line);
    return out;
  };
  EXPECT_EQ(fast_path_lines(),
            (std::vector<std::string>{
                "sockmesh_fastpath_enabled 1",
                "sockmesh_fastpath_fallbacks_total{reason=\"map_full\"} 0",
                "sockmesh_fastpath_fallbacks_total{reason=\"no_netns\"} 2",
                "sockmesh_fastpath_fallbacks_total{reason=\"peer_gone\"} 0",
                "sockmesh_fastpath_fallbacks_total{reason=\"peer_missing\"} 1",
                "sockmesh_fastpath_redirected_bytes_total 4718592",
                "sockmesh_fastpath_redirected_messages_total 1234",
                "sockmesh_fastpath_sockets 5",
                "sockmesh_fastpath_workload_sockets{workload=\"demo/batch\"} 0",
                "sockmesh_fastpath_workload_sockets{workload=\"demo/client\"} 3",
                "sockmesh_fastpath_workload_sockets{workload=\"demo/web-v1-a\"} 1",
            }));
  // Switched off (or a --config agent): an empty report still has every family but the workloads'.
  {
    std::lock_guard lock(state.mu);
    state.fast_path_.Clear();
    state.fast_path_.set_supported(true);
  }
  EXPECT_EQ(fast_path_lines(), (std::vector<std::string>{
                                   "sockmesh_fastpath_enabled 0",
                                   "sockmesh_fastpath_fallbacks_total{reason=\"map_full\"} 0",
                                   "sockmesh_fastpath_fallbacks_total{reason=\"no_netns\"} 0",
                                   "sockmesh_fastpath_fallbacks_total{reason=\"peer_gone\"} 0",
                                   "sockmesh_fastpath_fallbacks_total{reason=\"peer_missing\"} 0",
                                   "sockmesh_fastpath_redirected_bytes_total 0",
                                   "sockmesh_fastpath_redirected_messages_total 0",
                                   "sockmesh_fastpath_sockets 0",
                               }));
}

// The resilience families: every sample, exactly; entries the kernel has no state for have none.
TEST_F(MetricsExporterTest, ResilienceFamilies) {
  MetricsServer server({"127.0.0.1:0", false}, state);
  const auto resilience_lines = [&] {
    std::vector<std::string> out;
    for (const auto &line : sample_lines(http_get(server.port()).body))
      if (line.rfind("sockmesh_service_", 0) == 0 || line.rfind("sockmesh_backend_", 0) == 0)
        out.push_back(line);
    return out;
  };
  const std::string a =
      "service=\"demo/web\",backend=\"10.78.1.10:8080\",workload=\"demo/web-v1-a\"";
  const std::string b =
      "service=\"demo/web\",backend=\"10.78.2.11:8080\",workload=\"demo/web-v2-a\"";
  EXPECT_EQ(resilience_lines(),
            (std::vector<std::string>{
                "sockmesh_backend_active_connections{" + a + "} 4",
                "sockmesh_backend_active_connections{" + b + "} 0",
                "sockmesh_backend_connects_total{" + a + "} 1203",
                "sockmesh_backend_connects_total{" + b + "} 17",
                "sockmesh_backend_ejected{" + a + "} 0",
                "sockmesh_backend_ejected{" + b + "} 1",
                "sockmesh_backend_ejections_total{" + a + "} 0",
                "sockmesh_backend_ejections_total{" + b + "} 2",
                "sockmesh_backend_failures_total{" + a + "} 0",
                "sockmesh_backend_failures_total{" + b + "} 9",
                "sockmesh_backend_overflows_total{" + a + "} 0",
                "sockmesh_backend_overflows_total{" + b + "} 1",
                "sockmesh_service_active_connections{service=\"demo/web\"} 12",
                "sockmesh_service_refused_connections_total{service=\"demo/web\",reason="
                "\"fault\"} 7",
                "sockmesh_service_refused_connections_total{service=\"demo/web\",reason="
                "\"no_backend\"} 0",
                "sockmesh_service_refused_connections_total{service=\"demo/web\",reason="
                "\"overflow\"} 3",
                "sockmesh_service_refused_connections_total{service=\"demo/web\",reason="
                "\"rate_limited\"} 41",
            }));
  // Maps that cannot be read: no resilience series, everything else still served.
  {
    std::lock_guard lock(state.mu);
    state.resilience_fails = true;
  }
  EXPECT_TRUE(resilience_lines().empty());
  const auto lines = sample_lines(http_get(server.port()).body);
  EXPECT_TRUE(lines.contains("sockmesh_config_generation 7"));
}

TEST_F(MetricsExporterTest, FileModeHasNoStreamOrTunnel) {
  {
    std::lock_guard lock(state.mu);
    state.status_.mutable_config()->set_source("file:/etc/sockmesh/config.yaml");
    state.status_.clear_mesh();
  }
  MetricsServer server({"127.0.0.1:0", false}, state);
  const std::string body = http_get(server.port()).body;
  EXPECT_EQ(body.find("sockmesh_controlplane_stream_up"), std::string::npos);
  EXPECT_EQ(body.find("sockmesh_tunnel_"), std::string::npos);
  EXPECT_NE(body.find("# TYPE sockmesh_policy_denials_total counter"), std::string::npos);
  sockmesh::testing::expect_promtool_clean(body);
}

TEST_F(MetricsExporterTest, BindFailureSaysWhyInOneLine) {
  sockmesh::testing::expect_port_in_use_error([this](const std::string &address) {
    MetricsServer server({address, false}, state);
  });
  for (const char *bad : {"15020", "localhost:", "0.0.0.0:http", "0.0.0.0:70000"})
    EXPECT_THROW(MetricsServer({bad, false}, state), std::runtime_error) << bad;
}

// A real BPF program run with statistics held on: its runs show by name.
TEST_F(MetricsExporterTest, CountsProgramRunsWhileStatsAreHeld) {
  const bpf_insn insns[] = {
      {BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, 0},
      {BPF_JMP | BPF_EXIT, 0, 0, 0, 0},
  };
  const int prog = bpf_prog_load(BPF_PROG_TYPE_SOCKET_FILTER, "sm_test", "GPL", insns, 2, nullptr);
  if (prog < 0) GTEST_SKIP() << "cannot load a BPF program here (needs root)";
  bpf_prog_info info{};
  uint32_t len = sizeof(info);
  ASSERT_EQ(bpf_obj_get_info_by_fd(prog, &info, &len), 0);
  {
    std::lock_guard lock(state.mu);
    auto *p = state.status_.add_programs();
    p->set_name("sm_test");
    p->set_id(info.id);
    p = state.status_.add_programs();  // the same program listed twice counts once
    p->set_name("sm_test");
    p->set_id(info.id);
  }
  {
    MetricsServer server({"127.0.0.1:0", true}, state);
    EXPECT_TRUE(server.bpf_stats_held());
    char packet[64] = {};
    LIBBPF_OPTS(bpf_test_run_opts, run, .data_in = packet, .data_size_in = sizeof(packet),
                .repeat = 5);
    ASSERT_EQ(bpf_prog_test_run_opts(prog, &run), 0);
    const auto lines = sample_lines(http_get(server.port()).body);
    EXPECT_TRUE(lines.contains("sockmesh_bpf_program_runs_total{program=\"sm_test\"} 5"));
    EXPECT_TRUE(lines.contains("sockmesh_bpf_stats_enabled 1"));
    bool has_seconds = false;
    for (const auto &line : lines)
      has_seconds |=
          line.rfind("sockmesh_bpf_program_run_seconds_total{program=\"sm_test\"} ", 0) == 0;
    EXPECT_TRUE(has_seconds);
  }
  close(prog);
}

}  // namespace
}  // namespace sockmesh::telemetry
