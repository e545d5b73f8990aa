// AuthorizationPolicy: its YAML form, every rule of docs/config.md with the exact message, and
// the resource set round trip.
#include <gtest/gtest.h>

#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "sockmesh/resources/load.h"
#include "sockmesh/resources/names.h"
#include "sockmesh/resources/resource_set.h"
#include "sockmesh/resources/validate.h"

namespace sockmesh::resources {
namespace {

using Errors = std::vector<std::string>;

Errors errors_of(std::string_view yaml) {
  return load_yaml_string(yaml, "demo.yaml").errors;
}

// A policy "demo/<name>" whose spec body (given) starts at line 5.
std::string policy(std::string_view spec_body, std::string_view name = "p") {
  return "apiVersion: sockmesh/v1\n"
         "kind: AuthorizationPolicy\n"
         "metadata: {name: " +
         std::string(name) + ", namespace: demo}\nspec:\n" + std::string(spec_body);
}

// A rule whose first source lists these principals (line 7 holds the list).
std::string principals(std::string_view list) {
  return policy("  rules:\n    - from:\n        - source: {principals: " + std::string(list) +
                "}\n");
}

std::string source_namespaces(std::string_view list) {
  return policy("  rules:\n    - from:\n        - source: {namespaces: " + std::string(list) +
                "}\n");
}

std::string ports(std::string_view list) {
  return policy("  rules:\n    - to:\n        - operation: {ports: " + std::string(list) + "}\n");
}

struct Case {
  std::string name;
  std::string yaml;
  std::string error;
};

void PrintTo(const Case &c, std::ostream *os) {
  *os << c.name;
}

class PolicyErrorTest : public testing::TestWithParam<Case> {};

TEST_P(PolicyErrorTest, ReportsExactlyThisError) {
  EXPECT_EQ(errors_of(GetParam().yaml), Errors{GetParam().error}) << GetParam().yaml;
}

const std::string kLabelRule =
    "(empty, or at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or "
    "digit)";
const std::string kL4 =
    "not supported: sockmesh's authorization is L4 (principals, namespaces and ports)";
const std::string kWorkloadId =
    " is not a workload SPIFFE ID (<trust-domain>/ns/<namespace>/sa/<service-account>, spiffe:// "
    "optional); a leading or trailing '*' matches others";
const std::string kWildcard =
    ": '*' may only stand alone (any), or at the start or the end (a suffix or prefix match)";

std::string many(int n, const std::string &item) {
  std::string list = "[";
  for (int i = 0; i < n; ++i) list += (i ? ", " : "") + item;
  return list + "]";
}

const Case
    kCases
        [] =
            {
                {"ActionUnknown", policy("  action: REJECT\n"),
                 R"(demo.yaml:5: authorizationpolicy "demo/p": spec.action: unknown action "REJECT" (one of ALLOW, DENY))"},
                {"ActionIstioOnly", policy("  action: AUDIT\n"),
                 R"(demo.yaml:5: authorizationpolicy "demo/p": spec.action: unknown action "AUDIT" (one of ALLOW, DENY; Istio's CUSTOM and AUDIT are not supported))"},
                {"ActionLowercase", policy("  action: allow\n"),
                 R"(demo.yaml:5: authorizationpolicy "demo/p": spec.action: unknown action "allow" (one of ALLOW, DENY))"},
                {"ActionNotString", policy("  action: [ALLOW]\n"),
                 R"(demo.yaml:5: authorizationpolicy "demo/p": spec.action: must be a string, got a list)"},
                {"SpecIstioProvider", policy("  action: ALLOW\n  provider: {name: ext}\n"),
                 R"(demo.yaml:6: authorizationpolicy "demo/p": spec.provider: )" + kL4},
                {"SpecUnknownField", policy("  rulez: []\n"),
                 R"(demo.yaml:5: authorizationpolicy "demo/p": spec.rulez: unknown field)"},
                {"SelectorNotMap", policy("  selector: app\n"),
                 R"(demo.yaml:5: authorizationpolicy "demo/p": spec.selector: must be a map, got "app")"},
                {"SelectorUnknownField", policy("  selector:\n    matchExpressions: []\n"),
                 R"(demo.yaml:6: authorizationpolicy "demo/p": spec.selector.matchExpressions: unknown field)"},
                {"SelectorLabelKeyBad", policy("  selector:\n    matchLabels: {-app: web}\n"),
                 R"(demo.yaml:6: authorizationpolicy "demo/p": spec.selector.matchLabels.-app: "-app" is not a label key (an optional DNS-1123 subdomain and '/', then at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit))"},
                {"SelectorLabelKeyPrefixBad",
                 policy("  selector:\n    matchLabels: {Example.com/app: web}\n"),
                 R"(demo.yaml:6: authorizationpolicy "demo/p": spec.selector.matchLabels.Example.com/app: "Example.com/app" is not a label key (an optional DNS-1123 subdomain and '/', then at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit))"},
                {"SelectorLabelValueBad",
                 policy("  selector:\n    matchLabels: {app: web server}\n"),
                 R"(demo.yaml:6: authorizationpolicy "demo/p": spec.selector.matchLabels.app: "web server" is not a label value )" +
                     kLabelRule},
                {"SelectorLabelValueTooLong",
                 policy("  selector:\n    matchLabels: {app: " + std::string(64, 'a') + "}\n"),
                 R"(demo.yaml:6: authorizationpolicy "demo/p": spec.selector.matchLabels.app: ")" +
                     std::string(64, 'a') + "\" is not a label value " + kLabelRule},
                {"RulesNotList", policy("  rules: {from: []}\n"),
                 R"(demo.yaml:5: authorizationpolicy "demo/p": spec.rules: must be a list, got a map)"},
                {"RuleNotMap", policy("  rules:\n    - allow\n"),
                 R"(demo.yaml:6: authorizationpolicy "demo/p": spec.rules[0]: must be a map, got "allow")"},
                {"RuleIstioWhen",
                 policy("  rules:\n    - when: [{key: source.ip, values: [10.0.0.1]}]\n"),
                 R"(demo.yaml:6: authorizationpolicy "demo/p": spec.rules[0].when: )" + kL4},
                {"RuleUnknownField", policy("  rules:\n    - fromm: []\n"),
                 R"(demo.yaml:6: authorizationpolicy "demo/p": spec.rules[0].fromm: unknown field)"},
                {"FromEmpty", policy("  rules:\n    - from: []\n"),
                 R"(demo.yaml:6: authorizationpolicy "demo/p": spec.rules[0].from: must not be empty (omit from to match any source))"},
                {"ToEmpty", policy("  rules:\n    - to: []\n"),
                 R"(demo.yaml:6: authorizationpolicy "demo/p": spec.rules[0].to: must not be empty (omit to to match any port))"},
                {"FromNotMap", policy("  rules:\n    - from: [client]\n"),
                 R"(demo.yaml:6: authorizationpolicy "demo/p": spec.rules[0].from[0]: must be a map, got "client")"},
                {"FromWithoutSource", policy("  rules:\n    - from:\n        - {}\n"),
                 R"(demo.yaml:7: authorizationpolicy "demo/p": spec.rules[0].from[0].source: required)"},
                {"FromWithSourceAndAnUnknownField",
                 policy(
                     "  rules:\n    - from:\n        - {source: {namespaces: [demo]}, ns: demo}\n"),
                 R"(demo.yaml:7: authorizationpolicy "demo/p": spec.rules[0].from[0].ns: unknown field)"},
                {"SourceEmpty", policy("  rules:\n    - from:\n        - source: {}\n"),
                 R"(demo.yaml:7: authorizationpolicy "demo/p": spec.rules[0].from[0].source: must list principals or namespaces (omit from to match any source))"},
                {"SourceEmptyLists",
                 policy(
                     "  rules:\n    - from:\n        - source: {principals: [], namespaces: []}\n"),
                 R"(demo.yaml:7: authorizationpolicy "demo/p": spec.rules[0].from[0].source: must list principals or namespaces (omit from to match any source))"},
                {"SourceIstioNotPrincipals",
                 policy("  rules:\n    - from:\n        - source:\n            notPrincipals: "
                        "[\"*\"]\n"),
                 R"(demo.yaml:8: authorizationpolicy "demo/p": spec.rules[0].from[0].source.notPrincipals: )" +
                     kL4},
                {"SourceIstioIpBlocks",
                 policy("  rules:\n    - from:\n        - source:\n            ipBlocks: "
                        "[10.0.0.0/8]\n"),
                 R"(demo.yaml:8: authorizationpolicy "demo/p": spec.rules[0].from[0].source.ipBlocks: )" +
                     kL4},
                {"PrincipalsNotList", principals("cluster.local/ns/demo/sa/client"),
                 R"(demo.yaml:7: authorizationpolicy "demo/p": spec.rules[0].from[0].source.principals: must be a list, got "cluster.local/ns/demo/sa/client")"},
                {"PrincipalEmpty", principals("[\"\"]"),
                 R"(demo.yaml:7: authorizationpolicy "demo/p": spec.rules[0].from[0].source.principals[0]: must not be empty)"},
                {"PrincipalNotAWorkloadId", principals("[cluster.local/ns/demo/client]"),
                 R"(demo.yaml:7: authorizationpolicy "demo/p": spec.rules[0].from[0].source.principals[0]: "cluster.local/ns/demo/client")" +
                     kWorkloadId},
                {"PrincipalWithoutTrustDomain", principals("[ns/demo/sa/client]"),
                 R"(demo.yaml:7: authorizationpolicy "demo/p": spec.rules[0].from[0].source.principals[0]: "ns/demo/sa/client")" +
                     kWorkloadId},
                {"PrincipalTrailingSlash",
                 principals("[\"spiffe://cluster.local/ns/demo/sa/client/\"]"),
                 R"(demo.yaml:7: authorizationpolicy "demo/p": spec.rules[0].from[0].source.principals[0]: "spiffe://cluster.local/ns/demo/sa/client/")" +
                     kWorkloadId},
                {"PrincipalStarInside", principals("[\"cluster.local/ns/*/sa/web\"]"),
                 R"(demo.yaml:7: authorizationpolicy "demo/p": spec.rules[0].from[0].source.principals[0]: "cluster.local/ns/*/sa/web")" +
                     kWildcard},
                {"PrincipalTwoStars", principals("[\"*/ns/demo/*\"]"),
                 R"(demo.yaml:7: authorizationpolicy "demo/p": spec.rules[0].from[0].source.principals[0]: "*/ns/demo/*")" +
                     kWildcard},
                {"PrincipalUppercase", principals("[cluster.local/ns/demo/sa/Client]"),
                 R"(demo.yaml:7: authorizationpolicy "demo/p": spec.rules[0].from[0].source.principals[0]: "cluster.local/ns/demo/sa/Client" has a character a SPIFFE ID of the mesh cannot have ("C"): use lowercase letters, digits, '.', '-', '_' and '/')"},
                {"PrincipalOtherScheme",
                 principals("[\"https://cluster.local/ns/demo/sa/client\"]"),
                 R"(demo.yaml:7: authorizationpolicy "demo/p": spec.rules[0].from[0].source.principals[0]: "https://cluster.local/ns/demo/sa/client" is not a SPIFFE ID: the scheme, when given, must be spiffe://)"},
                {"PrincipalSchemeOnly", principals("[\"spiffe://\"]"),
                 R"(demo.yaml:7: authorizationpolicy "demo/p": spec.rules[0].from[0].source.principals[0]: "spiffe://" names no SPIFFE ID after spiffe://)"},
                {"PrincipalBadNamespace", principals("[cluster.local/ns/de_mo/sa/client]"), R"(demo.yaml:7: authorizationpolicy "demo/p": spec.rules[0].from[0].source.principals[0]: "cluster.local/ns/de_mo/sa/client": the namespace "de_mo" is not a DNS-1123 label (lowercase letters, digits and '-', starting and ending with a letter or digit, at most 63 characters))"},
                {"PrincipalBadServiceAccount", principals("[cluster.local/ns/demo/sa/-client]"),
                 R"(demo.yaml:7: authorizationpolicy "demo/p": spec.rules[0].from[0].source.principals[0]: "cluster.local/ns/demo/sa/-client": the service account "-client" is not a DNS-1123 subdomain (dot-separated DNS-1123 labels, at most 253 characters))"},
                {"PrincipalPatternEmptySegment", principals("[\"cluster.local//ns/*\"]"),
                 R"(demo.yaml:7: authorizationpolicy "demo/p": spec.rules[0].from[0].source.principals[0]: "cluster.local//ns/*" has an empty path segment ("//"))"},
                {"PrincipalNotString", principals("[{sa: client}]"),
                 R"(demo.yaml:7: authorizationpolicy "demo/p": spec.rules[0].from[0].source.principals[0]: must be a string, got a map)"},
                {"TooManyPrincipals", principals(many(65, "\"*\"")),
                 R"(demo.yaml:7: authorizationpolicy "demo/p": spec.rules[0].from[0].source.principals: at most 64 principals per source, got 65)"},
                {"NamespaceNotALabel", source_namespaces("[Demo]"),
                 R"(demo.yaml:7: authorizationpolicy "demo/p": spec.rules[0].from[0].source.namespaces[0]: "Demo" is not a DNS-1123 label (lowercase letters, digits and '-', starting and ending with a letter or digit, at most 63 characters))"},
                {"NamespacePatternBadCharacter", source_namespaces("[\"de_*\"]"),
                 R"(demo.yaml:7: authorizationpolicy "demo/p": spec.rules[0].from[0].source.namespaces[0]: "de_*" cannot match a namespace: use lowercase letters, digits and '-' around the '*')"},
                {"NamespaceStarInside", source_namespaces("[\"d*o\"]"),
                 R"(demo.yaml:7: authorizationpolicy "demo/p": spec.rules[0].from[0].source.namespaces[0]: "d*o")" +
                     kWildcard},
                {"NamespaceEmpty", source_namespaces("[\"\"]"),
                 R"(demo.yaml:7: authorizationpolicy "demo/p": spec.rules[0].from[0].source.namespaces[0]: must not be empty)"},
                {"TooManyNamespaces", source_namespaces(many(65, "demo")),
                 R"(demo.yaml:7: authorizationpolicy "demo/p": spec.rules[0].from[0].source.namespaces: at most 64 namespaces per source, got 65)"},
                {"ToWithoutOperation", policy("  rules:\n    - to:\n        - {}\n"),
                 R"(demo.yaml:7: authorizationpolicy "demo/p": spec.rules[0].to[0].operation: required)"},
                {"OperationEmpty", policy("  rules:\n    - to:\n        - operation: {}\n"),
                 R"(demo.yaml:7: authorizationpolicy "demo/p": spec.rules[0].to[0].operation: must list ports (omit to to match any port))"},
                {"OperationIstioMethods",
                 policy("  rules:\n    - to:\n        - operation:\n            methods: [GET]\n"),
                 R"(demo.yaml:8: authorizationpolicy "demo/p": spec.rules[0].to[0].operation.methods: )" +
                     kL4},
                {"PortZero", ports("[0]"),
                 R"(demo.yaml:7: authorizationpolicy "demo/p": spec.rules[0].to[0].operation.ports[0]: must be between 1 and 65535, got 0)"},
                {"PortTooBig", ports("[8080, \"70000\"]"),
                 R"(demo.yaml:7: authorizationpolicy "demo/p": spec.rules[0].to[0].operation.ports[1]: must be between 1 and 65535, got 70000)"},
                {"PortName", ports("[http]"),
                 R"(demo.yaml:7: authorizationpolicy "demo/p": spec.rules[0].to[0].operation.ports[0]: must be an integer, got "http")"},
                {"PortRange", ports("[\"8000-8080\"]"),
                 R"(demo.yaml:7: authorizationpolicy "demo/p": spec.rules[0].to[0].operation.ports[0]: must be an integer, got "8000-8080")"},
                {"TooManyPorts", ports(many(65, "80")),
                 R"(demo.yaml:7: authorizationpolicy "demo/p": spec.rules[0].to[0].operation.ports: at most 64 ports per operation, got 65)"},
                {"TooManySources",
                 policy("  rules:\n    - from: " + many(17, "{source: {namespaces: [demo]}}") +
                        "\n"),
                 R"(demo.yaml:6: authorizationpolicy "demo/p": spec.rules[0].from: at most 16 sources per rule, got 17)"},
                {"TooManyOperations",
                 policy("  rules:\n    - to: " + many(17, "{operation: {ports: [80]}}") + "\n"),
                 R"(demo.yaml:6: authorizationpolicy "demo/p": spec.rules[0].to: at most 16 operations per rule, got 17)"},
                {"TooManyRules", policy("  rules: " + many(65, "{}") + "\n"),
                 R"(demo.yaml:5: authorizationpolicy "demo/p": spec.rules: at most 64 rules per policy, got 65)"},
                {"NameNotALabel",
                 "apiVersion: sockmesh/v1\nkind: AuthorizationPolicy\nmetadata: {name: Allow, "
                 "namespace: demo}\n"
                 "spec: {}\n",
                 R"(demo.yaml:3: authorizationpolicy "demo/Allow": metadata.name: "Allow" is not a DNS-1123 label (lowercase letters, digits and '-', starting and ending with a letter or digit, at most 63 characters))"},
                {"SpecMissing",
                 "apiVersion: sockmesh/v1\nkind: AuthorizationPolicy\nmetadata: {name: p, "
                 "namespace: demo}\n",
                 R"(demo.yaml:1: authorizationpolicy "demo/p": spec: required)"},
                {"Duplicate", policy("  action: DENY\n") + "---\n" + policy("  action: ALLOW\n"),
                 R"(demo.yaml:9: authorizationpolicy "demo/p": metadata.name: duplicate authorizationpolicy "demo/p" (first defined at demo.yaml:1))"},
};
INSTANTIATE_TEST_SUITE_P(AuthorizationPolicy, PolicyErrorTest, testing::ValuesIn(kCases),
                         [](const auto &info) { return info.param.name; });

struct GoodCase {
  std::string name;
  std::string yaml;
};

void PrintTo(const GoodCase &c, std::ostream *os) {
  *os << c.name;
}

class PolicyGoodTest : public testing::TestWithParam<GoodCase> {};

TEST_P(PolicyGoodTest, LoadsWithoutErrors) {
  EXPECT_EQ(errors_of(GetParam().yaml), Errors{}) << GetParam().yaml;
}

const GoodCase kGoodCases[] = {
    {"EmptySpecAllowsNothing", policy("  {}\n")},
    {"DenyWithoutRules", policy("  action: DENY\n")},
    {"RuleMatchingEverything", policy("  rules: [{}]\n")},
    {"NoRulesList", policy("  rules: []\n")},
    {"PrincipalWithScheme", principals("[\"spiffe://cluster.local/ns/demo/sa/client\"]")},
    {"PrincipalOtherTrustDomain", principals("[example.org/ns/demo/sa/client.v2]")},
    {"PrincipalAny", principals("[\"*\"]")},
    {"PrincipalAnyWithScheme", principals("[\"spiffe://*\"]")},
    {"PrincipalPrefix", principals("[\"cluster.local/ns/demo/*\"]")},
    {"PrincipalSuffix", principals("[\"*/sa/client\"]")},
    {"NamespaceAny", source_namespaces("[\"*\"]")},
    {"NamespacePrefixAndSuffix", source_namespaces("[\"prod-*\", \"*-test\"]")},
    {"PortsAsIstioWritesThem", ports("[\"8080\", \"9090\"]")},
    {"PortEdges", ports("[1, 65535]")},
    {"SixtyFourOfEverything",
     policy("  rules: " + many(64, "{}") + "\n") + "---\n" +
         policy("  rules:\n    - from: " +
                    many(16, "{source: {principals: " + many(64, "\"*\"") +
                                 ", namespaces: " + many(64, "demo") + "}}") +
                    "\n      to: " + many(16, "{operation: {ports: " + many(64, "80") + "}}") +
                    "\n",
                "q")},
    {"SelectorPrefixedKeyAndEmptyValue",
     policy("  selector:\n    matchLabels: {app.kubernetes.io/name: web, canary: \"\"}\n")},
    {"EmptySelector", policy("  selector: {}\n")},
};
INSTANTIATE_TEST_SUITE_P(AuthorizationPolicy, PolicyGoodTest, testing::ValuesIn(kGoodCases),
                         [](const auto &info) { return info.param.name; });

