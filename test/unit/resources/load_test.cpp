// YAML -> snapshot: every structural and semantic rule of docs/config.md, with the exact message.
#include "sockmesh/resources/load.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "sockmesh/resources/names.h"

namespace sockmesh::resources {
namespace {

using Errors = std::vector<std::string>;

Errors errors_of(std::string_view yaml) {
  return load_yaml_string(yaml, "demo.yaml").errors;
}

// A workload the services below can point at; 4 lines.
constexpr std::string_view kWorkload = R"(apiVersion: sockmesh/v1
kind: Workload
metadata: {name: web-v1-a, namespace: demo, labels: {version: v1}}
spec: {node: n1, addresses: [10.78.1.10]}
)";

// Workloads with other address families; 4 lines each.
constexpr std::string_view kDualStackWorkload = R"(apiVersion: sockmesh/v1
kind: Workload
metadata: {name: web-ds, namespace: demo}
spec: {node: n1, addresses: [10.78.1.11, "fd00:78:1::11"]}
)";
constexpr std::string_view kIpv6Workload = R"(apiVersion: sockmesh/v1
kind: Workload
metadata: {name: web-v6, namespace: demo}
spec: {node: n1, addresses: ["fd00:78:1::12"]}
)";

// A service "demo/web" whose spec body (given) starts at line 5, followed by kWorkload and then
// the given documents.
std::string service(std::string_view spec_body, std::string_view more_documents = "") {
  std::string yaml = std::string(
                         "apiVersion: sockmesh/v1\n"
                         "kind: Service\n"
                         "metadata: {name: web, namespace: demo}\n"
                         "spec:\n") +
                     std::string(spec_body) + "---\n" + std::string(kWorkload);
  if (!more_documents.empty()) yaml += "---\n" + std::string(more_documents);
  return yaml;
}

// A second service "demo/api" (6 lines) with the given VIP list.
std::string api_service(std::string_view vips) {
  return "---\napiVersion: sockmesh/v1\nkind: Service\n"
         "metadata: {name: api, namespace: demo}\nspec:\n  vips: " +
         std::string(vips) + "\n";
}

// `count` endpoints of web-v1-a on ports 1..count.
std::string endpoints(int count) {
  std::string body = "  endpoints:\n";
  for (int port = 1; port <= count; ++port) {
    body += "    - {workload: web-v1-a, port: " + std::to_string(port) + "}\n";
  }
  return body;
}

// A workload "demo/w" whose spec body (given) starts at line 5.
std::string workload(std::string_view spec_body) {
  return std::string(
             "apiVersion: sockmesh/v1\n"
             "kind: Workload\n"
             "metadata: {name: w, namespace: demo}\n"
             "spec:\n") +
         std::string(spec_body);
}

constexpr std::string_view kVip = "  vips: [{address: 10.96.0.10, port: 80}]\n";

struct Case {
  std::string name;
  std::string yaml;
  std::string error;
};

void PrintTo(const Case &c, std::ostream *os) {
  *os << c.name;
}

class LoadErrorTest : public testing::TestWithParam<Case> {};

TEST_P(LoadErrorTest, ReportsExactlyThisError) {
  EXPECT_EQ(errors_of(GetParam().yaml), Errors{GetParam().error}) << GetParam().yaml;
}

const Case kEnvelopeCases[] = {
    {"ApiVersionMissing", "kind: Node\nmetadata: {name: n1}\nspec: {}\n",
     R"(demo.yaml:1: node "default/n1": apiVersion: required)"},
    {"ApiVersionWrong", "apiVersion: v1\nkind: Node\nmetadata: {name: n1}\nspec: {}\n",
     R"(demo.yaml:1: node "default/n1": apiVersion: must be "sockmesh/v1", got "v1")"},
    {"ApiVersionNotString",
     "apiVersion: [sockmesh/v1]\nkind: Node\nmetadata: {name: n1}\nspec: {}\n",
     R"(demo.yaml:1: node "default/n1": apiVersion: must be a string, got a list)"},
    {"KindUnknown", "apiVersion: sockmesh/v1\nkind: Deployment\nmetadata: {name: x}\nspec: {}\n",
     R"(demo.yaml:2: document 1: kind: unknown kind "Deployment" (one of Workload, Service, Node, AuthorizationPolicy))"},
    {"KindUnknownInSecondDocument",
     "apiVersion: sockmesh/v1\nkind: Node\nmetadata: {name: n1}\nspec: {}\n---\n"
     "apiVersion: sockmesh/v1\nkind: Deployment\nmetadata: {name: x}\nspec: {}\n",
     R"(demo.yaml:7: document 2: kind: unknown kind "Deployment" (one of Workload, Service, Node, AuthorizationPolicy))"},
    {"KindMissing", "apiVersion: sockmesh/v1\nmetadata: {name: x}\nspec: {}\n",
     R"(demo.yaml:1: document 1: kind: required (one of Workload, Service, Node, AuthorizationPolicy))"},
    {"KindNotString", "apiVersion: sockmesh/v1\nkind: {a: b}\nmetadata: {name: x}\nspec: {}\n",
     R"(demo.yaml:2: document 1: kind: must be a string, got a map)"},
    {"MetadataMissing", "apiVersion: sockmesh/v1\nkind: Node\nspec: {}\n",
     R"(demo.yaml:1: document 1: metadata: required)"},
    {"MetadataNotMap", "apiVersion: sockmesh/v1\nkind: Node\nmetadata: [n1]\nspec: {}\n",
     R"(demo.yaml:3: document 1: metadata: must be a map, got a list)"},
    {"NameMissing", "apiVersion: sockmesh/v1\nkind: Node\nmetadata: {namespace: x}\nspec: {}\n",
     R"(demo.yaml:3: document 1: metadata.name: required)"},
    {"SpecMissing", "apiVersion: sockmesh/v1\nkind: Node\nmetadata: {name: n1}\n",
     R"(demo.yaml:1: node "default/n1": spec: required)"},
    {"SpecNotMap", "apiVersion: sockmesh/v1\nkind: Node\nmetadata: {name: n1}\nspec: x\n",
     R"(demo.yaml:4: node "default/n1": spec: must be a map, got "x")"},
    {"DocumentNotMap", "- apiVersion: sockmesh/v1\n",
     R"(demo.yaml:1: document 1: must be a map, got a list)"},
    {"UnknownTopLevelField",
     "apiVersion: sockmesh/v1\nkind: Node\nmetadata: {name: n1}\nspec: {}\nstatus: {}\n",
     R"(demo.yaml:5: node "default/n1": status: unknown field)"},
    {"UnknownMetadataField",
     "apiVersion: sockmesh/v1\nkind: Node\nmetadata:\n  name: n1\n  uid: 7\nspec: {}\n",
     R"(demo.yaml:5: node "default/n1": metadata.uid: unknown field)"},
    {"DuplicateField",
     "apiVersion: sockmesh/v1\nkind: Node\nmetadata: {name: n1}\nspec:\n  addresses: []\n"
     "  addresses: []\n",
     R"(demo.yaml:6: node "default/n1": spec.addresses: duplicate field)"},
    {"LabelsNotMap",
     "apiVersion: sockmesh/v1\nkind: Node\nmetadata: {name: n1, labels: [a]}\nspec: {}\n",
     R"(demo.yaml:3: node "default/n1": metadata.labels: must be a map, got a list)"},
    {"LabelValueNotString",
     "apiVersion: sockmesh/v1\nkind: Node\nmetadata: {name: n1, labels: {a: [b]}}\nspec: {}\n",
     R"(demo.yaml:3: node "default/n1": metadata.labels.a: must be a string, got a list)"},
    {"NameNotDns1123", "apiVersion: sockmesh/v1\nkind: Node\nmetadata: {name: Web}\nspec: {}\n",
     R"(demo.yaml:3: node "default/Web": metadata.name: "Web" is not a DNS-1123 label (lowercase letters, digits and '-', starting and ending with a letter or digit, at most 63 characters))"},
    {"NameTooLong",
     "apiVersion: sockmesh/v1\nkind: Node\nmetadata: {name: " + std::string(64, 'a') +
         "}\nspec: {}\n",
     "demo.yaml:3: node \"default/" + std::string(64, 'a') + "\": metadata.name: \"" +
         std::string(64, 'a') +
         "\" is not a DNS-1123 label (lowercase letters, digits and '-', starting and ending with "
         "a letter or digit, at most 63 characters)"},
    {"NamespaceNotDns1123",
     "apiVersion: sockmesh/v1\nkind: Node\nmetadata:\n  name: n1\n  namespace: -demo\nspec: {}\n",
     R"(demo.yaml:5: node "-demo/n1": metadata.namespace: "-demo" is not a DNS-1123 label (lowercase letters, digits and '-', starting and ending with a letter or digit, at most 63 characters))"},
    {"DuplicateResource",
     "apiVersion: sockmesh/v1\nkind: Node\nmetadata: {name: n1}\nspec: {}\n---\n"
     "apiVersion: sockmesh/v1\nkind: Node\nmetadata: {name: n1}\nspec: {}\n",
     R"(demo.yaml:8: node "default/n1": metadata.name: duplicate node "default/n1" (first defined at demo.yaml:1))"},
    {"NodeAddressBad",
     "apiVersion: sockmesh/v1\nkind: Node\nmetadata: {name: n1}\nspec:\n  addresses:\n"
     "    - 10.77.0.1.5\n",
     R"(demo.yaml:6: node "default/n1": spec.addresses[0]: "10.77.0.1.5" is not an IPv4 or IPv6 address)"},
};
INSTANTIATE_TEST_SUITE_P(Envelope, LoadErrorTest, testing::ValuesIn(kEnvelopeCases),
                         [](const auto &info) { return info.param.name; });

