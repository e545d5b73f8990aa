// The lab's life cycle: connectivity across nodes (IPv4 and IPv6, TCP and UDP), VIP containment, complete
// teardown (normal, stale, signals).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <algorithm>
#include <filesystem>
#include <string>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "sockmesh/common/paths.h"
#include "sockmesh/lab/echo_server.h"
#include "sockmesh/lab/lab.h"

namespace lab = sockmesh::lab;
namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

// Removes a lab by run id at scope exit, whatever the test did; a failed assertion never leaves a lab behind.
class LabGuard {
 public:
  explicit LabGuard(std::string run_id) : run_id_(std::move(run_id)) {}
  ~LabGuard() {
    try {
      lab::remove_lab(run_id_);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "guard: %s\n", e.what());
    }
  }

 private:
  std::string run_id_;
};

// Kills and reaps a forked helper at scope exit.
struct ChildGuard {
  pid_t pid;
  explicit ChildGuard(pid_t p) : pid(p) {}
  ~ChildGuard() { stop(); }
  void stop() {
    if (pid <= 0) return;
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    pid = -1;
  }
};

lab::LabSpec spec(int nodes, std::vector<lab::PodSpec> pods = {}, std::string run_id = "", pid_t owner = 0) {
  lab::LabSpec s;
  s.nodes = nodes;
  s.pods = std::move(pods);
  s.run_id = std::move(run_id);
  s.owner = owner;
  return s;
}

std::string unique_run_id(const char* tag) {
  return std::string(tag) + std::to_string(::getpid() % 100000);
}

std::string shell(const std::string& cmd) {
  std::string out;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) return out;
  char buf[512];
  while (size_t n = std::fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  ::pclose(p);
  return out;
}

// Every trace of the run, described; "" when nothing is left.
std::string leftovers(const std::string& run_id) {
  std::string found;
  const std::string prefix = "sm" + run_id + "-";
  const std::string netns = shell("ip netns list");
  if (netns.find(prefix) != std::string::npos) found += " netns(" + netns + ")";
  if (fs::exists(lab::cgroup2_mount() + "/sockmesh-lab/sm" + run_id)) found += " cgroup";
  if (fs::exists("/run/sockmesh-lab/" + run_id + ".json")) found += " state-file";
  if (fs::exists(sockmesh::paths::pin_dir(prefix + "n1"))) found += " pin-dir";
  if (fs::exists(sockmesh::paths::run_dir(prefix + "n1"))) found += " run-dir";
  return found;
}

bool process_gone(pid_t pid) { return ::kill(pid, 0) != 0 && errno == ESRCH; }

// Polls until the echo server answers from inside the pod (it starts in the background).
std::string get_when_ready(lab::Lab& l, const std::string& from_pod, const std::string& ip, uint16_t port) {
  std::string out;
  for (int attempt = 0; attempt < 100; ++attempt) {
    out.clear();
    int rc = l.call_in_pod(from_pod, [&] {
      lab::HttpResult r = lab::http_fetch(ip, port);
      if (r.err != 0) return 1;
      ::dprintf(STDOUT_FILENO, "%s|%s|%s", r.body.c_str(), r.header("X-Sockmesh-Peer").c_str(),
                r.peer.c_str());
      return 0;
    }, &out);
    if (rc == 0) return out;
    std::this_thread::sleep_for(50ms);
  }
  return "";
}

class LabLifecycle : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "the lab needs root";
  }
};