TEST(AuthorizationPolicyLoad, IstioShapeMapsFieldByField) {
  const auto r = load_yaml_string(R"(apiVersion: sockmesh/v1
kind: AuthorizationPolicy
metadata: {name: web-from-client, namespace: demo}
spec:
  selector:
    matchLabels: {app: web}
  action: ALLOW
  rules:
    - from:
        - source:
            principals: [cluster.local/ns/demo/sa/client]
        - source:
            namespaces: [ops]
      to:
        - operation:
            ports: ["8080", 9090]
    - {}
)",
                                  "p.yaml");
  ASSERT_EQ(r.errors, Errors{});
  ASSERT_EQ(r.snapshot.authorization_policies_size(), 1);
  const v1::AuthorizationPolicy &p = r.snapshot.authorization_policies(0);
  EXPECT_EQ(resource_id(p.metadata()), "demo/web-from-client");
  EXPECT_TRUE(p.has_selector());
  EXPECT_EQ(p.selector().match_labels().at("app"), "web");
  EXPECT_EQ(p.action(), v1::AUTHORIZATION_ACTION_ALLOW);
  ASSERT_EQ(p.rules_size(), 2);
  ASSERT_EQ(p.rules(0).from_size(), 2);
  EXPECT_EQ(p.rules(0).from(0).source().principals(0), "cluster.local/ns/demo/sa/client");
  EXPECT_TRUE(p.rules(0).from(0).source().namespaces().empty());
  EXPECT_EQ(p.rules(0).from(1).source().namespaces(0), "ops");
  ASSERT_EQ(p.rules(0).to_size(), 1);
  EXPECT_EQ(p.rules(0).to(0).operation().ports(0), 8080u);
  EXPECT_EQ(p.rules(0).to(0).operation().ports(1), 9090u);
  EXPECT_EQ(p.rules(1).from_size(), 0);
  EXPECT_EQ(p.rules(1).to_size(), 0);
}