const Case kWorkloadCases[] = {
    {"NodeMissing", workload("  addresses: [10.78.1.10]\n"),
     R"(demo.yaml:4: workload "demo/w": spec.node: required)"},
    {"NodeNotString", workload("  node: [n1]\n  addresses: [10.78.1.10]\n"),
     R"(demo.yaml:5: workload "demo/w": spec.node: must be a string, got a list)"},
    {"NodeBadName", workload("  node: N_1\n  addresses: [10.78.1.10]\n"),
     R"(demo.yaml:5: workload "demo/w": spec.node: "N_1" is not a node name (lowercase letters, digits and '-', at most 63 characters))"},
    {"AddressesMissing", workload("  node: n1\n"),
     R"(demo.yaml:4: workload "demo/w": spec.addresses: at least one address is required)"},
    {"AddressesEmpty", workload("  node: n1\n  addresses: []\n"),
     R"(demo.yaml:6: workload "demo/w": spec.addresses: at least one address is required)"},
    {"AddressesNotList", workload("  node: n1\n  addresses: 10.78.1.10\n"),
     R"(demo.yaml:6: workload "demo/w": spec.addresses: must be a list, got "10.78.1.10")"},
    {"AddressNotString", workload("  node: n1\n  addresses:\n    - {ip: 10.78.1.10}\n"),
     R"(demo.yaml:7: workload "demo/w": spec.addresses[0]: must be a string, got a map)"},
    {"AddressIpv4Bad", workload("  node: n1\n  addresses:\n    - 10.78.1.300\n"),
     R"(demo.yaml:7: workload "demo/w": spec.addresses[0]: "10.78.1.300" is not an IPv4 or IPv6 address)"},
    {"AddressLeadingZero", workload("  node: n1\n  addresses:\n    - 10.78.1.010\n"),
     R"(demo.yaml:7: workload "demo/w": spec.addresses[0]: "10.78.1.010" is not an IPv4 or IPv6 address)"},
    {"AddressIpv6TwoGaps", workload("  node: n1\n  addresses:\n    - fd00::1::2\n"),
     R"(demo.yaml:7: workload "demo/w": spec.addresses[0]: "fd00::1::2" is not an IPv4 or IPv6 address)"},
    {"AddressIpv6BadDigit", workload("  node: n1\n  addresses:\n    - fd00::g\n"),
     R"(demo.yaml:7: workload "demo/w": spec.addresses[0]: "fd00::g" is not an IPv4 or IPv6 address)"},
    {"AddressIpv6NineGroups", workload("  node: n1\n  addresses:\n    - 1:2:3:4:5:6:7:8:9\n"),
     R"(demo.yaml:7: workload "demo/w": spec.addresses[0]: "1:2:3:4:5:6:7:8:9" is not an IPv4 or IPv6 address)"},
    {"AddressIpv6Brackets", workload("  node: n1\n  addresses:\n    - \"[fd00::1]\"\n"),
     R"(demo.yaml:7: workload "demo/w": spec.addresses[0]: "[fd00::1]" is not an IPv4 or IPv6 address)"},
    {"AddressIpv6Zone", workload("  node: n1\n  addresses:\n    - fe80::1%eth0\n"),
     R"(demo.yaml:7: workload "demo/w": spec.addresses[0]: "fe80::1%eth0" is not an IPv4 or IPv6 address)"},
    {"AddressIpv6Prefix", workload("  node: n1\n  addresses:\n    - fd00::1/64\n"),
     R"(demo.yaml:7: workload "demo/w": spec.addresses[0]: "fd00::1/64" is not an IPv4 or IPv6 address)"},
    {"AddressIpv4Mapped", workload("  node: n1\n  addresses:\n    - \"::ffff:10.78.1.10\"\n"),
     R"(demo.yaml:7: workload "demo/w": spec.addresses[0]: "::ffff:10.78.1.10" is an IPv4-mapped IPv6 address; write it as 10.78.1.10)"},
    {"AddressIpv6UnquotedColonEnd", workload("  node: n1\n  addresses:\n    - fd00:78::\n"),
     R"(demo.yaml:7: workload "demo/w": spec.addresses[0]: must be a string, got a map (YAML reads an unquoted item ending in ':' as a map; quote it: "fd00:78::"))"},
    {"AddressSecondIpv4", workload("  node: n1\n  addresses:\n    - 10.78.1.10\n    - 10.1.1.2\n"),
     R"(demo.yaml:8: workload "demo/w": spec.addresses[1]: a workload has at most one IPv4 and one IPv6 address; "10.1.1.2" is its second IPv4 address)"},
    {"AddressSecondIpv6",
     workload("  node: n1\n  addresses:\n    - fd00:78::1\n    - 10.78.1.10\n    - fd00:78::2\n"),
     R"(demo.yaml:9: workload "demo/w": spec.addresses[2]: a workload has at most one IPv4 and one IPv6 address; "fd00:78::2" is its second IPv6 address)"},
    {"AddressListedTwice",
     workload("  node: n1\n  addresses:\n    - 10.78.1.10\n    - 10.78.1.10\n"),
     R"(demo.yaml:8: workload "demo/w": spec.addresses[1]: 10.78.1.10 is listed twice (also spec.addresses[0]))"},
    {"AddressIpv6ListedTwiceWrittenDifferently",
     workload("  node: n1\n  addresses:\n    - fd00:78::1\n    - FD00:78:0:0::1\n"),
     R"(demo.yaml:8: workload "demo/w": spec.addresses[1]: FD00:78:0:0::1 is listed twice (also spec.addresses[0]))"},
    {"AddressOfAnotherWorkload",
     std::string(kWorkload) + "---\n" + workload("  node: n1\n  addresses: [10.78.1.10]\n"),
     R"(demo.yaml:11: workload "demo/w": spec.addresses[0]: 10.78.1.10 is already used by workload "demo/web-v1-a")"},
    {"AddressIpv6OfAnotherWorkloadWrittenDifferently",
     std::string(kIpv6Workload) + "---\n" +
         workload("  node: n1\n  addresses: [\"fd00:78:1:0:0:0:0:12\"]\n"),
     R"(demo.yaml:11: workload "demo/w": spec.addresses[0]: fd00:78:1:0:0:0:0:12 is already used by workload "demo/web-v6" (written fd00:78:1::12 there))"},
    {"CapturedNotBool", workload("  node: n1\n  addresses: [10.78.1.10]\n  captured: yes\n"),
     R"(demo.yaml:7: workload "demo/w": spec.captured: must be true or false, got "yes")"},
    {"CgroupPathEscapes",
     workload("  node: n1\n  addresses: [10.78.1.10]\n  cgroupPath: pods/../../x\n"),
     R"(demo.yaml:7: workload "demo/w": spec.cgroupPath: "pods/../../x" must be a relative path without ".." components)"},
    {"ServiceAccountBad",
     workload("  node: n1\n  addresses: [10.78.1.10]\n  serviceAccount: Web\n"),
     R"(demo.yaml:7: workload "demo/w": spec.serviceAccount: "Web" is not a DNS-1123 subdomain (dot-separated DNS-1123 labels, at most 253 characters))"},
    {"UnknownSpecField", workload("  node: n1\n  addresses: [10.78.1.10]\n  image: nginx\n"),
     R"(demo.yaml:7: workload "demo/w": spec.image: unknown field)"},
};
INSTANTIATE_TEST_SUITE_P(Workload, LoadErrorTest, testing::ValuesIn(kWorkloadCases),
                         [](const auto &info) { return info.param.name; });

