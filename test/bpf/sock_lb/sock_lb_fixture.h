// The socket load balancer in the kernel without lab or agent: a fixture that loads the data path
// into a cgroup of its own and runs clients and backends in a child process inside that cgroup and
// a private network namespace.
#pragma once

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
#include "reconcile/bpf_resilience_states.h"
#include "reconcile/reconciler.h"
#include "telemetry/datapath_counters.h"

namespace sockmesh {
namespace {

constexpr uint32_t ip(uint8_t a, uint8_t b, uint8_t c, uint8_t d) {
  return (uint32_t(a) << 24) | (uint32_t(b) << 16) | (uint32_t(c) << 8) | d;
}
constexpr uint32_t kVipIp = ip(10, 96, 0, 10);
constexpr uint32_t kEmptyVipIp = ip(10, 96, 0, 11);
const reconcile::ServiceKey kVip{reconcile::parse_ip("10.96.0.10"), 80, IPPROTO_TCP};
const reconcile::ServiceKey kEmptyVip{reconcile::parse_ip("10.96.0.11"), 80, IPPROTO_TCP};

reconcile::DesiredService backends(std::vector<std::pair<uint8_t, uint32_t>> last_octet_weight,
                                   uint32_t policy = SM_LB_RANDOM) {
  reconcile::DesiredService service{"test/web", policy, policy == SM_LB_MAGLEV ? 4093u : 0u, {}, {}};
  for (auto [last, weight] : last_octet_weight)
    service.backends.push_back({reconcile::parse_ip("127.0.0." + std::to_string(last)), 9001,
                                weight, "test/be" + std::to_string(last), ""});
  return service;
}

sockaddr_in sockaddr_of(uint32_t host_ip, uint16_t port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(host_ip);
  addr.sin_port = htons(port);
  return addr;
}

sockaddr_in6 sockaddr6_of(const in6_addr &host_ip, uint16_t port) {
  sockaddr_in6 addr{};
  addr.sin6_family = AF_INET6;
  addr.sin6_addr = host_ip;
  addr.sin6_port = htons(port);
  return addr;
}

// Which of `listeners` (a key each -> listening fd) got the connection just made; -1 after 5 s.
// The handshake completes inside connect(), but on another CPU the child socket can reach the
// accept queue a moment later (seen on 6.1 under qemu): wait for a listener to become readable
// instead of sweeping once.
[[maybe_unused]] int accepted_by(const std::map<int, int> &listeners) {
  std::vector<pollfd> fds;
  std::vector<int> keys;
  for (auto [key, fd] : listeners) {
    fds.push_back({fd, POLLIN, 0});
    keys.push_back(key);
  }
  if (poll(fds.data(), fds.size(), 5000) <= 0) return -1;
  for (size_t i = 0; i < fds.size(); ++i) {
    if (!(fds[i].revents & POLLIN)) continue;
    int conn = accept(fds[i].fd, nullptr, nullptr);
    if (conn >= 0) {
      close(conn);
      return keys[i];
    }
  }
  return -1;
}

// Inside the child: a private netns with loopback up; TCP listeners and UDP servers on
// 127.0.0.2/.3:9001 and [::1]:9001/9002.
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
      auto addr = sockaddr_of(ip(127, 0, 0, last), 9001);
      listeners_[last] = bound_socket(SOCK_STREAM, &addr, sizeof(addr));
      udp_[last] = bound_socket(SOCK_DGRAM, &addr, sizeof(addr));
    }
    for (uint16_t port : {9001, 9002}) {
      auto addr = sockaddr6_of(in6addr_loopback, port);
      listeners_[port] = bound_socket(SOCK_STREAM, &addr, sizeof(addr));
      udp_[port] = bound_socket(SOCK_DGRAM, &addr, sizeof(addr));
    }
  }

  // Answers one pending datagram with the answering server's id ("2", "3" for 127.0.0.2/.3:9001,
  // "9001", "9002" for [::1]:port). Returns the id, or -1 when none was pending.
  int serve_udp() {
    for (auto [id, fd] : udp_) {
      char buffer[512];
      sockaddr_storage from{};
      socklen_t len = sizeof(from);
      if (recvfrom(fd, buffer, sizeof(buffer), 0, reinterpret_cast<sockaddr *>(&from), &len) < 0)
        continue;
      std::string reply = std::to_string(id);
      sendto(fd, reply.data(), reply.size(), 0, reinterpret_cast<sockaddr *>(&from), len);
      return id;
    }
    return -1;
  }
  static int bound_socket(int type, const void *addr, socklen_t len) {
    int family = reinterpret_cast<const sockaddr *>(addr)->sa_family;
    int fd = socket(family, type | SOCK_NONBLOCK, 0);
    int one = 1;
    if (family == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    if (bind(fd, reinterpret_cast<const sockaddr *>(addr), len) != 0) _exit(92);
    if (type == SOCK_STREAM && listen(fd, 1024) != 0) _exit(93);
    return fd;
  }

  // Which listener got the connection just made (its last octet, or its port for [::1]).
  int accepted_by() { return sockmesh::accepted_by(listeners_); }

 private:
  std::map<int, int> listeners_;
  std::map<int, int> udp_;
};

