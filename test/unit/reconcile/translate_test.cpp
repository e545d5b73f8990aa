// Resources -> kernel weights: subsets split by their weights, endpoints within a subset by theirs.
#include "reconcile/translate.h"
#include "sockmesh/lb_maps.h"

#include <gtest/gtest.h>
#include <netinet/in.h>

#include "sockmesh/v1/resources.pb.h"

namespace sockmesh::reconcile {
namespace {

void add_workload(v1::Snapshot &snapshot, const std::string &name, const std::string &ip,
                  const std::string &version) {
  auto *w = snapshot.add_workloads();
  w->mutable_metadata()->set_name(name);
  w->mutable_metadata()->set_namespace_("demo");
  (*w->mutable_metadata()->mutable_labels())["version"] = version;
  w->set_node("n1");
  w->add_addresses(ip);
}

v1::Service *add_service(v1::Snapshot &snapshot) {
  auto *s = snapshot.add_services();
  s->mutable_metadata()->set_name("web");
  s->mutable_metadata()->set_namespace_("demo");
  auto *vip = s->add_vips();
  vip->set_address("10.96.0.10");
  vip->set_port(80);
  vip->set_protocol(v1::PROTOCOL_TCP);
  return s;
}

void add_endpoint(v1::Service *service, const std::string &workload, uint32_t weight) {
  auto *e = service->add_endpoints();
  e->set_workload(workload);
  e->set_port(8080);
  e->set_weight(weight);
}

void add_subset(v1::Service *service, const std::string &version, uint32_t weight) {
  auto *s = service->add_subsets();
  s->set_name(version);
  (*s->mutable_labels())["version"] = version;
  s->set_weight(weight);
}

const ServiceKey kVip{parse_ip("10.96.0.10"), 80, IPPROTO_TCP};

TEST(Translate, WithoutSubsetsEndpointWeightsAreKernelWeights) {
  v1::Snapshot snapshot;
  add_workload(snapshot, "b", "10.78.1.11", "v1");
  add_workload(snapshot, "a", "10.78.1.10", "v1");
  auto *service = add_service(snapshot);
  add_endpoint(service, "b", 3);
  add_endpoint(service, "a", 1);
  auto state = translate(snapshot);
  ASSERT_EQ(state.size(), 1u);
  const auto &backends = state.at(kVip).backends;
  ASSERT_EQ(backends.size(), 2u);
  EXPECT_EQ(backends[0].workload, "demo/a");  // stable order: by workload name
  EXPECT_EQ(backends[0].weight, 1u);
  EXPECT_EQ(format_ip(backends[0].addr), "10.78.1.10");
  EXPECT_EQ(backends[1].weight, 3u);
  EXPECT_EQ(backends[1].port, 8080);
}

TEST(Translate, CanarySplitIsEightyTwentyAcrossThreeReplicas) {
  v1::Snapshot snapshot;
  add_workload(snapshot, "web-v1-a", "10.78.1.10", "v1");
  add_workload(snapshot, "web-v1-b", "10.78.2.10", "v1");
  add_workload(snapshot, "web-v2-a", "10.78.2.11", "v2");
  auto *service = add_service(snapshot);
  add_endpoint(service, "web-v1-a", 1);
  add_endpoint(service, "web-v1-b", 1);
  add_endpoint(service, "web-v2-a", 1);
  add_subset(service, "v1", 80);
  add_subset(service, "v2", 20);
  auto state = translate(snapshot);
  const auto &backends = state.at(kVip).backends;
  ASSERT_EQ(backends.size(), 3u);
  uint64_t total = 0;
  for (const auto &b : backends) total += b.weight;
  EXPECT_NEAR(double(backends[0].weight) / total, 0.4, 1e-6);
  EXPECT_NEAR(double(backends[1].weight) / total, 0.4, 1e-6);
  EXPECT_NEAR(double(backends[2].weight) / total, 0.2, 1e-6);
  EXPECT_EQ(backends[0].subset, "v1");
  EXPECT_EQ(backends[2].subset, "v2");
}

TEST(Translate, SubsetWithoutEndpointsPassesItsShareOn) {
  v1::Snapshot snapshot;
  add_workload(snapshot, "web-v1-a", "10.78.1.10", "v1");
  add_workload(snapshot, "web-v1-b", "10.78.2.10", "v1");
  auto *service = add_service(snapshot);
  add_endpoint(service, "web-v1-a", 1);
  add_endpoint(service, "web-v1-b", 1);
  add_subset(service, "v1", 80);
  add_subset(service, "v2", 20);
  auto state = translate(snapshot);
  const auto &backends = state.at(kVip).backends;
  ASSERT_EQ(backends.size(), 2u);
  EXPECT_EQ(backends[0].weight, backends[1].weight);
  EXPECT_EQ(uint64_t(backends[0].weight) * 2, kSplitScale);
}

TEST(Translate, EndpointInNoSubsetReceivesNothing) {
  v1::Snapshot snapshot;
  add_workload(snapshot, "web-v1-a", "10.78.1.10", "v1");
  add_workload(snapshot, "web-v3-a", "10.78.1.12", "v3");
  auto *service = add_service(snapshot);
  add_endpoint(service, "web-v1-a", 1);
  add_endpoint(service, "web-v3-a", 1);
  add_subset(service, "v1", 100);
  auto state = translate(snapshot);
  const auto &backends = state.at(kVip).backends;
  ASSERT_EQ(backends.size(), 2u);
  EXPECT_GT(backends[0].weight, 0u);
  EXPECT_EQ(backends[1].weight, 0u);
  EXPECT_EQ(backends[1].subset, "");
}

TEST(Translate, EveryVipOfAServiceGetsTheSameBackends) {
  v1::Snapshot snapshot;
  add_workload(snapshot, "a", "10.78.1.10", "v1");
  auto *service = add_service(snapshot);
  auto *second = service->add_vips();
  second->set_address("10.96.0.11");
  second->set_port(8080);
  add_endpoint(service, "a", 1);
  auto state = translate(snapshot);
  ASSERT_EQ(state.size(), 2u);
  EXPECT_EQ(state.begin()->second, std::next(state.begin())->second);
}

TEST(Translate, DualStackVipsBalanceToAddressesOfTheirFamily) {
  v1::Snapshot snapshot;
  add_workload(snapshot, "a", "10.78.1.10", "v1");
  snapshot.mutable_workloads(0)->add_addresses("fd00:78:1::10");
  add_workload(snapshot, "b", "10.78.1.11", "v1");  // IPv4 only
  auto *service = add_service(snapshot);
  auto *v6 = service->add_vips();
  v6->set_address("fd00:96::a");
  v6->set_port(80);
  add_endpoint(service, "a", 1);
  add_endpoint(service, "b", 1);
  auto state = translate(snapshot);
  ASSERT_EQ(state.size(), 2u);
  EXPECT_EQ(state.at(kVip).backends.size(), 2u);
  const auto &v6_backends = state.at({parse_ip("fd00:96::a"), 80, IPPROTO_TCP}).backends;
  ASSERT_EQ(v6_backends.size(), 1u);
  EXPECT_EQ(format_ip(v6_backends[0].addr), "fd00:78:1::10");
  EXPECT_EQ(v6_backends[0].workload, "demo/a");
}

TEST(Translate, PolicyAndMaglevTableSize) {
  v1::Snapshot snapshot;
  add_workload(snapshot, "a", "10.78.1.10", "v1");
  auto *service = add_service(snapshot);
  add_endpoint(service, "a", 1);
  service->set_lb_policy(v1::LB_POLICY_MAGLEV);
  EXPECT_EQ(translate(snapshot).at(kVip).maglev_size, uint32_t(SM_MAGLEV_DEFAULT_SIZE));
  service->mutable_maglev()->set_table_size(65521);
  EXPECT_EQ(translate(snapshot).at(kVip).maglev_size, 65521u);
  EXPECT_EQ(translate(snapshot).at(kVip).policy, uint32_t(SM_LB_MAGLEV));
  service->set_lb_policy(v1::LB_POLICY_ROUND_ROBIN);
  EXPECT_EQ(translate(snapshot).at(kVip).policy, uint32_t(SM_LB_ROUND_ROBIN));
  EXPECT_EQ(translate(snapshot).at(kVip).maglev_size, 0u);
}

}  // namespace
}  // namespace sockmesh::reconcile
