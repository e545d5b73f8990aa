// M10, agent restarts: what the kernel alone carries never notices that the agent is gone.
//
// The agent of node 1 is killed with SIGKILL in the middle of a connect loop from the client pod
// to the web service: every connection is balanced at connect() by the pinned programs, and the
// ones to web-v1-a (same node) ride the fast path. No connection may fail while the agent is down
// or starting again; the restarted agent keeps the pinned programs (the same ids, reported as
// kept) and rewrites no map entry that is right.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <map>
#include <string>
#include <thread>

#include "mesh_fixture.h"
#include "sockmesh/common/paths.h"

namespace sockmesh::testing {
namespace {

using namespace std::chrono_literals;

// program name -> kernel program id, as the agent reports them.
std::map<std::string, uint32_t> program_ids(const v1::AgentStatus &status) {
  std::map<std::string, uint32_t> ids;
  for (const auto &p : status.programs()) ids[p.name()] = p.id();
  return ids;
}

// The last line of the agent's log that carries `event`.
std::string last_event(const std::string &log, const std::string &event) {
  const size_t at = log.rfind("event=" + event + " ");
  if (at == std::string::npos) return "";
  return log.substr(at, log.find('\n', at) - at);
}

void wait_until_fast_path_knows_every_workload(MeshLab &mesh) {
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  for (;;) {
    const auto report = mesh.fast_path(1);  // kept: the loop reads its members
    bool known = report.workloads_size() >= 2;
    for (const auto &w : report.workloads()) known = known && w.netns_cookie() != 0;
    if (known) return;
    ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "node 1's workloads' namespaces";
    std::this_thread::sleep_for(50ms);
  }
}

TEST(RestartLabTest, AgentKilledUnderAConnectLoopFailsNoConnectionAndKeepsItsPrograms) {
  MeshLab mesh({.v1 = 50, .v2 = 50}, Source::kControlPlane);
  auto &lab = mesh.lab();
  // The nodes, and the client as a workload: the fast path joins two sockets whose namespaces the
  // agent knows.
  std::string yaml = mesh.config_text({.v1 = 50, .v2 = 50});
  for (int n = 1; n <= 2; ++n)
    yaml += "---\napiVersion: sockmesh/v1\nkind: Node\nmetadata: {name: " + lab.node_name(n) +
            "}\nspec: {addresses: [" + lab.node_address(n) + "]}\n";
  yaml +=
      "---\napiVersion: sockmesh/v1\nkind: Workload\nmetadata: {name: client, namespace: demo}\n"
      "spec: {node: " +
      lab.node_name(1) + ", addresses: [" + lab.pod_ip("client") +
      "], cgroupPath: client, serviceAccount: client, captured: false}\n";
  const auto applied = mesh.apply(yaml);
  ASSERT_TRUE(applied.ok()) << applied.error_message();
  mesh.wait_all_acked();
  wait_until_fast_path_knows_every_workload(mesh);
  const auto before = mesh.status(1);
  const auto ids_before = program_ids(before);
  ASSERT_GE(ids_before.size(), 12u) << "the cgroup programs and the fast path's sk_msg program";
  const uint64_t fast_before = mesh.counter(1, "fastpath_messages");

  // Eight seconds of connections; the agent dies after two and starts again after three.
  ConnectTally tally;
  std::thread loop([&] { tally = connect_many(mesh.lab(), "client", "10.96.0.10", 80, 0, 8s); });
  std::this_thread::sleep_for(2s);
  mesh.kill_agent(1);
  std::this_thread::sleep_for(1s);
  mesh.start_agent(1);
  loop.join();

  EXPECT_EQ(tally.failures, 0) << tally.first_error;
  EXPECT_EQ(tally.wrong_peer, 0);
  int total = 0;
  for (const auto &[body, n] : tally.bodies) total += n;
  EXPECT_GE(total, 500) << "the loop made too few connections to tell";
  // Balanced all along: each subset served about its half (5 sigma for n >= 500 is under 12
  // points).
  for (const std::string subset : {"web-v1", "web-v2"}) {
    int n = 0;
    for (const auto &[body, count] : tally.bodies)
      if (body.rfind(subset, 0) == 0) n += count;
    EXPECT_NEAR(double(n) / total, 0.5, 0.12) << subset;
  }

  const auto after = mesh.wait_generation(1, 0);
  EXPECT_EQ(program_ids(after), ids_before) << "the restarted agent replaced pinned programs";
  for (const auto &p : after.programs()) {
    EXPECT_TRUE(p.kept()) << p.name();
    EXPECT_TRUE(p.attached()) << p.name();
  }
  EXPECT_GT(mesh.counter(1, "fastpath_messages"), fast_before)
      << "the same-node connections took the fast path";
  const std::string log = mesh.agent_log(1);
  EXPECT_NE(last_event(log, "programs_attached").find(" switched_or_attached=0"), std::string::npos)
      << last_event(log, "programs_attached");
  EXPECT_NE(last_event(log, "config_applied").find(" added=0 updated=0 removed=0 "),
            std::string::npos)
      << last_event(log, "config_applied");
}

// An unprivileged process reaches neither the admin API nor the handover socket: it could read
// the mesh's state, or take the listeners and stop the agent from accepting.
TEST(RestartLabTest, OnlyRootReachesTheAgentsAdminAndHandoverSockets) {
  MeshLab mesh;
  const std::string run_dir = paths::run_dir(mesh.lab().node_name(1));
  EXPECT_EQ(connect_as_nobody(run_dir + "/admin.sock", SOCK_STREAM), EACCES);
  EXPECT_EQ(connect_as_nobody(run_dir + "/handover.sock", SOCK_SEQPACKET), EACCES);
  struct stat st {};
  ASSERT_EQ(stat((run_dir + "/handover.sock").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  ASSERT_EQ(stat(run_dir.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0700u);
}

}  // namespace
}  // namespace sockmesh::testing
