// Capture in the kernel without lab or agent: a fixture that loads the data path into a cgroup
// tree of its own and runs clients, backends and a stand-in for the agent's outbound listener in
// a child process inside those cgroups and a private network namespace.
//
//   <cgroup2>/sockmesh-capture-<pid>/             root: backends, control listener
//     workloads/                                  the workload cgroup (programs attached here)
//       client/  client/container/  client/sidecar/  other/  unknown/
//     agent/  agent2/                             the agent's cgroup (capture programs attached)
//
// With agent_inside_ (AgentInsideTest, and every CaptureFlowTest again as AgentInside.* through
// SOCKMESH_TEST_AGENT_INSIDE=1) the agent's cgroups are workloads/meshd/ and workloads/meshd2/
// instead: the agent inside the workload cgroup, as a DaemonSet pod is under kubepods.
//
// A socket belongs to the cgroup its creator was in at socket(); the child moves itself between
// cgroups before creating each socket. The parent configures the maps; the child connects and
// reports "key value" lines, and can stop at a sync point for the parent to change something.
#pragma once

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdarg>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "loader/datapath.h"
#include "proxy/capture_info.h"
#include "reconcile/bpf_lb_maps.h"
#include "reconcile/capture_maps.h"
#include "reconcile/policy_maps.h"
#include "reconcile/reconciler.h"
#include "sockmesh/capture_maps.h"
#include "telemetry/datapath_counters.h"