TEST_F(LabLifecycle, PodsReachEachOtherAcrossNodes) {
  auto l = lab::Lab::up(spec(2, {{"client", 1, ""}, {"server", 2, ""}, {"fixed", 2, "10.78.2.50"}}));
  LabGuard guard(l->run_id());
  EXPECT_EQ(l->node_name(1), "sm" + l->run_id() + "-n1");
  EXPECT_EQ(l->node_address(2), "10.77.0.2");
  EXPECT_EQ(l->pod_ip("client"), "10.78.1.10");
  EXPECT_EQ(l->pod_ip("server"), "10.78.2.10");
  EXPECT_EQ(l->pod_ip("fixed"), "10.78.2.50");
  EXPECT_EQ(l->workload_cgroup(1), lab::cgroup2_mount() + "/sockmesh-lab/sm" + l->run_id() + "/n1/pods");
  EXPECT_TRUE(fs::is_directory(l->pod_cgroup("server")));

  pid_t server = l->spawn_in_pod("server", {MESHLAB_PATH, "echo-server", "--port", "8080", "--name", "server-pod"});
  std::string reply = get_when_ready(*l, "client", l->pod_ip("server"), 8080);
  ASSERT_FALSE(reply.empty()) << "no answer from the echo server across nodes";
  const std::string body = reply.substr(0, reply.find('|'));
  const std::string seen_peer = reply.substr(reply.find('|') + 1, reply.rfind('|') - reply.find('|') - 1);
  const std::string client_peer = reply.substr(reply.rfind('|') + 1);
  EXPECT_EQ(body, "server-pod\n");
  EXPECT_EQ(seen_peer.substr(0, seen_peer.find(':')), l->pod_ip("client")) << "server saw " << seen_peer;
  EXPECT_EQ(client_peer, l->pod_ip("server") + ":8080");

  // The pod's process is in the pod's cgroup, not the node's or the test's.
  std::string cgroup_line;
  EXPECT_EQ(l->run_in_pod("server", {"cat", "/proc/self/cgroup"}, &cgroup_line), 0);
  EXPECT_NE(cgroup_line.find("/sockmesh-lab/sm" + l->run_id() + "/n2/pods/server"), std::string::npos) << cgroup_line;
  std::string addrs;
  EXPECT_EQ(l->run_in_node(1, {"ip", "-4", "-o", "addr", "show", "dev", "eth0"}, &addrs), 0);
  EXPECT_NE(addrs.find("10.77.0.1/24"), std::string::npos) << addrs;

  l->down();
  EXPECT_TRUE(process_gone(server));
}

// Every address of the lab is usable as soon as up() returns: no "tentative" (DAD) phase.
void expect_no_tentative(const std::string& where, int rc, const std::string& addrs) {
  EXPECT_EQ(rc, 0) << where;
  EXPECT_EQ(addrs.find("tentative"), std::string::npos) << where << ":\n" << addrs;
}