const Case kServiceCases[] = {
    {"UnknownSpecField", service(std::string(kVip) + "  frobnicate: 1\n"),
     R"(demo.yaml:6: service "demo/web": spec.frobnicate: unknown field)"},
    {"VipsMissing", service("  endpoints: []\n"),
     R"(demo.yaml:4: service "demo/web": spec.vips: at least one VIP is required)"},
    {"VipsEmpty", service("  vips: []\n"),
     R"(demo.yaml:5: service "demo/web": spec.vips: at least one VIP is required)"},
    {"VipsNotList", service("  vips: {address: 10.96.0.10, port: 80}\n"),
     R"(demo.yaml:5: service "demo/web": spec.vips: must be a list, got a map)"},
    {"VipNotMap", service("  vips:\n    - 10.96.0.10:80\n"),
     R"(demo.yaml:6: service "demo/web": spec.vips[0]: must be a map, got "10.96.0.10:80")"},
    {"VipUnknownField", service("  vips:\n    - {address: 10.96.0.10, port: 80, host: web}\n"),
     R"(demo.yaml:6: service "demo/web": spec.vips[0].host: unknown field)"},
    {"VipAddressMissing", service("  vips:\n    - {port: 80}\n"),
     R"(demo.yaml:6: service "demo/web": spec.vips[0].address: required)"},
    {"VipAddressBad", service("  vips:\n    - {address: 10.96.0, port: 80}\n"),
     R"(demo.yaml:6: service "demo/web": spec.vips[0].address: "10.96.0" is not an IPv4 or IPv6 address)"},
    {"VipAddressIpv6Bad", service("  vips:\n    - {address: \"fd00:96:::10\", port: 80}\n"),
     R"(demo.yaml:6: service "demo/web": spec.vips[0].address: "fd00:96:::10" is not an IPv4 or IPv6 address)"},
    {"VipAddressIpv4Mapped", service("  vips:\n    - {address: \"::FFFF:10.96.0.10\", port: 80}\n"),
     R"(demo.yaml:6: service "demo/web": spec.vips[0].address: "::FFFF:10.96.0.10" is an IPv4-mapped IPv6 address; write it as 10.96.0.10)"},
    {"VipAddressNotString", service("  vips:\n    - {address: [10.96.0.10], port: 80}\n"),
     R"(demo.yaml:6: service "demo/web": spec.vips[0].address: must be a string, got a list)"},
    {"VipPortNotInteger", service("  vips:\n    - {address: 10.96.0.10, port: http}\n"),
     R"(demo.yaml:6: service "demo/web": spec.vips[0].port: must be an integer, got "http")"},
    {"VipPortMissing", service("  vips:\n    - {address: 10.96.0.10}\n"),
     R"(demo.yaml:6: service "demo/web": spec.vips[0].port: required)"},
    {"VipPortZero", service("  vips:\n    - {address: 10.96.0.10, port: 0}\n"),
     R"(demo.yaml:6: service "demo/web": spec.vips[0].port: must be between 1 and 65535, got 0)"},
    {"VipPortTooBig", service("  vips:\n    - {address: 10.96.0.10, port: 65536}\n"),
     R"(demo.yaml:6: service "demo/web": spec.vips[0].port: must be between 1 and 65535, got 65536)"},
    {"VipProtocolLowercase",
     service("  vips:\n    - {address: 10.96.0.10, port: 53, protocol: udp}\n"),
     R"(demo.yaml:6: service "demo/web": spec.vips[0].protocol: unknown protocol "udp" (one of TCP, UDP))"},
    {"VipProtocolUnknown",
     service("  vips:\n    - {address: 10.96.0.10, port: 80, protocol: SCTP}\n"),
     R"(demo.yaml:6: service "demo/web": spec.vips[0].protocol: unknown protocol "SCTP" (one of TCP, UDP))"},
    {"VipTwiceInService",
     service("  vips:\n    - {address: 10.96.0.10, port: 80}\n"
             "    - {address: 10.96.0.10, port: 80, protocol: TCP}\n"),
     R"(demo.yaml:7: service "demo/web": spec.vips[1]: 10.96.0.10:80/TCP is listed twice (also spec.vips[0]))"},
    {"VipOfAnotherService",
     service(kVip) + "---\napiVersion: sockmesh/v1\nkind: Service\n"
                     "metadata: {name: api, namespace: demo}\nspec:\n"
                     "  vips: [{address: 10.96.0.10, port: 80}]\n",
     R"(demo.yaml:16: service "demo/api": spec.vips[0]: 10.96.0.10:80/TCP is already used by service "demo/web")"},
    {"VipUdpOfAnotherService",
     service("  vips: [{address: 10.96.0.53, port: 53, protocol: UDP}]\n") +
         api_service("[{address: 10.96.0.53, port: 53, protocol: UDP}]"),
     R"(demo.yaml:16: service "demo/api": spec.vips[0]: 10.96.0.53:53/UDP is already used by service "demo/web")"},
    {"VipIpv6TwiceInServiceWrittenDifferently",
     service("  vips:\n    - {address: \"fd00:96::a\", port: 80}\n"
             "    - {address: \"fd00:96:0::a\", port: 80}\n"),
     R"(demo.yaml:7: service "demo/web": spec.vips[1]: [fd00:96:0::a]:80/TCP is listed twice (also spec.vips[0]))"},
    {"VipIpv6OfAnotherServiceWrittenDifferently",
     service("  vips: [{address: \"fd00:96::a\", port: 80}]\n") +
         api_service("[{address: \"fd00:96:0::a\", port: 80}]"),
     R"(demo.yaml:16: service "demo/api": spec.vips[0]: [fd00:96:0::a]:80/TCP is already used by service "demo/web" (written fd00:96::a there))"},
    {"VipIpv6OfAnotherServiceExpandedAndUppercase",
     service("  vips: [{address: \"fd00:96::a\", port: 80}]\n") +
         api_service("[{address: \"FD00:0096:0000:0000:0000:0000:0000:000A\", port: 80}]"),
     R"(demo.yaml:16: service "demo/api": spec.vips[0]: [FD00:0096:0000:0000:0000:0000:0000:000A]:80/TCP is already used by service "demo/web" (written fd00:96::a there))"},
    {"VipIpv6WithoutIpv6Endpoint",
     service("  vips:\n    - {address: 10.96.0.10, port: 80}\n"
             "    - {address: \"fd00:96::a\", port: 80}\n"
             "  endpoints: [{workload: web-v1-a, port: 8080}]\n"),
     R"(demo.yaml:7: service "demo/web": spec.vips[1].address: no endpoint's workload has an IPv6 address, so "fd00:96::a" could serve nothing)"},
    {"VipIpv4WithoutIpv4Endpoint",
     service("  vips:\n    - {address: 10.96.0.10, port: 80}\n"
             "    - {address: \"fd00:96::a\", port: 80}\n"
             "  endpoints: [{workload: web-v6, port: 8080}]\n",
             kIpv6Workload),
     R"(demo.yaml:6: service "demo/web": spec.vips[0].address: no endpoint's workload has an IPv4 address, so "10.96.0.10" could serve nothing)"},
    {"LbPolicyUnknown", service(std::string(kVip) + "  lbPolicy: FASTEST\n"),
     R"(demo.yaml:6: service "demo/web": spec.lbPolicy: unknown policy "FASTEST" (one of RANDOM, ROUND_ROBIN, LEAST_CONNECTIONS, MAGLEV))"},
    {"LbPolicyUnknownWithMaglevSettings",
     service(std::string(kVip) + "  lbPolicy: MAGLEVV\n  maglev: {tableSize: 4093}\n"),
     R"(demo.yaml:6: service "demo/web": spec.lbPolicy: unknown policy "MAGLEVV" (one of RANDOM, ROUND_ROBIN, LEAST_CONNECTIONS, MAGLEV))"},
    {"LbPolicyLowercase", service(std::string(kVip) + "  lbPolicy: maglev\n"),
     R"(demo.yaml:6: service "demo/web": spec.lbPolicy: unknown policy "maglev" (one of RANDOM, ROUND_ROBIN, LEAST_CONNECTIONS, MAGLEV))"},
    {"LbPolicyNotString", service(std::string(kVip) + "  lbPolicy: [MAGLEV]\n"),
     R"(demo.yaml:6: service "demo/web": spec.lbPolicy: must be a string, got a list)"},
    {"MaglevWithDefaultPolicy", service(std::string(kVip) + "  maglev: {tableSize: 4093}\n"),
     R"(demo.yaml:6: service "demo/web": spec.maglev: only allowed with lbPolicy MAGLEV; this service's is RANDOM)"},
    {"MaglevWithRoundRobin", service(std::string(kVip) + "  lbPolicy: ROUND_ROBIN\n  maglev: {}\n"),
     R"(demo.yaml:7: service "demo/web": spec.maglev: only allowed with lbPolicy MAGLEV; this service's is ROUND_ROBIN)"},
    {"MaglevNotMap", service(std::string(kVip) + "  lbPolicy: MAGLEV\n  maglev: 4093\n"),
     R"(demo.yaml:7: service "demo/web": spec.maglev: must be a map, got "4093")"},
    {"MaglevUnknownField",
     service(std::string(kVip) + "  lbPolicy: MAGLEV\n  maglev:\n    size: 4093\n"),
     R"(demo.yaml:8: service "demo/web": spec.maglev.size: unknown field)"},
    {"MaglevTableSizeNotPrime",
     service(std::string(kVip) + "  lbPolicy: MAGLEV\n  maglev:\n    tableSize: 4096\n"),
     R"(demo.yaml:8: service "demo/web": spec.maglev.tableSize: must be a prime between 13 and 65521, got 4096 (the nearest primes are 4093 and 4099))"},
    {"MaglevTableSizeBelowMinimum",
     service(std::string(kVip) + "  lbPolicy: MAGLEV\n  maglev: {tableSize: 11}\n"),
     R"(demo.yaml:7: service "demo/web": spec.maglev.tableSize: must be a prime between 13 and 65521, got 11)"},
    {"MaglevTableSizeZero",
     service(std::string(kVip) + "  lbPolicy: MAGLEV\n  maglev: {tableSize: 0}\n"),
     R"(demo.yaml:7: service "demo/web": spec.maglev.tableSize: must be a prime between 13 and 65521, got 0)"},
    {"MaglevTableSizeAboveMaximum",
     service(std::string(kVip) + "  lbPolicy: MAGLEV\n  maglev: {tableSize: 65537}\n"),
     R"(demo.yaml:7: service "demo/web": spec.maglev.tableSize: must be a prime between 13 and 65521, got 65537)"},
    {"MaglevTableSizeHuge",
     service(std::string(kVip) + "  lbPolicy: MAGLEV\n  maglev: {tableSize: 99999999999}\n"),
     R"(demo.yaml:7: service "demo/web": spec.maglev.tableSize: must be a prime between 13 and 65521, got 99999999999)"},
    {"MaglevTableSizeNegative",
     service(std::string(kVip) + "  lbPolicy: MAGLEV\n  maglev: {tableSize: -4093}\n"),
     R"(demo.yaml:7: service "demo/web": spec.maglev.tableSize: must be a prime between 13 and 65521, got -4093)"},
    {"MaglevTableSizeNotInteger",
     service(std::string(kVip) + "  lbPolicy: MAGLEV\n  maglev: {tableSize: 4k}\n"),
     R"(demo.yaml:7: service "demo/web": spec.maglev.tableSize: must be an integer, got "4k")"},
    {"MaglevTableSizeBelowEndpoints",
     service(std::string(kVip) + "  lbPolicy: MAGLEV\n  maglev: {tableSize: 13}\n" + endpoints(20)),
     R"(demo.yaml:7: service "demo/web": spec.maglev.tableSize: must be at least the number of endpoints (20), got 13; for even shares use a prime of at least 100 × 20, e.g. 2003)"},
    {"EndpointsNotList", service(std::string(kVip) + "  endpoints: web-v1-a\n"),
     R"(demo.yaml:6: service "demo/web": spec.endpoints: must be a list, got "web-v1-a")"},
    {"EndpointUnknownField",
     service(std::string(kVip) + "  endpoints:\n    - {workload: web-v1-a, port: 8080, zone: a}\n"),
     R"(demo.yaml:7: service "demo/web": spec.endpoints[0].zone: unknown field)"},
    {"EndpointWorkloadMissing", service(std::string(kVip) + "  endpoints:\n    - {port: 8080}\n"),
     R"(demo.yaml:7: service "demo/web": spec.endpoints[0].workload: required)"},
    {"EndpointWorkloadUnknown",
     service(std::string(kVip) + "  endpoints:\n    - {workload: web-v9, port: 8080}\n"),
     R"(demo.yaml:7: service "demo/web": spec.endpoints[0].workload: unknown workload "web-v9" in namespace "demo")"},
    {"EndpointPortNotInteger",
     service(std::string(kVip) + "  endpoints:\n    - {workload: web-v1-a, port: http}\n"),
     R"(demo.yaml:7: service "demo/web": spec.endpoints[0].port: must be an integer, got "http")"},
    {"EndpointPortFraction",
     service(std::string(kVip) + "  endpoints:\n    - {workload: web-v1-a, port: 80.5}\n"),
     R"(demo.yaml:7: service "demo/web": spec.endpoints[0].port: must be an integer, got "80.5")"},
    {"EndpointPortNotScalar",
     service(std::string(kVip) + "  endpoints:\n    - {workload: web-v1-a, port: [80]}\n"),
     R"(demo.yaml:7: service "demo/web": spec.endpoints[0].port: must be an integer, got a list)"},
    {"EndpointPortZero",
     service(std::string(kVip) + "  endpoints:\n    - {workload: web-v1-a, port: 0}\n"),
     R"(demo.yaml:7: service "demo/web": spec.endpoints[0].port: must be between 1 and 65535, got 0)"},
    {"EndpointPortTooBig",
     service(std::string(kVip) + "  endpoints:\n    - {workload: web-v1-a, port: 70000}\n"),
     R"(demo.yaml:7: service "demo/web": spec.endpoints[0].port: must be between 1 and 65535, got 70000)"},
    {"EndpointPortNegative",
     service(std::string(kVip) + "  endpoints:\n    - {workload: web-v1-a, port: -80}\n"),
     R"(demo.yaml:7: service "demo/web": spec.endpoints[0].port: must be between 1 and 65535, got -80)"},
    {"EndpointWeightTooBig",
     service(std::string(kVip) + "  endpoints:\n    - {workload: web-v1-a, port: 8080}\n"
                                 "    - {workload: web-v1-a, port: 8081, weight: 20000}\n"),
     R"(demo.yaml:8: service "demo/web": spec.endpoints[1].weight: must be between 0 and 10000, got 20000)"},
    {"EndpointWeightOverflowsUint32",
     service(std::string(kVip) +
             "  endpoints:\n    - {workload: web-v1-a, port: 8080, weight: 4294967296}\n"),
     R"(demo.yaml:7: service "demo/web": spec.endpoints[0].weight: must be between 0 and 10000, got 4294967296)"},
    {"EndpointWeightHuge",
     service(
         std::string(kVip) +
         "  endpoints:\n    - {workload: web-v1-a, port: 8080, weight: 99999999999999999999999}\n"),
     R"(demo.yaml:7: service "demo/web": spec.endpoints[0].weight: must be between 0 and 10000, got 99999999999999999999999)"},
    {"EndpointDuplicate",
     service(std::string(kVip) + "  endpoints:\n    - {workload: web-v1-a, port: 8080}\n"
                                 "    - {workload: web-v1-a, port: 8080, weight: 3}\n"),
     R"(demo.yaml:8: service "demo/web": spec.endpoints[1]: duplicate of spec.endpoints[0] (workload "web-v1-a", port 8080))"},
    {"EndpointWeightNotInteger",
     service(std::string(kVip) +
             "  endpoints:\n    - {workload: web-v1-a, port: 8080, weight: heavy}\n"),
     R"(demo.yaml:7: service "demo/web": spec.endpoints[0].weight: must be an integer, got "heavy")"},
    {"EndpointWeightOnlyOneAndZero",
     service(std::string(kVip) +
             "  endpoints:\n    - {workload: web-v1-a, port: 8080, weight: 0}\n"),
     R"(demo.yaml:6: service "demo/web": spec.endpoints: every endpoint has weight 0; at least one must be positive)"},
    {"TooManyEndpointsForTheMap", service(std::string(kVip) + endpoints(70)),
     R"(demo.yaml:6: service "demo/web": spec.endpoints: at most 64 endpoints per service, got 70)"},
    {"EndpointWeightsAllZero",
     service(std::string(kVip) + "  endpoints:\n    - {workload: web-v1-a, port: 8080, weight: 0}\n"
                                 "    - {workload: web-v1-a, port: 8081, weight: 0}\n"),
     R"(demo.yaml:6: service "demo/web": spec.endpoints: every endpoint has weight 0; at least one must be positive)"},
    {"SubsetsNotList", service(std::string(kVip) + "  subsets: {v1: 80}\n"),
     R"(demo.yaml:6: service "demo/web": spec.subsets: must be a list, got a map)"},
    {"SubsetNameBad",
     service(std::string(kVip) +
             "  subsets:\n    - {name: V1, labels: {version: v1}, weight: 1}\n"),
     R"(demo.yaml:7: service "demo/web": spec.subsets[0].name: "V1" is not a DNS-1123 label (lowercase letters, digits and '-', starting and ending with a letter or digit, at most 63 characters))"},
    {"SubsetNameMissing",
     service(std::string(kVip) + "  subsets:\n    - {labels: {version: v1}, weight: 1}\n"),
     R"(demo.yaml:7: service "demo/web": spec.subsets[0].name: required)"},
    {"SubsetNameDuplicate",
     service(std::string(kVip) + "  subsets:\n    - {name: v1, labels: {version: v1}, weight: 1}\n"
                                 "    - {name: v1, labels: {version: v2}, weight: 1}\n"),
     R"(demo.yaml:8: service "demo/web": spec.subsets[1].name: duplicate subset "v1" (also spec.subsets[0]))"},
    {"SubsetLabelsMissing",
     service(std::string(kVip) + "  subsets:\n    - {name: v1, weight: 1}\n"),
     R"(demo.yaml:7: service "demo/web": spec.subsets[0].labels: required)"},
    {"SubsetLabelsEmpty",
     service(std::string(kVip) + "  subsets:\n    - {name: v1, labels: {}, weight: 1}\n"),
     R"(demo.yaml:7: service "demo/web": spec.subsets[0].labels: at least one label is required)"},
    {"SubsetWeightTooBig",
     service(std::string(kVip) +
             "  subsets:\n    - {name: v1, labels: {version: v1}, weight: 10001}\n"),
     R"(demo.yaml:7: service "demo/web": spec.subsets[0].weight: must be between 0 and 10000, got 10001)"},
    {"SubsetWeightsAllZero",
     service(std::string(kVip) + "  subsets:\n    - {name: v1, labels: {version: v1}, weight: 0}\n"
                                 "    - {name: v2, labels: {version: v2}, weight: 0}\n"),
     R"(demo.yaml:6: service "demo/web": spec.subsets: every subset has weight 0; at least one must be positive)"},
    {"SubsetUnknownField",
     service(std::string(kVip) +
             "  subsets:\n    - {name: v1, labels: {version: v1}, selector: {}}\n"),
     R"(demo.yaml:7: service "demo/web": spec.subsets[0].selector: unknown field)"},
};
INSTANTIATE_TEST_SUITE_P(Service, LoadErrorTest, testing::ValuesIn(kServiceCases),
                         [](const auto &info) { return info.param.name; });

