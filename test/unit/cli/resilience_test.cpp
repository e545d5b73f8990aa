// `meshctl resilience` and the resilience part of `meshctl describe service`, end to end
// in-process, against a fake agent's GetResilience (and a fake meshcp for describe).
#include <gtest/gtest.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "fake_admin.h"
#include "fake_controlplane.h"
#include "meshctl_harness.h"
#include "sockmesh/cli/manifest.h"
#include "sockmesh/cli/output.h"
#include "sockmesh/cli/resilience_views.h"

namespace sockmesh::cli {
namespace {

namespace fs = std::filesystem;
using testing::MeshctlHarness;
using testing::Result;

v1::BackendResilience *add_backend(v1::ServiceResilience &s, std::string address,
                                   std::string workload, std::uint32_t weight) {
  auto *b = s.add_backends();
  b->set_address(std::move(address));
  b->set_workload(std::move(workload));
  b->set_weight(weight);
  return b;
}

// demo/web with every setting, busy, one backend ejected and one the kernel has no entry for;
// demo/api with nothing set and no state yet; shop/dns on UDP only. Services out of order.
v1::ResilienceReport sample_report() {
  v1::ResilienceReport r;
  r.set_node("n1");
  r.set_unix_ms(testing::kNow);
  auto &web = *r.add_services();
  web.set_namespace_("demo");
  web.set_name("web");
  web.set_service_id("9f0e11b2c4d5a6e8");
  auto &set = *web.mutable_settings();
  set.set_lb_policy(v1::LB_POLICY_LEAST_CONNECTIONS);
  set.set_max_connections(100);
  set.set_max_connections_per_backend(10);
  set.set_consecutive_failures(5);
  set.set_base_ejection_ms(30000);
  set.set_max_ejection_ms(300000);
  set.set_max_ejection_percent(10);
  set.set_rate_per_second(100);
  set.set_rate_burst(20);
  set.set_fault_percent(12.5);
  set.set_fault_error("ECONNRESET");
  set.set_fault_scoped(true);
  auto &st = *web.mutable_state();
  st.set_tracked(true);
  st.set_active_connections(12);
  st.set_overflows(3);
  st.set_rate_limited(41);
  st.set_faults(7);
  auto *b = add_backend(web, "10.78.1.10:8080", "demo/web-v1-a", 1);
  b->set_tracked(true);
  b->set_active_connections(4);
  b->set_connects(1203);
  b = add_backend(web, "10.78.2.11:8080", "demo/web-v2-a", 3);
  b->set_tracked(true);
  b->set_connects(17);
  b->set_failures(9);
  b->set_ejected(true);
  b->set_ejected_until_unix_ms(testing::kNow + 67'000);  // 12:01:07 UTC
  b->set_ejection_remaining_ms(23'400);                  // by the agent's clock
  b->set_ejections_in_a_row(2);
  b->set_ejections_total(2);
  b = add_backend(web, "10.78.2.12:8080", "demo/web-v2-b", 3);  // no kernel entry
  b = add_backend(web, "[fd00:78:1::10]:8080", "demo/web-v1-a", 1);
  b->set_tracked(true);
  b->set_active_connections(1);
  b->set_connects(5);
  b->set_failures(1);
  b->set_consecutive_failures(1);
  b->set_ejected_until_unix_ms(testing::kNow - 5'000);  // back since 5 s
  b->set_ejections_in_a_row(1);
  b->set_ejections_total(1);
  b->set_overflows(2);
  auto &api = *r.add_services();
  api.set_namespace_("demo");
  api.set_name("api");
  api.set_service_id("00000000000000a7");
  r.add_untracked_services("shop/dns");
  return r;
}

const char *const kWebBlock =
    "Settings:    policy LEAST_CONNECTIONS, maxConnections 100, perBackend 10, outlier 5 failures "
    "/ 30s..5m / 10%, rate 100/s burst 20, fault 12.5% ECONNRESET (scoped)\n"
    "Active:      12 connections\n"
    "Refused:     overflow 3, no backend 0, rate limited 41, fault 7\n"
    "BACKEND                WORKLOAD        WEIGHT   ACTIVE      CONNECTS   FAILURES   IN A ROW   "
    "EJECTED UNTIL              EJECTIONS   OVERFLOWS\n"
    "10.78.1.10:8080        demo/web-v1-a   1        4           1203       0          0          "
    "-                          0           0\n"
    "10.78.2.11:8080        demo/web-v2-a   3        0           17         9          0          "
    "12:01:07Z (in 23.4s, #2)   2           0\n"
    "10.78.2.12:8080        demo/web-v2-b   3        untracked   -          -          -          "
    "-                          -           -\n"
    "[fd00:78:1::10]:8080   demo/web-v1-a   1        1           5          1          1          "
    "-                          1           2\n";

const char *const kApiBlock =
    "Settings:    policy RANDOM, maxConnections unlimited, perBackend unlimited, outlier off, "
    "rate off, fault off\n"
    "Active:      untracked (the kernel holds no state for this service yet)\n"
    "No backends.\n";

class ResilienceTest : public MeshctlHarness {
 protected:
  void SetUp() override {
    MeshctlHarness::SetUp();
    fs::create_directories(env_.run_root / "n1");
    agent_ = std::make_unique<testing::FakeAdmin>(env_.run_root / "n1" / "admin.sock");
    agent_->status.set_node("n1");
    agent_->resilience = sample_report();
  }
  void TearDown() override {
    cp_.reset();
    agent_.reset();
    MeshctlHarness::TearDown();
  }

  std::string agent() const {
    return "the agent of node \"n1\" at " + (env_.run_root / "n1/admin.sock").string();
  }

  // A meshcp holding demo/web (TCP), shop/dns (UDP) and their workloads, for describe.
  void start_controlplane() {
    cp_socket_ = dir_ / "api.sock";
    cp_ = std::make_unique<testing::FakeControlPlane>(cp_socket_);
    cp_->resources = load_manifests({write("held.yaml", R"(apiVersion: sockmesh/v1
kind: Workload
metadata: {name: web-v1-a, namespace: demo}
spec: {serviceAccount: web, node: n1, addresses: [10.78.1.10]}
---
apiVersion: sockmesh/v1
kind: Service
metadata: {name: web, namespace: demo}
spec:
  vips: [{address: 10.96.0.10, port: 80}]
  endpoints: [{workload: web-v1-a, port: 8080}]
---
apiVersion: sockmesh/v1
kind: Service
metadata: {name: dns, namespace: shop}
spec:
  vips: [{address: 10.96.0.53, port: 53, protocol: UDP}]
---
apiVersion: sockmesh/v1
kind: Service
metadata: {name: new, namespace: demo}
spec:
  vips: [{address: 10.96.0.11, port: 80}]
)")});
    for (auto &resource : cp_->resources) resource.set_version("r1");
  }

  Result describe(std::vector<std::string> args) {
    args.insert(args.begin(), {"--controlplane", cp_socket_.string(), "describe", "service"});
    return run(args);
  }

  // What meshcp's part of `describe service demo/web` prints.
  static constexpr const char *kWebSpec =
      "Service:     demo/web\n"
      "Version:     r1\n"
      "Labels:      -\n"
      "VIPs:        10.96.0.10:80/TCP\n"
      "Policy:      RANDOM\n"
      "\n"
      "Subsets:\n"
      "No subsets: endpoints share the traffic by weight.\n"
      "\n"
      "Endpoints:\n"
      "WORKLOAD   ADDRESSES    PORT   WEIGHT   SUBSET\n"
      "web-v1-a   10.78.1.10   8080   1        -\n"
      "\n"
      "Agents:\n"
      "No agents.\n";

  std::unique_ptr<testing::FakeAdmin> agent_;
  std::unique_ptr<testing::FakeControlPlane> cp_;
  fs::path cp_socket_;
};

TEST_F(ResilienceTest, EveryServiceOfTheNode) {
  const auto r = run({"resilience"});
  EXPECT_EQ(r.err, "");
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.out, std::string("Node:        n1\n"
                               "\n"
                               "Service:     demo/api (id 00000000000000a7)\n") +
                       kApiBlock +
                       "\n"
                       "Service:     demo/web (id 9f0e11b2c4d5a6e8)\n" +
                       kWebBlock +
                       "\n"
                       "Untracked:   shop/dns (no TCP VIP: resilience decides TCP connects)\n");
  ASSERT_EQ(agent_->resilience_requests.size(), 1u);
  EXPECT_EQ(agent_->resilience_requests[0].name(), "");
}

TEST_F(ResilienceTest, OneServiceInOneOrAnyNamespace) {
  auto r = run({"resilience", "demo/web"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, std::string("Node:        n1\n"
                               "\n"
                               "Service:     demo/web (id 9f0e11b2c4d5a6e8)\n") +
                       kWebBlock);
  r = run({"resilience", "web", "--node", "n1"});
  EXPECT_EQ(r.code, 0) << r.err;
  ASSERT_EQ(agent_->resilience_requests.size(), 2u);
  EXPECT_EQ(agent_->resilience_requests[0].namespace_(), "demo");
  EXPECT_EQ(agent_->resilience_requests[0].name(), "web");
  EXPECT_EQ(agent_->resilience_requests[1].namespace_(), "");
  EXPECT_EQ(agent_->resilience_requests[1].name(), "web");
}

TEST_F(ResilienceTest, NoServices) {
  agent_->resilience.clear_services();
  agent_->resilience.clear_untracked_services();
  const auto r = run({"resilience"});
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.out, "Node:        n1\n\nNo services.\n");
}

TEST_F(ResilienceTest, JsonAndYamlAreTheOrderedReport) {
  auto r = run({"resilience", "-o", "json"});
  EXPECT_EQ(r.err, "");
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.out, json_document(resilience_in_order(sample_report()), DocumentLayout::single));
  EXPECT_LT(r.out.find("\"name\": \"api\""), r.out.find("\"name\": \"web\""));
  for (const char *text :
       {"\"serviceId\": \"9f0e11b2c4d5a6e8\"", "\"lbPolicy\": \"LB_POLICY_LEAST_CONNECTIONS\"",
        "\"faultPercent\": 12.5", "\"ejectedUntilUnixMs\": \"1714564867000\"",
        "\"ejectionRemainingMs\": \"23400\"", "\"tracked\": false",
        "\"untrackedServices\": [\n    \"shop/dns\"\n  ]", "\"node\": \"n1\""})
    EXPECT_NE(r.out.find(text), std::string::npos) << text << " missing from:\n" << r.out;
  r = run({"resilience", "demo/web", "-o", "yaml"});
  EXPECT_EQ(r.code, 0);
  v1::ResilienceReport web = sample_report();
  web.mutable_services()->DeleteSubrange(1, 1);
  web.clear_untracked_services();
  EXPECT_EQ(r.out, yaml_document(web, DocumentLayout::single));
}

TEST_F(ResilienceTest, UnknownServiceAndAgentFailures) {
  auto r = run({"resilience", "shop/web"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err, "meshctl: service \"shop/web\" not found on " + agent() +
                       " (`meshctl get services` lists the services it applied)\n");
  r = run({"resilience", "nope"});
  EXPECT_EQ(r.err, "meshctl: service \"nope\" (any namespace) not found on " + agent() +
                       " (`meshctl get services` lists the services it applied)\n");
  agent_->resilience_error = grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "");
  r = run({"resilience"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err, "meshctl: " + agent() +
                       " does not serve GetResilience: its meshd predates resilience (upgrade "
                       "meshd to the version of this meshctl)\n");
  agent_->resilience_error =
      grpc::Status(grpc::StatusCode::INTERNAL, "cannot read sm_backend_states: Bad address");
  r = run({"resilience", "-o", "json"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err, "meshctl: " + agent() +
                       " failed GetResilience: cannot read sm_backend_states: Bad address (gRPC "
                       "status 13)\n");
  r = run({"--node", "n9", "resilience"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err, "meshctl: cannot reach the agent of node \"n9\" at " +
                       (env_.run_root / "n9/admin.sock").string() +
                       ": no such socket (is meshd running?)\n");
}

TEST_F(ResilienceTest, UsageAndHelp) {
  auto r = run({"resilience", "a/b/c"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err, "meshctl: service filter \"a/b/c\": give NAMESPACE/NAME or NAME\n");
  r = run({"resilience", "-o", "xml"});
  EXPECT_EQ(r.code, 2);
  r = run({"resilience", "--help"});
  EXPECT_EQ(r.code, 0);
  for (const char *word : {"connect()", "SERVICE", "-o,--output FORMAT=table"})
    EXPECT_NE(r.out.find(word), std::string::npos) << word << " missing from:\n" << r.out;
  r = run({"--help"});
  EXPECT_NE(r.out.find("resilience"), std::string::npos) << r.out;
}

TEST_F(ResilienceTest, DescribeServiceAddsTheAgentsView) {
  start_controlplane();
  const auto r = describe({"demo/web"});
  EXPECT_EQ(r.err, "");
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.out, std::string(kWebSpec) + "\nResilience on node n1:\n" + kWebBlock);
  ASSERT_EQ(agent_->resilience_requests.size(), 1u);
  EXPECT_EQ(agent_->resilience_requests[0].namespace_(), "demo");
  EXPECT_EQ(agent_->resilience_requests[0].name(), "web");
  // -n, and the agent chosen with --admin-socket: the node comes from the agent's answer.
  EXPECT_EQ(describe({"web", "-n", "demo", "--admin-socket",
                      (env_.run_root / "n1" / "admin.sock").string()})
                .out,
            r.out);
}

TEST_F(ResilienceTest, DescribeServiceSaysWhyThereIsNoResilience) {
  start_controlplane();
  // UDP only.
  auto r = describe({"shop/dns"});
  EXPECT_EQ(r.code, 0);
  EXPECT_TRUE(r.out.ends_with(
      "\nNo agents.\n"
      "\n"
      "Resilience on node n1: not tracked (no TCP VIP: resilience decides TCP connects)\n"))
      << r.out;
  // In meshcp, not (yet) on the node.
  r = describe({"demo/new"});
  EXPECT_EQ(r.code, 0);
  EXPECT_TRUE(
      r.out.ends_with("\nNo agents.\n\nResilience:  unavailable: service \"demo/new\" not "
                      "found on " +
                      agent() + " (`meshctl get services` lists the services it applied)\n"))
      << r.out;
  // The agent fails.
  agent_->resilience_error = grpc::Status(grpc::StatusCode::INTERNAL, "sm_service_states is gone");
  r = describe({"demo/web"});
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.out, std::string(kWebSpec) + "\nResilience:  unavailable: " + agent() +
                       " failed GetResilience: sm_service_states is gone (gRPC status 13)\n");
  // No agent on this host.
  agent_.reset();
  fs::remove_all(env_.run_root / "n1");
  r = describe({"demo/web"});
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.err, "");
  EXPECT_EQ(r.out, std::string(kWebSpec) +
                       "\nResilience:  unavailable: no node agent found under " +
                       env_.run_root.string() + " (is meshd running? pick one with --node)\n");
  // meshcp does not hold it: the agent is not asked.
  r = describe({"demo/nope"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err, "meshctl: service/demo/nope not in the control plane\n");
}

}  // namespace
}  // namespace sockmesh::cli