TEST_F(LabLifecycle, Ipv6PodsReachEachOtherAcrossNodes) {
  auto l = lab::Lab::up(spec(2, {{"client", 1, ""}, {"server", 2, ""}, {"fixed", 2, "10.78.2.50"}}));
  LabGuard guard(l->run_id());
  EXPECT_EQ(l->node_address6(1), "fd00:77::1");
  EXPECT_EQ(l->node_address6(2), "fd00:77::2");
  EXPECT_EQ(l->node_pod_cidr6(2), "fd00:78:2::/64");
  EXPECT_EQ(l->pod_ip6("client"), "fd00:78:1::10");
  EXPECT_EQ(l->pod_ip6("server"), "fd00:78:2::10");
  EXPECT_EQ(l->pod_ip6("fixed"), "fd00:78:2::50");  // the same number as the last octet of 10.78.2.50

  // Right after up(): no address is tentative, and binding the pod's address works (a tentative one would give
  // EADDRNOTAVAIL).
  for (const auto& pod : l->pods()) {
    std::string addrs;
    int rc = l->run_in_pod(pod, {"ip", "-6", "-o", "addr", "show"}, &addrs);
    expect_no_tentative("pod " + pod, rc, addrs);
    EXPECT_NE(addrs.find(l->pod_ip6(pod) + "/64"), std::string::npos) << addrs;
  }
  for (int i = 1; i <= 2; ++i) {
    std::string addrs;
    int rc = l->run_in_node(i, {"ip", "-6", "-o", "addr", "show"}, &addrs);
    expect_no_tentative("node " + std::to_string(i), rc, addrs);
    EXPECT_NE(addrs.find(l->node_address6(i) + "/64"), std::string::npos) << addrs;
    EXPECT_NE(addrs.find("fd00:78:" + std::to_string(i) + "::1/64"), std::string::npos) << addrs;
  }
  std::string out;
  EXPECT_EQ(l->call_in_pod("client", [&] {
    int fd = ::socket(AF_INET6, SOCK_STREAM, 0);
    sockaddr_in6 a{};
    a.sin6_family = AF_INET6;
    ::inet_pton(AF_INET6, l->pod_ip6("client").c_str(), &a.sin6_addr);
    int r = ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
    ::dprintf(STDOUT_FILENO, "%d", r == 0 ? 0 : errno);
    return 0;
  }, &out), 0);
  EXPECT_EQ(out, "0") << "bind to the pod's IPv6 address right after up: errno " << out;

  // Nodes forward IPv6 and route each other's pod prefixes.
  out.clear();
  EXPECT_EQ(l->run_in_node(1, {"cat", "/proc/sys/net/ipv6/conf/all/forwarding"}, &out), 0);
  EXPECT_EQ(out, "1\n");
  out.clear();
  EXPECT_EQ(l->run_in_node(1, {"ip", "-6", "route", "show"}, &out), 0);
  EXPECT_NE(out.find("fd00:78:2::/64 via fd00:77::2"), std::string::npos) << out;
  EXPECT_NE(out.find("unreachable fd00:96::/64"), std::string::npos) << out;

  pid_t server = l->spawn_in_pod("server", {MESHLAB_PATH, "echo-server", "--port", "8080", "--name", "server-pod"});
  l->spawn_in_pod("fixed", {MESHLAB_PATH, "echo-server", "--port", "8080", "--name", "fixed-pod"});
  for (const std::string pod : {"server", "fixed"}) {
    std::string reply = get_when_ready(*l, "client", l->pod_ip6(pod), 8080);
    ASSERT_FALSE(reply.empty()) << "no answer over IPv6 from " << pod;
    const auto bar1 = reply.find('|'), bar2 = reply.rfind('|');
    EXPECT_EQ(reply.substr(0, bar1), pod + "-pod\n");
    const std::string seen_peer = reply.substr(bar1 + 1, bar2 - bar1 - 1);
    EXPECT_EQ(seen_peer.rfind("[" + l->pod_ip6("client") + "]:", 0), 0u) << "server saw " << seen_peer;
    EXPECT_EQ(reply.substr(bar2 + 1), "[" + l->pod_ip6(pod) + "]:8080");
  }
  // The dual-stack server shows an IPv4 client as plain IPv4, not ::ffff:10.78.1.10.
  std::string reply = get_when_ready(*l, "client", l->pod_ip("server"), 8080);
  const auto bar1 = reply.find('|'), bar2 = reply.rfind('|');
  EXPECT_EQ(reply.substr(bar1 + 1, bar2 - bar1 - 1).rfind(l->pod_ip("client") + ":", 0), 0u) << reply;
  EXPECT_EQ(reply.substr(bar2 + 1), l->pod_ip("server") + ":8080");

  const std::string run = l->run_id();
  l->down();
  EXPECT_TRUE(process_gone(server));
  EXPECT_EQ(leftovers(run), "");
}

