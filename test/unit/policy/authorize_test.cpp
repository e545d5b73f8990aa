// The authorization evaluator: every rule of docs/config.md ("AuthorizationPolicy"), which rule
// decided, and the words of each kind of decision.
#include "sockmesh/policy/authorize.h"

#include <gtest/gtest.h>

#include <string>
#include <string_view>

#include "sockmesh/resources/load.h"

namespace sockmesh::policy {
namespace {

// Policies from YAML, checked by the resources library as meshcp would.
v1::Snapshot policies_of(std::string_view yaml) {
  auto loaded = resources::load_yaml_string(yaml, "policies.yaml");
  EXPECT_TRUE(loaded.ok()) << (loaded.errors.empty() ? "" : loaded.errors.front());
  return loaded.snapshot;
}

PolicyIndex index_of(std::string_view yaml, std::string_view trust_domain = kDefaultTrustDomain,
                     std::string_view root = kRootNamespace) {
  return PolicyIndex::build(policies_of(yaml).authorization_policies(), trust_domain, root);
}

// "apiVersion ... metadata: {name, namespace}\nspec:\n<spec>", one document.
std::string policy(std::string_view ns, std::string_view name, std::string_view spec) {
  return "---\napiVersion: sockmesh/v1\nkind: AuthorizationPolicy\nmetadata: {name: " +
         std::string(name) + ", namespace: " + std::string(ns) + "}\nspec:\n" + std::string(spec);
}

Destination workload(std::string ns, std::string name, Labels labels) {
  return Destination{std::move(ns), std::move(labels), std::move(name)};
}

const Destination kWeb = workload("demo", "web", {{"app", "web"}, {"version", "v1"}});
const Destination kDb = workload("demo", "db", {{"app", "db"}});
const Destination kProdWeb = workload("prod", "web", {{"app", "web"}});

const Source kClient = Source::workload("cluster.local", "demo", "client");
const Source kIntruder = Source::workload("cluster.local", "demo", "intruder");
const Source kProdClient = Source::workload("cluster.local", "prod", "client");
const Source kNobody = Source::unauthenticated();

// Just the verdict's facts, for compact expectations.
struct Outcome {
  bool allowed;
  Basis basis;
  std::string policy;
  int rule;
  bool operator==(const Outcome &) const = default;
};

std::ostream &operator<<(std::ostream &os, const Outcome &o) {
  return os << (o.allowed ? "allowed" : "denied") << " basis=" << int(o.basis)
            << " policy=" << o.policy << " rule=" << o.rule;
}

Outcome outcome(const PolicyIndex &index, const Source &source, const Destination &destination,
                uint32_t port) {
  const Decision d = index.decide(source, destination, port);
  return {d.allowed, d.basis, d.policy, d.rule};
}

const Outcome kDefaultAllow{true, Basis::kNoAllowPolicy, "", -1};
const Outcome kDefaultDeny{false, Basis::kNoAllowRule, "", -1};

Outcome allowed_by(std::string policy, int rule) {
  return {true, Basis::kAllowRule, std::move(policy), rule};
}
Outcome denied_by(std::string policy, int rule) {
  return {false, Basis::kDenyRule, std::move(policy), rule};
}

TEST(Authorize, NoPolicyAllowsEverything) {
  const PolicyIndex index;
  EXPECT_EQ(index.size(), 0u);
  const Decision d = index.decide(kNobody, kWeb, 8080);
  EXPECT_TRUE(d.allowed);
  EXPECT_EQ(d.action, Action::kAllow);
  EXPECT_EQ(d.basis, Basis::kNoAllowPolicy);
  EXPECT_EQ(d.policy, "");
  EXPECT_EQ(d.rule, -1);
  EXPECT_EQ(d.decided_by, "default allow (no ALLOW policy selects the workload)");
  EXPECT_EQ(d.explanation, "no policy selects workload demo/web");
}

TEST(Authorize, AllowPolicyWithoutRulesAllowsNothing) {
  const auto index = index_of(policy("demo", "deny-all", "  {}\n"));
  for (const Source *source : {&kClient, &kNobody, &kProdClient}) {
    const Decision d = index.decide(*source, kWeb, 8080);
    EXPECT_FALSE(d.allowed);
    EXPECT_EQ(d.action, Action::kDeny);
    EXPECT_EQ(d.basis, Basis::kNoAllowRule);
    EXPECT_EQ(d.decided_by, "default deny (ALLOW policies select the workload but none matched)");
    EXPECT_EQ(d.explanation,
              "ALLOW policy demo/deny-all selects workload demo/web and has no rules: it allows "
              "nothing");
  }
  // Only in its namespace.
  EXPECT_EQ(outcome(index, kClient, kProdWeb, 8080), kDefaultAllow);
}

TEST(Authorize, DenyPolicyWithoutRulesDeniesNothing) {
  const auto index = index_of(policy("demo", "nothing", "  action: DENY\n"));
  const Decision d = index.decide(kIntruder, kWeb, 8080);
  EXPECT_TRUE(d.allowed);
  EXPECT_EQ(d.basis, Basis::kNoAllowPolicy);
  EXPECT_EQ(d.explanation,
            "no ALLOW policy selects workload demo/web and no rule of its DENY policy "
            "demo/nothing matches spiffe://cluster.local/ns/demo/sa/intruder on port 8080");
}

TEST(Authorize, AnEmptyRuleMatchesEveryConnection) {
  const auto allow = index_of(policy("demo", "all", "  rules: [{}]\n"));
  for (const Source *source : {&kClient, &kNobody})
    for (uint32_t port : {1u, 8080u, 65535u})
      EXPECT_EQ(outcome(allow, *source, kWeb, port), allowed_by("demo/all", 0));
  const auto deny = index_of(policy("demo", "none", "  action: DENY\n  rules: [{}]\n"));
  for (const Source *source : {&kClient, &kNobody})
    EXPECT_EQ(outcome(deny, *source, kWeb, 8080), denied_by("demo/none", 0));
}

TEST(Authorize, EveryFieldOfARuleMustMatch) {
  const auto index = index_of(policy("demo", "p", R"(  rules:
    - from: [{source: {principals: [cluster.local/ns/demo/sa/client]}}]
      to: [{operation: {ports: [8080]}}]
)"));
  EXPECT_EQ(outcome(index, kClient, kWeb, 8080), allowed_by("demo/p", 0));
  EXPECT_EQ(outcome(index, kClient, kWeb, 9090), kDefaultDeny);    // port differs
  EXPECT_EQ(outcome(index, kIntruder, kWeb, 8080), kDefaultDeny);  // source differs
}

TEST(Authorize, PrincipalsAndNamespacesOfOneSourceMustBothMatch) {
  const auto index = index_of(policy("demo", "p", R"(  rules:
    - from:
        - source:
            principals: ["*/sa/client"]
            namespaces: [prod]
)"));
  EXPECT_EQ(outcome(index, kProdClient, kWeb, 80), allowed_by("demo/p", 0));
  EXPECT_EQ(outcome(index, kClient, kWeb, 80), kDefaultDeny);  // principal yes, namespace no
  EXPECT_EQ(outcome(index, Source::workload("cluster.local", "prod", "batch"), kWeb, 80),
            kDefaultDeny);  // namespace yes, principal no
}

TEST(Authorize, AnyValueOfAFieldAndAnyFromOrToMayMatch) {
  const auto index = index_of(policy("demo", "p", R"(  rules:
    - from:
        - source: {principals: [cluster.local/ns/demo/sa/a, cluster.local/ns/demo/sa/client]}
        - source: {namespaces: [prod]}
      to:
        - operation: {ports: [9090, 8080]}
        - operation: {ports: [443]}
)"));
  for (uint32_t port : {8080u, 9090u, 443u}) {
    EXPECT_EQ(outcome(index, kClient, kWeb, port), allowed_by("demo/p", 0)) << port;
    EXPECT_EQ(outcome(index, kProdClient, kWeb, port), allowed_by("demo/p", 0)) << port;
  }
  EXPECT_EQ(outcome(index, kClient, kWeb, 80), kDefaultDeny);
  EXPECT_EQ(outcome(index, kIntruder, kWeb, 8080), kDefaultDeny);
}

TEST(Authorize, AnyRuleOfAPolicyMayMatchAndTheFirstThatDoesIsReported) {
  const auto index = index_of(policy("demo", "p", R"(  rules:
    - to: [{operation: {ports: [1]}}]
    - from: [{source: {namespaces: [demo]}}]
    - to: [{operation: {ports: [8080]}}]
)"));
  EXPECT_EQ(outcome(index, kClient, kWeb, 8080), allowed_by("demo/p", 1));
  EXPECT_EQ(outcome(index, kProdClient, kWeb, 8080), allowed_by("demo/p", 2));
  EXPECT_EQ(outcome(index, kNobody, kWeb, 1), allowed_by("demo/p", 0));
  EXPECT_EQ(outcome(index, kProdClient, kWeb, 9090), kDefaultDeny);
}

TEST(Authorize, DenyIsCheckedBeforeAllow) {
  // The ALLOW policy sorts first and matches too: the DENY rule still decides.
  const auto index = index_of(policy("demo", "a-allow-client", R"(  rules:
    - from: [{source: {principals: [cluster.local/ns/demo/sa/client]}}]
)") + policy("demo", "z-deny-admin-port", R"(  action: DENY
  rules:
    - to: [{operation: {ports: [9000]}}]
    - from: [{source: {principals: [cluster.local/ns/demo/sa/client]}}]
      to: [{operation: {ports: [9090]}}]
)"));
  EXPECT_EQ(outcome(index, kClient, kWeb, 8080), allowed_by("demo/a-allow-client", 0));
  EXPECT_EQ(outcome(index, kClient, kWeb, 9000), denied_by("demo/z-deny-admin-port", 0));
  EXPECT_EQ(outcome(index, kClient, kWeb, 9090), denied_by("demo/z-deny-admin-port", 1));
  EXPECT_EQ(outcome(index, kIntruder, kWeb, 8080), kDefaultDeny);
  const Decision d = index.decide(kClient, kWeb, 9090);
  EXPECT_EQ(d.action, Action::kDeny);
  EXPECT_EQ(d.decided_by, "DENY demo/z-deny-admin-port rules[1]");
  EXPECT_EQ(d.explanation,
            "rules[1] of DENY policy demo/z-deny-admin-port matches "
            "spiffe://cluster.local/ns/demo/sa/client on port 9090");
}

TEST(Authorize, DenyPoliciesAloneLeaveTheRestAllowed) {
  const auto index = index_of(policy("demo", "no-intruder", R"(  action: DENY
  rules:
    - from: [{source: {principals: [cluster.local/ns/demo/sa/intruder]}}]
)"));
  EXPECT_EQ(outcome(index, kIntruder, kWeb, 8080), denied_by("demo/no-intruder", 0));
  EXPECT_EQ(outcome(index, kClient, kWeb, 8080), kDefaultAllow);
  EXPECT_EQ(outcome(index, kNobody, kWeb, 8080), kDefaultAllow);
}

TEST(Authorize, APolicyAppliesToItsOwnNamespaceOnly) {
  const auto index = index_of(policy("demo", "deny-all", "  {}\n"));
  EXPECT_EQ(outcome(index, kClient, kWeb, 80), kDefaultDeny);
  EXPECT_EQ(outcome(index, kClient, kDb, 80), kDefaultDeny);
  EXPECT_EQ(outcome(index, kClient, kProdWeb, 80), kDefaultAllow);
}

TEST(Authorize, TheSelectorNeedsEveryLabel) {
  const auto index =
      index_of(policy("demo", "web-v1", R"(  selector: {matchLabels: {app: web, version: v1}}
  action: DENY
  rules: [{}]
)"));
  EXPECT_EQ(outcome(index, kClient, kWeb, 80), denied_by("demo/web-v1", 0));
  EXPECT_EQ(
      outcome(index, kClient, workload("demo", "web2", {{"app", "web"}, {"version", "v2"}}), 80),
      kDefaultAllow);
  EXPECT_EQ(outcome(index, kClient, workload("demo", "web3", {{"app", "web"}}), 80), kDefaultAllow);
  EXPECT_EQ(outcome(index, kClient, kDb, 80), kDefaultAllow);
  EXPECT_EQ(outcome(index, kClient, kProdWeb, 80), kDefaultAllow);
}

TEST(Authorize, AnEmptySelectorSelectsTheWholeNamespace) {
  const auto index = index_of(policy("demo", "all", "  selector: {matchLabels: {}}\n"));
  EXPECT_EQ(outcome(index, kClient, kWeb, 80), kDefaultDeny);
  EXPECT_EQ(outcome(index, kClient, workload("demo", "bare", {}), 80), kDefaultDeny);
}

TEST(Authorize, RootNamespacePoliciesApplyInEveryNamespace) {
  const std::string root =
      policy("sockmesh-system", "web-only-from-demo", R"(  selector: {matchLabels: {app: web}}
  rules:
    - from: [{source: {namespaces: [demo]}}]
)");
  const auto index = index_of(root);
  EXPECT_EQ(outcome(index, kClient, kWeb, 80), allowed_by("sockmesh-system/web-only-from-demo", 0));
  EXPECT_EQ(outcome(index, kClient, kProdWeb, 80),
            allowed_by("sockmesh-system/web-only-from-demo", 0));
  EXPECT_EQ(outcome(index, kProdClient, kProdWeb, 80), kDefaultDeny);
  EXPECT_EQ(outcome(index, kProdClient, kDb, 80), kDefaultAllow);  // the selector
  EXPECT_EQ(outcome(index, kProdClient, workload("sockmesh-system", "web", {{"app", "web"}}), 80),
            kDefaultDeny);  // and the root namespace's own workloads

  // Another root namespace: sockmesh-system is then an ordinary one.
  const auto other = index_of(root, kDefaultTrustDomain, "mesh-root");
  EXPECT_EQ(other.root_namespace(), "mesh-root");
  EXPECT_EQ(outcome(other, kProdClient, kProdWeb, 80), kDefaultAllow);
}

TEST(Authorize, RootAndNamespacePoliciesCombine) {
  const auto index = index_of(policy("sockmesh-system", "deny-legacy", R"(  action: DENY
  rules:
    - from: [{source: {principals: ["*/sa/legacy"]}}]
)") + policy("demo", "allow-demo", R"(  rules:
    - from: [{source: {namespaces: [demo]}}]
)"));
  const Source legacy = Source::workload("cluster.local", "demo", "legacy");
  EXPECT_EQ(outcome(index, legacy, kWeb, 80), denied_by("sockmesh-system/deny-legacy", 0));
  EXPECT_EQ(outcome(index, kClient, kWeb, 80), allowed_by("demo/allow-demo", 0));
  EXPECT_EQ(outcome(index, kProdClient, kWeb, 80), kDefaultDeny);
  EXPECT_EQ(outcome(index, kProdClient, kProdWeb, 80), kDefaultAllow);
  EXPECT_EQ(outcome(index, Source::workload("cluster.local", "prod", "legacy"), kProdWeb, 80),
            denied_by("sockmesh-system/deny-legacy", 0));
  const auto selection = index.select(kWeb);
  ASSERT_EQ(selection.deny.size(), 1u);
  ASSERT_EQ(selection.allow.size(), 1u);
  EXPECT_EQ(index.policy_id(selection.deny[0]), "sockmesh-system/deny-legacy");
  EXPECT_EQ(index.policy_action(selection.deny[0]), Action::kDeny);
  EXPECT_EQ(index.policy_id(selection.allow[0]), "demo/allow-demo");
}

TEST(Authorize, OfSeveralMatchingPoliciesTheFirstByNamespaceAndNameIsReported) {
  const std::string any = "  rules: [{}]\n";
  const auto index = index_of(policy("sockmesh-system", "a", any) + policy("demo", "b", any) +
                              policy("demo", "a", any));
  EXPECT_EQ(outcome(index, kClient, kWeb, 80), allowed_by("demo/a", 0));
  const auto selection = index.select(kWeb);
  ASSERT_EQ(selection.allow.size(), 3u);
  EXPECT_EQ(index.policy_id(selection.allow[0]), "demo/a");
  EXPECT_EQ(index.policy_id(selection.allow[1]), "demo/b");
  EXPECT_EQ(index.policy_id(selection.allow[2]), "sockmesh-system/a");
}

TEST(Authorize, PrincipalWildcards) {
  auto allowing = [](std::string_view principal) {
    return index_of(policy(
        "demo", "p",
        "  rules:\n    - from: [{source: {principals: [\"" + std::string(principal) + "\"]}}]\n"));
  };
  const auto any = allowing("*");
  EXPECT_EQ(outcome(any, kIntruder, kWeb, 80), allowed_by("demo/p", 0));
  EXPECT_EQ(outcome(any, *Source::parse("spiffe://other.org/x"), kWeb, 80),
            allowed_by("demo/p", 0));
  EXPECT_EQ(outcome(any, kNobody, kWeb, 80), kDefaultDeny);  // any *authenticated* peer
  EXPECT_EQ(outcome(allowing("spiffe://*"), kNobody, kWeb, 80), kDefaultDeny);
  EXPECT_EQ(outcome(allowing("spiffe://*"), kClient, kWeb, 80), allowed_by("demo/p", 0));

  const auto prefix = allowing("cluster.local/ns/demo/*");
  EXPECT_EQ(outcome(prefix, kIntruder, kWeb, 80), allowed_by("demo/p", 0));
  EXPECT_EQ(outcome(prefix, kProdClient, kWeb, 80), kDefaultDeny);
  EXPECT_EQ(outcome(prefix, kNobody, kWeb, 80), kDefaultDeny);

  const auto suffix = allowing("*/sa/client");
  EXPECT_EQ(outcome(suffix, kClient, kWeb, 80), allowed_by("demo/p", 0));
  EXPECT_EQ(outcome(suffix, kProdClient, kWeb, 80), allowed_by("demo/p", 0));
  EXPECT_EQ(outcome(suffix, kIntruder, kWeb, 80), kDefaultDeny);

  const auto with_scheme = allowing("spiffe://cluster.local/ns/demo/sa/client");
  EXPECT_EQ(outcome(with_scheme, kClient, kWeb, 80), allowed_by("demo/p", 0));
  EXPECT_EQ(outcome(with_scheme, kIntruder, kWeb, 80), kDefaultDeny);

  // Exact means exact: no prefix of a longer name.
  const auto exact = allowing("cluster.local/ns/demo/sa/cli");
  EXPECT_EQ(outcome(exact, kClient, kWeb, 80), kDefaultDeny);
}

TEST(Authorize, NamespaceWildcards) {
  auto allowing = [](std::string_view ns) {
    return index_of(
        policy("demo", "p",
               "  rules:\n    - from: [{source: {namespaces: [\"" + std::string(ns) + "\"]}}]\n"));
  };
  const Source staging = Source::workload("cluster.local", "prod-staging", "client");
  EXPECT_EQ(outcome(allowing("*"), kProdClient, kWeb, 80), allowed_by("demo/p", 0));
  EXPECT_EQ(outcome(allowing("*"), kNobody, kWeb, 80), kDefaultDeny);
  // A SPIFFE ID without /ns/<namespace>/ has no namespace.
  EXPECT_EQ(outcome(allowing("*"), *Source::parse("spiffe://cluster.local/node/n1"), kWeb, 80),
            kDefaultDeny);
  EXPECT_EQ(outcome(allowing("prod*"), staging, kWeb, 80), allowed_by("demo/p", 0));
  EXPECT_EQ(outcome(allowing("prod*"), kProdClient, kWeb, 80), allowed_by("demo/p", 0));
  EXPECT_EQ(outcome(allowing("prod*"), kClient, kWeb, 80), kDefaultDeny);
  EXPECT_EQ(outcome(allowing("*-staging"), staging, kWeb, 80), allowed_by("demo/p", 0));
  EXPECT_EQ(outcome(allowing("*-staging"), kProdClient, kWeb, 80), kDefaultDeny);
  EXPECT_EQ(outcome(allowing("prod"), staging, kWeb, 80), kDefaultDeny);
}

TEST(Authorize, UnauthenticatedPeersMatchOnlyRulesWithoutSources) {
  const auto index = index_of(policy("demo", "p", R"(  rules:
    - from: [{source: {principals: ["*"]}}, {source: {namespaces: ["*"]}}]
    - to: [{operation: {ports: [80]}}]
)"));
  EXPECT_EQ(outcome(index, kNobody, kWeb, 8080), kDefaultDeny);
  EXPECT_EQ(outcome(index, kNobody, kWeb, 80), allowed_by("demo/p", 1));
  EXPECT_EQ(outcome(index, kClient, kWeb, 8080), allowed_by("demo/p", 0));
  EXPECT_EQ(index.decide(kNobody, kWeb, 8080).explanation,
            "ALLOW policy demo/p selects workload demo/web but none of its rules matches an "
            "unauthenticated peer on port 8080");
}

TEST(Authorize, ClusterLocalStandsForTheMeshTrustDomain) {
  const std::string yaml = policy("demo", "p", R"(  rules:
    - from: [{source: {principals: [cluster.local/ns/demo/sa/client]}}]
    - from: [{source: {principals: ["spiffe://cluster.local/ns/prod/*"]}}]
    - from: [{source: {principals: [example.org/ns/demo/sa/admin]}}]
    - from: [{source: {principals: [other.org/ns/demo/sa/guest]}}]
)");
  const auto index = index_of(yaml, "example.org");
  EXPECT_EQ(index.trust_domain(), "example.org");
  EXPECT_EQ(outcome(index, Source::workload("example.org", "demo", "client"), kWeb, 80),
            allowed_by("demo/p", 0));
  EXPECT_EQ(outcome(index, Source::workload("example.org", "prod", "x"), kWeb, 80),
            allowed_by("demo/p", 1));
  EXPECT_EQ(outcome(index, Source::workload("example.org", "demo", "admin"), kWeb, 80),
            allowed_by("demo/p", 2));
  // Other trust domains match only as written: "cluster.local" is not the mesh's here.
  EXPECT_EQ(outcome(index, kClient, kWeb, 80), kDefaultDeny);
  EXPECT_EQ(outcome(index, Source::workload("other.org", "demo", "guest"), kWeb, 80),
            allowed_by("demo/p", 3));
  // With the default trust domain, cluster.local is itself.
  EXPECT_EQ(outcome(index_of(yaml), kClient, kWeb, 80), allowed_by("demo/p", 0));
}

TEST(Authorize, NamespacesMatchWhateverTheTrustDomain) {
  const auto index = index_of(policy("demo", "p", R"(  rules:
    - from: [{source: {namespaces: [demo]}}]
)"),
                              "example.org");
  EXPECT_EQ(outcome(index, Source::workload("other.org", "demo", "x"), kWeb, 80),
            allowed_by("demo/p", 0));
}

TEST(Authorize, PortsAtTheEdgesAndInAnyOrder) {
  const auto index = index_of(policy("demo", "p", R"(  rules:
    - to: [{operation: {ports: [65535, 1, 443]}}]
)"));
  for (uint32_t port : {1u, 443u, 65535u})
    EXPECT_EQ(outcome(index, kNobody, kWeb, port), allowed_by("demo/p", 0)) << port;
  for (uint32_t port : {0u, 2u, 444u, 65534u})
    EXPECT_EQ(outcome(index, kNobody, kWeb, port), kDefaultDeny) << port;
}

TEST(Authorize, ExplanationsOfEachKindOfDecision) {
  const auto index =
      index_of(policy("demo", "allow-client", R"(  selector: {matchLabels: {app: web}}
  rules:
    - from: [{source: {principals: [cluster.local/ns/demo/sa/client]}}]
)") + policy("demo", "allow-ops", R"(  selector: {matchLabels: {app: web}}
  rules:
    - from: [{source: {namespaces: [ops]}}]
)") + policy("demo", "deny-9090", R"(  action: DENY
  rules:
    - to: [{operation: {ports: [9090]}}]
)") + policy("sockmesh-system", "deny-nothing", "  action: DENY\n"));

  Decision d = index.decide(kClient, kWeb, 8080);
  EXPECT_EQ(d.decided_by, "ALLOW demo/allow-client rules[0]");
  EXPECT_EQ(d.explanation,
            "rules[0] of ALLOW policy demo/allow-client matches "
            "spiffe://cluster.local/ns/demo/sa/client on port 8080");

  d = index.decide(kIntruder, kWeb, 8080);
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.decided_by, "default deny (ALLOW policies select the workload but none matched)");
  EXPECT_EQ(d.explanation,
            "2 ALLOW policies select workload demo/web (demo/allow-client, demo/allow-ops) but "
            "none of their rules matches spiffe://cluster.local/ns/demo/sa/intruder on port 8080");

  d = index.decide(kIntruder, kDb, 8080);
  EXPECT_TRUE(d.allowed);
  EXPECT_EQ(d.decided_by, "default allow (no ALLOW policy selects the workload)");
  EXPECT_EQ(d.explanation,
            "no ALLOW policy selects workload demo/db and no rule of its DENY policies "
            "demo/deny-9090, sockmesh-system/deny-nothing matches "
            "spiffe://cluster.local/ns/demo/sa/intruder on port 8080");

  d = index.decide(kClient, kDb, 9090);
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.decided_by, "DENY demo/deny-9090 rules[0]");

  // A destination without a name.
  Destination anonymous = kWeb;
  anonymous.name.clear();
  EXPECT_EQ(PolicyIndex().decide(kClient, anonymous, 80).explanation,
            "no policy selects the workload");
}

TEST(Authorize, EvaluateAndExplainAreDecideInTwoSteps) {
  const auto index = index_of(policy("demo", "p", R"(  rules:
    - to: [{operation: {ports: [8080]}}]
)"));
  const auto selection = index.select(kWeb);
  const auto verdict = index.evaluate(selection, kClient, 8080);
  EXPECT_TRUE(verdict.allowed);
  EXPECT_EQ(verdict.basis, Basis::kAllowRule);
  EXPECT_EQ(index.policy_id(uint32_t(verdict.policy)), "demo/p");
  EXPECT_EQ(verdict.rule, 0);
  const Decision two_steps = index.explain(verdict, selection, kClient, kWeb, 8080);
  const Decision one = index.decide(kClient, kWeb, 8080);
  EXPECT_EQ(two_steps.explanation, one.explanation);
  EXPECT_EQ(two_steps.decided_by, one.decided_by);
  const auto denied = index.evaluate(selection, kClient, 80);
  EXPECT_FALSE(denied.allowed);
  EXPECT_EQ(denied.basis, Basis::kNoAllowRule);
  EXPECT_EQ(denied.policy, -1);
  EXPECT_EQ(denied.rule, -1);
  // The selection of a workload no policy selects.
  const auto none = index.select("prod", {});
  EXPECT_TRUE(none.allow.empty());
  EXPECT_TRUE(none.deny.empty());
}

TEST(Authorize, FreeFunctionAndProtoBuiltPolicies) {
  // A policy that did not come from YAML: the unspecified action is ALLOW.
  v1::AuthorizationPolicy p;
  p.mutable_metadata()->set_name("p");
  p.mutable_metadata()->set_namespace_("demo");
  p.add_rules()->add_from()->mutable_source()->add_principals("cluster.local/ns/demo/sa/client");
  const std::vector<v1::AuthorizationPolicy> policies{p};
  EXPECT_TRUE(authorize(policies, kClient, kWeb, 80).allowed);
  const Decision d = authorize(policies, kIntruder, kWeb, 80);
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.basis, Basis::kNoAllowRule);
  EXPECT_EQ(authorize(policies, Source::workload("example.org", "demo", "client"), kWeb, 80,
                      "example.org")
                .rule,
            0);
}

TEST(Authorize, IndexesAreValuesThatCopyAndMove) {
  PolicyIndex index = index_of(policy("demo", "deny-all", "  {}\n"));
  const PolicyIndex copy = index;
  PolicyIndex moved = std::move(index);
  EXPECT_EQ(outcome(copy, kClient, kWeb, 80), kDefaultDeny);
  EXPECT_EQ(outcome(moved, kClient, kWeb, 80), kDefaultDeny);
  moved = PolicyIndex();
  EXPECT_EQ(outcome(moved, kClient, kWeb, 80), kDefaultAllow);
}

TEST(Source, SpiffeIdsWithOrWithoutTheScheme) {
  const auto with = Source::parse("spiffe://cluster.local/ns/demo/sa/client");
  ASSERT_TRUE(with);
  EXPECT_TRUE(with->authenticated());
  EXPECT_EQ(with->principal(), "cluster.local/ns/demo/sa/client");
  EXPECT_EQ(with->namespace_(), "demo");
  EXPECT_EQ(with->spiffe_id(), "spiffe://cluster.local/ns/demo/sa/client");
  EXPECT_EQ(with->describe(), "spiffe://cluster.local/ns/demo/sa/client");
  const auto without = Source::parse("cluster.local/ns/demo/sa/client");
  ASSERT_TRUE(without);
  EXPECT_EQ(without->principal(), with->principal());
  EXPECT_EQ(without->namespace_(), "demo");

  const Source w = Source::workload("example.org", "shop", "cart");
  EXPECT_EQ(w.spiffe_id(), "spiffe://example.org/ns/shop/sa/cart");
  EXPECT_EQ(w.namespace_(), "shop");

  EXPECT_FALSE(kNobody.authenticated());
  EXPECT_EQ(kNobody.principal(), "");
  EXPECT_EQ(kNobody.namespace_(), "");
  EXPECT_EQ(kNobody.spiffe_id(), "");
  EXPECT_EQ(kNobody.describe(), "an unauthenticated peer");

  EXPECT_EQ(Source::parse("spiffe://td/node/n1")->namespace_(), "");
  EXPECT_EQ(Source::parse("td/ns/demo")->namespace_(), "");  // no segment after it
  EXPECT_EQ(Source::parse("td/x/ns/demo/sa/y")->namespace_(), "demo");
  for (std::string_view bad : {"", "spiffe://", "spiffe://td", "td", "td/", "/ns/demo/sa/x",
                               "https://td/ns/demo/sa/x", "td/ns/*/sa/x"})
    EXPECT_FALSE(Source::parse(bad)) << bad;
}

TEST(Destination, OfAWorkload) {
  v1::Workload w;
  w.mutable_metadata()->set_name("web-v1-a");
  w.mutable_metadata()->set_namespace_("demo");
  (*w.mutable_metadata()->mutable_labels())["app"] = "web";
  const Destination d = Destination::of(w);
  EXPECT_EQ(d.namespace_, "demo");
  EXPECT_EQ(d.name, "web-v1-a");
  EXPECT_EQ(d.labels, (Labels{{"app", "web"}}));
  EXPECT_EQ(action_name(Action::kAllow), "ALLOW");
  EXPECT_EQ(action_name(Action::kDeny), "DENY");
}

}  // namespace
}  // namespace sockmesh::policy