namespace sockmesh {
namespace {

using reconcile::parse_ip;

constexpr uint16_t kAgentPort = 15001;
constexpr uint16_t kControlPort = 15002;

std::string text_of(const sockaddr_storage &addr) {
  char text[INET6_ADDRSTRLEN] = {};
  if (addr.ss_family == AF_INET6) {
    const auto &a = reinterpret_cast<const sockaddr_in6 &>(addr);
    inet_ntop(AF_INET6, &a.sin6_addr, text, sizeof(text));
    return "[" + std::string(text) + "]:" + std::to_string(ntohs(a.sin6_port));
  }
  const auto &a = reinterpret_cast<const sockaddr_in &>(addr);
  inet_ntop(AF_INET, &a.sin_addr, text, sizeof(text));
  return std::string(text) + ":" + std::to_string(ntohs(a.sin_port));
}

sockaddr_storage sockaddr_of(const std::string &ip, uint16_t port, socklen_t *len) {
  sockaddr_storage out{};
  if (ip.find(':') != std::string::npos) {
    auto &a = reinterpret_cast<sockaddr_in6 &>(out);
    a.sin6_family = AF_INET6;
    inet_pton(AF_INET6, ip.c_str(), &a.sin6_addr);
    a.sin6_port = htons(port);
    *len = sizeof(a);
  } else {
    auto &a = reinterpret_cast<sockaddr_in &>(out);
    a.sin_family = AF_INET;
    inet_pton(AF_INET, ip.c_str(), &a.sin_addr);
    a.sin_port = htons(port);
    *len = sizeof(a);
  }
  return out;
}

std::string hex(const void *data, size_t n) {
  static const char digits[] = "0123456789abcdef";
  std::string out;
  const auto *p = static_cast<const uint8_t *>(data);
  for (size_t i = 0; i < n; i++) {
    out += digits[p[i] >> 4];
    out += digits[p[i] & 0xf];
  }
  return out;
}

// The bytes of struct sockaddr_in / sockaddr_in6 for ip:port, as libc builds them.
[[maybe_unused]] std::string sockaddr_hex(const std::string &ip, uint16_t port) {
  socklen_t len = 0;
  auto addr = sockaddr_of(ip, port, &len);
  return hex(&addr, len);
}

sm_capture_addr capture_addr(const std::string &ip, uint16_t port) {
  sm_capture_addr out{};
  if (ip.find(':') != std::string::npos) {
    inet_pton(AF_INET6, ip.c_str(), out.addr);
    out.family = SM_AF_INET6;
  } else {
    inet_pton(AF_INET, ip.c_str(), out.addr);
    out.family = SM_AF_INET;
  }
  out.port = htons(port);
  return out;
}

// The bytes SM_SO_CAPTURE_INFO must answer.
[[maybe_unused]] std::string info_hex(const std::string &orig_ip, uint16_t orig_port,
                                      const std::string &be_ip, uint16_t be_port, uint32_t src,
                                      uint32_t dst, uint32_t node) {
  sm_capture_info info{};
  info.orig = capture_addr(orig_ip, orig_port);
  info.backend = capture_addr(be_ip, be_port);
  info.src_workload = src;
  info.dst_workload = dst;
  info.dst_node = node;
  return hex(&info, sizeof(info));
}

// One getsockopt() call and everything it left: return value, errno, optlen and the first bytes
// of the buffer (filled with 0xab before the call), so that two calls compare as text.
[[maybe_unused]] std::string sockopt(int fd, int level, int name, size_t size) {
  std::vector<uint8_t> buffer(size, 0xab);
  socklen_t len = socklen_t(size);
  int rc = getsockopt(fd, level, name, buffer.data(), &len);
  int err = rc == 0 ? 0 : errno;
  return "rc=" + std::to_string(rc) + " errno=" + std::to_string(err) +
         " len=" + std::to_string(len) + " " + hex(buffer.data(), std::min<size_t>(size, 64));
}

// sockopt() of a call expected to succeed with `len` bytes `bytes`, in a buffer of `size`.
[[maybe_unused]] std::string answered(const std::string &bytes, size_t size) {
  std::string tail;
  for (size_t i = bytes.size() / 2; i < std::min<size_t>(size, 64); i++) tail += "ab";
  return "rc=0 errno=0 len=" + std::to_string(bytes.size() / 2) + " " + bytes + tail;
}

struct Cgroups {
  std::string root, workloads, client, container, sidecar, other, unknown, agent, agent2;
  std::vector<std::string> all() const {  // parents first
    return {root, workloads, client, container, sidecar, other, unknown, agent, agent2};
  }
};

// Where a TCP connect landed. The sockets stay open until the child exits.
struct Landing {
  int err = 0;        // errno of connect()
  std::string where;  // the listener that accepted: agent4, agent6, control, be2, be3, be4,
                      // be9001, be9002; "" when none did
  std::string peer;   // the client's getpeername()
  int client = -1;
  int accepted = -1;
  int64_t connect_us = 0;  // how long connect() took
};

// Inside the child: a private netns with loopback up and the listeners.
class Node {
 public:
  Node(const Cgroups &cg, int out, int in) : cg_(cg), out_(out), in_(in) {
    if (unshare(CLONE_NEWNET) != 0) _exit(90);
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    ifreq ifr{};
    std::strcpy(ifr.ifr_name, "lo");
    ifr.ifr_flags = IFF_UP | IFF_LOOPBACK | IFF_RUNNING;
    if (ioctl(s, SIOCSIFFLAGS, &ifr) != 0) _exit(91);
    close(s);
    join(cg.root);
    for (const char *last : {"2", "3", "4"}) {
      listen_on(std::string("be") + last, std::string("127.0.0.") + last, 9001);
      udp_on(std::string("be") + last, std::string("127.0.0.") + last, 9001);
    }
    for (uint16_t port : {9001, 9002}) {
      listen_on("be" + std::to_string(port), "::1", port);
      udp_on("be" + std::to_string(port), "::1", port);
    }
    listen_on("control", "127.0.0.1", kControlPort);
    join(cg.agent);
    listen_on("agent4", "127.0.0.1", kAgentPort);
    listen_on("agent6", "::1", kAgentPort);
    join(cg.root);
  }

  // Moves this process into `cgroup`: sockets created afterwards belong to it.
  static void join(const std::string &cgroup) {
    std::ofstream procs(cgroup + "/cgroup.procs");
    procs << getpid();
    procs.close();
    if (!procs) _exit(94);
  }

