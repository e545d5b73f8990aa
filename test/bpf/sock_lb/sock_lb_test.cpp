// The socket load balancer in the kernel, without the lab or meshd: the test loads the data path
// into a cgroup of its own, drives the maps through the reconciler, and connects from a child
// process in that cgroup and in a private network namespace with listeners on 127.0.0.2/.3.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <sstream>
#include <thread>

#include "loader/datapath.h"
#include "reconcile/bpf_lb_maps.h"
#include "reconcile/reconciler.h"
#include "telemetry/datapath_counters.h"

namespace sockmesh {
namespace {

constexpr uint32_t ip(uint8_t a, uint8_t b, uint8_t c, uint8_t d) {
  return (uint32_t(a) << 24) | (uint32_t(b) << 16) | (uint32_t(c) << 8) | d;
}
const reconcile::ServiceKey kVip{ip(10, 96, 0, 10), 80, IPPROTO_TCP};
const reconcile::ServiceKey kEmptyVip{ip(10, 96, 0, 11), 80, IPPROTO_TCP};

reconcile::DesiredService backends(std::vector<std::pair<uint8_t, uint32_t>> last_octet_weight) {
  reconcile::DesiredService service{"test/web", {}};
  for (auto [last, weight] : last_octet_weight)
    service.backends.push_back(
        {ip(127, 0, 0, last), 9001, weight, "test/be" + std::to_string(last), ""});
  return service;
}

sockaddr_in sockaddr_of(uint32_t host_ip, uint16_t port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(host_ip);
  addr.sin_port = htons(port);
  return addr;
}

// Inside the child: a private netns with loopback up and listeners on 127.0.0.2/.3:9001.
class Backends {
 public:
  Backends() {
    if (unshare(CLONE_NEWNET) != 0) _exit(90);
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    ifreq ifr{};
    std::strcpy(ifr.ifr_name, "lo");
    ifr.ifr_flags = IFF_UP | IFF_LOOPBACK | IFF_RUNNING;
    if (ioctl(s, SIOCSIFFLAGS, &ifr) != 0) _exit(91);
    close(s);
    for (uint8_t last : {2, 3}) {
      int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
      auto addr = sockaddr_of(ip(127, 0, 0, last), 9001);
      if (bind(fd, reinterpret_cast<sockaddr *>(&addr), sizeof(addr)) != 0 || listen(fd, 1024) != 0)
        _exit(92);
      listeners_[last] = fd;
    }
  }
  // Which listener got the connection just made (its handshake completes inside connect()).
  int accepted_by() {
    for (auto [last, fd] : listeners_) {
      int conn = accept(fd, nullptr, nullptr);
      if (conn >= 0) {
        close(conn);
        return last;
      }
    }
    return -1;
  }

 private:
  std::map<int, int> listeners_;
};

struct Outcome {
  int err = 0;       // errno of connect()
  int backend = -1;  // last octet of the listener that accepted
  std::string peer;  // getpeername()
};

Outcome connect_once(Backends &backends, uint32_t host_ip, uint16_t port) {
  Outcome out;
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  auto addr = sockaddr_of(host_ip, port);
  if (connect(fd, reinterpret_cast<sockaddr *>(&addr), sizeof(addr)) != 0) {
    out.err = errno;
    close(fd);
    return out;
  }
  sockaddr_in peer{};
  socklen_t len = sizeof(peer);
  getpeername(fd, reinterpret_cast<sockaddr *>(&peer), &len);
  char text[INET_ADDRSTRLEN];
  inet_ntop(AF_INET, &peer.sin_addr, text, sizeof(text));
  out.peer = std::string(text) + ":" + std::to_string(ntohs(peer.sin_port));
  out.backend = backends.accepted_by();
  close(fd);
  return out;
}

// Pins and cgroups of an earlier run of this test that crashed (its pid is gone).
void remove_leftovers_of_dead_runs() {
  for (const auto &entry : std::filesystem::directory_iterator(loader::cgroup2_mount())) {
    std::string name = entry.path().filename();
    if (name.rfind("sockmesh-test-", 0) != 0) continue;
    std::string pid = name.substr(std::strlen("sockmesh-test-"));
    if (kill(std::stoi(pid), 0) == 0) continue;
    loader::Datapath::uninstall("smbpf-" + pid);
    rmdir(entry.path().c_str());
  }
}

class SockLbTest : public ::testing::Test {
 protected:
  void SetUp() override {
    remove_leftovers_of_dead_runs();
    node_ = "smbpf-" + std::to_string(getpid());
    cgroup_ = loader::cgroup2_mount() + "/sockmesh-test-" + std::to_string(getpid());
    ASSERT_EQ(mkdir(cgroup_.c_str(), 0755), 0) << std::strerror(errno);
    open_datapath();
  }
  void TearDown() override {
    close_datapath();
    loader::Datapath::uninstall(node_);
    rmdir(cgroup_.c_str());
    EXPECT_FALSE(std::filesystem::exists("/sys/fs/bpf/sockmesh/" + node_));
  }
  void open_datapath() {
    datapath_ = std::make_unique<loader::Datapath>(node_, cgroup_);
    maps_ = std::make_unique<reconcile::BpfLbMaps>(datapath_->services_fd(),
                                                   datapath_->backend_sets_fd());
    reconciler_ = std::make_unique<reconcile::Reconciler>(*maps_);
  }
  void close_datapath() {
    reconciler_.reset();
    maps_.reset();
    datapath_.reset();
  }
  uint64_t counter(const std::string &name) {
    for (const auto &[n, v] : telemetry::read_datapath_counters(datapath_->counters_fd()))
      if (n == name) return v;
    return ~0ull;
  }

