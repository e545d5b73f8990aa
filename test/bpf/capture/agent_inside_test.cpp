// The agent inside the workload cgroup (docs/datapath.md, "The agent inside the workload
// cgroup"): meshd as a DaemonSet pod under kubepods while the programs are attached at the cgroup
// v2 root. The fixture's agent cgroup is workloads/meshd/, a sibling of the workloads' own: the
// workload programs run for its sockets too and must leave them alone, while the agent-cgroup
// programs act on them as always (every CaptureFlowTest runs this way too, as AgentInside.*).
#include <sys/mount.h>

#include <cstring>

#include "capture_fixture.h"
#include "sockmesh/fastpath.h"
#include "sockmesh/telemetry.h"

namespace sockmesh {
namespace {

constexpr uint32_t kClient = 5, kOther = 11, kBackend2 = 7, kBackend3 = 8;
constexpr uint32_t kLocalNode = 1, kRemoteNode = 3;

class AgentInsideTest : public CaptureTest {
 protected:
  AgentInsideTest() { agent_inside_ = true; }

  // The client is a captured workload, "other" one that is not; 127.0.0.2 is a workload on
  // another node, 127.0.0.3 one on this node.
  void mesh() {
    capture_->sync_workloads(
        {{cgroup_id(cg_.client), kClient, true}, {cgroup_id(cg_.other), kOther, false}});
    capture_->sync_endpoints({{parse_ip("127.0.0.2"), kBackend2, kRemoteNode, true},
                              {parse_ip("127.0.0.3"), kBackend3, kLocalNode, false}});
  }

  // Sets `flags` in sm_agent (after agent_listens()).
  void agent_flags(uint32_t flags) {
    uint32_t zero = 0;
    sm_agent_config config{};
    ASSERT_EQ(bpf_map_lookup_elem(datapath_->agent_config_fd(), &zero, &config), 0);
    config.flags |= flags;
    ASSERT_EQ(bpf_map_update_elem(datapath_->agent_config_fd(), &zero, &config, BPF_ANY), 0);
  }

  void count_traffic() {
    uint32_t zero = 0;
    sm_telemetry_config config{};
    config.flags = SM_TELEMETRY_COUNTERS;
    ASSERT_EQ(bpf_map_update_elem(datapath_->telemetry_fd(), &zero, &config, BPF_ANY), 0);
  }

  size_t traffic_tuples() {
    size_t n = 0;
    sm_traffic_key key{}, next{};
    const void *prev = nullptr;
    while (bpf_map_get_next_key(datapath_->traffic_fd(), prev, &next) == 0) {
      key = next;
      prev = &key;
      n++;
    }
    return n;
  }