// Inputs at the edges of the rules, each of which must load without an error.
struct GoodCase {
  std::string name;
  std::string yaml;
};

void PrintTo(const GoodCase &c, std::ostream *os) {
  *os << c.name;
}

class LoadGoodTest : public testing::TestWithParam<GoodCase> {};

TEST_P(LoadGoodTest, LoadsWithoutErrors) {
  EXPECT_EQ(errors_of(GetParam().yaml), Errors{}) << GetParam().yaml;
}

const GoodCase kGoodCases[] = {
    {"SixtyFourEndpoints", service(std::string(kVip) + endpoints(64))},
    {"VipIpv6Compressed", service("  vips: [{address: \"fd00:96::a\", port: 80}]\n")},
    {"VipIpv6Unquoted", service("  vips: [{address: fd00:96::a, port: 80}]\n")},
    {"VipIpv6Full",
     service("  vips: [{address: \"fd00:0096:0000:0000:0000:0000:0000:000a\", port: 80}]\n")},
    {"VipIpv6Uppercase", service("  vips: [{address: \"FD00:96::A\", port: 80}]\n")},
    {"VipIpv6Loopback", service("  vips: [{address: \"::1\", port: 80}]\n")},
    {"VipIpv6EmbeddedIpv4NotMapped",
     service("  vips: [{address: \"64:ff9b::10.96.0.10\", port: 80}]\n")},
    {"VipUdp", service("  vips: [{address: 10.96.0.53, port: 53, protocol: UDP}]\n")},
    {"VipUdpIpv6", service("  vips: [{address: \"fd00:96::53\", port: 53, protocol: UDP}]\n")},
    {"VipSameAddressAndPortTcpAndUdp",
     service("  vips:\n    - {address: 10.96.0.53, port: 53, protocol: UDP}\n"
             "    - {address: 10.96.0.53, port: 53, protocol: TCP}\n")},
    {"VipIpv6SamePortOtherService", service("  vips: [{address: \"fd00:96::a\", port: 80}]\n") +
                                        api_service("[{address: \"fd00:96::b\", port: 80}]")},
    {"PolicyRandom", service(std::string(kVip) + "  lbPolicy: RANDOM\n")},
    {"PolicyRoundRobin", service(std::string(kVip) + "  lbPolicy: ROUND_ROBIN\n")},
    {"PolicyLeastConnections", service(std::string(kVip) + "  lbPolicy: LEAST_CONNECTIONS\n")},
    {"PolicyMaglevDefaultTable", service(std::string(kVip) + "  lbPolicy: MAGLEV\n")},
    {"PolicyMaglevEmptySettings",
     service(std::string(kVip) + "  lbPolicy: MAGLEV\n  maglev: {}\n")},
    {"MaglevSmallestTable",
     service(std::string(kVip) + "  lbPolicy: MAGLEV\n  maglev: {tableSize: 13}\n" +
             endpoints(13))},
    {"MaglevLargestTable",
     service(std::string(kVip) + "  lbPolicy: MAGLEV\n  maglev: {tableSize: 65521}\n" +
             endpoints(64))},
    {"MaglevTableOfEndpointsSize",
     service(std::string(kVip) + "  lbPolicy: MAGLEV\n  maglev: {tableSize: 61}\n" +
             endpoints(61))},
    {"WorkloadDualStack", workload("  node: n1\n  addresses: [10.78.1.10, \"fd00:78::10\"]\n")},
    {"WorkloadIpv6First", workload("  node: n1\n  addresses: [\"fd00:78::10\", 10.78.1.10]\n")},
    {"WorkloadIpv6Only", workload("  node: n1\n  addresses:\n    - fd00:78::10\n")},
    {"NodeIpv6",
     "apiVersion: sockmesh/v1\nkind: Node\nmetadata: {name: n1}\n"
     "spec: {addresses: [10.77.0.1, \"fd00:77::1\"]}\n"},
    {"DualStackVipsOneEndpointPerFamily",
     service("  vips:\n    - {address: 10.96.0.10, port: 80}\n"
             "    - {address: \"fd00:96::a\", port: 80}\n"
             "  endpoints:\n    - {workload: web-v1-a, port: 8080}\n"
             "    - {workload: web-v6, port: 8080}\n",
             kIpv6Workload)},
    {"DualStackVipsDualStackEndpoint", service("  vips:\n    - {address: 10.96.0.10, port: 80}\n"
                                               "    - {address: \"fd00:96::a\", port: 80}\n"
                                               "  endpoints: [{workload: web-ds, port: 8080}]\n",
                                               kDualStackWorkload)},
    {"Ipv6VipWithoutEndpoints", service("  vips: [{address: \"fd00:96::a\", port: 80}]\n")},
};
INSTANTIATE_TEST_SUITE_P(Edges, LoadGoodTest, testing::ValuesIn(kGoodCases),
                         [](const auto &info) { return info.param.name; });

