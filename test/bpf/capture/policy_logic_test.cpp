// The same-node authorization decision the connect programs use (bpf/include/sockmesh/policy.h),
// run in user space: BPF_PROG_TEST_RUN cannot run sock_addr programs.
#include <gtest/gtest.h>

#include <cstddef>
#include <cstring>

#include "sockmesh/policy.h"

namespace {

// The ABI between kernel and agent: no implicit padding.
static_assert(sizeof(sm_policy_key) == 12);
static_assert(offsetof(sm_policy_key, port) == 8);
static_assert(sizeof(sm_policy_value) == 8);
static_assert(offsetof(sm_policy_value, rule) == 4);
static_assert(SM_POLICY_MAP_ENTRIES == 2 * SM_MAX_POLICY_ENTRIES);

TEST(PolicyLogic, AppliesToWorkloadsOfThisNodeOnly) {
  const sm_workload src{5, 0}, captured{5, SM_WL_CAPTURED}, unknown{0, 0};
  const sm_endpoint local{7, 1, 0}, remote{7, 2, SM_EP_REMOTE}, nameless{0, 1, 0};
  EXPECT_TRUE(sm_policy_applies(&local, &src));
  EXPECT_TRUE(sm_policy_applies(&local, &captured));  // captured or not
  EXPECT_FALSE(sm_policy_applies(&remote, &src));     // the destination node's agent decides
  EXPECT_FALSE(sm_policy_applies(nullptr, &src));     // no mesh workload
  EXPECT_FALSE(sm_policy_applies(&local, nullptr));   // the caller is no workload
  EXPECT_FALSE(sm_policy_applies(&local, &unknown));
  EXPECT_FALSE(sm_policy_applies(&nameless, &src));
}

TEST(PolicyLogic, ExactPortThenPortZeroElseAllow) {
  const sm_policy_value allow{SM_POLICY_ALLOW, {}, 0}, deny{SM_POLICY_DENY, {}, 12},
      deny_default{SM_POLICY_DENY, {}, SM_POLICY_RULE_DEFAULT_DENY}, odd{7, {}, 3};
  uint32_t rule = 99;
  EXPECT_EQ(sm_policy_decide(nullptr, nullptr, &rule), SM_POLICY_ALLOWED);
  EXPECT_EQ(rule, 99u);
  EXPECT_EQ(sm_policy_decide(&allow, &deny, &rule), SM_POLICY_ALLOWED);  // the exact port wins
  EXPECT_EQ(sm_policy_decide(nullptr, &allow, &rule), SM_POLICY_ALLOWED);
  EXPECT_EQ(sm_policy_decide(&deny, nullptr, &rule), SM_POLICY_DENIED);
  EXPECT_EQ(rule, 12u);
  EXPECT_EQ(sm_policy_decide(nullptr, &deny_default, &rule), SM_POLICY_DENIED);
  EXPECT_EQ(rule, 0u);
  EXPECT_EQ(sm_policy_decide(&odd, &allow, &rule), SM_POLICY_DENIED);  // unknown verdicts deny
  EXPECT_EQ(rule, 3u);
}

TEST(PolicyLogic, KeyIsHostOrderPortWithZeroPad) {
  sm_policy_key key;
  std::memset(&key, 0xff, sizeof(key));
  sm_policy_key_of(&key, 1, 2, 8080);
  EXPECT_EQ(key.src, 1u);
  EXPECT_EQ(key.dst, 2u);
  EXPECT_EQ(key.port, 8080);
  EXPECT_EQ(key.pad, 0);
}

}  // namespace
