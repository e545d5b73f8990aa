// The socket load balancer in the kernel (sock_lb_fixture.h): IPv4 TCP with weighted random
// choice, refusal, passthrough, atomic switches, restart and uninstall.
#include "sock_lb_fixture.h"

namespace sockmesh {
namespace {

TEST_F(SockLbTest, ProgramsAreAttachedThroughPinnedLinks) {
  auto programs = datapath_->programs();
  std::vector<std::string> hooks;
  for (const auto &p : programs) {
    hooks.push_back(p.attach_type);
    EXPECT_GT(p.prog_id, 0u);
    // The fast path's sk_msg program is attached to its map, without a link.
    if (p.attach_type != "sk_msg") EXPECT_GT(p.link_id, 0u);
  }
  EXPECT_EQ(hooks,
            (std::vector<std::string>{
                "cgroup/sock_create", "cgroup/connect4", "cgroup/connect6", "cgroup/sendmsg4",
                "cgroup/sendmsg6", "cgroup/recvmsg4", "cgroup/recvmsg6", "cgroup/getpeername4",
                "cgroup/getpeername6", "cgroup/sock_release", "sockops", "sk_msg"}));
  EXPECT_TRUE(std::filesystem::exists("/sys/fs/bpf/sockmesh/" + node_ + "/link_connect4"));
  EXPECT_TRUE(std::filesystem::exists("/sys/fs/bpf/sockmesh/" + node_ + "/sm_services"));
}

TEST_F(SockLbTest, WeightedSplitAndVipAsPeer) {
  reconciler_->apply({{kVip, backends({{2, 3}, {3, 1}})}});
  const int n = 4000;
  auto out = in_workload([&](Backends &b) {
    std::map<int, int> picks;
    int bad_peer = 0, failed = 0;
    for (int i = 0; i < n; i++) {
      auto o = connect_once(b, kVipIp, 80);
      if (o.err) failed++;
      if (o.peer != "10.96.0.10:80") bad_peer++;
      picks[o.backend]++;
    }
    printf("%d %d %d %d", picks[2], picks[3], bad_peer, failed);
  });
  int two = 0, three = 0, bad_peer = -1, failed = -1;
  std::istringstream(out) >> two >> three >> bad_peer >> failed;
  EXPECT_EQ(failed, 0);
  EXPECT_EQ(bad_peer, 0);
  EXPECT_EQ(two + three, n);
  double sigma = std::sqrt(0.75 * 0.25 / n);
  EXPECT_NEAR(double(two) / n, 0.75, 5 * sigma) << out;
  EXPECT_EQ(counter("connect_balanced"), uint64_t(n));
}

// Below Linux 5.18 (no bpf_set_retval) meshd loads the programs with the call pruned by the
// verifier; a refused connect then reports EPERM (docs/kernels.md).
TEST_F(SockLbTest, WithoutSetRetvalARefusedConnectIsEperm) {
  close_datapath();
  open_datapath({.set_retval = false});
  reconciler_->apply({{kEmptyVip, backends({})}});
  auto out =
      in_workload([&](Backends &b) { printf("%d", connect_once(b, kEmptyVipIp, 80).err); });
  EXPECT_EQ(out, std::to_string(EPERM));
  EXPECT_EQ(counter("connect_no_backend"), 1u);
}

TEST_F(SockLbTest, VipWithoutUsableBackendIsRefused) {
  reconciler_->apply({{kVip, backends({{2, 0}, {3, 0}})}, {kEmptyVip, backends({})}});
  auto out = in_workload([&](Backends &b) {
    printf("%d %d", connect_once(b, kVipIp, 80).err, connect_once(b, kEmptyVipIp, 80).err);
  });
  EXPECT_EQ(out, std::to_string(ECONNREFUSED) + " " + std::to_string(ECONNREFUSED));
  EXPECT_EQ(counter("connect_no_backend"), 2u);
}

TEST_F(SockLbTest, OtherDestinationsAreUntouched) {
  reconciler_->apply({{kVip, backends({{2, 1}})}});
  auto out = in_workload([&](Backends &b) {
    auto direct = connect_once(b, ip(127, 0, 0, 3), 9001);
    auto other_port = connect_once(b, kVipIp, 81);  // a VIP address, not a VIP port
    printf("%d %s %d", direct.backend, direct.peer.c_str(), other_port.err);
  });
  // No route in the private netns: an untouched connect to 10.96.0.10:81 cannot leave.
  EXPECT_EQ(out, "3 127.0.0.3:9001 " + std::to_string(ENETUNREACH));
  EXPECT_EQ(counter("connect_passthrough"), 2u);
  EXPECT_EQ(counter("connect_balanced"), 0u);
}

TEST_F(SockLbTest, BackendSetSwitchesAtomicallyUnderConnectLoad) {
  reconciler_->apply({{kVip, backends({{2, 1}})}});
  std::atomic<bool> done{false};
  std::string out;
  std::thread client([&] {
    out = in_workload([&](Backends &b) {
      int ok = 0, failed = 0;
      // The child cannot see `done`; it runs for a fixed time longer than the updates take.
      auto until = std::chrono::steady_clock::now() + std::chrono::seconds(6);
      while (std::chrono::steady_clock::now() < until) {
        auto o = connect_once(b, kVipIp, 80);
        (o.err == 0 && o.backend > 0) ? ok++ : failed++;
      }
      printf("%d %d", ok, failed);
    });
  });
  int updates = 0;
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (std::chrono::steady_clock::now() < until) {
    // Disjoint sets: a half-applied switch would show as a refused or misrouted connect.
    reconciler_->apply({{kVip, backends({{uint8_t(updates % 2 ? 2 : 3), 1}})}});
    updates++;
  }
  client.join();
  int ok = 0, failed = -1;
  std::istringstream(out) >> ok >> failed;
  EXPECT_EQ(failed, 0) << out;
  EXPECT_GT(ok, 100);
  EXPECT_GT(updates, 50);
  EXPECT_EQ(counter("connect_no_backend"), 0u);
}

TEST_F(SockLbTest, RestartAdoptsPinsWithoutDetaching) {
  reconciler_->apply({{kVip, backends({{2, 1}})}});
  auto before = datapath_->programs();
  close_datapath();  // the agent exits; pins keep the data path running
  auto while_down =
      in_workload([&](Backends &b) { printf("%d", connect_once(b, kVipIp, 80).backend); });
  EXPECT_EQ(while_down, "2");
  open_datapath();
  EXPECT_TRUE(datapath_->adopted());
  EXPECT_EQ(reconciler_->services(), 1u);
  auto stats = reconciler_->apply({{kVip, backends({{2, 1}})}});
  EXPECT_EQ(stats.unchanged, 1u);  // nothing rewritten
  auto after = datapath_->programs();
  ASSERT_EQ(after.size(), before.size());
  for (size_t i = 0; i < after.size(); i++) {
    EXPECT_EQ(after[i].link_id, before[i].link_id) << after[i].name;  // the same link
    EXPECT_EQ(after[i].prog_id, before[i].prog_id) << after[i].name;  // the same program, kept
    EXPECT_TRUE(after[i].kept) << after[i].name;
    EXPECT_FALSE(before[i].kept) << before[i].name;
  }
}

// Loaded with other settings (here a smaller event ring), the programs are not the pinned ones:
// each pinned link is switched in place to the newly loaded program, and balancing goes on.
TEST_F(SockLbTest, RestartWithOtherSettingsSwitchesEveryLinkInPlace) {
  reconciler_->apply({{kVip, backends({{2, 1}})}});
  auto before = datapath_->programs();
  close_datapath();
  open_datapath({.events_ring_bytes = 1u << 20});
  auto after = datapath_->programs();
  ASSERT_EQ(after.size(), before.size());
  for (size_t i = 0; i < after.size(); i++) {
    EXPECT_EQ(after[i].link_id, before[i].link_id) << after[i].name;  // the same link, switched
    EXPECT_NE(after[i].prog_id, before[i].prog_id) << after[i].name;  // to the new program
    EXPECT_FALSE(after[i].kept) << after[i].name;
    EXPECT_TRUE(after[i].attached) << after[i].name;
  }
  auto out = in_workload([&](Backends &b) { printf("%d", connect_once(b, kVipIp, 80).backend); });
  EXPECT_EQ(out, "2");
  // And back: the first settings again are not taken for the second's programs.
  close_datapath();
  open_datapath();
  for (const auto &p : datapath_->programs()) EXPECT_FALSE(p.kept) << p.name;
}

TEST_F(SockLbTest, UninstallDetachesThePrograms) {
  reconciler_->apply({{kVip, backends({{2, 1}})}});
  close_datapath();
  loader::Datapath::uninstall(node_);
  auto out = in_workload([&](Backends &b) { printf("%d", connect_once(b, kVipIp, 80).err); });
  EXPECT_EQ(out, std::to_string(ENETUNREACH));
  open_datapath();  // for TearDown
}

}  // namespace
}  // namespace sockmesh