TEST(LoadTest, AddressesAreKeptAsWritten) {
  LoadResult r = load_yaml_string(
      service("  vips:\n    - {address: \"FD00:96:0::A\", port: 53, protocol: UDP}\n"
              "  endpoints: [{workload: web-ds, port: 5353}]\n",
              "apiVersion: sockmesh/v1\nkind: Workload\n"
              "metadata: {name: web-ds, namespace: demo}\n"
              "spec: {node: n1, addresses: [\"fd00:78:0:0::11\", 10.78.1.11]}\n"),
      "demo.yaml");
  ASSERT_EQ(r.errors, Errors{});
  const v1::Service &web = r.snapshot.services(0);
  EXPECT_EQ(web.vips(0).address(), "FD00:96:0::A");
  EXPECT_EQ(web.vips(0).protocol(), v1::PROTOCOL_UDP);
  const v1::Workload &ds = r.snapshot.workloads(1);
  ASSERT_EQ(ds.addresses_size(), 2);
  EXPECT_EQ(ds.addresses(0), "fd00:78:0:0::11");
  EXPECT_EQ(ds.addresses(1), "10.78.1.11");
}

TEST(LoadTest, MaglevSettings) {
  auto web = [](std::string_view body) {
    LoadResult r = load_yaml_string(service(std::string(kVip) + std::string(body)), "demo.yaml");
    EXPECT_EQ(r.errors, Errors{});
    return r.ok() ? r.snapshot.services(0) : v1::Service{};
  };
  const v1::Service sized = web("  lbPolicy: MAGLEV\n  maglev: {tableSize: 1021}\n");
  EXPECT_EQ(sized.lb_policy(), v1::LB_POLICY_MAGLEV);
  EXPECT_EQ(sized.maglev().table_size(), 1021u);
  // Omitted, the table size stays 0 in the proto: the agent applies SM_MAGLEV_DEFAULT_SIZE.
  const v1::Service omitted = web("  lbPolicy: MAGLEV\n");
  EXPECT_FALSE(omitted.has_maglev());
  EXPECT_EQ(omitted.maglev().table_size(), 0u);
  const v1::Service empty = web("  lbPolicy: MAGLEV\n  maglev: {}\n");
  EXPECT_TRUE(empty.has_maglev());
  EXPECT_EQ(empty.maglev().table_size(), 0u);
  EXPECT_EQ(web("  lbPolicy: ROUND_ROBIN\n").lb_policy(), v1::LB_POLICY_ROUND_ROBIN);
}