  sm_agent_cgroup agent_cgroup() {
    uint32_t zero = 0;
    sm_agent_cgroup value{};
    EXPECT_EQ(bpf_map_lookup_elem(datapath_->agent_cgroup_fd(), &zero, &value), 0);
    return value;
  }
};

// A VIP whose own address has a listener: a connect that is not balanced lands there.
constexpr const char *kVipIp = "127.0.0.50";

TEST_F(AgentInsideTest, TheAgentsConnectsGoWhereItSendsThemWhileASiblingIsBalanced) {
  reconciler_->apply({{vip(kVipIp, 80), service({{"127.0.0.3", 9001}})},
                      {vip(kVipIp, 53, IPPROTO_UDP), service({{"127.0.0.4", 9001}})}});
  mesh();
  agent_listens();
  count_traffic();
  auto out = in_child([](Node &n) {
    const auto &cg = n.cgroups();
    Node::join(cg.root);
    n.listen_on("vip", kVipIp, 80);
    n.udp_on("vip", kVipIp, 53);
    auto agent = n.tcp(cg.agent, kVipIp, 80);
    n.emit("agent_tcp", agent.where + " " + agent.peer);
    auto other = n.tcp(cg.other, kVipIp, 80);
    n.emit("other_tcp", other.where + " " + other.peer);
    n.emit("unknown_tcp", n.tcp(cg.unknown, kVipIp, 80).where);
    n.emit("agent_udp", n.udp(cg.agent, kVipIp, 53));
    n.emit("other_udp", n.udp(cg.other, kVipIp, 53));
    // A captured workload's connect to a remote workload still reaches the agent's listener.
    n.emit("captured", n.tcp(cg.client, "127.0.0.2", 9001).where);
    // The agent's own connect to that workload goes there, not back to its own listener.
    n.emit("agent_direct", n.tcp(cg.agent, "127.0.0.2", 9001).where);
  });
  EXPECT_EQ(out["agent_tcp"], "vip 127.0.0.50:80");
  EXPECT_EQ(out["other_tcp"], "be3 127.0.0.50:80");
  EXPECT_EQ(out["unknown_tcp"], "be3");
  EXPECT_EQ(out["agent_udp"], "vip");
  EXPECT_EQ(out["other_udp"], "be4");
  EXPECT_EQ(out["captured"], "agent4");
  EXPECT_EQ(out["agent_direct"], "be2");
  // Nothing of the agent's is counted: the two TCP connects and one UDP connect of workloads,
  // the captured one.
  EXPECT_EQ(counter("connect_balanced"), 3u);
  EXPECT_EQ(counter("connect_captured"), 1u);
  EXPECT_EQ(counter("connect_passthrough"), 0u);
  EXPECT_EQ(counter("peername_restored"), 3u);  // other_tcp, unknown_tcp and the captured one
  // Traffic tuples: the workloads' two VIP connects (other, unknown) and the captured one; none
  // for the agent's.
  EXPECT_EQ(traffic_tuples(), 3u);
}

// sock_ops: the agent's accepted socket (its listener was made in its cgroup, the accepted one
// inherits the mark) and its active sockets are sm_sockops_agent's alone. With the agent hops on
// the fast path, both ends of a captured connection join exactly once; with them off, the agent's
// connection to a workload of this node does not join, while a workload's does.
TEST_F(AgentInsideTest, WorkloadSockOpsLeavesTheAgentsSocketsToTheAgentProgram) {
  mesh();
  agent_listens();
  count_traffic();
  agent_flags(SM_AGENT_FASTPATH_ON | SM_AGENT_FASTPATH_AGENT_HOPS);
  auto out = in_child(
      [](Node &n) {
        const auto &cg = n.cgroups();
        auto c = n.tcp(cg.client, "127.0.0.2", 9001);
        n.emit("captured", c.where);
        n.emit("info", sockopt(c.accepted, SOL_IP, SM_SO_CAPTURE_INFO, sizeof(sm_capture_info)));
        // Bytes both ways over the fast path.
        char buffer[8] = {};
        bool ok = write(c.client, "ping", 4) == 4 && read(c.accepted, buffer, 4) == 4 &&
                  write(c.accepted, "pong", 4) == 4 && read(c.client, buffer + 4, 4) == 4;
        n.emit("bytes", ok ? std::string(buffer, 8) : "failed");
        n.sync(1);  // the parent switches the agent hops off
        n.emit("agent_local", n.tcp(cg.agent, "127.0.0.3", 9001).where);
        n.sync(2);
        n.emit("other_local", n.tcp(cg.other, "127.0.0.3", 9001).where);
      },
      [&](int step) {
        if (step == 1) {
          EXPECT_EQ(counter("fastpath_sockets"), 2u);  // the client's and the agent's end
          EXPECT_EQ(counter("fastpath_map_full"), 0u);
          uint32_t zero = 0;
          sm_agent_config config{};
          ASSERT_EQ(bpf_map_lookup_elem(datapath_->agent_config_fd(), &zero, &config), 0);
          config.flags &= ~uint32_t(SM_AGENT_FASTPATH_AGENT_HOPS);
          ASSERT_EQ(bpf_map_update_elem(datapath_->agent_config_fd(), &zero, &config, BPF_ANY), 0);
        }
        if (step == 2) EXPECT_EQ(counter("fastpath_sockets"), 2u);  // the agent's did not join
      });
  EXPECT_EQ(out["captured"], "agent4");
  EXPECT_EQ(out["info"], answered(info_hex("127.0.0.2", 9001, "127.0.0.2", 9001, kClient, kBackend2,
                                           kRemoteNode),
                                  sizeof(sm_capture_info)));
  EXPECT_EQ(out["bytes"], "pingpong");
  EXPECT_EQ(out["agent_local"], "be3");
  EXPECT_EQ(out["other_local"], "be3");
  EXPECT_EQ(counter("fastpath_sockets"), 3u);  // + the other's (its backend is not a workload)
  EXPECT_EQ(counter("fastpath_map_full"), 0u);
  EXPECT_EQ(counter("capture_record_lost"), 0u);
  EXPECT_EQ(counter("getsockopt_answered"), 1u);
  EXPECT_EQ(flows(), 0u);
  // The captured connection and the other's; not the agent's.
  EXPECT_EQ(traffic_tuples(), 2u);
}

TEST_F(AgentInsideTest, TheLoaderWritesTheAgentsCgroupAndARestartRewritesIt) {
  auto inside = agent_cgroup();
  EXPECT_EQ(inside.id, cgroup_id(cg_.agent));
  EXPECT_EQ(inside.level, 3u);  // <cgroup2>/sockmesh-capture-<pid>/workloads/meshd
  // The agent restarted outside the workload cgroup: 0, the programs act as before M9.
  const std::string outside = cg_.root + "/outside";
  ASSERT_EQ(mkdir(outside.c_str(), 0755), 0);
  close_datapath();
  loader::DatapathOptions options;
  options.agent_cgroup = outside;
  datapath_ = std::make_unique<loader::Datapath>(node_, cg_.workloads, options);
  EXPECT_TRUE(datapath_->adopted());
  EXPECT_EQ(agent_cgroup().id, 0u);
  // And back inside, in another cgroup.
  close_datapath();
  options.agent_cgroup = cg_.agent2;
  datapath_ = std::make_unique<loader::Datapath>(node_, cg_.workloads, options);
  EXPECT_EQ(agent_cgroup().id, cgroup_id(cg_.agent2));
  close_datapath();
  rmdir(outside.c_str());
  // The workloads seen through another mount of the hierarchy, as a Kubernetes pod sees them
  // (hostPath /host/cgroup) beside its own cgroup through its cgroup namespace: the paths share
  // no prefix, the agent is found inside by its cgroup id.
  const std::string view = "/tmp/sockmesh-cgview-" + std::to_string(getpid());
  ASSERT_EQ(mkdir(view.c_str(), 0700), 0);
  ASSERT_EQ(mount(cg_.root.c_str(), view.c_str(), nullptr, MS_BIND, nullptr), 0)
      << std::strerror(errno);
  const std::string workloads_view = view + cg_.workloads.substr(cg_.root.size());
  std::string view_error;
  try {
    datapath_ = std::make_unique<loader::Datapath>(node_, workloads_view, options);
    EXPECT_EQ(agent_cgroup().id, cgroup_id(cg_.agent2));
    close_datapath();
    // The workload cgroup itself, through the other mount, is still refused.
    options.agent_cgroup = cg_.workloads;
    EXPECT_THROW(loader::Datapath(node_, workloads_view, options), std::runtime_error);
  } catch (const std::exception &e) {
    view_error = e.what();
  }
  umount2(view.c_str(), MNT_DETACH);
  rmdir(view.c_str());
  ASSERT_EQ(view_error, "");
  // Never the workload cgroup itself.
  options.agent_cgroup = cg_.workloads;
  EXPECT_THROW(loader::Datapath(node_, cg_.workloads, options), std::runtime_error);
  open_datapath();  // for TearDown
  EXPECT_EQ(agent_cgroup().id, cgroup_id(cg_.agent));
}

}  // namespace
}  // namespace sockmesh
