// Capture in the kernel (capture_fixture.h): a captured workload's TCP connect to a mesh
// workload on another node lands on the agent's listener, which reads what it was for; every
// other connect is left alone; the agent's other getsockopt() calls answer as without capture.
#include "capture_fixture.h"

namespace sockmesh {
namespace {

constexpr uint32_t kClient = 5, kSidecar = 6, kOther = 11;
constexpr uint32_t kBackend2 = 7, kBackend3 = 8, kBackend6 = 9, kLocalNode = 1, kRemoteNode = 3;

class CaptureFlowTest : public CaptureTest {
 protected:
  // The usual mesh: the client workload is captured, "other" is a workload that is not, and
  // "unknown" is no workload. 127.0.0.2 and ::1 are workloads on another node; 127.0.0.3 one on
  // this node; 127.0.0.4 is outside the mesh.
  void mesh(bool remote2 = true) {
    capture_->sync_workloads({{cgroup_id(cg_.client), kClient, true},
                              {cgroup_id(cg_.sidecar), kSidecar, false},
                              {cgroup_id(cg_.other), kOther, false}});
    capture_->sync_endpoints(
        {{parse_ip("127.0.0.2"), kBackend2, remote2 ? kRemoteNode : kLocalNode, remote2},
         {parse_ip("127.0.0.3"), kBackend3, kLocalNode, false},
         {parse_ip("::1"), kBackend6, kRemoteNode, true}});
  }
};

TEST_F(CaptureFlowTest, VipWithRemoteBackendLandsOnTheAgentWithItsRecord) {
  reconciler_->apply({{vip("10.96.0.10", 80), service({{"127.0.0.2", 9001}})}});
  mesh();
  agent_listens();
  auto out = in_child([](Node &n) {
    auto c = n.tcp(n.cgroups().client, "10.96.0.10", 80);
    n.emit("where", c.where);
    n.emit("peer", c.peer);
    n.emit("odst", sockopt(c.accepted, SOL_IP, SM_SO_ORIGINAL_DST, 16));
    n.emit("info", sockopt(c.accepted, SOL_IP, SM_SO_CAPTURE_INFO, sizeof(sm_capture_info)));
    std::string error;
    auto info = proxy::read_capture_info(c.accepted, &error);
    n.emit("api", info ? info->original.to_string() + " " + info->backend.to_string() + " " +
                             std::to_string(info->src_workload) + " " +
                             std::to_string(info->dst_workload) + " " +
                             std::to_string(info->dst_node)
                       : "error: " + error);
    // The agent sees the client's own address as its peer.
    sockaddr_storage local{}, peer{};
    socklen_t a = sizeof(local), b = sizeof(peer);
    getsockname(c.client, reinterpret_cast<sockaddr *>(&local), &a);
    getpeername(c.accepted, reinterpret_cast<sockaddr *>(&peer), &b);
    n.emit("same_tuple",
           text_of(local) == text_of(peer) ? "yes" : text_of(local) + " vs " + text_of(peer));
  });
  EXPECT_EQ(out["where"], "agent4");
  EXPECT_EQ(out["peer"], "10.96.0.10:80");  // getpeername() still names the VIP
  EXPECT_EQ(out["odst"], answered(sockaddr_hex("10.96.0.10", 80), 16));
  EXPECT_EQ(out["info"],
            answered(info_hex("10.96.0.10", 80, "127.0.0.2", 9001, kClient, kBackend2, kRemoteNode),
                     sizeof(sm_capture_info)));
  EXPECT_EQ(out["api"], "10.96.0.10:80 127.0.0.2:9001 5 7 3");
  EXPECT_EQ(out["same_tuple"], "yes");
  EXPECT_EQ(counter("connect_captured"), 1u);
  EXPECT_EQ(counter("connect_balanced"), 1u);
  EXPECT_EQ(counter("connect_passthrough"), 0u);
  EXPECT_EQ(counter("peername_restored"), 1u);
  EXPECT_EQ(counter("getsockopt_answered"), 3u);
  EXPECT_EQ(counter("getsockopt_miss"), 0u);
  EXPECT_EQ(counter("capture_record_lost"), 0u);
  EXPECT_EQ(flows(), 0u);  // the record moved onto the agent's socket
}

TEST_F(CaptureFlowTest, DirectConnectToARemotePodIsCaptured) {
  mesh();
  agent_listens();
  auto out = in_child([](Node &n) {
    auto c = n.tcp(n.cgroups().client, "127.0.0.2", 9001);
    n.emit("where", c.where);
    n.emit("peer", c.peer);
    n.emit("odst", sockopt(c.accepted, SOL_IP, SM_SO_ORIGINAL_DST, 16));
    n.emit("info", sockopt(c.accepted, SOL_IP, SM_SO_CAPTURE_INFO, sizeof(sm_capture_info)));
  });
  EXPECT_EQ(out["where"], "agent4");
  EXPECT_EQ(out["peer"], "127.0.0.2:9001");
  EXPECT_EQ(out["odst"], answered(sockaddr_hex("127.0.0.2", 9001), 16));
  EXPECT_EQ(out["info"], answered(info_hex("127.0.0.2", 9001, "127.0.0.2", 9001, kClient, kBackend2,
                                           kRemoteNode),
                                  sizeof(sm_capture_info)));
  EXPECT_EQ(counter("connect_captured"), 1u);
  EXPECT_EQ(counter("connect_balanced"), 0u);
  EXPECT_EQ(counter("connect_passthrough"), 0u);
  EXPECT_EQ(counter("getsockopt_answered"), 2u);
}

TEST_F(CaptureFlowTest, ConnectsThatNeedNoAgentAreUntouched) {
  reconciler_->apply({{vip("10.96.0.10", 80), service({{"127.0.0.3", 9001}})},  // local backend
                      {vip("10.96.0.11", 80), service({{"127.0.0.2", 9001}})},  // remote backend
                      {vip("10.96.0.11", 80, IPPROTO_UDP), service({{"127.0.0.2", 9001}})},
                      {vip("10.96.0.12", 80), service({{"127.0.0.4", 9001}})}});  // not mesh
  mesh();
  agent_listens();
  auto out = in_child([](Node &n) {
    const auto &cg = n.cgroups();
    auto local = n.tcp(cg.client, "10.96.0.10", 80);
    n.emit("local_backend", local.where + " " + local.peer);
    n.emit("local_pod", n.tcp(cg.client, "127.0.0.3", 9001).where);
    n.emit("not_mesh_vip", n.tcp(cg.client, "10.96.0.12", 80).where);
    n.emit("not_mesh_ip", n.tcp(cg.client, "127.0.0.4", 9001).where);
    n.emit("not_captured", n.tcp(cg.other, "10.96.0.11", 80).where);
    n.emit("no_workload", n.tcp(cg.unknown, "10.96.0.11", 80).where);
    n.emit("root_cgroup", n.tcp(cg.root, "127.0.0.2", 9001).where);  // no programs there
    n.emit("udp", n.udp(cg.client, "10.96.0.11", 80));
    n.emit("udp_pod", n.udp(cg.client, "127.0.0.2", 9001));
    n.emit("captured", n.tcp(cg.client, "10.96.0.11", 80).where);  // the same setup captures
  });
  EXPECT_EQ(out["local_backend"], "be3 10.96.0.10:80");
  EXPECT_EQ(out["local_pod"], "be3");
  EXPECT_EQ(out["not_mesh_vip"], "be4");
  EXPECT_EQ(out["not_mesh_ip"], "be4");
  EXPECT_EQ(out["not_captured"], "be2");
  EXPECT_EQ(out["no_workload"], "be2");
  EXPECT_EQ(out["root_cgroup"], "be2");
  EXPECT_EQ(out["udp"], "be2");
  EXPECT_EQ(out["udp_pod"], "be2");
  EXPECT_EQ(out["captured"], "agent4");
  EXPECT_EQ(counter("connect_captured"), 1u);
  EXPECT_EQ(counter("connect_balanced"), 6u);     // 4 TCP VIP connects, 1 UDP, + the captured one
  EXPECT_EQ(counter("connect_passthrough"), 3u);  // local pod, not-mesh address, UDP to a pod
  EXPECT_EQ(counter("capture_no_listener"), 0u);
  EXPECT_EQ(flows(), 0u);
}

TEST_F(CaptureFlowTest, NoAgentListenerMeansNoCapture) {
  reconciler_->apply({{vip("10.96.0.11", 80), service({{"127.0.0.2", 9001}})}});
  mesh();
  // Capture off, listener known: an agent that is not ready yet.
  agent_listens(false);
  auto off =
      in_child([](Node &n) { n.emit("where", n.tcp(n.cgroups().client, "10.96.0.11", 80).where); });
  EXPECT_EQ(off["where"], "be2");
  // Nothing ever configured: same.
  capture_->set_agent({});
  auto never =
      in_child([](Node &n) { n.emit("where", n.tcp(n.cgroups().client, "10.96.0.11", 80).where); });
  EXPECT_EQ(never["where"], "be2");
  // Capture on, but only an IPv6 listener for an IPv4 destination.
  agent_listens(true, false, true);
  auto no4 =
      in_child([](Node &n) { n.emit("where", n.tcp(n.cgroups().client, "10.96.0.11", 80).where); });
  EXPECT_EQ(no4["where"], "be2");
  EXPECT_EQ(counter("capture_no_listener"), 1u);
  EXPECT_EQ(counter("connect_captured"), 0u);
  EXPECT_EQ(counter("connect_balanced"), 3u);
  // Switched on: captured at once, no reload.
  agent_listens(true);
  auto on =
      in_child([](Node &n) { n.emit("where", n.tcp(n.cgroups().client, "10.96.0.11", 80).where); });
  EXPECT_EQ(on["where"], "agent4");
  EXPECT_EQ(counter("connect_captured"), 1u);
}

TEST_F(CaptureFlowTest, WorkloadIsFoundThroughItsCgroupAncestors) {
  reconciler_->apply({{vip("10.96.0.11", 80), service({{"127.0.0.2", 9001}})}});
  mesh();
  agent_listens();
  auto out = in_child([](Node &n) {
    auto c = n.tcp(n.cgroups().container, "10.96.0.11", 80);  // unregistered, below the client
    n.emit("container", c.where);
    n.emit("info", sockopt(c.accepted, SOL_IP, SM_SO_CAPTURE_INFO, sizeof(sm_capture_info)));
    // A registered cgroup below the client that is not captured: the deepest entry decides.
    n.emit("sidecar", n.tcp(n.cgroups().sidecar, "10.96.0.11", 80).where);
  });
  EXPECT_EQ(out["container"], "agent4");
  EXPECT_EQ(out["info"],
            answered(info_hex("10.96.0.11", 80, "127.0.0.2", 9001, kClient, kBackend2, kRemoteNode),
                     sizeof(sm_capture_info)));
  EXPECT_EQ(out["sidecar"], "be2");
}

TEST_F(CaptureFlowTest, Ipv6AndIpv4MappedDestinations) {
  reconciler_->apply({{vip("fd00:96::10", 80), service({{"::1", 9002}})},
                      {vip("10.96.0.10", 80), service({{"127.0.0.2", 9001}})}});
  mesh();
  agent_listens();
  auto out = in_child([](Node &n) {
    auto c = n.tcp(n.cgroups().client, "fd00:96::10", 80);
    n.emit("v6_where", c.where);
    n.emit("v6_peer", c.peer);
    n.emit("v6_odst", sockopt(c.accepted, SOL_IPV6, SM_IP6T_SO_ORIGINAL_DST, 28));
    n.emit("v6_info", sockopt(c.accepted, SOL_IP, SM_SO_CAPTURE_INFO, sizeof(sm_capture_info)));
    auto direct = n.tcp(n.cgroups().client, "::1", 9001);  // a remote pod by its IPv6 address
    n.emit("v6_pod", direct.where + " " + direct.peer);
    // A dual-stack socket to the IPv4-mapped VIP: the IPv4 listener, IPv4 answers.
    auto m = n.tcp(n.cgroups().client, "::ffff:10.96.0.10", 80, AF_INET6);
    n.emit("mapped_where", m.where);
    n.emit("mapped_peer", m.peer);
    n.emit("mapped_odst", sockopt(m.accepted, SOL_IP, SM_SO_ORIGINAL_DST, 16));
    n.emit("mapped_info", sockopt(m.accepted, SOL_IP, SM_SO_CAPTURE_INFO, sizeof(sm_capture_info)));
  });
  EXPECT_EQ(out["v6_where"], "agent6");
  EXPECT_EQ(out["v6_peer"], "[fd00:96::10]:80");
  EXPECT_EQ(out["v6_odst"], answered(sockaddr_hex("fd00:96::10", 80), 28));
  EXPECT_EQ(out["v6_info"],
            answered(info_hex("fd00:96::10", 80, "::1", 9002, kClient, kBackend6, kRemoteNode),
                     sizeof(sm_capture_info)));
  EXPECT_EQ(out["v6_pod"], "agent6 [::1]:9001");
  EXPECT_EQ(out["mapped_where"], "agent4");
  EXPECT_EQ(out["mapped_peer"], "[::ffff:10.96.0.10]:80");
  EXPECT_EQ(out["mapped_odst"], answered(sockaddr_hex("10.96.0.10", 80), 16));
  EXPECT_EQ(out["mapped_info"],
            answered(info_hex("10.96.0.10", 80, "127.0.0.2", 9001, kClient, kBackend2, kRemoteNode),
                     sizeof(sm_capture_info)));
  EXPECT_EQ(counter("connect_captured"), 3u);
  EXPECT_EQ(counter("getsockopt_answered"), 4u);
  EXPECT_EQ(flows(), 0u);
}

// A client that writes and closes at once is closed before the agent gets to accept(): the record
// lives on the agent's socket, not the client's.
TEST_F(CaptureFlowTest, RecordOutlivesTheClientOnTheAgentsSocket) {
  reconciler_->apply({{vip("10.96.0.11", 80), service({{"127.0.0.2", 9001}})}});
  mesh();
  agent_listens();
  size_t in_flight = ~size_t(0);
  auto out = in_child(
      [](Node &n) {
        auto c = n.tcp(n.cgroups().client, "10.96.0.11", 80);
        n.emit("where", c.where);
        send(c.client, "hello", 5, 0);
        close(c.client);
        n.sync(1);
        char buffer[16] = {};
        pollfd p{c.accepted, POLLIN, 0};
        poll(&p, 1, 5000);
        n.emit("data", std::string(buffer, std::max<ssize_t>(0, recv(c.accepted, buffer, 5, 0))));
        n.emit("info", sockopt(c.accepted, SOL_IP, SM_SO_CAPTURE_INFO, sizeof(sm_capture_info)));
      },
      [&](int) { in_flight = flows(); });
  EXPECT_EQ(out["where"], "agent4");
  EXPECT_EQ(in_flight, 0u);
  EXPECT_EQ(out["data"], "hello");
  EXPECT_EQ(out["info"],
            answered(info_hex("10.96.0.11", 80, "127.0.0.2", 9001, kClient, kBackend2, kRemoteNode),
                     sizeof(sm_capture_info)));
}

// The agent's listener outside the agent's cgroup: nobody takes the record over, so it waits in
// sm_capture_flows until the client closes, and not longer.
TEST_F(CaptureFlowTest, FlowEntryIsRemovedWhenTheClientCloses) {
  reconciler_->apply({{vip("10.96.0.11", 80), service({{"127.0.0.2", 9001}})}});
  mesh();
  agent_listens(true, true, true, kControlPort);
  size_t while_open = 0, after_close = ~size_t(0);
  auto out = in_child(
      [](Node &n) {
        auto c = n.tcp(n.cgroups().client, "10.96.0.11", 80);
        n.emit("where", c.where);
        n.sync(1);
        close(c.client);
        close(c.accepted);
        n.sync(2);
      },
      [&](int step) {
        if (step == 1) {
          while_open = flows();
          return;
        }
        auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
        while ((after_close = flows()) != 0 && std::chrono::steady_clock::now() < until)
          std::this_thread::sleep_for(std::chrono::milliseconds(10));
      });
  EXPECT_EQ(out["where"], "control");
  EXPECT_EQ(while_open, 1u);
  EXPECT_EQ(after_close, 0u);
}

// Capture programs attached to the agent's cgroup after the connection was made (an agent that
// starts while captured connections are in their handshake): getsockopt finds the record in
// sm_capture_flows, under the connection's addresses.
TEST_F(CaptureFlowTest, GetsockoptFindsARecordStillInFlight) {
  close_datapath();
  loader::Datapath::uninstall(node_);
  open_datapath(/*with_agent=*/false);
  reconciler_->apply({{vip("10.96.0.11", 80), service({{"127.0.0.2", 9001}})}});
  mesh();
  agent_listens();
  size_t in_flight = 0;
  auto out = in_child(
      [](Node &n) {
        auto c = n.tcp(n.cgroups().client, "10.96.0.11", 80);
        n.emit("where", c.where);
        n.emit("before", sockopt(c.accepted, SOL_IP, SM_SO_CAPTURE_INFO, sizeof(sm_capture_info)));
        n.sync(1);
        n.emit("after", sockopt(c.accepted, SOL_IP, SM_SO_CAPTURE_INFO, sizeof(sm_capture_info)));
      },
      [&](int) {
        in_flight = flows();
        datapath_->attach_agent(cg_.agent);
      });
  EXPECT_EQ(out["where"], "agent4");
  EXPECT_EQ(in_flight, 1u);
  std::string none(2 * sizeof(sm_capture_info), 'a');
  for (size_t i = 0; i < none.size(); i++) none[i] = i % 2 ? 'b' : 'a';
  EXPECT_EQ(out["before"], "rc=-1 errno=" + std::to_string(ENOPROTOOPT) + " len=56 " + none);
  EXPECT_EQ(out["after"],
            answered(info_hex("10.96.0.11", 80, "127.0.0.2", 9001, kClient, kBackend2, kRemoteNode),
                     sizeof(sm_capture_info)));
}

// Every getsockopt() the program does not answer gives what the kernel gives without it: the
// agent's socket (program attached) against a control socket in a cgroup without programs.
TEST_F(CaptureFlowTest, OtherGetsockoptCallsAnswerAsWithoutTheProgram) {
  reconciler_->apply({{vip("10.96.0.11", 80), service({{"127.0.0.2", 9001}})}});
  mesh();
  agent_listens();
  struct Query {
    const char *name;
    int level, option;
    size_t size;
  };
  static const Query queries[] = {
      {"so_type", SOL_SOCKET, SO_TYPE, 4},
      {"so_type_short", SOL_SOCKET, SO_TYPE, 0},
      {"so_rcvbuf", SOL_SOCKET, SO_RCVBUF, 4},
      {"so_rcvbuf_big", SOL_SOCKET, SO_RCVBUF, 8192},  // more than a page
      {"so_error", SOL_SOCKET, SO_ERROR, 4},
      {"tcp_nodelay", IPPROTO_TCP, TCP_NODELAY, 4},
      {"ip_tos", SOL_IP, IP_TOS, 4},
      {"odst6_on_v4", SOL_IPV6, SM_IP6T_SO_ORIGINAL_DST, 28},  // a miss on both agent sockets
  };
  static const Query ours[] = {
      {"odst", SOL_IP, SM_SO_ORIGINAL_DST, 16},
      {"odst_big", SOL_IP, SM_SO_ORIGINAL_DST, 8192},
      {"odst_short", SOL_IP, SM_SO_ORIGINAL_DST, 8},
      {"info", SOL_IP, SM_SO_CAPTURE_INFO, 56},
      {"info_big", SOL_IP, SM_SO_CAPTURE_INFO, 8192},
  };
  auto out = in_child([](Node &n) {
    const auto &cg = n.cgroups();
    auto captured = n.tcp(cg.client, "10.96.0.11", 80);        // agent socket with a record
    auto direct = n.tcp(cg.root, "127.0.0.1", kAgentPort);     // agent socket, no record
    auto control = n.tcp(cg.root, "127.0.0.1", kControlPort);  // no program at all
    n.emit("where", captured.where + " " + direct.where + " " + control.where);
    for (const auto &q : queries) {
      std::string want = sockopt(control.accepted, q.level, q.option, q.size);
      std::string got1 = sockopt(captured.accepted, q.level, q.option, q.size);
      std::string got2 = sockopt(direct.accepted, q.level, q.option, q.size);
      n.emit(q.name, got1 == want && got2 == want ? "same" : want + " | " + got1 + " | " + got2);
    }
    for (const auto &q : ours) {
      std::string want = sockopt(control.accepted, q.level, q.option, q.size);
      std::string got = sockopt(direct.accepted, q.level, q.option, q.size);
      n.emit(q.name, got == want ? "same" : want + " | " + got);
    }
    // Answered, and what a too small buffer gets on a socket with a record.
    n.emit("odst_captured", sockopt(captured.accepted, SOL_IP, SM_SO_ORIGINAL_DST, 16));
    n.emit("odst_captured_big",
           sockopt(captured.accepted, SOL_IP, SM_SO_ORIGINAL_DST, 8192).substr(0, 40));
    std::string short_want = sockopt(control.accepted, SOL_IP, SM_SO_ORIGINAL_DST, 8);
    std::string short_got = sockopt(captured.accepted, SOL_IP, SM_SO_ORIGINAL_DST, 8);
    n.emit("odst_captured_short",
           short_got == short_want ? "same" : short_want + " | " + short_got);
    std::string error;
    auto info = proxy::read_capture_info(direct.accepted, &error);
    n.emit("api_direct", info ? "a record" : error);
  });
  EXPECT_EQ(out["where"], "agent4 agent4 control");
  for (const auto &q : queries) EXPECT_EQ(out[q.name], "same") << q.name;
  for (const auto &q : ours) EXPECT_EQ(out[q.name], "same") << q.name;
  EXPECT_EQ(out["odst_captured"], answered(sockaddr_hex("10.96.0.11", 80), 16));
  EXPECT_EQ(out["odst_captured_big"],
            ("rc=0 errno=0 len=16 " + sockaddr_hex("10.96.0.11", 80)).substr(0, 40));
  EXPECT_EQ(out["odst_captured_short"], "same");
  EXPECT_EQ(out["api_direct"],
            "no capture record for this connection: it was not captured by sockmesh (a direct "
            "connect to the agent's listener?), or the capture programs are not attached to the "
            "agent's cgroup");
  // Misses: odst6_on_v4 on both agent sockets, our five on the socket without a record, the
  // short buffer on the one with, and read_capture_info on the one without.
  EXPECT_EQ(counter("getsockopt_miss"), 2u + 5u + 1u + 1u);
  EXPECT_EQ(counter("getsockopt_answered"), 2u);
}

TEST_F(CaptureFlowTest, ProgramsAndLinksOfBothCgroups) {
  std::vector<std::string> hooks;
  for (const auto &p : datapath_->programs()) {
    hooks.push_back(p.name + " " + p.attach_type);
    EXPECT_GT(p.prog_id, 0u);
    if (p.attach_type != "sk_msg") EXPECT_GT(p.link_id, 0u);  // attached to its map
  }
  EXPECT_EQ(hooks,
            (std::vector<std::string>{
                "sm_sock_create cgroup/sock_create", "sm_connect4 cgroup/connect4",
                "sm_connect6 cgroup/connect6", "sm_sendmsg4 cgroup/sendmsg4",
                "sm_sendmsg6 cgroup/sendmsg6", "sm_recvmsg4 cgroup/recvmsg4",
                "sm_recvmsg6 cgroup/recvmsg6", "sm_getpeername4 cgroup/getpeername4",
                "sm_getpeername6 cgroup/getpeername6", "sm_sock_release cgroup/sock_release",
                "sm_sockops sockops", "sm_sockops_agent sockops", "sm_getsockopt cgroup/getsockopt",
                "sm_setsockopt cgroup/setsockopt", "sm_fastpath_msg sk_msg"}));
  const std::string pins = "/sys/fs/bpf/sockmesh/" + node_;
  for (const char *name :
       {"link_sock_create", "link_sockops", "link_agent_sockops", "link_agent_getsockopt",
        "sm_agent_cgroup", "sm_agent_socks", "sm_workloads", "sm_endpoints", "sm_agent",
        "sm_capture_store", "sm_capture_flows", "sm_capture_accepted"})
    EXPECT_TRUE(std::filesystem::exists(pins + "/" + name)) << name;
  datapath_->attach_agent(cg_.agent);  // again: nothing changes
  EXPECT_EQ(datapath_->programs().size(), hooks.size());
  // The agent's cgroup must not be the workload cgroup or above it (inside it, it may:
  // AgentInsideTest).
  for (const auto &bad : {cg_.workloads, cg_.root})
    EXPECT_THROW(datapath_->attach_agent(bad), std::runtime_error) << bad;
  // Nor may the data path be told it is the workload cgroup itself; above it (file mode, without
  // the agent-cgroup programs) is as beside it.
  loader::DatapathOptions options;
  options.agent_cgroup = cg_.workloads;
  EXPECT_THROW(loader::Datapath(node_ + "x", cg_.workloads, options), std::runtime_error);
  options.agent_cgroup = cg_.root;
  EXPECT_NO_THROW(loader::Datapath(node_ + "x", cg_.workloads, options));
  loader::Datapath::uninstall(node_ + "x");
}

TEST_F(CaptureFlowTest, RestartKeepsTheAgentLinksOrMovesThemWithTheAgent) {
  auto link_of = [&](const std::string &pin) {
    UniqueFd fd(bpf_obj_get(("/sys/fs/bpf/sockmesh/" + node_ + "/" + pin).c_str()));
    bpf_link_info info{};
    uint32_t len = sizeof(info);
    EXPECT_EQ(bpf_obj_get_info_by_fd(fd.get(), &info, &len), 0);
    return std::make_pair(info.id, info.cgroup.cgroup_id);
  };
  auto before = link_of("link_agent_getsockopt");
  EXPECT_EQ(before.second, cgroup_id(cg_.agent));
  close_datapath();
  open_datapath();  // same agent cgroup: the same link, switched to the new program
  EXPECT_TRUE(datapath_->adopted());
  EXPECT_EQ(link_of("link_agent_getsockopt"), before);
  close_datapath();
  datapath_ = std::make_unique<loader::Datapath>(node_, cg_.workloads);
  datapath_->attach_agent(cg_.agent2);  // the agent came back in another cgroup
  auto moved = link_of("link_agent_getsockopt");
  EXPECT_NE(moved.first, before.first);
  EXPECT_EQ(moved.second, cgroup_id(cg_.agent2));
  EXPECT_EQ(link_of("link_agent_sockops").second, cgroup_id(cg_.agent2));
  close_datapath();
  open_datapath();  // back to the fixture's own, for the other checks and TearDown
}

TEST_F(CaptureFlowTest, UninstallDetachesTheCapturePrograms) {
  reconciler_->apply({{vip("10.96.0.11", 80), service({{"127.0.0.2", 9001}})}});
  mesh();
  agent_listens();
  auto out = in_child(
      [](Node &n) {
        auto c = n.tcp(n.cgroups().client, "10.96.0.11", 80);
        n.emit("where", c.where);
        n.sync(1);
        n.emit("info", sockopt(c.accepted, SOL_IP, SM_SO_CAPTURE_INFO, 56).substr(0, 20));
        n.emit("after", n.tcp(n.cgroups().client, "10.96.0.11", 80).where);
      },
      [&](int) {
        close_datapath();
        loader::Datapath::uninstall(node_);
      });
  EXPECT_EQ(out["where"], "agent4");
  EXPECT_EQ(out["info"], ("rc=-1 errno=" + std::to_string(ENOPROTOOPT) + " len=56 ").substr(0, 20));
  EXPECT_EQ(out["after"], "");  // no VIP any more: the connect went nowhere
  open_datapath();              // for TearDown
}

}  // namespace
}  // namespace sockmesh
