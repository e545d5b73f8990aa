// compile_policy (agent/reconcile/policy_maps.h): the kernel's same-node authorization entries
// are PolicyIndex's decisions. Each test runs the kernel's lookup (exact port, then port 0, else
// allow; sm_policy_decide from bpf/include/sockmesh/policy.h) over the compiled entries and
// compares it with PolicyIndex::decide for every pair and many ports, rule text included.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "reconcile/policy_maps.h"
#include "sockmesh/policy.h"
#include "sockmesh/resources/load.h"

namespace sockmesh::reconcile {
namespace {

using policy::Destination;
using policy::PolicyIndex;
using policy::Source;

static_assert(sizeof(sm_policy_key) == 12);
static_assert(sizeof(sm_policy_value) == 8);

PolicyIndex index_of(std::string_view yaml) {
  auto loaded = resources::load_yaml_string(yaml, "policies.yaml");
  EXPECT_TRUE(loaded.ok()) << (loaded.errors.empty() ? "" : loaded.errors.front());
  return PolicyIndex::build(loaded.snapshot.authorization_policies());
}

std::string policy(std::string_view ns, std::string_view name, std::string_view spec) {
  return "---\napiVersion: sockmesh/v1\nkind: AuthorizationPolicy\nmetadata: {name: " +
         std::string(name) + ", namespace: " + std::string(ns) + "}\nspec:\n" + std::string(spec);
}

PolicyWorkload workload(uint32_t number, std::string ns, std::string name, std::string sa,
                        policy::Labels labels) {
  return {number, Source::workload("cluster.local", ns, sa),
          Destination{ns, std::move(labels), std::move(name)}};
}

// This node's workloads.
const std::vector<PolicyWorkload> kLocal = {
    workload(1, "demo", "client", "client", {{"app", "client"}}),
    workload(2, "demo", "intruder", "intruder", {{"app", "intruder"}}),
    workload(3, "demo", "web", "web", {{"app", "web"}}),
    workload(4, "demo", "db", "db", {{"app", "db"}}),
    workload(7, "prod", "web", "web", {{"app", "web"}}),
};
enum : uint32_t { kClient = 1, kIntruder = 2, kWeb = 3, kDb = 4, kProdWeb = 7 };

const PolicyWorkload &by_number(uint32_t n) {
  return *std::find_if(kLocal.begin(), kLocal.end(),
                       [n](const PolicyWorkload &w) { return w.number == n; });
}

const sm_policy_value *find(const CompiledPolicy &c, uint32_t src, uint32_t dst, uint16_t port) {
  for (const auto &e : c.entries)
    if (e.key.src == src && e.key.dst == dst && e.key.port == port) return &e.value;
  return nullptr;
}

// The kernel's decision: "allow", or "deny <rule text>".
std::string kernel(const CompiledPolicy &c, uint32_t src, uint32_t dst, uint16_t port) {
  const sm_policy_value *exact = find(c, src, dst, port);
  const sm_policy_value *other = exact ? nullptr : find(c, src, dst, SM_POLICY_ANY_PORT);
  uint32_t rule = ~0u;
  if (sm_policy_decide(exact, other, &rule) == SM_POLICY_ALLOWED) return "allow";
  if (rule >= c.rules.size()) return "deny <rule id " + std::to_string(rule) + " unnamed>";
  return "deny " + c.rules[rule];
}

std::string agent(const PolicyIndex &index, uint32_t src, uint32_t dst, uint16_t port) {
  const auto d = index.decide(by_number(src).source, by_number(dst).destination, port);
  return d.allowed ? "allow" : "deny " + d.decided_by;
}

// Every pair, the ports the policies name and some they do not.
void expect_same_as_agent(const PolicyIndex &index, const CompiledPolicy &c) {
  for (const auto &src : kLocal)
    for (const auto &dst : kLocal)
      for (uint16_t port : {1, 80, 443, 8080, 8081, 9090, 65535})
        EXPECT_EQ(kernel(c, src.number, dst.number, port),
                  agent(index, src.number, dst.number, port))
            << "src " << src.number << " dst " << dst.number << " port " << port;
}

TEST(PolicyCompile, NoPolicyWritesNothing) {
  const PolicyIndex index;
  const auto c = compile_policy(index, kLocal);
  EXPECT_TRUE(c.entries.empty());
  EXPECT_EQ(c.pairs, 0u);
  ASSERT_EQ(c.rules.size(), 1u);
  EXPECT_EQ(c.rules[0], "default deny (ALLOW policies select the workload but none matched)");
  EXPECT_EQ(default_deny_rule(), c.rules[0]);
  expect_same_as_agent(index, c);
}

TEST(PolicyCompile, DefaultDenyWhenAnAllowPolicySelects) {
  const auto index =
      index_of(policy("demo", "web-from-client", R"(  selector: {matchLabels: {app: web}}
  rules:
    - from: [{source: {principals: [cluster.local/ns/demo/sa/client]}}]
      to: [{operation: {ports: [8080]}}]
)"));
  const auto c = compile_policy(index, kLocal);
  // Only demo/web is selected: a deny of every other port for each of the 5 sources, and the
  // client's allow of 8080.
  EXPECT_EQ(c.pairs, kLocal.size());
  EXPECT_EQ(c.entries.size(), kLocal.size() + 1);
  for (const auto &src : kLocal) {
    const auto *other = find(c, src.number, kWeb, SM_POLICY_ANY_PORT);
    ASSERT_NE(other, nullptr);
    EXPECT_EQ(other->verdict, SM_POLICY_DENY);
    EXPECT_EQ(other->rule, uint32_t(SM_POLICY_RULE_DEFAULT_DENY));
  }
  const auto *allowed = find(c, kClient, kWeb, 8080);
  ASSERT_NE(allowed, nullptr);
  EXPECT_EQ(allowed->verdict, SM_POLICY_ALLOW);
  EXPECT_EQ(find(c, kIntruder, kWeb, 8080), nullptr);  // same as its port 0: left out
  EXPECT_EQ(find(c, kClient, kDb, SM_POLICY_ANY_PORT), nullptr);
  EXPECT_EQ(kernel(c, kClient, kWeb, 8080), "allow");
  EXPECT_EQ(kernel(c, kClient, kWeb, 9090),
            "deny default deny (ALLOW policies select the workload but none matched)");
  EXPECT_EQ(kernel(c, kClient, kProdWeb, 8080), "allow");  // prod/web is not selected
  expect_same_as_agent(index, c);
}

TEST(PolicyCompile, DenyComesBeforeAllow) {
  const auto index = index_of(policy("demo", "allow-demo", R"(  rules:
    - from: [{source: {namespaces: [demo]}}]
)") + policy("demo", "deny-intruder", R"(  action: DENY
  rules:
    - from: [{source: {principals: [cluster.local/ns/demo/sa/intruder]}}]
      to: [{operation: {ports: [8080, 9090]}}]
)"));
  const auto c = compile_policy(index, kLocal);
  EXPECT_EQ(kernel(c, kIntruder, kWeb, 8080), "deny DENY demo/deny-intruder rules[0]");
  EXPECT_EQ(kernel(c, kIntruder, kDb, 9090), "deny DENY demo/deny-intruder rules[0]");
  EXPECT_EQ(kernel(c, kIntruder, kWeb, 443), "allow");
  EXPECT_EQ(kernel(c, kClient, kWeb, 8080), "allow");
  // The DENY rule has an id of its own, the default deny keeps 0.
  ASSERT_EQ(c.rules.size(), 2u);
  EXPECT_EQ(c.rules[1], "DENY demo/deny-intruder rules[0]");
  // Per demo destination: the intruder's two denied ports (its port 0 is allowed: no entry), and
  // prod/web's port-0 default deny (it is not in namespace demo; its named ports decide alike).
  EXPECT_EQ(c.entries.size(), 3u * 4);
  EXPECT_EQ(kernel(c, kProdWeb, kWeb, 8080),
            "deny default deny (ALLOW policies select the workload but none matched)");
  expect_same_as_agent(index, c);
}

TEST(PolicyCompile, PortSpecificAndOtherPorts) {
  const auto index = index_of(policy("demo", "web", R"(  selector: {matchLabels: {app: web}}
  rules:
    - to: [{operation: {ports: [80, 443]}}]
    - from: [{source: {principals: [cluster.local/ns/demo/sa/client]}}]
)") + policy("demo", "no-admin", R"(  selector: {matchLabels: {app: web}}
  action: DENY
  rules:
    - to: [{operation: {ports: [9090]}}]
)"));
  const auto c = compile_policy(index, kLocal);
  EXPECT_EQ(kernel(c, kIntruder, kWeb, 80), "allow");
  EXPECT_EQ(kernel(c, kIntruder, kWeb, 8080),
            "deny default deny (ALLOW policies select the workload but none matched)");
  EXPECT_EQ(kernel(c, kClient, kWeb, 8080), "allow");  // rules[1]: any port
  EXPECT_EQ(kernel(c, kClient, kWeb, 9090), "deny DENY demo/no-admin rules[0]");
  // The client's port 0 is allowed: no entry for it, nor for 80/443; 9090 denied.
  EXPECT_EQ(find(c, kClient, kWeb, SM_POLICY_ANY_PORT), nullptr);
  EXPECT_EQ(find(c, kClient, kWeb, 80), nullptr);
  ASSERT_NE(find(c, kClient, kWeb, 9090), nullptr);
  expect_same_as_agent(index, c);
}

TEST(PolicyCompile, NamespaceScopeAndRootNamespace) {
  // A policy of demo does not select prod's web; one of the root namespace selects both.
  const auto demo_only = index_of(policy("demo", "deny-all", "  {}\n"));
  auto c = compile_policy(demo_only, kLocal);
  EXPECT_EQ(kernel(c, kClient, kWeb, 8080).substr(0, 4), "deny");
  EXPECT_EQ(kernel(c, kClient, kProdWeb, 8080), "allow");
  expect_same_as_agent(demo_only, c);

  const auto root = index_of(
      policy("sockmesh-system", "web-only-from-prod", R"(  selector: {matchLabels: {app: web}}
  rules:
    - from: [{source: {namespaces: [prod]}}]
)"));
  c = compile_policy(root, kLocal);
  EXPECT_EQ(kernel(c, kClient, kWeb, 8080).substr(0, 4), "deny");
  EXPECT_EQ(kernel(c, kClient, kProdWeb, 8080).substr(0, 4), "deny");
  EXPECT_EQ(kernel(c, kProdWeb, kWeb, 8080), "allow");
  EXPECT_EQ(kernel(c, kClient, kDb, 8080), "allow");
  expect_same_as_agent(root, c);
}

TEST(PolicyCompile, RuleIdsStayAcrossCompilesAndAChangeTouchesOnlyItsEntries) {
  const std::string deny_intruder = policy("demo", "deny-intruder", R"(  action: DENY
  rules:
    - from: [{source: {principals: [cluster.local/ns/demo/sa/intruder]}}]
)");
  const std::string deny_db = policy("demo", "deny-db", R"(  action: DENY
  selector: {matchLabels: {app: db}}
  rules:
    - to: [{operation: {ports: [5432]}}]
)");
  const auto first = compile_policy(index_of(deny_intruder), kLocal);
  ASSERT_EQ(first.rules.size(), 2u);
  const auto second = compile_policy(index_of(deny_db + deny_intruder), kLocal, first.rules);
  ASSERT_EQ(second.rules.size(), 3u);
  EXPECT_EQ(second.rules[1], first.rules[1]);  // kept its id
  EXPECT_EQ(second.rules[2], "DENY demo/deny-db rules[0]");
  EXPECT_TRUE(second.reassigned.empty());
  // Every entry of the first compile is still there, unchanged; the new ones are db's port 5432
  // for every source (the intruder's too: DENY policies are tried in the index's order, so
  // demo/deny-db decides it there, another rule than its port 0's).
  size_t kept = 0;
  for (const auto &e : first.entries) {
    const auto *now = find(second, e.key.src, e.key.dst, e.key.port);
    ASSERT_NE(now, nullptr);
    EXPECT_EQ(now->verdict, e.value.verdict);
    EXPECT_EQ(now->rule, e.value.rule);
    kept++;
  }
  EXPECT_EQ(second.entries.size(), kept + kLocal.size());
  EXPECT_EQ(kernel(second, kClient, kDb, 5432), "deny DENY demo/deny-db rules[0]");
  EXPECT_EQ(kernel(second, kIntruder, kDb, 5432), "deny DENY demo/deny-db rules[0]");
  EXPECT_EQ(kernel(second, kIntruder, kDb, 80), "deny DENY demo/deny-intruder rules[0]");
  for (const auto &src : kLocal)
    for (const auto &dst : kLocal)
      for (uint16_t port : {80, 5432})
        EXPECT_EQ(kernel(second, src.number, dst.number, port),
                  agent(index_of(deny_db + deny_intruder), src.number, dst.number, port));
}

TEST(PolicyCompile, TooManyEntriesIsRefused) {
  const auto index = index_of(policy("demo", "deny-all", "  {}\n"));
  // 4 demo destinations x 5 sources = 20 port-0 denies.
  EXPECT_EQ(compile_policy(index, kLocal).entries.size(), 20u);
  EXPECT_THROW(compile_policy(index, kLocal, {}, 19), std::length_error);
  EXPECT_NO_THROW(compile_policy(index, kLocal, {}, 20));
}

TEST(PolicyCompile, FullRuleTableReusesIdsOfRulesNoLongerUsed) {
  std::vector<std::string> previous(SM_MAX_POLICY_RULES);
  previous[0] = default_deny_rule();
  for (size_t i = 1; i < previous.size(); i++)
    previous[i] = "DENY old/p" + std::to_string(i) + " rules[0]";
  const auto index = index_of(policy("demo", "deny-all", R"(  action: DENY
  rules: [{}]
)"));
  const auto c = compile_policy(index, kLocal, previous);
  ASSERT_EQ(c.reassigned.size(), 1u);
  EXPECT_EQ(c.reassigned[0], 1u);
  EXPECT_EQ(c.rules[1], "DENY demo/deny-all rules[0]");
  expect_same_as_agent(index, c);
}

TEST(PolicyCompile, RefusesBadWorkloadNumbers) {
  auto local = kLocal;
  local.push_back(by_number(kWeb));
  const auto index = index_of(policy("demo", "deny-all", "  {}\n"));
  EXPECT_THROW(compile_policy(index, local), std::invalid_argument);
  local = kLocal;
  local[0].number = 0;
  EXPECT_THROW(compile_policy(index, local), std::invalid_argument);
}

}  // namespace
}  // namespace sockmesh::reconcile
