// meshcp's Prometheus endpoint: a state, agents and a CA with known numbers, scraped over HTTP,
// compared line by line, and checked by promtool and against docs/metrics.md.
#include <gtest/gtest.h>

#include "fixture.h"
#include "identity_authority.h"
#include "metrics_exporter.h"
#include "metrics_scrape.h"
#include "state.h"
#include "store.h"

namespace sockmesh::controlplane {
namespace {

using namespace std::chrono_literals;
using sockmesh::testing::http_get;
using sockmesh::testing::sample_lines;
using testing::kMesh;
using testing::request_of;
using testing::TempDir;

class CpMetricsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = std::make_unique<Store>(dir_.path() + "/state");
    state_ = std::make_unique<State>(*store_);
    tokens_ = std::make_unique<BootstrapTokens>(dir_.path() + "/tokens", clock_);
    authority_ = std::make_unique<IdentityAuthority>(
        pki::CertificateAuthority::create("cluster.local", clock_), *tokens_, *state_,
        IdentityTtls{100s, 20s}, clock_);
  }

  pki::TimePoint now_ = std::chrono::floor<std::chrono::seconds>(std::chrono::system_clock::now());
  pki::Clock clock_ = [this] { return now_; };
  TempDir dir_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<State> state_;
  std::unique_ptr<BootstrapTokens> tokens_;
  std::unique_ptr<IdentityAuthority> authority_;
};

TEST_F(CpMetricsTest, ServesWhatMeshcpKnows) {
  v1::ApplyResponse response;
  ASSERT_TRUE(state_->apply(request_of(kMesh), &response).ok());
  ASSERT_TRUE(state_->apply(request_of(kMesh), &response).ok());  // unchanged
  v1::ApplyRequest bad = request_of(kMesh);
  bad.mutable_resources(0)->set_name("workload/demo/other");  // does not match its body
  EXPECT_FALSE(state_->apply(bad, &response).ok());
  bad.set_dry_run(true);
  EXPECT_FALSE(state_->apply(bad, &response).ok());  // dry runs are not counted
  v1::DeleteRequest missing;
  missing.add_names("service/demo/nope");
  EXPECT_FALSE(state_->remove(missing, &response).ok());

  auto &agents = state_->agents();
  agents.connected("n1", {});
  agents.pushed(3, 1);
  agents.acked("n1", "1", {}, {});
  agents.connected("n2", {});
  agents.pushed(2, 0);
  v1::ErrorDetail detail;
  detail.set_message("no");
  agents.nacked("n2", "1", detail);
  agents.disconnected("n2");

  v1::AddNodeRequest add;
  add.set_node("n1");
  v1::JoinNodeRequest join;
  join.set_node("n1");
  join.set_token(authority_->add_node(add).token());
  const auto key = pki::PrivateKey::generate();
  join.set_csr_pem(pki::make_csr(key, pki::SpiffeId::node("cluster.local", "n1")));
  authority_->join(join);
  join.set_token("hello");
  EXPECT_THROW(authority_->join(join), IdentityRefused);

  MetricsServer server("127.0.0.1:0", *state_, *authority_, "9.9.9");
  ASSERT_GT(server.port(), 0);
  const auto scraped = http_get(server.port());
  ASSERT_EQ(scraped.status, 200) << scraped.headers;
  const auto lines = sample_lines(scraped.body);
  for (const std::string expected : {
           "sockmesh_cp_info{version=\"9.9.9\",trust_domain=\"cluster.local\"} 1",
           "sockmesh_cp_state_version 1",
           "sockmesh_cp_resources{kind=\"workload\"} 4",
           "sockmesh_cp_resources{kind=\"service\"} 2",
           "sockmesh_cp_resources{kind=\"node\"} 2",
           "sockmesh_cp_resources{kind=\"authorizationpolicy\"} 0",
           "sockmesh_cp_changes_total{operation=\"apply\",result=\"applied\"} 1",
           "sockmesh_cp_changes_total{operation=\"apply\",result=\"unchanged\"} 1",
           "sockmesh_cp_changes_total{operation=\"apply\",result=\"refused\"} 1",
           "sockmesh_cp_changes_total{operation=\"delete\",result=\"refused\"} 1",
           "sockmesh_cp_agent_connected{node=\"n1\"} 1",
           "sockmesh_cp_agent_connected{node=\"n2\"} 0",
           "sockmesh_cp_agent_acked_version{node=\"n1\"} 1",
           "sockmesh_cp_agent_acked_version{node=\"n2\"} 0",
           "sockmesh_cp_agent_nacked{node=\"n1\"} 0",
           "sockmesh_cp_agent_nacked{node=\"n2\"} 1",
           "sockmesh_cp_agents_connected 1",
           "sockmesh_cp_agents_known 2",
           "sockmesh_cp_discovery_streams_total 2",
           "sockmesh_cp_pushes_total 2",
           "sockmesh_cp_pushed_resources_total 5",
           "sockmesh_cp_pushed_removals_total 1",
           "sockmesh_cp_acks_total 1",
           "sockmesh_cp_nacks_total 1",
           "sockmesh_cp_identity_issued_total{kind=\"node\"} 1",
           "sockmesh_cp_identity_issued_total{kind=\"workload\"} 0",
           "sockmesh_cp_identity_joins_total{method=\"node_token\"} 1",
           "sockmesh_cp_identity_joins_total{method=\"cluster_token\"} 0",
           "sockmesh_cp_identity_refusals_total{reason=\"token_malformed\"} 1",
       })
    EXPECT_TRUE(lines.contains(expected)) << "missing: " << expected;
  EXPECT_NE(scraped.body.find("\nsockmesh_cp_ca_certificate_expiry_timestamp_seconds "),
            std::string::npos);
  sockmesh::testing::expect_complete_exposition(scraped.body);
}

TEST_F(CpMetricsTest, BindFailureSaysWhyInOneLine) {
  sockmesh::testing::expect_port_in_use_error([this](const std::string &address) {
    MetricsServer server(address, *state_, *authority_, "9.9.9");
  });
  EXPECT_THROW(MetricsServer("15014", *state_, *authority_, "x"), std::runtime_error);
}

}  // namespace
}  // namespace sockmesh::controlplane
