// The socket load balancer in the kernel (sock_lb_fixture.h): IPv6 and IPv4-mapped destinations,
// UDP (unconnected and connected), Maglev affinity and round-robin.
#include <sched.h>

#include <set>

#include "sock_lb_fixture.h"

namespace sockmesh {
namespace {

using reconcile::parse_ip;

class SockLbFamiliesTest : public SockLbTest {};

reconcile::DesiredService v6_backends(std::vector<std::pair<uint16_t, uint32_t>> port_weight,
                                      uint32_t policy = SM_LB_RANDOM) {
  reconcile::DesiredService service{"test/web6", policy, 0, {}, {}};
  for (auto [port, weight] : port_weight)
    service.backends.push_back({parse_ip("::1"), port, weight, "test/be" + std::to_string(port), ""});
  return service;
}

reconcile::ServiceKey key(const std::string &ip, uint16_t port, uint8_t proto = IPPROTO_TCP) {
  return {parse_ip(ip), port, proto};
}

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

sockaddr_storage sockaddr_of_text(const std::string &ip, uint16_t port) {
  sockaddr_storage out{};
  if (ip.find(':') != std::string::npos) {
    auto &a = reinterpret_cast<sockaddr_in6 &>(out);
    a.sin6_family = AF_INET6;
    inet_pton(AF_INET6, ip.c_str(), &a.sin6_addr);
    a.sin6_port = htons(port);
  } else {
    auto &a = reinterpret_cast<sockaddr_in &>(out);
    a.sin_family = AF_INET;
    inet_pton(AF_INET, ip.c_str(), &a.sin_addr);
    a.sin_port = htons(port);
  }
  return out;
}

socklen_t len_of(const sockaddr_storage &addr) {
  return addr.ss_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
}

// TCP connect to ip:port from a socket of `family`; which backend accepted, and getpeername().
Outcome tcp_connect(Backends &b, int family, const std::string &ip, uint16_t port) {
  Outcome out;
  int fd = socket(family, SOCK_STREAM, 0);
  auto addr = sockaddr_of_text(ip, port);
  if (connect(fd, reinterpret_cast<sockaddr *>(&addr), len_of(addr)) != 0) {
    out.err = errno;
    close(fd);
    return out;
  }
  sockaddr_storage peer{};
  socklen_t len = sizeof(peer);
  getpeername(fd, reinterpret_cast<sockaddr *>(&peer), &len);
  out.peer = text_of(peer);
  out.backend = b.accepted_by();
  close(fd);
  return out;
}

struct UdpExchange {
  int err = 0;
  std::string reply;  // the answering server's id
  std::string from;   // source of the reply, as recvfrom() reports it
  std::string peer;   // getpeername() for a connected socket
};

// One request/response; `connected` uses connect() + send() instead of sendto().
UdpExchange udp_exchange(Backends &b, int fd, const std::string &ip, uint16_t port, bool connected) {
  UdpExchange out;
  auto addr = sockaddr_of_text(ip, port);
  ssize_t sent = connected ? send(fd, "q", 1, 0)
                           : sendto(fd, "q", 1, 0, reinterpret_cast<sockaddr *>(&addr), len_of(addr));
  if (sent != 1) {
    out.err = errno;
    return out;
  }
  if (b.serve_udp() < 0) {
    out.err = EAGAIN;
    return out;
  }
  char buffer[64];
  sockaddr_storage from{};
  socklen_t len = sizeof(from);
  ssize_t n = recvfrom(fd, buffer, sizeof(buffer), 0, reinterpret_cast<sockaddr *>(&from), &len);
  if (n < 0) {
    out.err = errno;
    return out;
  }
  out.reply.assign(buffer, size_t(n));
  out.from = text_of(from);
  if (connected) {
    sockaddr_storage peer{};
    len = sizeof(peer);
    getpeername(fd, reinterpret_cast<sockaddr *>(&peer), &len);
    out.peer = text_of(peer);
  }
  return out;
}

TEST_F(SockLbFamiliesTest, Ipv6ConnectIsBalancedAndPeerIsTheVip) {
  reconciler_->apply({{key("fd00:96::a", 80), v6_backends({{9001, 1}, {9002, 1}})}});
  const int n = 2000;
  auto out = in_workload([&](Backends &b) {
    int a = 0, bad_peer = 0, failed = 0;
    for (int i = 0; i < n; i++) {
      auto o = tcp_connect(b, AF_INET6, "fd00:96::a", 80);
      if (o.err) failed++;
      if (o.peer != "[fd00:96::a]:80") bad_peer++;
      if (o.backend == 9001) a++;
    }
    printf("%d %d %d", a, bad_peer, failed);
  });
  int a = 0, bad_peer = -1, failed = -1;
  std::istringstream(out) >> a >> bad_peer >> failed;
  EXPECT_EQ(failed, 0);
  EXPECT_EQ(bad_peer, 0);
  EXPECT_NEAR(double(a) / n, 0.5, 5 * std::sqrt(0.25 / n)) << out;
}

TEST_F(SockLbFamiliesTest, V4MappedDestinationOfADualStackSocketIsBalancedAsIpv4) {
  reconciler_->apply({{kVip, backends({{3, 1}})}});
  auto out = in_workload([&](Backends &b) {
    auto o = tcp_connect(b, AF_INET6, "::ffff:10.96.0.10", 80);
    printf("%d %d %s", o.err, o.backend, o.peer.c_str());
  });
  EXPECT_EQ(out, "0 3 [::ffff:10.96.0.10]:80");
}

TEST_F(SockLbFamiliesTest, UnconnectedUdpIsBalancedPerDatagramAndRepliesComeFromTheVip) {
  reconciler_->apply({{key("10.96.0.53", 53, IPPROTO_UDP), backends({{2, 1}, {3, 1}})},
                      {key("fd00:96::35", 53, IPPROTO_UDP), v6_backends({{9001, 1}, {9002, 1}})}});
  const int n = 400;
  auto out = in_workload([&](Backends &b) {
    std::map<std::string, int> replies;
    int bad_from = 0, failed = 0;
    int fd4 = socket(AF_INET, SOCK_DGRAM, 0), fd6 = socket(AF_INET6, SOCK_DGRAM, 0);
    for (int i = 0; i < n; i++) {
      auto v4 = udp_exchange(b, fd4, "10.96.0.53", 53, false);
      auto v6 = udp_exchange(b, fd6, "fd00:96::35", 53, false);
      failed += (v4.err != 0) + (v6.err != 0);
      bad_from += (v4.from != "10.96.0.53:53") + (v6.from != "[fd00:96::35]:53");
      replies[v4.reply]++;
      replies[v6.reply]++;
    }
    printf("%d %d %d %d %d %d", failed, bad_from, replies["2"], replies["3"], replies["9001"],
           replies["9002"]);
  });
  int failed = -1, bad_from = -1, r2 = 0, r3 = 0, r9001 = 0, r9002 = 0;
  std::istringstream(out) >> failed >> bad_from >> r2 >> r3 >> r9001 >> r9002;
  EXPECT_EQ(failed, 0) << out;
  EXPECT_EQ(bad_from, 0) << out;
  EXPECT_EQ(r2 + r3, n);
  EXPECT_EQ(r9001 + r9002, n);
  double tolerance = 5 * std::sqrt(0.25 / n);
  EXPECT_NEAR(double(r2) / n, 0.5, tolerance) << out;
  EXPECT_NEAR(double(r9001) / n, 0.5, tolerance) << out;
  EXPECT_EQ(counter("sendmsg_balanced"), uint64_t(2 * n));
  EXPECT_EQ(counter("recvmsg_restored"), uint64_t(2 * n));
}

TEST_F(SockLbFamiliesTest, ConnectedUdpKeepsItsBackendAndSeesTheVip) {
  reconciler_->apply({{key("10.96.0.53", 53, IPPROTO_UDP), backends({{2, 1}, {3, 1}})}});
  auto out = in_workload([&](Backends &b) {
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    auto vip = sockaddr_of_text("10.96.0.53", 53);
    if (connect(fd, reinterpret_cast<sockaddr *>(&vip), len_of(vip)) != 0) {
      printf("connect %d", errno);
      return;
    }
    std::set<std::string> servers, froms, peers;
    for (int i = 0; i < 20; i++) {
      auto o = udp_exchange(b, fd, "10.96.0.53", 53, true);
      servers.insert(o.err ? "err" : o.reply);
      froms.insert(o.from);
      peers.insert(o.peer);
    }
    printf("%zu %s %s", servers.size(), froms.begin()->c_str(), peers.begin()->c_str());
  });
  EXPECT_EQ(out, "1 10.96.0.53:53 10.96.0.53:53");
}

TEST_F(SockLbFamiliesTest, MaglevKeepsEachClientOnOneBackendAndSpreadsClients) {
  reconciler_->apply({{kVip, backends({{2, 1}, {3, 1}}, SM_LB_MAGLEV)}});
  std::set<std::string> chosen;
  for (int client = 0; client < 16; client++) {
    auto out = in_cgroup(sub_cgroup("client" + std::to_string(client)), [&](Backends &b) {
      std::set<int> seen;
      for (int i = 0; i < 100; i++) seen.insert(tcp_connect(b, AF_INET, "10.96.0.10", 80).backend);
      printf("%zu %d", seen.size(), *seen.begin());
    });
    EXPECT_EQ(out.substr(0, 2), "1 ") << "client " << client << " moved between backends: " << out;
    chosen.insert(out.substr(2));
  }
  // 16 clients on one of two backends by chance: 2^-15.
  EXPECT_EQ(chosen, (std::set<std::string>{"2", "3"}));
}

TEST_F(SockLbFamiliesTest, RoundRobinFollowsWeightsExactlyOnOneCpu) {
  reconciler_->apply({{kVip, backends({{2, 2}, {3, 1}}, SM_LB_ROUND_ROBIN)}});
  auto out = in_workload([&](Backends &b) {
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(0, &one);
    sched_setaffinity(0, sizeof(one), &one);  // one CPU: one cursor
    int two = 0, three = 0;
    for (int i = 0; i < 3000; i++) (tcp_connect(b, AF_INET, "10.96.0.10", 80).backend == 2 ? two : three)++;
    printf("%d %d", two, three);
  });
  EXPECT_EQ(out, "2000 1000");
}

}  // namespace
}  // namespace sockmesh