TEST(AuthorizationPolicyLoad, DefaultsAndTheEmptySpec) {
  const auto r = load_yaml_string(policy("  {}\n"), "p.yaml");
  ASSERT_EQ(r.errors, Errors{});
  const v1::AuthorizationPolicy &p = r.snapshot.authorization_policies(0);
  EXPECT_EQ(p.action(), v1::AUTHORIZATION_ACTION_ALLOW);
  EXPECT_FALSE(p.has_selector());
  EXPECT_EQ(p.rules_size(), 0);
  EXPECT_EQ(authorization_action_name(v1::AUTHORIZATION_ACTION_DENY), "DENY");
  EXPECT_EQ(authorization_action_name(v1::AUTHORIZATION_ACTION_ALLOW), "ALLOW");
  EXPECT_EQ(authorization_action_name(v1::AuthorizationAction(9)), "UNKNOWN");
}

TEST(AuthorizationPolicyLoad, EveryErrorOfOnePolicyInFileOrder) {
  const auto errors = errors_of(policy(R"(  action: MAYBE
  rules:
    - from:
        - source: {principals: [client], namespaces: [Demo]}
      to:
        - operation: {ports: [0, 80, http]}
)"));
  EXPECT_EQ(
      errors,
      (Errors{
          R"(demo.yaml:5: authorizationpolicy "demo/p": spec.action: unknown action "MAYBE" (one of ALLOW, DENY))",
          R"(demo.yaml:8: authorizationpolicy "demo/p": spec.rules[0].from[0].source.principals[0]: "client")" +
              kWorkloadId,
          R"(demo.yaml:8: authorizationpolicy "demo/p": spec.rules[0].from[0].source.namespaces[0]: "Demo" is not a DNS-1123 label (lowercase letters, digits and '-', starting and ending with a letter or digit, at most 63 characters))",
          R"(demo.yaml:10: authorizationpolicy "demo/p": spec.rules[0].to[0].operation.ports[0]: must be between 1 and 65535, got 0)",
          R"(demo.yaml:10: authorizationpolicy "demo/p": spec.rules[0].to[0].operation.ports[2]: must be an integer, got "http")",
      }));
}

TEST(AuthorizationPolicyLoad, SourceFieldsOneLevelTooHighSayWhereTheyBelong) {
  EXPECT_EQ(
      errors_of(
          policy("  rules:\n    - from:\n        - principals: [cluster.local/ns/demo/sa/c]\n")),
      (Errors{
          R"(demo.yaml:7: authorizationpolicy "demo/p": spec.rules[0].from[0].principals: unknown field)",
          R"(demo.yaml:7: authorizationpolicy "demo/p": spec.rules[0].from[0].source: required)"}));
}

TEST(AuthorizationPolicyLoad, PartialScopeLoadsAPolicyOnItsOwn) {
  const auto r = load_yaml_string(policy("  selector: {matchLabels: {app: web}}\n  rules: [{}]\n"),
                                  "p.yaml", Scope::kPartial);
  EXPECT_EQ(r.errors, Errors{});
  EXPECT_EQ(r.snapshot.authorization_policies_size(), 1);
}

TEST(AuthorizationPolicyLoad, DemoPolicyExampleLoadsAfterTheDemoServices) {
  const auto partial =
      load_yaml_file(SOCKMESH_SOURCE_DIR "/examples/demo-policy.yaml", Scope::kPartial);
  ASSERT_EQ(partial.errors, Errors{});
  EXPECT_GE(partial.snapshot.authorization_policies_size(), 1);
}

// Snapshots that did not come from YAML: the proto's own values.
TEST(AuthorizationPolicyValidate, ProtoValues) {
  v1::Snapshot s;
  auto *p = s.add_authorization_policies();
  p->mutable_metadata()->set_name("p");
  p->mutable_metadata()->set_namespace_("demo");
  p->set_action(v1::AuthorizationAction(7));
  auto *rule = p->add_rules();
  rule->add_from();
  rule->add_to();
  rule->add_to()->mutable_operation()->add_ports(0);
  (*p->mutable_selector()->mutable_match_labels())["z"] = "bad value";
  (*p->mutable_selector()->mutable_match_labels())["a/"] = "x";
  EXPECT_EQ(
      validate(s),
      (Errors{
          R"(authorizationpolicy "demo/p": spec.selector.matchLabels.a/: "a/" is not a label key (an optional DNS-1123 subdomain and '/', then at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit))",
          R"(authorizationpolicy "demo/p": spec.selector.matchLabels.z: "bad value" is not a label value )" +
              kLabelRule,
          R"(authorizationpolicy "demo/p": spec.action: unknown action 7)",
          R"(authorizationpolicy "demo/p": spec.rules[0].from[0].source: required)",
          R"(authorizationpolicy "demo/p": spec.rules[0].to[0].operation: required)",
          R"(authorizationpolicy "demo/p": spec.rules[0].to[1].operation.ports[0]: must be between 1 and 65535, got 0)",
      }));
  // An unspecified action is ALLOW, as in the YAML form.
  p->clear_action();
  p->clear_rules();
  p->clear_selector();
  EXPECT_EQ(validate(s), Errors{});
  // Duplicates are named by list and index.
  *s.add_authorization_policies() = *p;
  EXPECT_EQ(
      validate(s),
      Errors{
          R"(authorizationpolicy "demo/p": metadata.name: duplicate authorizationpolicy "demo/p" (first defined at authorization_policies[0]))"});
}

TEST(AuthorizationPolicyResourceSet, NameVersionAndRoundTrip) {
  const auto r = load_yaml_string(policy("  action: DENY\n  rules: [{}]\n") + "---\n" +
                                      R"(apiVersion: sockmesh/v1
kind: Workload
metadata: {name: p, namespace: demo}
spec: {node: n1, addresses: [10.78.1.10]}
)",
                                  "p.yaml");
  ASSERT_EQ(r.errors, Errors{});
  const auto resources = to_resources(r.snapshot);
  ASSERT_EQ(resources.size(), 2u);
  const v1::Resource &policy_resource = resources.at("authorizationpolicy/demo/p");
  EXPECT_EQ(resource_name(policy_resource), "authorizationpolicy/demo/p");
  EXPECT_EQ(policy_resource.version(), content_version(policy_resource));
  EXPECT_TRUE(resources.contains("workload/demo/p"));  // other kinds do not clash
  const v1::Snapshot back = to_snapshot(resources);
  ASSERT_EQ(back.authorization_policies_size(), 1);
  EXPECT_EQ(back.authorization_policies(0).SerializeAsString(),
            r.snapshot.authorization_policies(0).SerializeAsString());
  EXPECT_EQ(back.workloads_size(), 1);
}

}  // namespace
}  // namespace sockmesh::resources
