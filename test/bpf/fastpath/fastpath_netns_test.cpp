// The fast path's key across network namespaces, with real sockets: two namespaces each hold a
// connection with the very same 4-tuple (127.0.0.1:40001 -> 127.0.0.1:9100), both on the fast
// path at once, and neither sees a byte of the other's. With the 4-tuple alone as the key the
// second connection would find the first one's sockets (PLATFORM.md: data delivered into the
// wrong namespace).
//
// The data path is loaded into a cgroup of the test's own, 127.0.0.1 is registered as a workload
// of this node (so that loopback connections qualify), and each namespace is a child process.
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <gtest/gtest.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "loader/datapath.h"
#include "reconcile/capture_maps.h"
#include "sockmesh/fastpath.h"
#include "telemetry/datapath_counters.h"

namespace sockmesh {
namespace {

constexpr uint16_t kServerPort = 9100;
constexpr uint16_t kClientPort = 40001;
constexpr size_t kBytes = 4 << 20;

uint64_t counter(int fd, const std::string &name) {
  for (const auto &[n, v] : telemetry::read_datapath_counters(fd))
    if (n == name) return v;
  return 0;
}

// Inside a child: a namespace of its own with loopback up, in `cgroup`.
bool enter(const std::string &cgroup) {
  if (unshare(CLONE_NEWNET) != 0) return false;
  int s = socket(AF_INET, SOCK_DGRAM, 0);
  ifreq ifr{};
  std::strcpy(ifr.ifr_name, "lo");
  ifr.ifr_flags = IFF_UP | IFF_LOOPBACK | IFF_RUNNING;
  bool up = ioctl(s, SIOCSIFFLAGS, &ifr) == 0;
  close(s);
  std::ofstream(cgroup + "/cgroup.procs") << getpid();
  return up;
}

sockaddr_in loopback(uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return a;
}

bool send_all(int fd, char fill, size_t n) {
  std::vector<char> buf(64 * 1024, fill);
  while (n > 0) {
    ssize_t w = send(fd, buf.data(), std::min(n, buf.size()), MSG_NOSIGNAL);
    if (w <= 0) return false;
    n -= size_t(w);
  }
  return true;
}

// Reads until EOF: every byte must be `fill`, and exactly n of them.
bool receive_all(int fd, char fill, size_t n) {
  std::vector<char> buf(64 * 1024);
  size_t got = 0;
  for (;;) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 10000) <= 0) return false;
    ssize_t r = read(fd, buf.data(), buf.size());
    if (r < 0) return false;
    if (r == 0) break;
    for (ssize_t i = 0; i < r; i++)
      if (buf[size_t(i)] != fill) return false;
    got += size_t(r);
  }
  return got == n;
}