TEST(LoadTest, MalformedYaml) {
  Errors errors = errors_of("apiVersion: sockmesh/v1\nkind: Node\nmetadata: {name: n1\nspec: {}\n");
  EXPECT_EQ(errors, Errors{"demo.yaml:4: malformed YAML: end of map flow not found"});
}

// yaml-cpp 0.7 alone loops forever on these (a document starting with a stray ',').
TEST(LoadTest, MalformedYamlThatStallsTheParser) {
  EXPECT_EQ(errors_of("\n,\n"), Errors{R"(demo.yaml:2: malformed YAML: unexpected ",")"});
  EXPECT_EQ(errors_of("apiVersion: sockmesh/v1\n---\n, a\nb: c/[1\n"),
            Errors{R"(demo.yaml:3: malformed YAML: unexpected ",")"});
}

TEST(LoadTest, ConsecutiveEmptyDocumentsAreFine) {
  EXPECT_EQ(errors_of("---\n---\n...\n---\n# nothing\n---\n"), Errors{});
}

TEST(LoadTest, EmptyInputIsAnEmptySnapshot) {
  LoadResult r = load_yaml_string("", "empty.yaml");
  EXPECT_TRUE(r.ok());
  EXPECT_EQ(r.snapshot.workloads_size() + r.snapshot.services_size() + r.snapshot.nodes_size(), 0);
}