// One UDP exchange from inside a pod: "err|body|from|reply's second line" on stdout.
std::string udp_from_pod(lab::Lab& l, const std::string& pod, const std::string& ip, uint16_t port, bool connected,
                         int timeout_ms = 1000) {
  std::string out;
  l.call_in_pod(pod, [&] {
    lab::UdpResult r = connected ? lab::udp_request_connected(ip, port, timeout_ms)
                                 : lab::udp_request(ip, port, timeout_ms);
    const auto nl = r.reply.find('\n');
    const std::string second = nl == std::string::npos ? "" : r.reply.substr(nl + 1);
    ::dprintf(STDOUT_FILENO, "%d|%s|%s|%s", r.err, r.body().c_str(), r.from.c_str(),
              second.c_str());
    return 0;
  }, &out);
  return out;
}

TEST_F(LabLifecycle, UdpEchoOverIpv4AndIpv6AcrossNodes) {
  auto l = lab::Lab::up(spec(2, {{"client", 1, ""}, {"server", 2, ""}}));
  LabGuard guard(l->run_id());
  l->spawn_in_pod("server", {MESHLAB_PATH, "echo-server", "--port", "5353", "--name", "server-pod"});
  std::string out;
  for (int i = 0; i < 100; ++i) {
    out = udp_from_pod(*l, "client", l->pod_ip("server"), 5353, false, 100);
    if (out.rfind("0|", 0) == 0) break;
  }
  ASSERT_EQ(out.rfind("0|", 0), 0u) << "no UDP answer: " << out;

  struct Case {
    std::string server, client;  // as endpoint_string shows them, without the port
  };
  for (const Case& c : {Case{l->pod_ip("server"), l->pod_ip("client")},
                        Case{"[" + l->pod_ip6("server") + "]", "[" + l->pod_ip6("client") + "]"}}) {
    const std::string ip = c.server.front() == '[' ? c.server.substr(1, c.server.size() - 2) : c.server;
    for (bool connected : {false, true}) {
      SCOPED_TRACE(ip + (connected ? " connected" : " unconnected"));
      out = udp_from_pod(*l, "client", ip, 5353, connected);
      // err|body|from|<client as the server saw it>\n
      EXPECT_EQ(out.rfind("0|server-pod|" + c.server + ":5353|" + c.client + ":", 0), 0u) << out;
      EXPECT_EQ(out.back(), '\n') << out;
    }
  }
  // Nobody on the port: a connected socket gets the ICMP port unreachable as ECONNREFUSED, an unconnected one
  // times out.
  out = udp_from_pod(*l, "client", l->pod_ip6("server"), 5354, true);
  EXPECT_EQ(out.rfind(std::to_string(ECONNREFUSED) + "|", 0), 0u) << out;
  out = udp_from_pod(*l, "client", l->pod_ip("server"), 5354, false, 200);
  EXPECT_EQ(out.rfind(std::to_string(ETIMEDOUT) + "|", 0), 0u) << out;

  const std::string run = l->run_id();
  l->down();
  EXPECT_EQ(leftovers(run), "");
}

