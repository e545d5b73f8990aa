// The capture decisions and encodings the kernel programs use (bpf/include/sockmesh/capture.h),
// run in user space: BPF_PROG_TEST_RUN cannot run sock_addr, sock_ops or sockopt programs.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <linux/netfilter_ipv4.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstddef>
#include <cstring>

#include "sockmesh/capture.h"

#ifndef IP6T_SO_ORIGINAL_DST
#define IP6T_SO_ORIGINAL_DST 80  // linux/netfilter_ipv6/ip6_tables.h, which drags in more
#endif

namespace {

// The ABI with user space and between kernel and agent: sizes without padding, constants equal
// to the libc ones.
static_assert(sizeof(sm_workload) == 8);
static_assert(sizeof(sm_ip_key) == 20);
static_assert(sizeof(sm_endpoint) == 12);
static_assert(sizeof(sm_agent_config) == 28);
static_assert(sizeof(sm_capture_addr) == 20);
static_assert(sizeof(sm_capture_info) == 56);
static_assert(offsetof(sm_capture_info, backend) == 20);
static_assert(offsetof(sm_capture_info, src_workload) == 40);
static_assert(offsetof(sm_capture_info, dst_node) == 48);
static_assert(sizeof(sm_flow_key) == 40);
static_assert(sizeof(sm_sockaddr_in) == sizeof(sockaddr_in));
static_assert(sizeof(sm_sockaddr_in6) == sizeof(sockaddr_in6));
static_assert(SM_AF_INET == AF_INET && SM_AF_INET6 == AF_INET6);
static_assert(SM_SOL_IP == SOL_IP && SM_SOL_IPV6 == SOL_IPV6);
static_assert(SM_SO_ORIGINAL_DST == SO_ORIGINAL_DST);
static_assert(SM_IP6T_SO_ORIGINAL_DST == IP6T_SO_ORIGINAL_DST);

struct Addr {
  __u32 w[4] = {};
  __u32 family = 0;
};

Addr v4(const char *text) {
  Addr a;
  inet_pton(AF_INET, text, &a.w[0]);
  a.family = SM_AF_INET;
  return a;
}

Addr v6(const char *text) {
  Addr a;
  inet_pton(AF_INET6, text, a.w);
  a.family = SM_AF_INET6;
  return a;
}

sm_agent_config agent(bool on, bool with4 = true, bool with6 = true) {
  sm_agent_config c{};
  c.flags = on ? SM_AGENT_CAPTURE_ON : 0;
  if (with4) {
    c.addr4 = v4("10.77.0.1").w[0];
    c.port4 = htons(15001);
  }
  if (with6) {
    std::memcpy(c.addr6, v6("fd00:77::1").w, 16);
    c.port6 = htons(15006);
  }
  return c;
}

TEST(CaptureDecide, EachReasonToLeaveAConnectAlone) {
  const sm_endpoint remote{7, 3, SM_EP_REMOTE}, local{7, 1, 0};
  const sm_workload captured{5, SM_WL_CAPTURED}, plain{5, 0};
  const auto on = agent(true), off = agent(false);
  sm_capture_addr l{};
  EXPECT_EQ(sm_capture_decide(nullptr, &remote, &captured, SM_AF_INET, &l), SM_CAPTURE_PASS_OFF);
  EXPECT_EQ(sm_capture_decide(&off, &remote, &captured, SM_AF_INET, &l), SM_CAPTURE_PASS_OFF);
  EXPECT_EQ(sm_capture_decide(&on, nullptr, &captured, SM_AF_INET, &l), SM_CAPTURE_PASS_NOT_MESH);
  EXPECT_EQ(sm_capture_decide(&on, &local, &captured, SM_AF_INET, &l), SM_CAPTURE_PASS_LOCAL);
  EXPECT_EQ(sm_capture_decide(&on, &remote, nullptr, SM_AF_INET, &l), SM_CAPTURE_PASS_SOURCE);
  EXPECT_EQ(sm_capture_decide(&on, &remote, &plain, SM_AF_INET, &l), SM_CAPTURE_PASS_SOURCE);
  const auto only6 = agent(true, false, true), only4 = agent(true, true, false);
  EXPECT_EQ(sm_capture_decide(&only6, &remote, &captured, SM_AF_INET, &l),
            SM_CAPTURE_PASS_NO_LISTENER);
  EXPECT_EQ(sm_capture_decide(&only4, &remote, &captured, SM_AF_INET6, &l),
            SM_CAPTURE_PASS_NO_LISTENER);
  EXPECT_EQ(sm_capture_decide(&on, &remote, &captured, 99, &l), SM_CAPTURE_PASS_NO_LISTENER);
}

TEST(CaptureDecide, RedirectsToTheListenerOfTheDestinationsFamily) {
  const sm_endpoint remote{7, 3, SM_EP_REMOTE};
  const sm_workload captured{5, SM_WL_CAPTURED};
  const auto on = agent(true);
  sm_capture_addr l{};
  ASSERT_EQ(sm_capture_decide(&on, &remote, &captured, SM_AF_INET, &l), SM_CAPTURE_REDIRECT);
  EXPECT_EQ(l.family, SM_AF_INET);
  EXPECT_EQ(l.addr[0], v4("10.77.0.1").w[0]);
  EXPECT_EQ(l.addr[1] | l.addr[2] | l.addr[3], 0u);
  EXPECT_EQ(l.port, htons(15001));
  ASSERT_EQ(sm_capture_decide(&on, &remote, &captured, SM_AF_INET6, &l), SM_CAPTURE_REDIRECT);
  EXPECT_EQ(l.family, SM_AF_INET6);
  EXPECT_EQ(std::memcmp(l.addr, v6("fd00:77::1").w, 16), 0);
  EXPECT_EQ(l.port, htons(15006));
}

TEST(CaptureNormalize, MappedIpv6IsStoredAsIpv4) {
  sm_ip_key a{}, b{}, c{};
  const Addr mapped = v6("::ffff:10.78.2.5"), plain = v4("10.78.2.5"), real6 = v6("fd00:78::5");
  sm_capture_ip_key(mapped.w, mapped.family, &a);
  sm_capture_ip_key(plain.w, plain.family, &b);
  sm_capture_ip_key(real6.w, real6.family, &c);
  EXPECT_EQ(std::memcmp(&a, &b, sizeof(a)), 0);
  EXPECT_EQ(b.family, SM_AF_INET);
  EXPECT_EQ(b.addr[1] | b.addr[2] | b.addr[3], 0u);
  EXPECT_EQ(c.family, SM_AF_INET6);
  EXPECT_EQ(std::memcmp(c.addr, real6.w, 16), 0);
  // Garbage beyond addr[0] of an IPv4 address never reaches a key.
  Addr dirty = plain;
  dirty.w[2] = 0x12345678;
  sm_capture_ip_key(dirty.w, dirty.family, &a);
  EXPECT_EQ(std::memcmp(&a, &b, sizeof(a)), 0);
}

TEST(CaptureFlowKey, BothEndsOfAConnectionMakeTheSameKey) {
  // The client's socket is IPv6 carrying IPv4 (v4-mapped); the agent's is IPv4.
  sm_flow_key client_view{}, agent_view{};
  const Addr c6 = v6("::ffff:10.78.1.9"), a6 = v6("::ffff:10.77.0.1");
  const Addr c4 = v4("10.78.1.9"), a4 = v4("10.77.0.1");
  sm_capture_flow_key(&client_view, SM_AF_INET6, c6.w, htons(40000), a6.w, htons(15001));
  sm_capture_flow_key(&agent_view, SM_AF_INET, c4.w, htons(40000), a4.w, htons(15001));
  EXPECT_EQ(std::memcmp(&client_view, &agent_view, sizeof(client_view)), 0);
  EXPECT_EQ(agent_view.family, SM_AF_INET);
  sm_flow_key other_port{};
  sm_capture_flow_key(&other_port, SM_AF_INET, c4.w, htons(40001), a4.w, htons(15001));
  EXPECT_NE(std::memcmp(&other_port, &agent_view, sizeof(other_port)), 0);
}

sm_capture_info record(const Addr &orig, uint16_t port, const Addr &be, uint16_t be_port) {
  sm_capture_addr o{}, b{};
  sm_capture_addr_of(orig.w, orig.family, htons(port), &o);
  sm_capture_addr_of(be.w, be.family, htons(be_port), &b);
  const sm_workload src{5, SM_WL_CAPTURED};
  const sm_endpoint dst{7, 3, SM_EP_REMOTE};
  sm_capture_info info;
  std::memset(&info, 0xee, sizeof(info));  // every byte must be written
  sm_capture_fill(&info, &o, &b, &src, &dst);
  return info;
}

TEST(CaptureRecord, FillWritesEveryField) {
  auto info = record(v4("10.96.0.10"), 80, v4("10.78.2.5"), 8080);
  EXPECT_EQ(info.orig.family, SM_AF_INET);
  EXPECT_EQ(info.orig.addr[0], v4("10.96.0.10").w[0]);
  EXPECT_EQ(info.orig.addr[1] | info.orig.addr[2] | info.orig.addr[3], 0u);
  EXPECT_EQ(info.orig.port, htons(80));
  EXPECT_EQ(info.backend.addr[0], v4("10.78.2.5").w[0]);
  EXPECT_EQ(info.backend.port, htons(8080));
  EXPECT_EQ(info.src_workload, 5u);
  EXPECT_EQ(info.dst_workload, 7u);
  EXPECT_EQ(info.dst_node, 3u);
  EXPECT_EQ(info.flags, 0u);
}

TEST(CaptureAnswer, SoOriginalDstIsTheSockaddrLibcWouldBuild) {
  auto info = record(v4("10.96.0.10"), 80, v4("10.78.2.5"), 8080);
  sm_sockaddr_in got;
  std::memset(&got, 0xee, sizeof(got));
  ASSERT_EQ(sm_capture_sockaddr_in(&info, &got), 0);
  sockaddr_in want{};
  want.sin_family = AF_INET;
  want.sin_port = htons(80);
  inet_pton(AF_INET, "10.96.0.10", &want.sin_addr);
  EXPECT_EQ(std::memcmp(&got, &want, sizeof(want)), 0);
  sm_sockaddr_in6 none;
  EXPECT_EQ(sm_capture_sockaddr_in6(&info, &none), -1);  // iptables: no IPv6 entry for it
}

TEST(CaptureAnswer, Ip6tSoOriginalDstIsTheSockaddrLibcWouldBuild) {
  auto info = record(v6("fd00:96::10"), 443, v6("fd00:78::5"), 8443);
  sm_sockaddr_in6 got;
  std::memset(&got, 0xee, sizeof(got));
  ASSERT_EQ(sm_capture_sockaddr_in6(&info, &got), 0);
  sockaddr_in6 want{};
  want.sin6_family = AF_INET6;
  want.sin6_port = htons(443);
  inet_pton(AF_INET6, "fd00:96::10", &want.sin6_addr);
  EXPECT_EQ(std::memcmp(&got, &want, sizeof(want)), 0);
  sm_sockaddr_in none;
  EXPECT_EQ(sm_capture_sockaddr_in(&info, &none), -1);
}

TEST(CaptureAnswer, OnlyOurOptionsAreAnswered) {
  EXPECT_EQ(sm_capture_sockopt_kind(SOL_IP, SO_ORIGINAL_DST), SM_SOCKOPT_ORIG_DST4);
  EXPECT_EQ(sm_capture_sockopt_kind(SOL_IPV6, IP6T_SO_ORIGINAL_DST), SM_SOCKOPT_ORIG_DST6);
  EXPECT_EQ(sm_capture_sockopt_kind(SOL_IP, SM_SO_CAPTURE_INFO), SM_SOCKOPT_INFO);
  EXPECT_EQ(sm_capture_sockopt_kind(SOL_IPV6, SM_SO_CAPTURE_INFO), SM_SOCKOPT_OTHER);
  EXPECT_EQ(sm_capture_sockopt_kind(SOL_SOCKET, SO_RCVBUF), SM_SOCKOPT_OTHER);
  EXPECT_EQ(sm_capture_sockopt_kind(SOL_SOCKET, 80), SM_SOCKOPT_OTHER);
  EXPECT_EQ(sm_capture_sockopt_kind(IPPROTO_TCP, 80), SM_SOCKOPT_OTHER);
  EXPECT_EQ(sm_capture_sockopt_kind(SOL_IP, IP_TOS), SM_SOCKOPT_OTHER);
}

TEST(CaptureAnswer, OtherOptionsKeepTheKernelsAnswer) {
  // Success within a page: the kernel's value is in the buffer; left as is.
  EXPECT_EQ(sm_capture_passthrough_optlen(0, 4, 4096), 4);
  EXPECT_EQ(sm_capture_passthrough_optlen(0, 4096, 4096), 4096);
  EXPECT_EQ(sm_capture_passthrough_optlen(0, 0, 4096), 0);
  // Larger than a page: copy nothing back (else EFAULT before Linux 6.5).
  EXPECT_EQ(sm_capture_passthrough_optlen(0, 4097, 4096), 0);
  EXPECT_EQ(sm_capture_passthrough_optlen(0, 70000, 65536), 0);
  EXPECT_EQ(sm_capture_passthrough_optlen(0, 8192, 65536), 8192);
  // The kernel failed: copy nothing back (the buffer holds zeros, not the caller's bytes).
  EXPECT_EQ(sm_capture_passthrough_optlen(-ENOPROTOOPT, 16, 4096), 0);
  EXPECT_EQ(sm_capture_passthrough_optlen(-ENOENT, 8192, 4096), 0);
  EXPECT_EQ(sm_capture_passthrough_optlen(0, -1, 4096), 0);
}

}  // namespace