TEST(LoadTest, ServiceWithoutEndpointsIsValid) {
  EXPECT_EQ(errors_of(service(kVip)), Errors{});
  EXPECT_EQ(errors_of(service(std::string(kVip) + "  endpoints: []\n")), Errors{});
}

TEST(LoadTest, GoodFileWithDefaults) {
  constexpr std::string_view kYaml = R"(---
# comment only document is empty
---
apiVersion: sockmesh/v1
kind: Workload
metadata:
  name: web-v1-a
  namespace: demo
  labels: {app: web, version: v1}
spec:
  serviceAccount: web
  node: n1
  addresses: [10.78.1.10]
  cgroupPath: pods/web-v1-a
  captured: false
---
apiVersion: sockmesh/v1
kind: Workload
metadata: {name: bare}
spec: {node: n2, addresses: [10.78.2.10]}
---
---
apiVersion: sockmesh/v1
kind: Service
metadata: {name: web, namespace: demo}
spec:
  vips:
    - {address: 10.96.0.10, port: 80}
    - {address: 10.96.0.10, port: 443, protocol: TCP}
  lbPolicy: RANDOM
  endpoints:
    - {workload: web-v1-a, port: 8080}
    - {workload: web-v1-a, port: 8081, weight: 0}
  subsets:
    - {name: v1, labels: {version: v1}, weight: 80}
    - {name: v2, labels: {version: v2}}
---
apiVersion: sockmesh/v1
kind: Service
metadata: {name: plain}
spec:
  vips: [{address: 10.96.0.11, port: 80}]
---
apiVersion: sockmesh/v1
kind: Node
metadata: {name: n1}
spec:
  addresses: [10.77.0.1]
)";
  LoadResult r = load_yaml_string(kYaml, "good.yaml");
  ASSERT_TRUE(r.ok()) << r.errors[0];
  const v1::Snapshot &s = r.snapshot;
  ASSERT_EQ(s.workloads_size(), 2);
  ASSERT_EQ(s.services_size(), 2);
  ASSERT_EQ(s.nodes_size(), 1);

  const v1::Workload &w = s.workloads(0);
  EXPECT_EQ(resource_id(w.metadata()), "demo/web-v1-a");
  EXPECT_EQ(w.metadata().labels().at("app"), "web");
  EXPECT_EQ(w.metadata().labels().at("version"), "v1");
  EXPECT_EQ(w.service_account(), "web");
  EXPECT_EQ(w.node(), "n1");
  ASSERT_EQ(w.addresses_size(), 1);
  EXPECT_EQ(w.addresses(0), "10.78.1.10");
  EXPECT_EQ(w.cgroup_path(), "pods/web-v1-a");
  EXPECT_FALSE(w.captured());

  const v1::Workload &bare = s.workloads(1);
  EXPECT_EQ(resource_id(bare.metadata()), "default/bare");
  EXPECT_TRUE(bare.metadata().labels().empty());
  EXPECT_EQ(bare.service_account(), "default");
  EXPECT_EQ(bare.cgroup_path(), "");
  EXPECT_TRUE(bare.captured());

  const v1::Service &web = s.services(0);
  EXPECT_EQ(resource_id(web.metadata()), "demo/web");
  ASSERT_EQ(web.vips_size(), 2);
  EXPECT_EQ(web.vips(0).address(), "10.96.0.10");
  EXPECT_EQ(web.vips(0).port(), 80u);
  EXPECT_EQ(web.vips(0).protocol(), v1::PROTOCOL_TCP);
  EXPECT_EQ(web.vips(1).port(), 443u);
  EXPECT_EQ(web.vips(1).protocol(), v1::PROTOCOL_TCP);
  EXPECT_EQ(web.lb_policy(), v1::LB_POLICY_RANDOM);
  ASSERT_EQ(web.endpoints_size(), 2);
  EXPECT_EQ(web.endpoints(0).workload(), "web-v1-a");
  EXPECT_EQ(web.endpoints(0).port(), 8080u);
  EXPECT_EQ(web.endpoints(0).weight(), 1u);
  EXPECT_EQ(web.endpoints(1).weight(), 0u);
  ASSERT_EQ(web.subsets_size(), 2);
  EXPECT_EQ(web.subsets(0).name(), "v1");
  EXPECT_EQ(web.subsets(0).labels().at("version"), "v1");
  EXPECT_EQ(web.subsets(0).weight(), 80u);
  EXPECT_EQ(web.subsets(1).weight(), 1u);

  const v1::Service &plain = s.services(1);
  EXPECT_EQ(resource_id(plain.metadata()), "default/plain");
  EXPECT_EQ(plain.lb_policy(), v1::LB_POLICY_RANDOM);
  EXPECT_EQ(plain.endpoints_size(), 0);

  EXPECT_EQ(resource_id(s.nodes(0).metadata()), "default/n1");
  ASSERT_EQ(s.nodes(0).addresses_size(), 1);
  EXPECT_EQ(s.nodes(0).addresses(0), "10.77.0.1");
}

TEST(LoadTest, CollectsEveryErrorInFileOrder) {
  constexpr std::string_view kYaml = R"(apiVersion: sockmesh/v1
kind: Service
metadata: {name: web, namespace: demo}
spec:
  vips:
    - {address: 10.96.0.300, port: 80}
  lbPolicy: FASTEST
  endpoints:
    - {workload: ghost, port: 8080}
    - {workload: web-v1-a, port: http}
---
apiVersion: sockmesh/v1
kind: Deployment
metadata: {name: x}
spec: {}
---
apiVersion: sockmesh/v1
kind: Workload
metadata: {name: web-v1-a, namespace: demo, labels: {version: v1}}
spec:
  node: n1
  addresses: [10.78.1.10, 10.78.1.11]
  color: blue
)";
  EXPECT_EQ(
      errors_of(kYaml),
      (Errors{
          R"(demo.yaml:6: service "demo/web": spec.vips[0].address: "10.96.0.300" is not an IPv4 or IPv6 address)",
          R"(demo.yaml:7: service "demo/web": spec.lbPolicy: unknown policy "FASTEST" (one of RANDOM, ROUND_ROBIN, LEAST_CONNECTIONS, MAGLEV))",
          R"(demo.yaml:9: service "demo/web": spec.endpoints[0].workload: unknown workload "ghost" in namespace "demo")",
          R"(demo.yaml:10: service "demo/web": spec.endpoints[1].port: must be an integer, got "http")",
          R"(demo.yaml:13: document 2: kind: unknown kind "Deployment" (one of Workload, Service, Node, AuthorizationPolicy))",
          R"(demo.yaml:22: workload "demo/web-v1-a": spec.addresses[1]: a workload has at most one IPv4 and one IPv6 address; "10.78.1.11" is its second IPv4 address)",
          R"(demo.yaml:23: workload "demo/web-v1-a": spec.color: unknown field)",
      }));
}