TEST_F(LabLifecycle, UnrewrittenVipFailsFast) {
  auto l = lab::Lab::up(spec(1, {{"a", 1, ""}}));
  LabGuard guard(l->run_id());
  std::string out;
  const auto start = std::chrono::steady_clock::now();
  int rc = l->call_in_pod("a", [] {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(80);
    ::inet_pton(AF_INET, "10.96.0.1", &addr.sin_addr);
    int r = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    ::dprintf(STDOUT_FILENO, "%d", r == 0 ? 0 : errno);
    return 0;
  }, &out);
  const auto elapsed = std::chrono::steady_clock::now() - start;
  ASSERT_EQ(rc, 0);
  const int err = std::stoi(out);
  EXPECT_TRUE(err == EHOSTUNREACH || err == ENETUNREACH) << "connect errno " << err;
  EXPECT_LT(elapsed, 2s);

  // The same from the node itself.
  out.clear();
  EXPECT_NE(l->run_in_node(1, {"sh", "-c", "ip route get 10.96.0.1 2>&1"}, &out), 0);
  EXPECT_NE(out.find("No route to host"), std::string::npos) << out;

  // IPv6: the pod has a default route via its node, but the unreachable fd00:96::/64 is more specific.
  // Linux maps an IPv6 `unreachable` route to EHOSTUNREACH too (ip6_rt_type_to_error: RTN_UNREACHABLE), at
  // route lookup in connect(), before any packet is sent.
  out.clear();
  const auto start6 = std::chrono::steady_clock::now();
  rc = l->call_in_pod("a", [] {
    int fd = ::socket(AF_INET6, SOCK_STREAM, 0);
    sockaddr_in6 addr{};
    addr.sin6_family = AF_INET6;
    addr.sin6_port = htons(80);
    ::inet_pton(AF_INET6, "fd00:96::1", &addr.sin6_addr);
    int r = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    ::dprintf(STDOUT_FILENO, "%d", r == 0 ? 0 : errno);
    return 0;
  }, &out);
  ASSERT_EQ(rc, 0);
  EXPECT_EQ(std::stoi(out), EHOSTUNREACH) << "connect [fd00:96::1]:80: " << std::strerror(std::stoi(out));
  EXPECT_LT(std::chrono::steady_clock::now() - start6, 2s);
  out.clear();
  EXPECT_NE(l->run_in_node(1, {"sh", "-c", "ip -6 route get fd00:96::1 2>&1"}, &out), 0) << out;
}

TEST_F(LabLifecycle, DownRemovesEverything) {
  auto l = lab::Lab::up(spec(2, {{"a", 1, ""}, {"b", 2, ""}}));
  const std::string run = l->run_id();
  LabGuard guard(run);
  pid_t in_pod = l->spawn_in_pod("a", {"sleep", "600"});
  pid_t in_node = l->spawn_in_node(2, {"sleep", "600"});
  // What meshd would leave: pins and a run dir.
  fs::create_directories(sockmesh::paths::pin_dir(l->node_name(1)));
  fs::create_directories(sockmesh::paths::run_dir(l->node_name(1)));
  ASSERT_TRUE(fs::exists("/run/sockmesh-lab/" + run + ".json"));
  ASSERT_NE(shell("ip netns list").find("sm" + run + "-p-a"), std::string::npos);

  l->down();
  EXPECT_EQ(shell("ip netns list").find("sm" + run + "-"), std::string::npos);
  EXPECT_FALSE(fs::exists(lab::cgroup2_mount() + "/sockmesh-lab/sm" + run));
  EXPECT_FALSE(fs::exists("/run/sockmesh-lab/" + run + ".json"));
  EXPECT_FALSE(fs::exists(sockmesh::paths::pin_dir(l->node_name(1))));
  EXPECT_FALSE(fs::exists(sockmesh::paths::run_dir(l->node_name(1))));
  EXPECT_TRUE(process_gone(in_pod));
  EXPECT_TRUE(process_gone(in_node));
  EXPECT_NO_THROW(l->down());  // idempotent
  EXPECT_EQ(leftovers(run), "");
}

TEST_F(LabLifecycle, UpRejectsBadSpecsAndLeavesNothing) {
  EXPECT_THROW(lab::Lab::up(spec(0)), std::runtime_error);
  EXPECT_THROW(lab::Lab::up(spec(1, {{"a", 2, ""}})), std::runtime_error);
  EXPECT_THROW(lab::Lab::up(spec(1, {{"a", 1, "10.78.2.10"}})), std::runtime_error);
  EXPECT_THROW(lab::Lab::up(spec(1, {{"a", 1, ""}, {"a", 1, ""}})), std::runtime_error);
  EXPECT_THROW(lab::Lab::up(spec(1, {}, "Bad_Id")), std::runtime_error);
  const std::string run = unique_run_id("dup");
  LabGuard guard(run);
  auto l = lab::Lab::up(spec(1, {}, run));
  EXPECT_THROW(lab::Lab::up(spec(1, {}, run)), std::runtime_error);
  EXPECT_TRUE(fs::exists("/run/sockmesh-lab/" + run + ".json"));  // the existing lab is untouched

  // A failure half way (a node netns that cannot be created) removes what was made before it.
  const std::string broken = unique_run_id("br");
  LabGuard broken_guard(broken);
  ASSERT_EQ(std::system(("ip netns add sm" + broken + "-n2").c_str()), 0);
  try {
    lab::Lab::up(spec(2, {{"a", 1, ""}}, broken));
    ADD_FAILURE() << "up must fail when a netns exists";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("sm" + broken + "-n2"), std::string::npos) << e.what();
  }
  EXPECT_EQ(leftovers(broken), "");
}