struct Outcome {
  int err = 0;       // errno of connect()
  int backend = -1;  // last octet of the listener that accepted
  std::string peer;  // getpeername()
};

[[maybe_unused]] Outcome connect_once(Backends &backends, uint32_t host_ip, uint16_t port) {
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
    for (const auto &sub : std::filesystem::directory_iterator(entry.path()))
      if (sub.is_directory()) rmdir(sub.path().c_str());
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
    for (const auto &sub : subs_) rmdir(sub.c_str());
    rmdir(cgroup_.c_str());
    EXPECT_FALSE(std::filesystem::exists("/sys/fs/bpf/sockmesh/" + node_));
  }
  void open_datapath(const loader::DatapathOptions &options = {}) {
    datapath_ = std::make_unique<loader::Datapath>(node_, cgroup_, options);
    maps_ = std::make_unique<reconcile::BpfLbMaps>(datapath_->services_fd(),
                                                   datapath_->backend_sets_fd());
    states_ = std::make_unique<reconcile::BpfResilienceStates>(datapath_->service_states_fd(),
                                                               datapath_->backend_states_fd());
    reconciler_ = std::make_unique<reconcile::Reconciler>(*maps_, states_.get());
  }
  void close_datapath() {
    reconciler_.reset();
    states_.reset();
    maps_.reset();
    datapath_.reset();
  }
  uint64_t counter(const std::string &name) {
    for (const auto &[n, v] : telemetry::read_datapath_counters(datapath_->counters_fd()))
      if (n == name) return v;
    return ~0ull;
  }

  // Runs fn in a child process inside the test cgroup and a fresh netns; returns what it printed.
  // A child cgroup of the test's cgroup (a second client workload), removed at TearDown.
  std::string sub_cgroup(const std::string &name) {
    std::string path = cgroup_ + "/" + name;
    EXPECT_EQ(mkdir(path.c_str(), 0755), 0) << path << ": " << std::strerror(errno);
    subs_.push_back(path);
    return path;
  }

  std::string in_workload(const std::function<void(Backends &)> &fn) { return in_cgroup(cgroup_, fn); }
  std::string in_cgroup(const std::string &cgroup, const std::function<void(Backends &)> &fn) {
    int pipe_fds[2];
    EXPECT_EQ(pipe(pipe_fds), 0);
    pid_t pid = fork();
    if (pid == 0) {
      close(pipe_fds[0]);
      std::ofstream(cgroup + "/cgroup.procs") << getpid();
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
  std::vector<std::string> subs_;
  std::unique_ptr<loader::Datapath> datapath_;
  std::unique_ptr<reconcile::BpfLbMaps> maps_;
  std::unique_ptr<reconcile::BpfResilienceStates> states_;
  std::unique_ptr<reconcile::Reconciler> reconciler_;
};

}  // namespace
}  // namespace sockmesh