  // A listener in the current cgroup; its accepted sockets belong to that cgroup too.
  void listen_on(const std::string &name, const std::string &ip, uint16_t port) {
    socklen_t len = 0;
    auto addr = sockaddr_of(ip, port, &len);
    int fd = socket(addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (addr.ss_family == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    if (bind(fd, reinterpret_cast<sockaddr *>(&addr), len) != 0) _exit(92);
    if (listen(fd, 128) != 0) _exit(93);
    listeners_.push_back({name, fd});
  }

  void udp_on(const std::string &name, const std::string &ip, uint16_t port) {
    socklen_t len = 0;
    auto addr = sockaddr_of(ip, port, &len);
    int fd = socket(addr.ss_family, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    int one = 1;
    if (addr.ss_family == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    if (bind(fd, reinterpret_cast<sockaddr *>(&addr), len) != 0) _exit(95);
    udp_.push_back({name, fd});
  }

  // A TCP connect from a socket created in `cgroup` (of `family`, default: the address's).
  Landing tcp(const std::string &cgroup, const std::string &ip, uint16_t port, int family = 0) {
    join(cgroup);
    socklen_t len = 0;
    auto addr = sockaddr_of(ip, port, &len);
    Landing out;
    out.client = socket(family ? family : addr.ss_family, SOCK_STREAM, 0);
    if (family == AF_INET6) {
      int zero = 0;  // dual stack, for IPv4-mapped destinations
      setsockopt(out.client, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
    }
    // Still in `cgroup`: the connect hook knows the workload by the caller's cgroup.
    const auto start = std::chrono::steady_clock::now();
    int rc = connect(out.client, reinterpret_cast<sockaddr *>(&addr), len);
    out.err = rc == 0 ? 0 : errno;
    out.connect_us = std::chrono::duration_cast<std::chrono::microseconds>(
                         std::chrono::steady_clock::now() - start)
                         .count();
    join(cg_.root);
    if (rc != 0) return out;
    sockaddr_storage peer{};
    socklen_t peer_len = sizeof(peer);
    getpeername(out.client, reinterpret_cast<sockaddr *>(&peer), &peer_len);
    out.peer = text_of(peer);
    accept_one(out);
    return out;
  }

  // A datagram from a connected UDP socket created in `cgroup`; the server that got it answers
  // with its name, which is returned ("err:<errno>" or "none" otherwise).
  std::string udp(const std::string &cgroup, const std::string &ip, uint16_t port) {
    join(cgroup);
    socklen_t len = 0;
    auto addr = sockaddr_of(ip, port, &len);
    int fd = socket(addr.ss_family, SOCK_DGRAM, 0);
    bool sent =
        connect(fd, reinterpret_cast<sockaddr *>(&addr), len) == 0 && send(fd, "x", 1, 0) == 1;
    int err = errno;
    join(cg_.root);
    if (!sent) {
      close(fd);
      return "err:" + std::to_string(err);
    }
    std::vector<pollfd> fds;
    for (const auto &[name, sfd] : udp_) fds.push_back({sfd, POLLIN, 0});
    std::string got = "none";
    if (poll(fds.data(), fds.size(), 5000) > 0) {
      for (size_t i = 0; i < fds.size(); i++) {
        if (!(fds[i].revents & POLLIN)) continue;
        char buffer[64];
        sockaddr_storage from{};
        socklen_t from_len = sizeof(from);
        if (recvfrom(fds[i].fd, buffer, sizeof(buffer), 0, reinterpret_cast<sockaddr *>(&from),
                     &from_len) < 0)
          continue;
        const std::string &name = udp_[i].first;
        sendto(fds[i].fd, name.data(), name.size(), 0, reinterpret_cast<sockaddr *>(&from),
               from_len);
        pollfd client{fd, POLLIN, 0};
        char reply[64] = {};
        if (poll(&client, 1, 5000) > 0 && recv(fd, reply, sizeof(reply) - 1, 0) > 0) got = reply;
        break;
      }
    }
    close(fd);
    return got;
  }

  // Reports `value` under `key` to the parent.
  void emit(const std::string &key, const std::string &value) {
    std::string line = key + " " + value + "\n";
    if (write(out_, line.data(), line.size()) != ssize_t(line.size())) _exit(96);
  }

  // Stops until the parent has run its step `step`.
  void sync(int step) {
    std::string line = "@sync " + std::to_string(step) + "\n";
    if (write(out_, line.data(), line.size()) != ssize_t(line.size())) _exit(97);
    char go = 0;
    if (read(in_, &go, 1) != 1) _exit(98);
  }

  const Cgroups &cgroups() const { return cg_; }

 private:
  // Which listener got the connection just made. The handshake completes inside connect(), but
  // on another CPU the child socket can reach the accept queue a moment later: wait for one.
  void accept_one(Landing &out) {
    std::vector<pollfd> fds;
    for (const auto &[name, fd] : listeners_) fds.push_back({fd, POLLIN, 0});
    if (poll(fds.data(), fds.size(), 5000) <= 0) return;
    for (size_t i = 0; i < fds.size(); i++) {
      if (!(fds[i].revents & POLLIN)) continue;
      int conn = accept(fds[i].fd, nullptr, nullptr);
      if (conn < 0) continue;
      out.accepted = conn;
      out.where = listeners_[i].first;
      return;
    }
  }

  Cgroups cg_;
  int out_, in_;
  std::vector<std::pair<std::string, int>> listeners_;
  std::vector<std::pair<std::string, int>> udp_;
};

// Pins and cgroups of an earlier run of this test that crashed (its pid is gone).
void remove_leftovers_of_dead_runs() {
  const std::string prefix = "sockmesh-capture-";
  for (const auto &entry : std::filesystem::directory_iterator(loader::cgroup2_mount())) {
    std::string name = entry.path().filename();
    if (name.rfind(prefix, 0) != 0) continue;
    std::string pid = name.substr(prefix.size());
    if (kill(std::stoi(pid), 0) == 0) continue;
    loader::Datapath::uninstall("smcap-" + pid);
    std::vector<std::string> dirs;
    for (const auto &sub : std::filesystem::recursive_directory_iterator(entry.path()))
      if (sub.is_directory()) dirs.push_back(sub.path());
    std::sort(dirs.rbegin(), dirs.rend());  // children before parents
    for (const auto &dir : dirs) rmdir(dir.c_str());
    rmdir(entry.path().c_str());
  }
}

class CaptureTest : public ::testing::Test {
 protected:
  void SetUp() override {
    remove_leftovers_of_dead_runs();
    node_ = "smcap-" + std::to_string(getpid());
    std::string root = loader::cgroup2_mount() + "/sockmesh-capture-" + std::to_string(getpid());
    cg_.root = root;
    cg_.workloads = root + "/workloads";
    cg_.client = cg_.workloads + "/client";
    cg_.container = cg_.client + "/container";
    cg_.sidecar = cg_.client + "/sidecar";
    cg_.other = cg_.workloads + "/other";
    cg_.unknown = cg_.workloads + "/unknown";
    const std::string agents = agent_inside_ ? cg_.workloads + "/meshd" : root + "/agent";
    cg_.agent = agents;
    cg_.agent2 = agents + "2";
    for (const auto &dir : cg_.all())
      ASSERT_EQ(mkdir(dir.c_str(), 0755), 0) << dir << ": " << std::strerror(errno);
    open_datapath();
  }

  void TearDown() override {
    close_datapath();
    loader::Datapath::uninstall(node_);
    auto dirs = cg_.all();
    for (auto it = dirs.rbegin(); it != dirs.rend(); ++it) rmdir(it->c_str());
    EXPECT_FALSE(std::filesystem::exists("/sys/fs/bpf/sockmesh/" + node_));
    EXPECT_FALSE(std::filesystem::exists(cg_.root));
  }

  void open_datapath(bool with_agent = true) {
    // As meshd does: the agent's cgroup is known before any workload program is attached.
    loader::DatapathOptions options;
    if (with_agent) options.agent_cgroup = cg_.agent;
    datapath_ = std::make_unique<loader::Datapath>(node_, cg_.workloads, options);
    if (with_agent) datapath_->attach_agent(cg_.agent);
    lb_maps_ = std::make_unique<reconcile::BpfLbMaps>(datapath_->services_fd(),
                                                      datapath_->backend_sets_fd());
    reconciler_ = std::make_unique<reconcile::Reconciler>(*lb_maps_);
    capture_ = std::make_unique<reconcile::CaptureMaps>(
        datapath_->workloads_fd(), datapath_->endpoints_fd(), datapath_->agent_config_fd());
    policy_ = std::make_unique<reconcile::PolicyMaps>(datapath_->policy_fd(),
                                                      datapath_->policy_denials_fd());
  }

  void close_datapath() {
    policy_.reset();
    capture_.reset();
    reconciler_.reset();
    lb_maps_.reset();
    datapath_.reset();
  }

  uint64_t counter(const std::string &name) {
    for (const auto &[n, v] : telemetry::read_datapath_counters(datapath_->counters_fd()))
      if (n == name) return v;
    return ~0ull;
  }

  size_t flows() {
    size_t n = 0;
    sm_flow_key key{}, next{};
    const void *prev = nullptr;
    while (bpf_map_get_next_key(datapath_->capture_flows_fd(), prev, &next) == 0) {
      key = next;
      prev = &key;
      n++;
    }
    return n;
  }

  // The agent listens on 127.0.0.1 and ::1, port kAgentPort, with capture on.
  void agent_listens(bool capture_on = true, bool v4 = true, bool v6 = true,
                     uint16_t port = kAgentPort) {
    reconcile::AgentListener agent;
    if (v4) agent.ipv4 = reconcile::ListenAddress{parse_ip("127.0.0.1"), port};
    if (v6) agent.ipv6 = reconcile::ListenAddress{parse_ip("::1"), port};
    agent.capture_on = capture_on;
    capture_->set_agent(agent);
  }

  uint64_t cgroup_id(const std::string &dir) { return reconcile::CaptureMaps::cgroup_id_of(dir); }

  // A service of one TCP (or UDP) VIP port with the given backends ("ip", port) of weight 1.
  static reconcile::DesiredService service(
      const std::vector<std::pair<std::string, uint16_t>> &backends) {
    reconcile::DesiredService s{"test/web", SM_LB_RANDOM, 0, {}, {}};
    for (const auto &[ip, port] : backends)
      s.backends.push_back({parse_ip(ip), port, 1, "test/" + ip, ""});
    return s;
  }

  static reconcile::ServiceKey vip(const std::string &ip, uint16_t port,
                                   uint8_t proto = IPPROTO_TCP) {
    return {parse_ip(ip), port, proto};
  }

  // Runs fn in a child process (private netns, listeners up); returns the "key value" lines it
  // reported. At each sync point of the child, on_sync(step) runs in the parent.
  std::map<std::string, std::string> in_child(
      const std::function<void(Node &)> &fn, const std::function<void(int)> &on_sync = [](int) {}) {
    int up[2], down[2];
    EXPECT_EQ(pipe(up), 0);
    EXPECT_EQ(pipe(down), 0);
    pid_t pid = fork();
    if (pid == 0) {
      close(up[0]);
      close(down[1]);
      Node node(cg_, up[1], down[0]);
      fn(node);
      _exit(0);
    }
    close(up[1]);
    close(down[0]);
    std::map<std::string, std::string> out;
    std::string pending;
    char buffer[4096];
    ssize_t n;
    while ((n = read(up[0], buffer, sizeof(buffer))) > 0) {
      pending.append(buffer, size_t(n));
      size_t nl;
      while ((nl = pending.find('\n')) != std::string::npos) {
        std::string line = pending.substr(0, nl);
        pending.erase(0, nl + 1);
        if (line.rfind("@sync ", 0) == 0) {
          on_sync(std::stoi(line.substr(6)));
          EXPECT_EQ(write(down[1], "g", 1), 1);
          continue;
        }
        size_t space = line.find(' ');
        out[line.substr(0, space)] = space == std::string::npos ? "" : line.substr(space + 1);
      }
    }
    close(up[0]);
    close(down[1]);
    int status = 0;
    waitpid(pid, &status, 0);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "child status " << status;
    return out;
  }

  std::string node_;
  bool agent_inside_ = std::getenv("SOCKMESH_TEST_AGENT_INSIDE") != nullptr;
  Cgroups cg_;
  std::unique_ptr<loader::Datapath> datapath_;
  std::unique_ptr<reconcile::BpfLbMaps> lb_maps_;
  std::unique_ptr<reconcile::Reconciler> reconciler_;
  std::unique_ptr<reconcile::CaptureMaps> capture_;
  std::unique_ptr<reconcile::PolicyMaps> policy_;
};

}  // namespace
}  // namespace sockmesh