// A child: one connection with the fixed 4-tuple; waits for the parent between establishing and
// transferring; sends `fill` both ways and checks it gets back only `fill`. Exit 0 when right.
[[noreturn]] void child(const std::string &cgroup, char fill, int ready, int go) {
  if (!enter(cgroup)) _exit(10);
  int listener = socket(AF_INET, SOCK_STREAM, 0);
  auto server = loopback(kServerPort);
  if (bind(listener, reinterpret_cast<sockaddr *>(&server), sizeof(server)) != 0 ||
      listen(listener, 1) != 0)
    _exit(11);
  int client = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(client, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  auto local = loopback(kClientPort);
  if (bind(client, reinterpret_cast<sockaddr *>(&local), sizeof(local)) != 0) _exit(12);
  if (connect(client, reinterpret_cast<sockaddr *>(&server), sizeof(server)) != 0) _exit(13);
  int accepted = accept(listener, nullptr, nullptr);
  if (accepted < 0) _exit(14);
  char byte = 'r';
  if (write(ready, &byte, 1) != 1 || read(go, &byte, 1) != 1) _exit(15);
  // Both directions at once from two processes, each end checking what it receives.
  pid_t other = fork();
  if (other == 0) {
    bool ok = send_all(accepted, fill, kBytes) && shutdown(accepted, SHUT_WR) == 0 &&
              receive_all(accepted, fill, kBytes);
    _exit(ok ? 0 : 16);
  }
  bool ok = send_all(client, fill, kBytes) && shutdown(client, SHUT_WR) == 0 &&
            receive_all(client, fill, kBytes);
  int status = 0;
  waitpid(other, &status, 0);
  _exit(ok && WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 17);
}

class FastPathNetnsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    node_ = "smfp-" + std::to_string(getpid());
    root_ = loader::cgroup2_mount() + "/sockmesh-fastpath-" + std::to_string(getpid());
    workloads_ = root_ + "/workloads";
    app_ = workloads_ + "/app";
    for (const auto &dir : {root_, workloads_, app_})
      ASSERT_TRUE(std::filesystem::create_directory(dir)) << dir;
    datapath_ = std::make_unique<loader::Datapath>(node_, workloads_);
    ASSERT_TRUE(datapath_->fast_path_loaded());
    maps_ = std::make_unique<reconcile::CaptureMaps>(
        datapath_->workloads_fd(), datapath_->endpoints_fd(), datapath_->agent_config_fd());
    maps_->sync_workloads({{reconcile::CaptureMaps::cgroup_id_of(app_), 1, false}});
    maps_->sync_endpoints({{reconcile::parse_ip("127.0.0.1"), 1, 1, false}});
    reconcile::AgentListener agent;
    agent.fast_path = true;
    maps_->set_agent(agent);
  }
  void TearDown() override {
    // Children a failed assertion left waiting (their cgroup cannot go while they live).
    for (pid_t pid : children_) {
      kill(pid, SIGKILL);
      waitpid(pid, nullptr, 0);
    }
    maps_.reset();
    datapath_.reset();
    loader::Datapath::uninstall(node_);
    for (const auto &dir : {app_, workloads_, root_}) rmdir(dir.c_str());
  }

  std::vector<sm_fp_key> keys() const {
    std::vector<sm_fp_key> out;
    sm_fp_key key{}, next{};
    const void *prev = nullptr;
    while (bpf_map_get_next_key(datapath_->fastpath_fd(), prev, &next) == 0) {
      key = next;
      prev = &key;
      out.push_back(key);
    }
    return out;
  }

  std::string node_, root_, workloads_, app_;
  std::vector<pid_t> children_;  // not yet reaped
  std::unique_ptr<loader::Datapath> datapath_;
  std::unique_ptr<reconcile::CaptureMaps> maps_;
};

TEST_F(FastPathNetnsTest, IdenticalTuplesInTwoNamespacesNeverMeet) {
  const int counters = datapath_->counters_fd();
  const uint64_t bytes_before = counter(counters, "fastpath_bytes");
  int ready[2], go[2];
  ASSERT_EQ(pipe(ready), 0);
  ASSERT_EQ(pipe(go), 0);
  std::map<char, pid_t> children;
  for (char fill : {'A', 'B'}) {
    pid_t pid = fork();
    if (pid == 0) child(app_, fill, ready[1], go[0]);
    children[fill] = pid;
    children_.push_back(pid);
  }
  char byte;
  for (int i = 0; i < 2; i++) ASSERT_EQ(read(ready[0], &byte, 1), 1) << "a child did not connect";

  // Both connections are established: four sockets, two namespaces, each tuple twice.
  const auto in_map = keys();
  ASSERT_EQ(in_map.size(), 4u);
  std::set<uint64_t> namespaces;
  std::map<std::string, int> tuples;
  for (const auto &k : in_map) {
    namespaces.insert(k.netns);
    EXPECT_EQ(k.family, uint32_t(SM_AF_INET));
    EXPECT_EQ(k.local[0], htonl(INADDR_LOOPBACK));
    EXPECT_EQ(k.remote[0], htonl(INADDR_LOOPBACK));
    tuples[std::to_string(ntohs(k.local_port)) + "->" + std::to_string(ntohs(k.remote_port))]++;
  }
  EXPECT_EQ(namespaces.size(), 2u);
  EXPECT_EQ(tuples, (std::map<std::string, int>{{"40001->9100", 2}, {"9100->40001", 2}}));

  ASSERT_EQ(write(go[1], "gg", 2), 2);
  for (const auto &[fill, pid] : children) {
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    children_.erase(std::find(children_.begin(), children_.end(), pid));
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
        << "namespace " << fill << ": exit " << WEXITSTATUS(status);
  }
  // The fast path carried all four streams.
  EXPECT_GE(counter(counters, "fastpath_bytes") - bytes_before, 4 * kBytes);
  // The children are gone, their sockets with them.
  EXPECT_EQ(keys().size(), 0u);
  for (int fd : {ready[0], ready[1], go[0], go[1]}) close(fd);
}

}  // namespace
}  // namespace sockmesh
