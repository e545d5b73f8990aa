// validate() on snapshots that did not come from YAML: same rules, no locations.
#include "sockmesh/resources/validate.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "sockmesh/lb_maps.h"

namespace sockmesh::resources {
namespace {

using Errors = std::vector<std::string>;

void set_meta(v1::ObjectMeta *meta, const std::string &ns, const std::string &name) {
  meta->set_namespace_(ns);
  meta->set_name(name);
}

v1::Snapshot base() {
  v1::Snapshot s;
  v1::Workload *w = s.add_workloads();
  set_meta(w->mutable_metadata(), "demo", "web-v1-a");
  w->set_service_account("web");
  w->set_node("n1");
  w->add_addresses("10.78.1.10");
  v1::Service *svc = s.add_services();
  set_meta(svc->mutable_metadata(), "demo", "web");
  v1::VirtualAddress *vip = svc->add_vips();
  vip->set_address("10.96.0.10");
  vip->set_port(80);
  v1::Endpoint *ep = svc->add_endpoints();
  ep->set_workload("web-v1-a");
  ep->set_port(8080);
  ep->set_weight(1);
  return s;
}

TEST(ValidateTest, UnspecifiedEnumsAreTheDefaults) {
  // Protocol and policy left at 0 (UNSPECIFIED) mean TCP and RANDOM.
  EXPECT_EQ(validate(base()), Errors{});
}

TEST(ValidateTest, EmptySnapshotIsValid) { EXPECT_EQ(validate(v1::Snapshot{}), Errors{}); }

TEST(ValidateTest, ErrorsHaveNoLocation) {
  v1::Snapshot s = base();
  s.mutable_services(0)->mutable_endpoints(0)->set_weight(20000);
  EXPECT_EQ(validate(s),
            Errors{R"(service "demo/web": spec.endpoints[0].weight: must be between 0 and 10000, got 20000)"});
}

TEST(ValidateTest, RequiredFields) {
  v1::Snapshot s;
  s.add_workloads();
  EXPECT_EQ(validate(s), (Errors{
                             R"(workload "/": metadata.name: required)",
                             R"(workload "/": metadata.namespace: required)",
                             R"(workload "/": spec.serviceAccount: required)",
                             R"(workload "/": spec.node: required)",
                             R"(workload "/": spec.addresses: at least one address is required)",
                         }));
}

TEST(ValidateTest, DuplicateResourceNamesTheFirst) {
  v1::Snapshot s = base();
  *s.add_services() = s.services(0);
  s.mutable_services(1)->mutable_vips(0)->set_port(81);
  EXPECT_EQ(validate(s),
            Errors{R"(service "demo/web": metadata.name: duplicate service "demo/web" (first defined at services[0]))"});
}

TEST(ValidateTest, SameNameInOtherNamespaceOrKindIsFine) {
  v1::Snapshot s = base();
  v1::Service *other = s.add_services();
  *other = s.services(0);
  other->mutable_metadata()->set_namespace_("prod");
  other->mutable_vips(0)->set_port(81);
  other->clear_endpoints();
  set_meta(s.add_nodes()->mutable_metadata(), "demo", "web");
  EXPECT_EQ(validate(s), Errors{});
}

TEST(ValidateTest, EndpointWorkloadMustBeInServiceNamespace) {
  v1::Snapshot s = base();
  s.mutable_workloads(0)->mutable_metadata()->set_namespace_("prod");
  EXPECT_EQ(validate(s),
            Errors{R"(service "demo/web": spec.endpoints[0].workload: unknown workload "web-v1-a" in namespace "demo")"});
}

TEST(ValidateTest, OutOfRangeEnums) {
  v1::Snapshot s = base();
  s.mutable_services(0)->set_lb_policy(v1::LbPolicy(42));
  s.mutable_services(0)->mutable_vips(0)->set_protocol(v1::Protocol(7));
  EXPECT_EQ(validate(s), (Errors{
                             R"(service "demo/web": spec.vips[0].protocol: unknown protocol 7)",
                             R"(service "demo/web": spec.lbPolicy: unknown policy 42)",
                         }));
}

TEST(ValidateTest, PoliciesNotSupportedYet) {
  for (auto [policy, name] : {std::pair{v1::LB_POLICY_ROUND_ROBIN, "ROUND_ROBIN"},
                              std::pair{v1::LB_POLICY_LEAST_CONNECTIONS, "LEAST_CONNECTIONS"},
                              std::pair{v1::LB_POLICY_MAGLEV, "MAGLEV"}}) {
    v1::Snapshot s = base();
    s.mutable_services(0)->set_lb_policy(policy);
    EXPECT_EQ(validate(s), Errors{std::string(R"(service "demo/web": spec.lbPolicy: )") + name +
                                  " is not supported yet; RANDOM is"});
  }
}

TEST(ValidateTest, EndpointPortZero) {
  v1::Snapshot s = base();
  s.mutable_services(0)->mutable_endpoints(0)->set_port(0);
  EXPECT_EQ(validate(s),
            Errors{R"(service "demo/web": spec.endpoints[0].port: must be between 1 and 65535, got 0)"});
}

TEST(ValidateTest, TooManyVipsInTheMesh) {
  v1::Snapshot s = base();
  v1::Service *svc = s.mutable_services(0);
  svc->clear_vips();
  const int total = SM_MAX_SERVICES + 3;
  for (int i = 0; i < total; ++i) {
    v1::VirtualAddress *vip = svc->add_vips();
    vip->set_address("10.96." + std::to_string(i / 250) + "." + std::to_string(i % 250 + 1));
    vip->set_port(80);
  }
  EXPECT_EQ(validate(s),
            Errors{R"(service "demo/web": spec.vips[16384]: too many VIPs: at most 16384 in the mesh, got 16387)"});
  svc->mutable_vips()->RemoveLast();
  svc->mutable_vips()->RemoveLast();
  svc->mutable_vips()->RemoveLast();
  EXPECT_EQ(validate(s), Errors{});
}

TEST(ValidateTest, SameVipPortWithOtherProtocolIsNotADuplicate) {
  v1::Snapshot s = base();
  v1::VirtualAddress *udp = s.mutable_services(0)->add_vips();
  udp->set_address("10.96.0.10");
  udp->set_port(80);
  udp->set_protocol(v1::PROTOCOL_UDP);
  // Rejected for being UDP, not for clashing with the TCP VIP.
  EXPECT_EQ(validate(s),
            Errors{R"(service "demo/web": spec.vips[1].protocol: UDP services are not supported yet (M2); TCP is)"});
}

}  // namespace
}  // namespace sockmesh::resources
