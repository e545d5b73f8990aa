// meshd's health probes (docs/metrics.md, "Health probes") with real agents and meshcp: both
// nodes ready with every check; meshcp killed, readiness fails naming controlplane_stream while
// liveness stays 200; meshcp back, ready again; a program's link detached in the kernel fails
// liveness naming it, and a restart of that agent attaches it again. Probed with curl in each
// node's network namespace, on the default port 15021.
#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "mesh_fixture.h"

namespace sockmesh::testing {
namespace {

using namespace std::chrono_literals;

struct Probe {
  int code = 0;
  nlohmann::json body;  // null unless the answer was JSON
  std::string raw;
};

// `method` /path on node's 127.0.0.1:15021, with curl inside the node's network namespace.
Probe probe(MeshLab &mesh, int node, const std::string &path, const std::string &method = "GET") {
  Probe p;
  const int rc = mesh.lab().run_in_node(node,
                                        {"curl", "-s", "--max-time", "5", "-X", method, "-w",
                                         "\n%{http_code}", "http://127.0.0.1:15021" + path},
                                        &p.raw);
  if (rc != 0) return p;
  const auto last = p.raw.rfind('\n');
  p.code = std::stoi(p.raw.substr(last + 1));
  p.body = nlohmann::json::parse(p.raw.substr(0, last), nullptr, false);
  if (p.body.is_discarded()) p.body = nullptr;
  return p;
}

const nlohmann::json *find_check(const Probe &p, const std::string &name) {
  if (!p.body.is_object()) return nullptr;
  for (const auto &c : p.body["checks"])
    if (c["name"] == name) return &c;
  return nullptr;
}

std::vector<std::string> check_names(const Probe &p) {
  std::vector<std::string> out;
  if (p.body.is_object())
    for (const auto &c : p.body["checks"]) out.push_back(c["name"]);
  return out;
}

void wait_for(const std::function<bool()> &done, std::chrono::milliseconds limit,
              const std::string &what) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!done()) {
    ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "timed out waiting for " << what;
    std::this_thread::sleep_for(100ms);
  }
}

class HealthLabTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { mesh_ = new MeshLab({}, Source::kControlPlane); }
  static void TearDownTestSuite() {
    delete mesh_;
    mesh_ = nullptr;
  }
  static MeshLab *mesh_;
};
MeshLab *HealthLabTest::mesh_ = nullptr;

TEST_F(HealthLabTest, ProbesFollowTheDataPathAndTheControlPlane) {
  const std::vector<std::string> all = {"programs_attached", "config_applied",
                                        "controlplane_stream", "node_certificate"};
  mesh_->wait_all_acked();
  for (int node = 1; node <= 2; ++node) {
    const Probe ready = probe(*mesh_, node, "/healthz/ready");
    ASSERT_EQ(ready.code, 200) << "node " << node << ": " << ready.raw;
    EXPECT_EQ(ready.body["status"], "ok");
    EXPECT_EQ(check_names(ready), all) << ready.raw;
    const Probe live = probe(*mesh_, node, "/healthz/live");
    EXPECT_EQ(live.code, 200) << live.raw;
    EXPECT_EQ(check_names(live), std::vector<std::string>{"programs_attached"}) << live.raw;
  }
  EXPECT_EQ(probe(*mesh_, 1, "/healthz/ready", "POST").code, 405);
  EXPECT_EQ(probe(*mesh_, 1, "/healthz/live", "DELETE").code, 405);
  EXPECT_EQ(probe(*mesh_, 1, "/metrics").code, 404);

  // The control plane gone: not ready (nothing new arrives), still live (the kernel serves).
  mesh_->kill_controlplane();
  for (int node = 1; node <= 2; ++node) {
    Probe ready;
    wait_for(
        [&] {
          ready = probe(*mesh_, node, "/healthz/ready");
          return ready.code == 503;
        },
        10s, "node " + std::to_string(node) + " not ready");
    EXPECT_EQ(ready.body["status"], "fail");
    const auto *stream = find_check(ready, "controlplane_stream");
    ASSERT_NE(stream, nullptr) << ready.raw;
    EXPECT_EQ((*stream)["ok"], false) << ready.raw;
    for (const char *name : {"programs_attached", "config_applied", "node_certificate"})
      EXPECT_EQ((*find_check(ready, name))["ok"], true) << name << ": " << ready.raw;
    const Probe live = probe(*mesh_, node, "/healthz/live");
    EXPECT_EQ(live.code, 200) << live.raw;
    EXPECT_EQ(live.body["status"], "ok");
  }
  mesh_->start_controlplane();
  mesh_->wait_all_acked();
  for (int node = 1; node <= 2; ++node)
    wait_for([&] { return probe(*mesh_, node, "/healthz/ready").code == 200; }, 10s,
             "node " + std::to_string(node) + " ready again");

  // A program detached behind the agent's back: not live (a restart is the cure), and the
  // restart attaches it again.
  uint32_t link = 0;
  const v1::AgentStatus before = mesh_->status(2);
  for (const auto &p : before.programs())
    if (p.attach_type() == "cgroup/connect4") link = p.link_id();
  ASSERT_NE(link, 0u);
  std::string out;
  ASSERT_EQ(
      mesh_->lab().run_in_node(2, {"bpftool", "link", "detach", "id", std::to_string(link)}, &out),
      0)
      << out;
  const Probe dead = probe(*mesh_, 2, "/healthz/live");
  EXPECT_EQ(dead.code, 503) << dead.raw;
  const auto *programs = find_check(dead, "programs_attached");
  ASSERT_NE(programs, nullptr) << dead.raw;
  EXPECT_EQ((*programs)["ok"], false);
  EXPECT_NE((*programs)["detail"].get<std::string>().find("sm_connect4 (cgroup/connect4) detached"),
            std::string::npos)
      << dead.raw;
  EXPECT_EQ(probe(*mesh_, 2, "/healthz/ready").code, 503);
  EXPECT_EQ(probe(*mesh_, 1, "/healthz/live").code, 200);  // the other node is untouched

  mesh_->stop_agent(2);
  mesh_->start_agent(2);
  wait_for([&] { return probe(*mesh_, 2, "/healthz/ready").code == 200; }, 20s,
           "node 2 ready after its restart");
  EXPECT_EQ(probe(*mesh_, 2, "/healthz/live").code, 200);
  EXPECT_NE(mesh_->agent_log(2).find("event=link_defunct"), std::string::npos);
  const v1::AgentStatus after = mesh_->status(2);
  for (const auto &p : after.programs()) EXPECT_TRUE(p.attached()) << p.name();
  // And the kernel balances on node 2 again (the VIP's connect4 is back).
  auto tally = connect_many(mesh_->lab(), "web-v1-b", "10.96.0.10", 80, 50);
  EXPECT_EQ(tally.failures, 0) << tally.first_error;
}

}  // namespace
}  // namespace sockmesh::testing