  // Runs fn in a child process inside the test cgroup and a fresh netns; returns what it printed.
  std::string in_workload(const std::function<void(Backends &)> &fn) {
    int pipe_fds[2];
    EXPECT_EQ(pipe(pipe_fds), 0);
    pid_t pid = fork();
    if (pid == 0) {
      close(pipe_fds[0]);
      std::ofstream(cgroup_ + "/cgroup.procs") << getpid();
      dup2(pipe_fds[1], STDOUT_FILENO);
      Backends backends;
      fn(backends);
      fflush(stdout);
      _exit(0);
    }
    close(pipe_fds[1]);
    std::string out;
    char buffer[4096];
    ssize_t n;
    while ((n = read(pipe_fds[0], buffer, sizeof(buffer))) > 0) out.append(buffer, size_t(n));
    close(pipe_fds[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "child status " << status;
    return out;
  }

  std::string node_, cgroup_;
  std::unique_ptr<loader::Datapath> datapath_;
  std::unique_ptr<reconcile::BpfLbMaps> maps_;
  std::unique_ptr<reconcile::Reconciler> reconciler_;
};

TEST_F(SockLbTest, ProgramsAreAttachedThroughPinnedLinks) {
  auto programs = datapath_->programs();
  ASSERT_EQ(programs.size(), 2u);
  EXPECT_EQ(programs[0].attach_type, "cgroup/connect4");
  EXPECT_EQ(programs[1].attach_type, "cgroup/getpeername4");
  for (const auto &p : programs) {
    EXPECT_GT(p.prog_id, 0u);
    EXPECT_GT(p.link_id, 0u);
  }
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
      auto o = connect_once(b, kVip.addr, 80);
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

TEST_F(SockLbTest, VipWithoutUsableBackendIsRefused) {
  reconciler_->apply({{kVip, backends({{2, 0}, {3, 0}})}, {kEmptyVip, backends({})}});
  auto out = in_workload([&](Backends &b) {
    printf("%d %d", connect_once(b, kVip.addr, 80).err, connect_once(b, kEmptyVip.addr, 80).err);
  });
  EXPECT_EQ(out, std::to_string(ECONNREFUSED) + " " + std::to_string(ECONNREFUSED));
  EXPECT_EQ(counter("connect_no_backend"), 2u);
}

TEST_F(SockLbTest, OtherDestinationsAreUntouched) {
  reconciler_->apply({{kVip, backends({{2, 1}})}});
  auto out = in_workload([&](Backends &b) {
    auto direct = connect_once(b, ip(127, 0, 0, 3), 9001);
    auto other_port = connect_once(b, kVip.addr, 81);  // a VIP address, not a VIP port
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
        auto o = connect_once(b, kVip.addr, 80);
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
      in_workload([&](Backends &b) { printf("%d", connect_once(b, kVip.addr, 80).backend); });
  EXPECT_EQ(while_down, "2");
  open_datapath();
  EXPECT_TRUE(datapath_->adopted());
  EXPECT_EQ(reconciler_->services(), 1u);
  auto stats = reconciler_->apply({{kVip, backends({{2, 1}})}});
  EXPECT_EQ(stats.unchanged, 1u);  // nothing rewritten
  auto after = datapath_->programs();
  ASSERT_EQ(after.size(), before.size());
  for (size_t i = 0; i < after.size(); i++) {
    EXPECT_EQ(after[i].link_id, before[i].link_id);  // the same link, switched in place
    EXPECT_NE(after[i].prog_id, before[i].prog_id);  // to the newly loaded program
  }
}

TEST_F(SockLbTest, UninstallDetachesThePrograms) {
  reconciler_->apply({{kVip, backends({{2, 1}})}});
  close_datapath();
  loader::Datapath::uninstall(node_);
  auto out = in_workload([&](Backends &b) { printf("%d", connect_once(b, kVip.addr, 80).err); });
  EXPECT_EQ(out, std::to_string(ENETUNREACH));
  open_datapath();  // for TearDown
}

}  // namespace
}  // namespace sockmesh
