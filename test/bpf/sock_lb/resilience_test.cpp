// Resilience in the kernel with real sockets (docs/resilience.md): connections counted per backend
// and released on close, on SIGKILL and when connect() fails before TCP starts; circuit breaking
// per backend and per service; least-connections; outlier ejection of a backend whose port
// refuses, its return, and max_ejection_percent; the rate limit's burst; fault injection's share,
// errno and scope. The clock-dependent rules are unit-tested with a set clock
// (test/unit/resilience); these use the kernel's.
#include <bpf/bpf.h>

#include "reconcile/capture_maps.h"
#include "sock_lb_fixture.h"
#include "sockmesh/resilience.h"

namespace sockmesh {
namespace {

constexpr uint64_t kMs = 1000000ull;

class ResilienceTest : public SockLbTest {
 protected:
  // A tracked "test/web" on 127.0.0.x:9001 (equal weights).
  reconcile::DesiredService service(std::vector<uint8_t> lasts, reconcile::DesiredResilience rs,
                                    uint32_t policy = SM_LB_RANDOM) {
    std::vector<std::pair<uint8_t, uint32_t>> weights;
    for (auto last : lasts) weights.push_back({last, 1});
    auto s = backends(weights, policy);
    rs.service_id = reconcile::service_id_of("test/web");
    s.resilience = rs;
    return s;
  }
  void apply(const reconcile::DesiredService &s) { reconciler_->apply({{kVip, s}}); }

  static sm_backend_key key_of(uint8_t last) {
    sm_backend_key key{};
    key.service = reconcile::service_id_of("test/web");
    key.addr[0] = htonl(ip(127, 0, 0, last));
    key.port = htons(9001);
    key.family = SM_AF_INET;
    return key;
  }
  sm_backend_state backend(uint8_t last) {
    sm_backend_state st{};
    auto key = key_of(last);
    EXPECT_EQ(bpf_map_lookup_elem(datapath_->backend_states_fd(), &key, &st), 0) << int(last);
    return st;
  }
  sm_service_state service_state() {
    sm_service_state st{};
    uint64_t id = reconcile::service_id_of("test/web");
    EXPECT_EQ(bpf_map_lookup_elem(datapath_->service_states_fd(), &id, &st), 0);
    return st;
  }
};

// Listens on 127.0.0.<last>:9001 in the child's namespace (the fixture has .2 and .3).
int listen_on(uint8_t last) {
  auto addr = sockaddr_of(ip(127, 0, 0, last), 9001);
  return Backends::bound_socket(SOCK_STREAM, &addr, sizeof(addr));
}

// A connect to the VIP that stays open; -errno when it failed.
int open_vip() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  auto addr = sockaddr_of(kVipIp, 80);
  if (connect(fd, reinterpret_cast<sockaddr *>(&addr), sizeof(addr)) != 0) {
    int err = errno;
    close(fd);
    return -err;
  }
  return fd;
}


TEST_F(ResilienceTest, ActiveConnectionsAreCountedAndGivenBackOnCloseAndOnSigkill) {
  apply(service({2, 3}, {}));
  const int states = datapath_->backend_states_fd(), services = datapath_->service_states_fd();
  const auto key2 = key_of(2), key3 = key_of(3);
  const uint64_t id = reconcile::service_id_of("test/web");
  auto active = [&] {
    sm_backend_state a{}, b{};
    sm_service_state s{};
    bpf_map_lookup_elem(states, &key2, &a);
    bpf_map_lookup_elem(states, &key3, &b);
    bpf_map_lookup_elem(services, &id, &s);
    return std::to_string(a.active) + "+" + std::to_string(b.active) + "=" + std::to_string(s.active);
  };
  std::string out = in_workload([&](Backends &) {
    std::vector<int> fds;
    for (int i = 0; i < 6; i++) fds.push_back(open_vip());
    sm_backend_state a{}, b{};
    bpf_map_lookup_elem(states, &key2, &a);
    bpf_map_lookup_elem(states, &key3, &b);
    sm_service_state s{};
    bpf_map_lookup_elem(services, &id, &s);
    printf("open:%lld service:%lld connects:%llu\n", (long long)(a.active + b.active),
           (long long)s.active, (unsigned long long)(a.connects + b.connects));
    for (int fd : fds) close(fd);
    printf("closed:%s\n", active().c_str());
    // A client killed with connections open: the kernel closes them for it.
    int ready[2];
    if (pipe(ready) != 0) _exit(3);
    pid_t child = fork();
    if (child == 0) {
      std::vector<int> held;
      for (int i = 0; i < 5; i++) held.push_back(open_vip());
      if (write(ready[1], "x", 1) != 1) _exit(4);
      pause();
      _exit(0);
    }
    char c;
    if (read(ready[0], &c, 1) != 1) _exit(5);
    printf("held:%s\n", active().c_str());
    kill(child, SIGKILL);
    waitpid(child, nullptr, 0);
    // The killed sockets' FINs are answered by the backends' kernel; give them a moment.
    for (int i = 0; i < 100 && active() != "0+0=0"; i++) usleep(10000);
    printf("killed:%s\n", active().c_str());
  });
  EXPECT_NE(out.find("open:6 service:6 connects:6\n"), std::string::npos) << out;
  EXPECT_NE(out.find("closed:0+0=0\n"), std::string::npos) << out;
  EXPECT_NE(out.find("=5\n"), std::string::npos) << out;  // held: five on the service
  EXPECT_NE(out.find("killed:0+0=0\n"), std::string::npos) << out;
}

TEST_F(ResilienceTest, AConnectThatFailsBeforeTcpStartsGivesItsChargeBack) {
  // 192.0.2.1 (TEST-NET-1) has no route in the child's namespace: connect() fails with
  // ENETUNREACH after the hook charged the backend; sock_release gives the charge back.
  auto s = backends({}, SM_LB_RANDOM);
  s.backends.push_back({reconcile::parse_ip("192.0.2.1"), 9001, 1, "test/far", ""});
  s.resilience.service_id = reconcile::service_id_of("test/web");
  apply(s);
  sm_backend_key key{};
  key.service = s.resilience.service_id;
  key.addr[0] = htonl(ip(192, 0, 2, 1));
  key.port = htons(9001);
  key.family = SM_AF_INET;
  const int states = datapath_->backend_states_fd();
  std::string out = in_workload([&](Backends &) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    auto addr = sockaddr_of(kVipIp, 80);
    int rc = connect(fd, reinterpret_cast<sockaddr *>(&addr), sizeof(addr));
    int err = rc == 0 ? 0 : errno;
    sm_backend_state st{};
    bpf_map_lookup_elem(states, &key, &st);
    printf("err:%d while-open:%lld\n", err, (long long)st.active);
    close(fd);
    bpf_map_lookup_elem(states, &key, &st);
    printf("after-close:%lld\n", (long long)st.active);
  });
  EXPECT_NE(out.find("err:" + std::to_string(ENETUNREACH) + " while-open:1\n"), std::string::npos)
      << out;
  EXPECT_NE(out.find("after-close:0\n"), std::string::npos) << out;
}

