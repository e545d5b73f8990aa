// The fast path's decisions (bpf/include/sockmesh/fastpath.h) in user space: sock_ops and sk_msg
// programs cannot be run by BPF_PROG_TEST_RUN.
#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <cstring>

#include "sockmesh/fastpath.h"

namespace {

sm_agent_config agent(bool on, bool agent_hops = true) {
  sm_agent_config a{};
  a.flags = SM_AGENT_CAPTURE_ON | (on ? SM_AGENT_FASTPATH_ON : 0) |
            (agent_hops ? SM_AGENT_FASTPATH_AGENT_HOPS : 0);
  return a;
}

sm_endpoint endpoint(bool remote) {
  sm_endpoint e{};
  e.workload_id = 7;
  e.node_id = 1;
  e.flags = remote ? SM_EP_REMOTE : 0;
  return e;
}

void v4(const char *text, __u32 out[4]) {
  std::memset(out, 0, 16);
  inet_pton(AF_INET, text, &out[0]);
}

void v6(const char *text, __u32 out[4]) {
  inet_pton(AF_INET6, text, out);
}

TEST(FastPathEligible, OnlySameNodeHopsJoin) {
  const auto on = agent(true), off = agent(false);
  const auto local = endpoint(false), remote = endpoint(true);
  // A workload to a workload of this node; the agent delivering to one.
  EXPECT_EQ(sm_fp_active_eligible(&on, &local, 0, 0), SM_FP_ELIGIBLE);
  EXPECT_EQ(sm_fp_active_eligible(&on, &local, 1, 0), SM_FP_ELIGIBLE);
  // A captured workload to the agent (its destination is the agent's address: no endpoint).
  EXPECT_EQ(sm_fp_active_eligible(&on, nullptr, 0, 1), SM_FP_ELIGIBLE);
  // Cross-node: never, captured or not; the agent's own tunnel neither.
  EXPECT_EQ(sm_fp_active_eligible(&on, &remote, 0, 0), SM_FP_NOT_ELIGIBLE);
  EXPECT_EQ(sm_fp_active_eligible(&on, &remote, 1, 0), SM_FP_NOT_ELIGIBLE);
  EXPECT_EQ(sm_fp_active_eligible(&on, nullptr, 1, 0), SM_FP_NOT_ELIGIBLE);
  // Outside the mesh.
  EXPECT_EQ(sm_fp_active_eligible(&on, nullptr, 0, 0), SM_FP_NOT_ELIGIBLE);
  // Switched off, or no config: nothing.
  EXPECT_EQ(sm_fp_active_eligible(&off, &local, 0, 0), SM_FP_NOT_ELIGIBLE);
  EXPECT_EQ(sm_fp_active_eligible(&off, nullptr, 0, 1), SM_FP_NOT_ELIGIBLE);
  EXPECT_EQ(sm_fp_active_eligible(nullptr, &local, 0, 0), SM_FP_NOT_ELIGIBLE);
}

TEST(FastPathEligible, AgentHopsOnlyWhenAskedFor) {
  const auto workloads_only = agent(true, false);
  const auto local = endpoint(false);
  EXPECT_EQ(sm_fp_active_eligible(&workloads_only, &local, 0, 0), SM_FP_ELIGIBLE);
  EXPECT_EQ(sm_fp_active_eligible(&workloads_only, nullptr, 0, 1), SM_FP_NOT_ELIGIBLE);
  EXPECT_EQ(sm_fp_active_eligible(&workloads_only, &local, 1, 0), SM_FP_NOT_ELIGIBLE);
}

TEST(FastPathKey, BothEndsOfAConnectionNameEachOther) {
  __u32 a[4], b[4];
  v4("10.78.1.10", a);
  v4("10.78.1.11", b);
  sm_fp_key client{}, server{}, peer{};
  sm_fp_key_of(&client, 111, SM_AF_INET, a, htons(40000), b, htons(8080));
  sm_fp_key_of(&server, 222, SM_AF_INET, b, htons(8080), a, htons(40000));
  sm_fp_peer_key(&client, 222, &peer);
  EXPECT_EQ(std::memcmp(&peer, &server, sizeof(peer)), 0);
  sm_fp_peer_key(&server, 111, &peer);
  EXPECT_EQ(std::memcmp(&peer, &client, sizeof(peer)), 0);
}

TEST(FastPathKey, SameTupleInAnotherNamespaceIsAnotherKey) {
  __u32 lo[4];
  v4("127.0.0.1", lo);
  sm_fp_key one{}, two{};
  sm_fp_key_of(&one, 1, SM_AF_INET, lo, htons(40001), lo, htons(9100));
  sm_fp_key_of(&two, 2, SM_AF_INET, lo, htons(40001), lo, htons(9100));
  EXPECT_NE(std::memcmp(&one, &two, sizeof(one)), 0);
}

TEST(FastPathKey, Ipv4MappedSocketMeetsAnIpv4Peer) {
  __u32 mapped_a[4], mapped_b[4], a[4], b[4];
  v6("::ffff:10.78.1.10", mapped_a);
  v6("::ffff:10.78.1.11", mapped_b);
  v4("10.78.1.10", a);
  v4("10.78.1.11", b);
  sm_fp_key six{}, four{}, peer{};
  sm_fp_key_of(&six, 5, SM_AF_INET6, mapped_a, htons(40000), mapped_b, htons(8080));
  sm_fp_key_of(&four, 6, SM_AF_INET, b, htons(8080), a, htons(40000));
  EXPECT_EQ(six.family, __u32(SM_AF_INET));
  sm_fp_peer_key(&six, 6, &peer);
  EXPECT_EQ(std::memcmp(&peer, &four, sizeof(peer)), 0);
}

TEST(FastPathPeerNetns, LoopbackAndOwnAddressStayInTheSocketsNamespace) {
  __u32 lo[4], lo6[4], pod[4], other[4];
  v4("127.0.0.53", lo);
  v6("::1", lo6);
  v4("10.78.1.10", pod);
  v4("10.78.1.11", other);
  sm_fp_key k{};
  sm_fp_key_of(&k, 9, SM_AF_INET, pod, 1, lo, 2);
  EXPECT_TRUE(sm_fp_peer_is_own_netns(&k));
  sm_fp_key_of(&k, 9, SM_AF_INET6, lo6, 1, lo6, 2);
  EXPECT_TRUE(sm_fp_peer_is_own_netns(&k));
  sm_fp_key_of(&k, 9, SM_AF_INET, pod, 1, pod, 2);
  EXPECT_TRUE(sm_fp_peer_is_own_netns(&k));
  sm_fp_key_of(&k, 9, SM_AF_INET, pod, 1, other, 2);
  EXPECT_FALSE(sm_fp_peer_is_own_netns(&k));
  __u32 not_lo6[4];
  v6("::2", not_lo6);
  EXPECT_FALSE(sm_fp_is_loopback(not_lo6, SM_AF_INET6));
}

TEST(FastPathMessage, FirstMessageWithoutPeerKeepsTheDirectionOnTcp) {
  __u32 flags = 0;
  EXPECT_TRUE(sm_fp_try(flags));
  EXPECT_EQ(sm_fp_after(&flags, 0), SM_FP_MISSING);
  EXPECT_FALSE(sm_fp_try(flags)) << "later messages must not overtake the one TCP carries";
}

TEST(FastPathMessage, PeerGoneAfterRedirectsPassesWithoutSwitchingOff) {
  __u32 flags = 0;
  EXPECT_EQ(sm_fp_after(&flags, 1), SM_FP_SENT);
  EXPECT_EQ(sm_fp_after(&flags, 1), SM_FP_SENT);
  EXPECT_EQ(sm_fp_after(&flags, 0), SM_FP_PEER_GONE);
  EXPECT_TRUE(sm_fp_try(flags));
}

}  // namespace