TEST_F(LabLifecycle, StaleLabsAreRemovedLiveOnesKept) {
  auto pausing_child = [] {
    pid_t pid = ::fork();
    if (pid == 0) {
      ::pause();
      ::_exit(0);
    }
    return pid;
  };
  ChildGuard alive(pausing_child());
  ChildGuard dying(pausing_child());
  const std::string stale_run = unique_run_id("st");
  const std::string live_run = unique_run_id("lv");
  LabGuard stale_guard(stale_run), live_guard(live_run);

  lab::Lab::up(spec(1, {{"y", 1, ""}}, live_run, alive.pid))->detach();
  lab::Lab::up(spec(1, {{"x", 1, ""}}, stale_run, dying.pid))->detach();
  ASSERT_NE(leftovers(stale_run), "");
  // Its owner ends: from now on any up() (also of a parallel test) may remove it.
  dying.stop();

  auto third = lab::Lab::up(spec(1));
  EXPECT_EQ(leftovers(stale_run), "") << "a lab whose owner is gone must be removed by the next up";
  EXPECT_TRUE(fs::exists("/run/sockmesh-lab/" + live_run + ".json")) << "a lab whose owner lives must be kept";
  EXPECT_NE(shell("ip netns list").find("sm" + live_run + "-n1"), std::string::npos);

  alive.stop();
  const auto removed = lab::remove_stale_labs();
  EXPECT_EQ(std::find(removed.begin(), removed.end(), third->run_id()), removed.end()) << "its owner lives";
  EXPECT_EQ(leftovers(live_run), "");
  EXPECT_NE(leftovers(third->run_id()), "");
}

// A process that owns a lab and is told to stop (SIGTERM/SIGINT) removes it, then dies of that signal.
void expect_signal_cleans_up(int sig) {
  const std::string run = unique_run_id(sig == SIGTERM ? "tm" : "in");
  LabGuard guard(run);
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  pid_t child = ::fork();
  if (child == 0) {
    ::close(ready[0]);
    try {
      auto l = lab::Lab::up(spec(2, {{"a", 1, ""}}, run));
      l->spawn_in_pod("a", {"sleep", "600"});
      ssize_t ignored = ::write(ready[1], "1", 1);
      (void)ignored;
      for (;;) ::pause();
    } catch (...) {
      ::_exit(3);
    }
  }
  ::close(ready[1]);
  char c = 0;
  ASSERT_EQ(::read(ready[0], &c, 1), 1) << "child could not make its lab";
  ::close(ready[0]);
  ASSERT_NE(leftovers(run), "");
  ::kill(child, sig);
  int status = 0;
  ::waitpid(child, &status, 0);
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == sig) << "status " << status;
  EXPECT_EQ(leftovers(run), "");
}

TEST_F(LabLifecycle, SigtermToOwnerRemovesItsLab) { expect_signal_cleans_up(SIGTERM); }
TEST_F(LabLifecycle, SigintToOwnerRemovesItsLab) { expect_signal_cleans_up(SIGINT); }