TEST_F(ResilienceTest, MaxConnectionsPerBackendSendsTheNextElsewhereThenFailsFast) {
  reconcile::DesiredResilience rs;
  rs.max_backend_connections = 2;
  apply(service({2, 3}, rs));
  std::string out = in_workload([&](Backends &) {
    std::vector<int> fds;
    for (int i = 0; i < 4; i++) fds.push_back(open_vip());
    int fifth = open_vip();
    printf("first-four:%d,%d,%d,%d fifth:%d\n", fds[0] >= 0, fds[1] >= 0, fds[2] >= 0,
           fds[3] >= 0, fifth);
    close(fds[0]);
    int again = open_vip();
    printf("after-one-closed:%d\n", again >= 0);
  });
  EXPECT_NE(out.find("first-four:1,1,1,1 fifth:-" + std::to_string(ECONNREFUSED) + "\n"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("after-one-closed:1\n"), std::string::npos) << out;
  EXPECT_EQ(backend(2).active + backend(3).active, 0);
  EXPECT_GE(backend(2).overflows + backend(3).overflows, 1u);
  EXPECT_EQ(service_state().no_backend, 1u);
  EXPECT_EQ(counter("connect_no_healthy_backend"), 1u);
}

TEST_F(ResilienceTest, MaxConnectionsPerServiceFailsFastAndCounts) {
  reconcile::DesiredResilience rs;
  rs.max_connections = 3;
  apply(service({2, 3}, rs));
  std::string out = in_workload([&](Backends &) {
    std::vector<int> fds;
    for (int i = 0; i < 3; i++) fds.push_back(open_vip());
    printf("fourth:%d\n", open_vip());
    close(fds[1]);
    int fd = open_vip();
    printf("again:%d\n", fd >= 0);
  });
  EXPECT_NE(out.find("fourth:-" + std::to_string(ECONNREFUSED) + "\n"), std::string::npos) << out;
  EXPECT_NE(out.find("again:1\n"), std::string::npos) << out;
  const auto svc = service_state();
  EXPECT_EQ(svc.overflows, 1u);
  EXPECT_EQ(svc.active, 0);
  EXPECT_EQ(backend(2).active + backend(3).active, 0);  // the refused one's backend charge undone
  EXPECT_EQ(backend(2).connects + backend(3).connects, 4u);
  EXPECT_EQ(counter("connect_overflow"), 1u);
}

TEST_F(ResilienceTest, LeastConnectionsAvoidsTheLoadedBackend) {
  apply(service({4, 5, 6}, {}, SM_LB_LEAST_CONN));
  // Backend .4 carries 1000 connections (written into its state as a load the test sets).
  auto key = key_of(4);
  sm_backend_state loaded = backend(4);
  loaded.active = 1000;
  ASSERT_EQ(bpf_map_update_elem(datapath_->backend_states_fd(), &key, &loaded, BPF_EXIST), 0);
  const int n = 900;
  std::string out = in_workload([&](Backends &) {
    std::map<int, int> listeners{{4, listen_on(4)}, {5, listen_on(5)}, {6, listen_on(6)}};
    std::map<int, int> got;
    for (int i = 0; i < n; i++) {
      int fd = open_vip();
      if (fd < 0) continue;
      got[accepted_by(listeners)]++;
      close(fd);
    }
    printf("4:%d 5:%d 6:%d\n", got[4], got[5], got[6]);
  });
  int to4 = -1, to5 = -1, to6 = -1;
  ASSERT_EQ(sscanf(out.c_str(), "4:%d 5:%d 6:%d", &to4, &to5, &to6), 3) << out;
  EXPECT_EQ(to4 + to5 + to6, n) << out;
  // Two picks from three: the loaded one only when both picks are it, 1/9 (random: 1/3).
  const double p = 1.0 / 9, sigma = std::sqrt(n * p * (1 - p));
  EXPECT_NEAR(to4, n * p, 5 * sigma) << out;
  EXPECT_NEAR(to5, to6, 5 * std::sqrt(n * 0.45)) << out;
}

TEST_F(ResilienceTest, ARefusingBackendIsEjectedAfterTheThresholdAndTakenBackAfterItsTime) {
  reconcile::DesiredResilience rs;
  rs.consecutive_failures = 3;
  rs.base_ejection_ns = 1500 * kMs;
  rs.max_ejection_ns = 10000 * kMs;
  rs.max_ejection_percent = 50;
  apply(service({2, 3, 4}, rs));
  std::string out = in_workload([&](Backends &) {
    // .2 and .3 listen (the fixture's); .4 never does: every connect it gets is refused (RST),
    // the backend's failure.
    int refused = 0, ok = 0;
    for (int i = 0; i < 300; i++) {
      int fd = open_vip();
      if (fd >= 0) {
        ok++;
        close(fd);
      } else if (fd == -ECONNREFUSED) {
        refused++;
      }
    }
    printf("phase1 refused:%d ok:%d\n", refused, ok);
    // Within the ejection: nothing reaches .4.
    refused = 0;
    for (int i = 0; i < 200; i++) {
      int fd = open_vip();
      if (fd >= 0) close(fd);
      else refused++;
    }
    printf("phase2 refused:%d\n", refused);
    usleep(1700 * 1000);  // past the 1.5 s ejection: .4 is tried again
    refused = 0;
    for (int i = 0; i < 300; i++) {
      int fd = open_vip();
      if (fd >= 0) close(fd);
      else refused++;
    }
    printf("phase3 refused:%d\n", refused);
  });
  int refused1 = -1, ok1 = -1, refused2 = -1, refused3 = -1;
  const auto p1 = out.find("phase1"), p2 = out.find("phase2"), p3 = out.find("phase3");
  ASSERT_NE(p3, std::string::npos) << out;
  sscanf(out.c_str() + p1, "phase1 refused:%d ok:%d", &refused1, &ok1);
  sscanf(out.c_str() + p2, "phase2 refused:%d", &refused2);
  sscanf(out.c_str() + p3, "phase3 refused:%d", &refused3);
  EXPECT_EQ(refused1, 3) << out;  // exactly the threshold, then ejected
  EXPECT_EQ(refused1 + ok1, 300) << out;
  EXPECT_EQ(refused2, 0) << out;
  EXPECT_EQ(refused3, 3) << out;  // back, and ejected again after three more
  const auto st = backend(4);
  EXPECT_EQ(st.failures, 6u);
  EXPECT_EQ(st.ejections_total, 2u);
  EXPECT_EQ(st.ejections, 2u);
  timespec now{};
  clock_gettime(CLOCK_MONOTONIC, &now);
  const uint64_t mono = uint64_t(now.tv_sec) * 1000000000ull + uint64_t(now.tv_nsec);
  // The second ejection in a row lasts twice the base.
  EXPECT_GT(st.ejected_until, mono + 2000 * kMs);
  EXPECT_LE(st.ejected_until, mono + 3000 * kMs);
  EXPECT_EQ(backend(2).failures + backend(3).failures, 0u);
  EXPECT_EQ(counter("backend_ejections"), 2u);
}

TEST_F(ResilienceTest, MaxEjectionPercentKeepsTheSecondDeadBackendIn) {
  reconcile::DesiredResilience rs;
  rs.consecutive_failures = 2;
  rs.base_ejection_ns = 30000 * kMs;
  rs.max_ejection_ns = 30000 * kMs;
  rs.max_ejection_percent = 50;  // of 3: one
  apply(service({2, 4, 5}, rs));
  std::string out = in_workload([&](Backends &) {
    // Only .2 listens; .4 and .5 refuse.
    int refused = 0;
    for (int i = 0; i < 300; i++) {
      int fd = open_vip();
      if (fd >= 0) close(fd);
      else refused++;
    }
    printf("refused:%d\n", refused);
  });
  const auto a = backend(4), b = backend(5);
  EXPECT_EQ(a.ejections_total + b.ejections_total, 1u) << out;  // one of them, never both
  const auto &kept = a.ejections_total ? b : a;
  EXPECT_EQ(kept.ejected_until, 0u);
  EXPECT_GT(kept.failures, 20u) << out;  // still receives its share, and fails
  EXPECT_GE(counter("backend_ejections_held"), 1u);
}

TEST_F(ResilienceTest, RateLimitPassesTheBurstThenTheRate) {
  reconcile::DesiredResilience rs;
  rs.rate_interval_ns = 1000000000ull / 20;  // 20/s
  rs.rate_burst_ns = (5 - 1) * rs.rate_interval_ns;  // burst 5
  apply(service({2, 3}, rs));
  std::string out = in_workload([&](Backends &) {
    int ok = 0, refused = 0;
    for (int i = 0; i < 50; i++) {
      int fd = open_vip();
      if (fd >= 0) ok++, close(fd);
      else if (fd == -ECONNREFUSED) refused++;
    }
    printf("burst ok:%d refused:%d\n", ok, refused);
    // One second of hammering: 20 more, give or take the interval the loop straddles.
    timespec start{}, now{};
    clock_gettime(CLOCK_MONOTONIC, &start);
    ok = 0;
    do {
      int fd = open_vip();
      if (fd >= 0) ok++, close(fd);
      usleep(1000);
      clock_gettime(CLOCK_MONOTONIC, &now);
    } while ((now.tv_sec - start.tv_sec) * 1000000000ll + (now.tv_nsec - start.tv_nsec) <
             1000000000ll);
    printf("second ok:%d\n", ok);
  });
  EXPECT_NE(out.find("burst ok:5 refused:45\n"), std::string::npos) << out;
  int second = -1;
  ASSERT_NE(out.find("second ok:"), std::string::npos) << out;
  sscanf(out.c_str() + out.find("second ok:"), "second ok:%d", &second);
  EXPECT_GE(second, 19) << out;
  EXPECT_LE(second, 21) << out;
  EXPECT_EQ(service_state().rate_limited, counter("connect_rate_limited"));
  EXPECT_GE(counter("connect_rate_limited"), 45u);
}

TEST_F(ResilienceTest, PerSourceRateLimitGivesEachWorkloadItsOwnBucket) {
  reconcile::DesiredResilience rs;
  rs.rate_interval_ns = 1000000000ull;        // 1/s: nothing refills during the test
  rs.rate_burst_ns = (4 - 1) * rs.rate_interval_ns;  // burst 4
  rs.rate_per_source = true;
  apply(service({2, 3}, rs));
  const std::string a = sub_cgroup("a"), b = sub_cgroup("b");
  reconcile::CaptureMaps capture(datapath_->workloads_fd(), datapath_->endpoints_fd(),
                                 datapath_->agent_config_fd());
  capture.sync_workloads({{reconcile::CaptureMaps::cgroup_id_of(a), 7, false},
                          {reconcile::CaptureMaps::cgroup_id_of(b), 8, false}});
  auto run = [&](Backends &) {
    int ok = 0, refused = 0;
    for (int i = 0; i < 10; i++) {
      int fd = open_vip();
      if (fd >= 0) ok++, close(fd);
      else if (fd == -ECONNREFUSED) refused++;
    }
    printf("ok:%d refused:%d\n", ok, refused);
  };
  // Each workload gets its own burst of 4; the first one's use leaves the second's untouched.
  EXPECT_EQ(in_cgroup(a, run), "ok:4 refused:6\n");
  EXPECT_EQ(in_cgroup(b, run), "ok:4 refused:6\n");
  EXPECT_EQ(service_state().rate_limited, 12u);
  sm_rate_source_key key{};
  key.service = reconcile::service_id_of("test/web");
  key.workload = 7;
  uint64_t tat = 0;
  EXPECT_EQ(bpf_map_lookup_elem(datapath_->rate_sources_fd(), &key, &tat), 0);
  EXPECT_GT(tat, 0u);
}

TEST_F(ResilienceTest, FaultInjectionFailsItsShareWithItsErrnoOnlyForScopedSources) {
  reconcile::DesiredResilience rs;
  rs.fault_ppm = 250000;  // 25 %
  rs.fault_errno = ECONNRESET;
  rs.fault_scoped = true;
  apply(service({2, 3}, rs));
  // Two client workloads: "a" (number 7) is a source of the fault, "b" (number 8) is not.
  const std::string a = sub_cgroup("a"), b = sub_cgroup("b");
  reconcile::CaptureMaps capture(datapath_->workloads_fd(), datapath_->endpoints_fd(),
                                 datapath_->agent_config_fd());
  capture.sync_workloads({{reconcile::CaptureMaps::cgroup_id_of(a), 7, false},
                          {reconcile::CaptureMaps::cgroup_id_of(b), 8, false}});
  sm_rate_source_key source{};
  source.service = reconcile::service_id_of("test/web");
  source.workload = 7;
  const uint32_t one = 1;
  ASSERT_EQ(bpf_map_update_elem(datapath_->fault_sources_fd(), &source, &one, BPF_ANY), 0);
  // Below the listeners' backlog (1024 each, never accepted here): a full accept queue would
  // drop SYNs and stall the loop.
  const int n = 1200;
  auto run = [&](Backends &) {
    int reset = 0, other = 0;
    for (int i = 0; i < n; i++) {
      int fd = open_vip();
      if (fd >= 0) close(fd);
      else if (fd == -ECONNRESET) reset++;
      else other++;
    }
    printf("reset:%d other:%d\n", reset, other);
  };
  int reset_a = -1, other_a = -1, reset_b = -1, other_b = -1;
  std::string out_a = in_cgroup(a, run), out_b = in_cgroup(b, run);
  sscanf(out_a.c_str(), "reset:%d other:%d", &reset_a, &other_a);
  sscanf(out_b.c_str(), "reset:%d other:%d", &reset_b, &other_b);
  const double p = 0.25, sigma = std::sqrt(n * p * (1 - p));
  EXPECT_NEAR(reset_a, n * p, 5 * sigma) << out_a;
  EXPECT_EQ(other_a, 0) << out_a;
  EXPECT_EQ(reset_b, 0) << out_b;
  EXPECT_EQ(other_b, 0) << out_b;
  EXPECT_EQ(service_state().faults, uint64_t(reset_a));
  EXPECT_EQ(counter("connect_fault"), uint64_t(reset_a));
}

}  // namespace
}  // namespace sockmesh
