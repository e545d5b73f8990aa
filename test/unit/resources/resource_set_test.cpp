// Snapshot <-> named, versioned resources: names, content versions, round trip.
#include "sockmesh/resources/resource_set.h"

#include <gtest/gtest.h>

#include <string>

#include "sockmesh/resources/load.h"

namespace sockmesh::resources {
namespace {

constexpr const char *kYaml = R"(apiVersion: sockmesh/v1
kind: Workload
metadata: {name: web-v1-a, namespace: demo, labels: {version: v1, app: web}}
spec: {node: n1, addresses: [10.78.1.10]}
---
apiVersion: sockmesh/v1
kind: Service
metadata: {name: web, namespace: demo}
spec:
  vips: [{address: 10.96.0.10, port: 80}]
  endpoints: [{workload: web-v1-a, port: 8080}]
---
apiVersion: sockmesh/v1
kind: Node
metadata: {name: n1}
spec: {addresses: [10.77.0.1]}
)";

v1::Snapshot demo_snapshot() {
  auto loaded = load_yaml_string(kYaml, "demo.yaml");
  EXPECT_TRUE(loaded.ok()) << (loaded.errors.empty() ? "" : loaded.errors[0]);
  return loaded.snapshot;
}

TEST(ResourceSet, NamesAreKindNamespaceName) {
  auto resources = to_resources(demo_snapshot());
  ASSERT_EQ(resources.size(), 3u);
  EXPECT_TRUE(resources.contains("workload/demo/web-v1-a"));
  EXPECT_TRUE(resources.contains("service/demo/web"));
  EXPECT_TRUE(resources.contains("node/default/n1"));
  for (const auto &[name, resource] : resources) {
    EXPECT_EQ(resource.name(), name);
    EXPECT_EQ(resource_name(resource), name);
    EXPECT_EQ(resource.version(), content_version(resource));
    EXPECT_EQ(resource.version().size(), 16u);
  }
  EXPECT_EQ(resource_name(v1::Resource()), "");
}

TEST(ResourceSet, VersionIsStableAndIgnoresNameAndVersionFields) {
  auto a = to_resources(demo_snapshot());
  auto b = to_resources(demo_snapshot());
  for (const auto &[name, resource] : a) EXPECT_EQ(resource.version(), b.at(name).version());
  v1::Resource renamed = a.at("service/demo/web");
  renamed.set_name("something else");
  renamed.set_version("v9");
  EXPECT_EQ(content_version(renamed), a.at("service/demo/web").version());
}

TEST(ResourceSet, VersionChangesWithContent) {
  v1::Resource service = to_resources(demo_snapshot()).at("service/demo/web");
  const std::string before = content_version(service);
  service.mutable_service()->mutable_endpoints(0)->set_weight(5);
  EXPECT_NE(content_version(service), before);
  v1::Resource workload = to_resources(demo_snapshot()).at("workload/demo/web-v1-a");
  const std::string labels_before = content_version(workload);
  (*workload.mutable_workload()->mutable_metadata()->mutable_labels())["track"] = "canary";
  EXPECT_NE(content_version(workload), labels_before);
}

TEST(ResourceSet, MapOrderDoesNotChangeTheVersion) {
  v1::Resource a;
  auto &la = *a.mutable_workload()->mutable_metadata()->mutable_labels();
  la["a"] = "1";
  la["b"] = "2";
  la["c"] = "3";
  v1::Resource b;
  auto &lb = *b.mutable_workload()->mutable_metadata()->mutable_labels();
  lb["c"] = "3";
  lb["b"] = "2";
  lb["a"] = "1";
  EXPECT_EQ(content_version(a), content_version(b));
}

TEST(ResourceSet, RoundTripIsSortedAndLossless) {
  v1::Snapshot snapshot = demo_snapshot();
  auto *second = snapshot.add_workloads();
  *second = snapshot.workloads(0);
  second->mutable_metadata()->set_name("another");
  second->clear_addresses();
  second->add_addresses("10.78.1.11");
  v1::Snapshot back = to_snapshot(to_resources(snapshot));
  ASSERT_EQ(back.workloads_size(), 2);
  EXPECT_EQ(back.workloads(0).metadata().name(), "another");
  EXPECT_EQ(back.workloads(1).metadata().name(), "web-v1-a");
  EXPECT_EQ(back.services_size(), 1);
  EXPECT_EQ(back.nodes_size(), 1);
  auto again = to_resources(back);
  for (const auto &[name, resource] : to_resources(snapshot)) {
    EXPECT_EQ(again.at(name).version(), resource.version()) << name;
  }
}

}  // namespace
}  // namespace sockmesh::resources
