// The health evaluation (admin/health.h): every check passing and failing, file and control-plane
// mode, the certificate against an injected time, and the JSON bodies byte for byte.
#include "admin/health.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace sockmesh::admin {
namespace {

constexpr int64_t kNow = 1'800'000'000'000;  // unix ms

v1::AgentStatus file_mode() {
  v1::AgentStatus s;
  for (const char *name : {"sm_connect4", "sm_connect6", "sm_sockops"}) {
    auto *p = s.add_programs();
    p->set_name(name);
    p->set_id(10);
    p->set_attach_type(std::string("cgroup/") + (name + 3));
    p->set_link_id(20);
    p->set_attached(true);
  }
  s.mutable_config()->set_source("file:/etc/sockmesh/config.yaml");
  s.mutable_config()->set_generation(3);
  s.mutable_config()->set_applied_unix_ms(kNow - 42'000);
  return s;
}

v1::AgentStatus controlplane_mode() {
  v1::AgentStatus s = file_mode();
  s.mutable_config()->set_source("controlplane:unix:/run/meshcp/xds.sock");
  s.mutable_config()->set_stream_state("connected");
  s.mutable_mesh()->set_node_certificate_not_after_unix_ms(kNow + 3'600'000);
  s.mutable_mesh()->set_identity_error("ok");
  return s;
}

std::vector<std::string> names(const Health &h) {
  std::vector<std::string> out;
  for (const auto &c : h.checks) out.push_back(c.name);
  return out;
}

const HealthCheck &check(const Health &h, const std::string &name) {
  for (const auto &c : h.checks)
    if (c.name == name) return c;
  static const HealthCheck none{"(missing)", false, ""};
  ADD_FAILURE() << "no check " << name;
  return none;
}

TEST(HealthTest, FileModeAllPassHasNoControlPlaneChecks) {
  const Health h = evaluate_health(file_mode(), kNow);
  EXPECT_TRUE(h.live);
  EXPECT_TRUE(h.ready);
  EXPECT_EQ(names(h), (std::vector<std::string>{"programs_attached", "config_applied"}));
  EXPECT_EQ(check(h, "programs_attached").detail, "3 programs attached");
  EXPECT_EQ(check(h, "config_applied").detail, "generation 3 applied 42 s ago");
}

TEST(HealthTest, FileModeIgnoresStreamAndCertificateFields) {
  auto s = file_mode();
  s.mutable_config()->set_stream_state("backoff");
  s.mutable_mesh()->set_node_certificate_not_after_unix_ms(kNow - 1);
  const Health h = evaluate_health(s, kNow);
  EXPECT_TRUE(h.ready);
  EXPECT_EQ(h.checks.size(), 2u);
}

TEST(HealthTest, ControlPlaneModeAllPass) {
  const Health h = evaluate_health(controlplane_mode(), kNow);
  EXPECT_TRUE(h.live);
  EXPECT_TRUE(h.ready);
  EXPECT_EQ(names(h), (std::vector<std::string>{"programs_attached", "config_applied",
                                                "controlplane_stream", "node_certificate"}));
  EXPECT_EQ(check(h, "controlplane_stream").detail, "connected to unix:/run/meshcp/xds.sock");
  EXPECT_EQ(check(h, "node_certificate").detail, "valid for 3600 s more");
  for (const auto &c : h.checks) EXPECT_TRUE(c.ok) << c.name << ": " << c.detail;
}

TEST(HealthTest, NoProgramsIsNeitherLiveNorReady) {
  auto s = controlplane_mode();
  s.clear_programs();
  const Health h = evaluate_health(s, kNow);
  EXPECT_FALSE(h.live);
  EXPECT_FALSE(h.ready);
  EXPECT_FALSE(check(h, "programs_attached").ok);
  EXPECT_EQ(check(h, "programs_attached").detail, "no programs loaded");
}

TEST(HealthTest, DetachedProgramFailsLivenessAndNamesIt) {
  auto s = controlplane_mode();
  s.mutable_programs(1)->set_attached(false);
  const Health h = evaluate_health(s, kNow);
  EXPECT_FALSE(h.live);
  EXPECT_FALSE(h.ready);
  EXPECT_EQ(check(h, "programs_attached").detail,
            "sm_connect6 (cgroup/connect6) detached (a restart of meshd attaches them again)");
  // The other checks are still evaluated and pass.
  EXPECT_TRUE(check(h, "config_applied").ok);
  EXPECT_TRUE(check(h, "controlplane_stream").ok);
}

TEST(HealthTest, UnloadedProgramFailsLiveness) {
  auto s = file_mode();
  s.mutable_programs(0)->set_id(0);
  s.mutable_programs(2)->set_attached(false);
  const Health h = evaluate_health(s, kNow);
  EXPECT_FALSE(h.live);
  EXPECT_EQ(check(h, "programs_attached").detail,
            "sm_connect4 (cgroup/connect4) not loaded, sm_sockops (cgroup/sockops) detached (a "
            "restart of meshd attaches them again)");
}

TEST(HealthTest, NoConfigAppliedYetIsLiveButNotReady) {
  for (bool generation_zero : {true, false}) {
    auto s = controlplane_mode();
    if (generation_zero)
      s.mutable_config()->set_generation(0);
    else
      s.mutable_config()->set_applied_unix_ms(0);
    const Health h = evaluate_health(s, kNow);
    EXPECT_TRUE(h.live);
    EXPECT_FALSE(h.ready);
    EXPECT_FALSE(check(h, "config_applied").ok);
    EXPECT_EQ(check(h, "config_applied").detail, "no config applied yet");
  }
}

TEST(HealthTest, NoConfigAppliedNamesTheLastRefusal) {
  auto s = file_mode();
  s.mutable_config()->set_generation(0);
  s.mutable_config()->set_last_error("service \"demo/web\": spec.vips[0]: bad\nsecond line");
  const Health h = evaluate_health(s, kNow);
  EXPECT_EQ(check(h, "config_applied").detail,
            "no config applied yet; last refused: service \"demo/web\": spec.vips[0]: bad");
}

TEST(HealthTest, StreamNotConnectedIsLiveButNotReady) {
  for (const std::string state : {"connecting", "backoff", "disconnected", "stopped"}) {
    auto s = controlplane_mode();
    s.mutable_config()->set_stream_state(state);
    const Health h = evaluate_health(s, kNow);
    EXPECT_TRUE(h.live) << state;
    EXPECT_FALSE(h.ready) << state;
    EXPECT_FALSE(check(h, "controlplane_stream").ok);
    EXPECT_EQ(check(h, "controlplane_stream").detail,
              "stream to unix:/run/meshcp/xds.sock is " + state);
    EXPECT_TRUE(check(h, "node_certificate").ok);
  }
  auto s = controlplane_mode();
  s.mutable_config()->clear_stream_state();
  EXPECT_EQ(check(evaluate_health(s, kNow), "controlplane_stream").detail,
            "stream to unix:/run/meshcp/xds.sock is not started");
}

TEST(HealthTest, ExpiredNodeCertificateIsLiveButNotReady) {
  auto s = controlplane_mode();
  s.mutable_mesh()->set_node_certificate_not_after_unix_ms(kNow - 90'000);
  s.mutable_mesh()->set_identity_error("meshcp unreachable");
  Health h = evaluate_health(s, kNow);
  EXPECT_TRUE(h.live);
  EXPECT_FALSE(h.ready);
  EXPECT_EQ(check(h, "node_certificate").detail,
            "expired 90 s ago; last renewal: meshcp unreachable");
  // At not_after it is expired; a millisecond before, it is not.
  s.mutable_mesh()->set_node_certificate_not_after_unix_ms(kNow);
  EXPECT_FALSE(evaluate_health(s, kNow).ready);
  EXPECT_TRUE(evaluate_health(s, kNow - 1).ready);
  // The injected time decides, not the clock: the same status is ready an hour earlier.
  s.mutable_mesh()->set_node_certificate_not_after_unix_ms(kNow - 90'000);
  EXPECT_TRUE(evaluate_health(s, kNow - 3'600'000).ready);
}

TEST(HealthTest, MissingNodeCertificateIsNotReady) {
  auto s = controlplane_mode();
  s.mutable_mesh()->clear_node_certificate_not_after_unix_ms();
  const Health h = evaluate_health(s, kNow);
  EXPECT_FALSE(h.ready);
  EXPECT_EQ(check(h, "node_certificate").detail, "no node certificate");
}

TEST(HealthTest, JsonBodies) {
  auto s = controlplane_mode();
  s.mutable_config()->set_stream_state("backoff");
  const Health h = evaluate_health(s, kNow);
  EXPECT_EQ(health_json(h, false),
            R"({"status":"ok","checks":[{"name":"programs_attached","ok":true,)"
            R"("detail":"3 programs attached"}]})");
  EXPECT_EQ(health_json(h, true),
            R"({"status":"fail","checks":[)"
            R"({"name":"programs_attached","ok":true,"detail":"3 programs attached"},)"
            R"({"name":"config_applied","ok":true,"detail":"generation 3 applied 42 s ago"},)"
            R"({"name":"controlplane_stream","ok":false,)"
            R"("detail":"stream to unix:/run/meshcp/xds.sock is backoff"},)"
            R"({"name":"node_certificate","ok":true,"detail":"valid for 3600 s more"}]})");
}

TEST(HealthTest, JsonEscapesAndReplacesInvalidUtf8) {
  Health h;
  h.checks.push_back({"programs_attached", false, "a \"quoted\"\n\xff name"});
  EXPECT_EQ(health_json(h, false),
            R"({"status":"fail","checks":[{"name":"programs_attached","ok":false,)"
            "\"detail\":\"a \\\"quoted\\\"\\n\xEF\xBF\xBD name\"}]}");
}

}  // namespace
}  // namespace sockmesh::admin