TEST_F(LabLifecycle, MeshlabCommands) {
  const std::string run = unique_run_id("cli");
  LabGuard guard(run);
  const std::string meshlab = MESHLAB_PATH;
  // Owner: this test process (meshlab's default is its parent, here the shell popen starts).
  std::string out = shell(meshlab + " up --nodes 2 --pod web@2 --pod cli@1:10.78.1.77 --run-id " + run +
                          " --owner-pid " + std::to_string(::getpid()));
  EXPECT_NE(out.find("RUN_ID=" + run + "\n"), std::string::npos) << out;
  EXPECT_NE(out.find("pod cli node=1 netns=sm" + run + "-p-cli ip=10.78.1.77 cgroup="), std::string::npos) << out;
  EXPECT_NE(out.find(" ip6=fd00:78:1::77\n"), std::string::npos) << out;
  EXPECT_NE(out.find("node 2 name=sm" + run + "-n2 netns=sm" + run + "-n2 address=10.77.0.2 pod_cidr=10.78.2.0/24"),
            std::string::npos) << out;
  EXPECT_NE(out.find(" address6=fd00:77::2 pod_cidr6=fd00:78:2::/64\n"), std::string::npos) << out;
  EXPECT_NE(shell(meshlab + " list").find(run), std::string::npos);
  EXPECT_NE(shell(meshlab + " info " + run).find("\"owner_pid\""), std::string::npos);

  out = shell(meshlab + " exec " + run + " --pod web --background -- " + meshlab +
              " echo-server --port 9000 --name web");
  const pid_t server = std::stoi(out);
  std::string body;
  for (int i = 0; i < 100 && body.find("web") == std::string::npos; ++i) {
    std::this_thread::sleep_for(50ms);
    body = shell(meshlab + " exec " + run + " --pod cli -- bash -c 'exec 3<>/dev/tcp/10.78.2.10/9000; "
                 "printf \"GET / HTTP/1.1\\r\\n\\r\\n\" >&3; cat <&3' 2>/dev/null");
  }
  EXPECT_NE(body.find("X-Sockmesh-Peer: 10.78.1.77:"), std::string::npos) << body;
  body = shell(meshlab + " exec " + run + " --pod cli -- bash -c 'exec 3<>/dev/tcp/fd00:78:2::10/9000; "
               "printf \"GET / HTTP/1.1\\r\\n\\r\\n\" >&3; cat <&3' 2>/dev/null");
  EXPECT_NE(body.find("X-Sockmesh-Peer: [fd00:78:1::77]:"), std::string::npos) << body;
  EXPECT_EQ(std::system((meshlab + " exec " + run + " --node 1 -- true").c_str()), 0);

  EXPECT_EQ(std::system((meshlab + " down " + run).c_str()), 0);
  EXPECT_EQ(leftovers(run), "");
  for (int i = 0; i < 100 && !process_gone(server); ++i) std::this_thread::sleep_for(20ms);
  EXPECT_TRUE(process_gone(server));
  EXPECT_EQ(std::system((meshlab + " down " + run + " 2>/dev/null").c_str()) >> 8, 1) << "no lab: an error";
}

TEST_F(LabLifecycle, MeshlabHoldTearsDownOnSigint) {
  const std::string run = unique_run_id("hd");
  LabGuard guard(run);
  FILE* p = ::popen((std::string("exec ") + MESHLAB_PATH + " up --hold --nodes 1 --pod a@1 --run-id " + run).c_str(), "r");
  ASSERT_NE(p, nullptr);
  char line[256];
  ASSERT_NE(std::fgets(line, sizeof line, p), nullptr);
  EXPECT_EQ(std::string(line), "RUN_ID=" + run + "\n");
  EXPECT_NE(leftovers(run), "");
  // With --hold the owner is meshlab itself.
  const auto state = nlohmann::json::parse(lab::Lab::attach(run)->state_json());
  ::kill(state.at("owner_pid").get<pid_t>(), SIGINT);
  ::pclose(p);
  EXPECT_EQ(leftovers(run), "");
}

}  // namespace
