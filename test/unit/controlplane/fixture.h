// Shared by the control-plane tests: a temp state dir and resources built from YAML.
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <string>
#include <string_view>

#include "sockmesh/resources/load.h"
#include "sockmesh/resources/resource_set.h"
#include "sockmesh/v1/controlplane.pb.h"

namespace sockmesh::controlplane::testing {

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/meshcp-test-XXXXXX";
    path_ = ::mkdtemp(tmpl);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  const std::string &path() const { return path_; }

 private:
  std::string path_;
};

// Resources of a YAML text that must load (the loader checks it whole, so a reference to a
// workload that is not in the text would not load: use raw protos for those).
inline v1::ApplyRequest request_of(std::string_view yaml) {
  auto loaded = resources::load_yaml_string(yaml, "test.yaml");
  EXPECT_TRUE(loaded.ok()) << (loaded.errors.empty() ? "" : loaded.errors.front());
  v1::ApplyRequest request;
  for (auto &[name, resource] : resources::to_resources(loaded.snapshot))
    *request.add_resources() = resource;
  return request;
}

// n1 runs web-a and db; n2 runs web-b and tool (no service names tool); service web -> web-a,
// web-b; service db -> db.
constexpr std::string_view kMesh = R"(apiVersion: sockmesh/v1
kind: Workload
metadata: {name: web-a, namespace: demo, labels: {version: v1}}
spec: {node: n1, addresses: [10.78.1.10]}
---
apiVersion: sockmesh/v1
kind: Workload
metadata: {name: web-b, namespace: demo, labels: {version: v2}}
spec: {node: n2, addresses: [10.78.2.10]}
---
apiVersion: sockmesh/v1
kind: Workload
metadata: {name: db, namespace: demo}
spec: {node: n1, addresses: [10.78.1.20]}
---
apiVersion: sockmesh/v1
kind: Workload
metadata: {name: tool, namespace: demo}
spec: {node: n2, addresses: [10.78.2.30]}
---
apiVersion: sockmesh/v1
kind: Service
metadata: {name: web, namespace: demo}
spec:
  vips: [{address: 10.96.0.10, port: 80}]
  endpoints: [{workload: web-a, port: 8080}, {workload: web-b, port: 8080}]
---
apiVersion: sockmesh/v1
kind: Service
metadata: {name: db, namespace: demo}
spec:
  vips: [{address: 10.96.0.20, port: 5432}]
  endpoints: [{workload: db, port: 5432}]
---
apiVersion: sockmesh/v1
kind: Node
metadata: {name: n1}
spec: {addresses: [10.77.0.1]}
---
apiVersion: sockmesh/v1
kind: Node
metadata: {name: n2}
spec: {addresses: [10.77.0.2]}
)";

// The resource of `request` with this name.
inline v1::Resource resource_of(const v1::ApplyRequest &request, const std::string &name) {
  for (const auto &r : request.resources())
    if (r.name() == name) return r;
  ADD_FAILURE() << "no " << name;
  return {};
}

}  // namespace sockmesh::controlplane::testing
