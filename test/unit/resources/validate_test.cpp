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

TEST(ValidateTest, EmptySnapshotIsValid) {
  EXPECT_EQ(validate(v1::Snapshot{}), Errors{});
}

TEST(ValidateTest, ErrorsHaveNoLocation) {
  v1::Snapshot s = base();
  s.mutable_services(0)->mutable_endpoints(0)->set_weight(20000);
  EXPECT_EQ(
      validate(s),
      Errors{
          R"(service "demo/web": spec.endpoints[0].weight: must be between 0 and 10000, got 20000)"});
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
  EXPECT_EQ(
      validate(s),
      Errors{
          R"(service "demo/web": metadata.name: duplicate service "demo/web" (first defined at services[0]))"});
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
  EXPECT_EQ(
      validate(s),
      Errors{
          R"(service "demo/web": spec.endpoints[0].workload: unknown workload "web-v1-a" in namespace "demo")"});
}

// A partial snapshot (a change for meshcp's store) may name workloads it does not hold; every rule
// about what it does hold still applies.
TEST(ValidateTest, PartialScopeLeavesReferencesToTheStore) {
  v1::Snapshot s = base();
  s.clear_workloads();
  EXPECT_EQ(validate(s, Scope::kPartial), Errors{});
  EXPECT_EQ(
      validate(s),
      Errors{
          R"(service "demo/web": spec.endpoints[0].workload: unknown workload "web-v1-a" in namespace "demo")"});
  s.mutable_services(0)->mutable_endpoints(0)->set_port(0);
  *s.add_services() = s.services(0);
  s.mutable_services(1)->mutable_metadata()->set_name("api");
  EXPECT_EQ(
      validate(s, Scope::kPartial),
      (Errors{
          R"(service "demo/web": spec.endpoints[0].port: must be between 1 and 65535, got 0)",
          R"(service "demo/api": spec.vips[0]: 10.96.0.10:80/TCP is already used by service "demo/web")",
          R"(service "demo/api": spec.endpoints[0].port: must be between 1 and 65535, got 0)",
      }));
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

TEST(ValidateTest, SupportedPolicies) {
  for (v1::LbPolicy policy : {v1::LB_POLICY_RANDOM, v1::LB_POLICY_ROUND_ROBIN,
                              v1::LB_POLICY_LEAST_CONNECTIONS, v1::LB_POLICY_MAGLEV}) {
    v1::Snapshot s = base();
    s.mutable_services(0)->set_lb_policy(policy);
    EXPECT_EQ(validate(s), Errors{}) << v1::LbPolicy_Name(policy);
  }
}

TEST(ValidateTest, MaglevTableSize) {
  struct Row {
    v1::LbPolicy policy;
    uint32_t table_size;
    int endpoints;
    Errors errors;
  };
  const Row rows[] = {
      {v1::LB_POLICY_MAGLEV, 0, 1, {}},  // 0: the agent applies SM_MAGLEV_DEFAULT_SIZE
      {v1::LB_POLICY_MAGLEV, SM_MAGLEV_MIN_SIZE, 13, {}},
      {v1::LB_POLICY_MAGLEV, SM_MAGLEV_DEFAULT_SIZE, 64, {}},
      {v1::LB_POLICY_MAGLEV, SM_MAGLEV_MAX_SIZE, 64, {}},
      {v1::LB_POLICY_MAGLEV,
       4096,
       1,
       {R"(service "demo/web": spec.maglev.tableSize: must be a prime between 13 and 65521, got 4096 (the nearest primes are 4093 and 4099))"}},
      {v1::LB_POLICY_MAGLEV,
       65537,
       1,
       {R"(service "demo/web": spec.maglev.tableSize: must be a prime between 13 and 65521, got 65537)"}},
      {v1::LB_POLICY_MAGLEV,
       2,
       1,
       {R"(service "demo/web": spec.maglev.tableSize: must be a prime between 13 and 65521, got 2)"}},
      {v1::LB_POLICY_MAGLEV,
       17,
       18,
       {R"(service "demo/web": spec.maglev.tableSize: must be at least the number of endpoints (18), got 17; for even shares use a prime of at least 100 × 18, e.g. 1801)"}},
      {v1::LB_POLICY_UNSPECIFIED,
       0,
       1,
       {R"(service "demo/web": spec.maglev: only allowed with lbPolicy MAGLEV; this service's is RANDOM)"}},
      {v1::LB_POLICY_ROUND_ROBIN,
       4093,
       1,
       {R"(service "demo/web": spec.maglev: only allowed with lbPolicy MAGLEV; this service's is ROUND_ROBIN)"}},
  };
  for (const Row &row : rows) {
    v1::Snapshot s = base();
    v1::Service *svc = s.mutable_services(0);
    svc->set_lb_policy(row.policy);
    svc->mutable_maglev()->set_table_size(row.table_size);
    for (int i = 1; i < row.endpoints; ++i) {
      *svc->add_endpoints() = svc->endpoints(0);
      svc->mutable_endpoints(i)->set_port(8080 + uint32_t(i));
    }
    EXPECT_EQ(validate(s), row.errors) << "table_size " << row.table_size;
  }
}

// The figures docs/config.md gives for the kernel memory of a Maglev VIP port.
TEST(ValidateTest, MaglevMemoryFiguresInTheDocs) {
  EXPECT_EQ(SM_MAGLEV_CHUNK, 1624u);
  auto bytes_per_vip_port = [](uint64_t table_size) {
    return SM_MAGLEV_CHUNK * (1 + (table_size + SM_MAGLEV_CHUNK - 1) / SM_MAGLEV_CHUNK);
  };
  EXPECT_EQ(bytes_per_vip_port(SM_MAGLEV_MIN_SIZE), 3248u);
  EXPECT_EQ(bytes_per_vip_port(SM_MAGLEV_DEFAULT_SIZE), 6496u);
  EXPECT_EQ(bytes_per_vip_port(SM_MAGLEV_MAX_SIZE), 68208u);
}

TEST(ValidateTest, Ipv6VipsCompareAsAddresses) {
  v1::Snapshot s = base();
  s.mutable_workloads(0)->add_addresses("fd00:78::10");
  v1::Service *web = s.mutable_services(0);
  web->mutable_vips(0)->set_address("fd00:96::a");
  v1::Service *api = s.add_services();
  *api = *web;
  api->mutable_metadata()->set_name("api");
  api->mutable_vips(0)->set_address("fd00:96:0:0:0:0:0:a");
  EXPECT_EQ(
      validate(s),
      Errors{
          R"(service "demo/api": spec.vips[0]: [fd00:96:0:0:0:0:0:a]:80/TCP is already used by service "demo/web" (written fd00:96::a there))"});
  api->mutable_vips(0)->set_protocol(v1::PROTOCOL_UDP);
  EXPECT_EQ(validate(s), Errors{});
}

TEST(ValidateTest, VipFamilyNeedsAnEndpointOfThatFamily) {
  v1::Snapshot s = base();
  v1::VirtualAddress *v6 = s.mutable_services(0)->add_vips();
  v6->set_address("fd00:96::a");
  v6->set_port(80);
  EXPECT_EQ(
      validate(s),
      Errors{
          R"(service "demo/web": spec.vips[1].address: no endpoint's workload has an IPv6 address, so "fd00:96::a" could serve nothing)"});
  s.mutable_workloads(0)->add_addresses("fd00:78::10");
  EXPECT_EQ(validate(s), Errors{});
}

TEST(ValidateTest, EndpointPortZero) {
  v1::Snapshot s = base();
  s.mutable_services(0)->mutable_endpoints(0)->set_port(0);
  EXPECT_EQ(
      validate(s),
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
  EXPECT_EQ(
      validate(s),
      Errors{
          R"(service "demo/web": spec.vips[16384]: too many VIPs: at most 16384 in the mesh, got 16387)"});
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
  EXPECT_EQ(validate(s), Errors{});
}

}  // namespace
}  // namespace sockmesh::resources