TEST(LoadTest, FileErrorsNameThePath) {
  LoadResult r = load_yaml_file("/nonexistent/sockmesh.yaml");
  EXPECT_EQ(r.errors, Errors{"/nonexistent/sockmesh.yaml: cannot read: No such file or directory"});
}

TEST(LoadTest, FileErrorsUseThePathAsSource) {
  const std::string path = testing::TempDir() + "/resources_test_bad.yaml";
  std::FILE *f = std::fopen(path.c_str(), "w");
  ASSERT_NE(f, nullptr);
  std::fputs("apiVersion: sockmesh/v1\nkind: Node\nmetadata: {name: n1}\nspec: {ip: x}\n", f);
  std::fclose(f);
  EXPECT_EQ(load_yaml_file(path).errors,
            Errors{path + R"(:4: node "default/n1": spec.ip: unknown field)"});
  std::remove(path.c_str());
}

TEST(LoadTest, DemoExampleLoads) {
  LoadResult r = load_yaml_file(SOCKMESH_SOURCE_DIR "/examples/demo-services.yaml");
  ASSERT_EQ(r.errors, Errors{});
  const v1::Snapshot &s = r.snapshot;
  EXPECT_EQ(s.nodes_size(), 2);
  ASSERT_EQ(s.workloads_size(), 4);
  ASSERT_EQ(s.services_size(), 3);
  const v1::Service &web = s.services(0);
  EXPECT_EQ(resource_id(web.metadata()), "demo/web");
  EXPECT_EQ(web.vips(0).address(), "10.96.0.10");
  EXPECT_EQ(web.vips(1).address(), "fd00:96::a");
  EXPECT_EQ(s.services(1).vips(0).protocol(), v1::PROTOCOL_UDP);
  EXPECT_EQ(s.services(1).lb_policy(), v1::LB_POLICY_ROUND_ROBIN);
  EXPECT_EQ(s.services(2).lb_policy(), v1::LB_POLICY_MAGLEV);
  EXPECT_EQ(web.vips(0).port(), 80u);
  EXPECT_EQ(web.endpoints(0).port(), 8080u);
  ASSERT_EQ(web.subsets_size(), 2);
  EXPECT_EQ(web.subsets(0).weight(), 80u);
  EXPECT_EQ(web.subsets(1).weight(), 20u);
}

TEST(LoadTest, DualStackUdpExampleLoads) {
  LoadResult r = load_yaml_file(SOCKMESH_SOURCE_DIR "/examples/dual-stack-udp.yaml");
  ASSERT_EQ(r.errors, Errors{});
  const v1::Snapshot &s = r.snapshot;
  ASSERT_EQ(s.services_size(), 2);
  const v1::Service &web = s.services(0);
  EXPECT_EQ(resource_id(web.metadata()), "demo/web");
  EXPECT_EQ(web.lb_policy(), v1::LB_POLICY_MAGLEV);
  EXPECT_EQ(web.maglev().table_size(), 1021u);
  ASSERT_EQ(web.vips_size(), 2);
  EXPECT_EQ(web.vips(1).address(), "fd00:96::20");
  const v1::Service &dns = s.services(1);
  EXPECT_EQ(resource_id(dns.metadata()), "demo/dns");
  EXPECT_EQ(dns.lb_policy(), v1::LB_POLICY_ROUND_ROBIN);
  ASSERT_GE(dns.vips_size(), 2);
  EXPECT_EQ(dns.vips(0).protocol(), v1::PROTOCOL_UDP);
  EXPECT_EQ(dns.vips(1).protocol(), v1::PROTOCOL_UDP);
}

// Found by test/fuzz/config_fuzz (corpus/config_fuzz/crash-multiline-scalar): messages quote what
// the file holds, and a YAML scalar may span lines or hold control characters. Each error stays one
// line, its control characters written as C escapes.
TEST(LoadTest, ErrorsQuotingControlCharactersStayOneLine) {
  EXPECT_EQ(errors_of("L\n\n}"), Errors{R"(demo.yaml:1: document 1: must be a map, got "L\n}")"});
  EXPECT_EQ(
      errors_of("apiVersion: sockmesh/v1\nkind: Node\n"
                "metadata: {name: n1, \"a\\tb\\u001b\": x}\nspec: {addresses: [10.77.0.1]}\n"),
      Errors{R"(demo.yaml:3: node "default/n1": metadata.a\tb\x1b: unknown field)"});
  EXPECT_EQ(validate([] {
              v1::Snapshot s;
              auto *node = s.add_nodes();
              node->mutable_metadata()->set_name("n1\r\nx");
              node->mutable_metadata()->set_namespace_("default");
              node->add_addresses("10.77.0.1");
              return s;
            }()),
            Errors{R"(node "default/n1\r\nx": metadata.name: "n1\r\nx" is not a DNS-1123 label )"
                   R"((lowercase letters, digits and '-', starting and ending with a letter or )"
                   R"(digit, at most 63 characters))"});
}

// Found by test/fuzz/translate_fuzz: bytes that are not UTF-8 reached the resources' protobuf
// strings (a label value, a cgroupPath), which then failed to parse where they were sent. A file
// must be UTF-8 (or UTF-16/32, which yaml-cpp converts); the first bad byte is named.
TEST(LoadTest, TextThatIsNotUtf8IsMalformed) {
  const std::string node = "apiVersion: sockmesh/v1\nkind: Node\n";
  EXPECT_EQ(errors_of(node + "metadata: {name: n1, labels: {a: \"\xff\"}}\n"),
            Errors{"demo.yaml:3: malformed YAML: not UTF-8 (byte 0xff at column 35)"});
  // Overlong, a surrogate, beyond U+10FFFF, cut short at the end.
  EXPECT_EQ(errors_of("\xc0\x80"),
            Errors{"demo.yaml:1: malformed YAML: not UTF-8 (byte 0xc0 at column 1)"});
  EXPECT_EQ(errors_of("a: \xed\xa0\x80"),
            Errors{"demo.yaml:1: malformed YAML: not UTF-8 (byte 0xed at column 4)"});
  EXPECT_EQ(errors_of("a: \xf4\x90\x80\x80"),
            Errors{"demo.yaml:1: malformed YAML: not UTF-8 (byte 0xf4 at column 4)"});
  EXPECT_EQ(errors_of("a:\n  b: \xe2\x82"),
            Errors{"demo.yaml:2: malformed YAML: not UTF-8 (byte 0xe2 at column 6)"});
  // UTF-8 itself is welcome, in comments and values.
  EXPECT_EQ(
      errors_of(node +
                "# caf\xc3\xa9 \xf0\x9f\x90\x9d\nmetadata: {name: n1, labels: {a: \"\xc3\xa9\"}}\n"
                "spec: {addresses: [10.77.0.1]}\n"),
      Errors{});
}

TEST(NamesTest, EnumNames) {
  EXPECT_EQ(lb_policy_name(v1::LB_POLICY_RANDOM), "RANDOM");
  EXPECT_EQ(lb_policy_name(v1::LB_POLICY_ROUND_ROBIN), "ROUND_ROBIN");
  EXPECT_EQ(lb_policy_name(v1::LB_POLICY_LEAST_CONNECTIONS), "LEAST_CONNECTIONS");
  EXPECT_EQ(lb_policy_name(v1::LB_POLICY_MAGLEV), "MAGLEV");
  EXPECT_EQ(protocol_name(v1::PROTOCOL_TCP), "TCP");
  EXPECT_EQ(protocol_name(v1::PROTOCOL_UDP), "UDP");
}

}  // namespace
}  // namespace sockmesh::resources
