// meshctl's control-plane commands end to end in-process: the real command line against a fake
// meshcp on a unix socket, with YAML files in a temporary directory.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>

#include "fake_controlplane.h"
#include "meshctl_harness.h"
#include "sockmesh/cli/format.h"
#include "sockmesh/cli/local_socket.h"
#include "sockmesh/cli/manifest.h"
#include "sockmesh/cli/meshctl.h"
#include "sockmesh/resources/load.h"

namespace sockmesh::cli {
namespace {

namespace fs = std::filesystem;
using testing::kNow;
using testing::MeshctlHarness;
using testing::Result;

// One workload before the change, its service balancing to it alone.
const char *const kBefore = R"(apiVersion: sockmesh/v1
kind: Workload
metadata: {name: web-v1-a, namespace: demo, labels: {app: web, version: v1}}
spec: {serviceAccount: web, node: n1, addresses: [10.78.1.10, "fd00:78:1::10"]}
---
apiVersion: sockmesh/v1
kind: Service
metadata: {name: web, namespace: demo}
spec:
  vips: [{address: 10.96.0.10, port: 80}]
  endpoints: [{workload: web-v1-a, port: 8080}]
)";

// The same workload, a new one, and the service split 80/20 across both.
const char *const kAfter = R"(apiVersion: sockmesh/v1
kind: Workload
metadata: {name: web-v1-a, namespace: demo, labels: {app: web, version: v1}}
spec: {serviceAccount: web, node: n1, addresses: [10.78.1.10, "fd00:78:1::10"]}
---
apiVersion: sockmesh/v1
kind: Service
metadata: {name: web, namespace: demo}
spec:
  vips: [{address: 10.96.0.10, port: 80}, {address: "fd00:96::a", port: 80}]
  lbPolicy: MAGLEV
  endpoints: [{workload: web-v1-a, port: 8080}, {workload: web-v2-a, port: 8080, weight: 3}]
  subsets:
    - {name: v1, labels: {version: v1}, weight: 80}
    - {name: v2, labels: {version: v2}, weight: 20}
---
apiVersion: sockmesh/v1
kind: Workload
metadata: {name: web-v2-a, namespace: demo, labels: {app: web, version: v2}}
spec: {serviceAccount: web, node: n2, addresses: [10.78.2.11]}
)";

const char *const kNodes = R"(apiVersion: sockmesh/v1
kind: Node
metadata: {name: n1}
spec: {addresses: [10.77.0.1]}
---
apiVersion: sockmesh/v1
kind: Node
metadata: {name: n2}
spec: {addresses: [10.77.0.2, "fd00:77::2"]}
---
apiVersion: sockmesh/v1
kind: Node
metadata: {name: n3}
spec: {addresses: [10.77.0.3]}
)";

// An endpoint on port 0 naming a workload that is not there.
const char *const kInvalid = R"(apiVersion: sockmesh/v1
kind: Service
metadata: {name: web, namespace: demo}
spec:
  vips: [{address: 10.96.0.10, port: 80}]
  endpoints: [{workload: web-v9, port: 0}]
)";

v1::AgentView agent(std::string node, bool connected, std::string acked) {
  v1::AgentView a;
  a.set_node(std::move(node));
  a.set_connected(connected);
  a.set_acked_version(std::move(acked));
  return a;
}

class ControlPlaneTest : public MeshctlHarness {
 protected:
  void SetUp() override {
    MeshctlHarness::SetUp();
    socket_ = dir_ / "api.sock";
    cp_ = std::make_unique<testing::FakeControlPlane>(socket_);
  }
  void TearDown() override {
    cp_.reset();
    MeshctlHarness::TearDown();
  }

  // meshcp holds the resources of a YAML text, each with version "<n>" in file order.
  void hold(const std::string &yaml) {
    cp_->resources = load_manifests({write("held.yaml", yaml)});
    int version = 1;
    for (auto &resource : cp_->resources) resource.set_version("r" + std::to_string(version++));
  }

  Result run(std::vector<std::string> args) {
    args.insert(args.begin(), {"--controlplane", socket_.string()});
    return MeshctlHarness::run(args);
  }

  // `describe service` asks the node agent for its resilience part too; these tests run none.
  std::string no_agent() const {
    return "no node agent found under " + env_.run_root.string() +
           " (is meshd running? pick one with --node)";
  }

  fs::path socket_;
  std::unique_ptr<testing::FakeControlPlane> cp_;
};

v1::ApplyResponse counts(std::string version, std::uint32_t created, std::uint32_t configured,
                         std::uint32_t unchanged, std::uint32_t deleted) {
  v1::ApplyResponse r;
  r.set_version(std::move(version));
  r.set_created(created);
  r.set_configured(configured);
  r.set_unchanged(unchanged);
  r.set_deleted(deleted);
  return r;
}

// What applying kAfter over kBefore prints when meshcp answers counts("8", 1, 1, 1, 0).
constexpr const char *kAfterApplied =
    "workload/demo/web-v1-a unchanged\n"
    "workload/demo/web-v2-a created\n"
    "service/demo/web configured\n"
    "1 created, 1 configured, 1 unchanged: the control plane is at version 8\n";

TEST_F(ControlPlaneTest, ApplyAFileTellsWhatEachResourceBecame) {
  hold(kBefore);
  cp_->apply_response = counts("8", 1, 1, 1, 0);
  const auto file = write("web.yaml", kAfter);
  const auto r = run({"apply", "-f", file.string()});
  EXPECT_EQ(r.err, "");
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.out, kAfterApplied);
  const auto applied = cp_->applied();
  ASSERT_EQ(applied.size(), 1u);
  EXPECT_FALSE(applied[0].dry_run());
  ASSERT_EQ(applied[0].resources_size(), 3);
  EXPECT_EQ(applied[0].resources(2).name(), "service/demo/web");
  EXPECT_EQ(applied[0].resources(2).version(), "");
  EXPECT_EQ(applied[0].resources(2).service().subsets_size(), 2);
  EXPECT_EQ(applied[0].resources(1).workload().addresses(0), "10.78.2.11");
}

// `-f -` reads standard input (kubectl exec -i ... meshctl apply -f - < mesh.yaml, NOTES.txt).
TEST_F(ControlPlaneTest, ApplyFromStandardInput) {
  hold(kBefore);
  cp_->apply_response = counts("8", 1, 1, 1, 0);
  std::istringstream input{std::string(kAfter)};
  auto *saved = std::cin.rdbuf(input.rdbuf());
  const auto r = run({"apply", "-f", "-"});
  std::istringstream bad{std::string(kInvalid)};
  std::cin.rdbuf(bad.rdbuf());
  const auto refused = run({"apply", "-f", "-"});
  const auto twice = run({"apply", "-f", "-", "-f", "-"});
  std::cin.rdbuf(saved);
  EXPECT_EQ(r.err, "");
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.out, kAfterApplied);
  ASSERT_EQ(cp_->applied().size(), 1u);
  EXPECT_EQ(cp_->applied()[0].resources_size(), 3);
  EXPECT_EQ(refused.code, 1);
  EXPECT_EQ(refused.err,
            "meshctl: - is invalid:\n-:6: service \"demo/web\": spec.endpoints[0].port: must be "
            "between 1 and 65535, got 0\n");
  EXPECT_EQ(twice.code, 1);
  EXPECT_EQ(twice.err, "meshctl: -f -: standard input can be given once\n");
  EXPECT_EQ(cp_->applied().size(), 1u);
}

TEST_F(ControlPlaneTest, ApplyDryRun) {
  hold(kAfter);
  cp_->apply_response = counts("7", 0, 0, 3, 0);
  const auto r = run({"apply", "-f", write("web.yaml", kAfter).string(), "--dry-run"});
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.out,
            "workload/demo/web-v1-a unchanged (dry run)\n"
            "workload/demo/web-v2-a unchanged (dry run)\n"
            "service/demo/web unchanged (dry run)\n"
            "dry run: 0 created, 0 configured, 3 unchanged; nothing was applied\n");
  ASSERT_EQ(cp_->applied().size(), 1u);
  EXPECT_TRUE(cp_->applied()[0].dry_run());
}

TEST_F(ControlPlaneTest, ApplyADirectoryTakesItsYamlFilesInNameOrder) {
  write("dir/b.yaml", R"(apiVersion: sockmesh/v1
kind: Node
metadata: {name: n2}
spec: {addresses: [10.77.0.2]}
)");
  write("dir/a.yml", R"(apiVersion: sockmesh/v1
kind: Node
metadata: {name: n1}
spec: {addresses: [10.77.0.1]}
)");
  write("dir/notes.txt", "not yaml");
  write("dir/sub/c.yaml", kInvalid);  // not entered
  cp_->apply_response = counts("8", 3, 0, 0, 0);
  const auto r = run({"apply", "-f", (dir_ / "dir").string(), "-f",
                      write("n3.yaml", R"(
apiVersion: sockmesh/v1
kind: Node
metadata: {name: n3}
spec: {addresses: [10.77.0.3]}
)")
                          .string()});
  EXPECT_EQ(r.err, "");
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.out,
            "node/default/n1 created\n"
            "node/default/n2 created\n"
            "node/default/n3 created\n"
            "3 created, 0 configured, 0 unchanged: the control plane is at version 8\n");
}

TEST_F(ControlPlaneTest, ApplyOfAnInvalidFileSendsNothing) {
  const auto good = write("good.yaml", kAfter);
  const auto bad = write("bad.yaml", kInvalid);
  // The unknown workload is meshcp's to judge (it may hold it); the port is wrong whatever it
  // holds.
  const auto errors = resources::load_yaml_file(bad.string(), resources::Scope::kPartial).errors;
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(
      errors[0],
      bad.string() +
          ":6: service \"demo/web\": spec.endpoints[0].port: must be between 1 and 65535, got 0");
  auto r = run({"apply", "-f", good.string(), "-f", bad.string()});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err, "meshctl: " + bad.string() + " is invalid:\n" + errors[0] + "\n");
  EXPECT_TRUE(cp_->applied().empty());

  const auto also_bad = write("also-bad.yaml", "kind: Frobnicator\n");
  const auto more = resources::load_yaml_file(also_bad.string(), resources::Scope::kPartial).errors;
  ASSERT_FALSE(more.empty());
  r = run({"apply", "-f", bad.string(), "-f", also_bad.string()});
  EXPECT_EQ(r.code, 1);
  EXPECT_TRUE(r.err.starts_with("meshctl: " + bad.string() + ", " + also_bad.string() +
                                " are invalid:\n" + errors[0] + "\n"))
      << r.err;
  EXPECT_TRUE(r.err.ends_with(more.back() + "\n")) << r.err;
  EXPECT_TRUE(cp_->applied().empty());
}

// The common operator change: a service edited alone, its endpoints naming workloads that live in
// meshcp's store and not in the file.
TEST_F(ControlPlaneTest, ApplyOfAServiceNamingWorkloadsOnlyTheControlPlaneHolds) {
  hold(kAfter);
  cp_->apply_response = counts("10", 0, 1, 0, 0);
  const auto r = run({"apply", "-f",
                      write("web.yaml", R"(apiVersion: sockmesh/v1
kind: Service
metadata: {name: web, namespace: demo}
spec:
  vips: [{address: 10.96.0.10, port: 80}]
  endpoints: [{workload: web-v1-a, port: 8080, weight: 1}, {workload: web-v2-a, port: 8080, weight: 1}]
)")
                          .string()});
  EXPECT_EQ(r.err, "");
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.out,
            "service/demo/web configured\n"
            "0 created, 1 configured, 0 unchanged: the control plane is at version 10\n");
  const auto applied = cp_->applied();
  ASSERT_EQ(applied.size(), 1u);
  ASSERT_EQ(applied[0].resources_size(), 1);
  EXPECT_EQ(applied[0].resources(0).service().endpoints(1).workload(), "web-v2-a");
}

TEST_F(ControlPlaneTest, ApplyRefusesMissingFilesEmptyDirectoriesAndDuplicates) {
  auto r = run({"apply", "-f", (dir_ / "missing.yaml").string()});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err,
            "meshctl: -f " + (dir_ / "missing.yaml").string() + ": no such file or directory\n");
  fs::create_directories(dir_ / "empty");
  r = run({"apply", "-f", (dir_ / "empty").string()});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err, "meshctl: -f " + (dir_ / "empty").string() +
                       ": no *.yaml or *.yml file in this directory\n");
  const auto a = write("a.yaml", kNodes), b = write("b.yaml", kNodes);
  r = run({"apply", "-f", a.string(), "-f", b.string()});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err, "meshctl: node/default/n1 is defined in both " + a.string() + " and " +
                       b.string() + "\n");
  r = run({"apply", "-f", write("comments.yaml", "# nothing\n").string()});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err, "meshctl: nothing to apply: " + (dir_ / "comments.yaml").string() +
                       " define no resource\n");
  EXPECT_TRUE(cp_->applied().empty());
}

TEST_F(ControlPlaneTest, ApplyRefusedByTheControlPlane) {
  cp_->change_status = grpc::Status(
      grpc::StatusCode::INVALID_ARGUMENT,
      "service \"demo/web\": spec.vips[0]: 10.96.0.10:80/TCP is also a VIP of service "
      "\"demo/api\"\nservice \"demo/web\": spec.endpoints[1].workload: unknown workload "
      "\"web-v2-a\" in namespace \"demo\"\n");
  const auto r = run({"apply", "-f", write("web.yaml", kAfter).string()});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err,
            "meshctl: the control plane refused the change; nothing was applied:\n"
            "  service \"demo/web\": spec.vips[0]: 10.96.0.10:80/TCP is also a VIP of service "
            "\"demo/api\"\n"
            "  service \"demo/web\": spec.endpoints[1].workload: unknown workload \"web-v2-a\" in "
            "namespace \"demo\"\n");
}

TEST_F(ControlPlaneTest, ApplyNotAuthorized) {
  cp_->change_status = grpc::Status(grpc::StatusCode::PERMISSION_DENIED, "caller uid 1000");
  const auto r = run({"apply", "-f", write("web.yaml", kAfter).string()});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err, "meshctl: the control plane at " + socket_.string() +
                       " refused Apply: caller uid 1000 (gRPC status 7) (run meshctl as root)\n");
}

TEST_F(ControlPlaneTest, DeleteByKindAndName) {
  hold(kAfter);
  cp_->apply_response = counts("9", 0, 0, 0, 1);
  auto r = run({"delete", "service", "demo/web"});
  EXPECT_EQ(r.err, "");
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.out,
            "service/demo/web deleted\n"
            "1 deleted: the control plane is at version 9\n");
  cp_->apply_response = counts("10", 0, 0, 0, 2);
  r = run({"delete", "workloads", "web-v1-a", "web-v2-a", "web-v1-a", "-n", "demo"});
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.out,
            "workload/demo/web-v1-a deleted\n"
            "workload/demo/web-v2-a deleted\n"
            "2 deleted: the control plane is at version 10\n");
  const auto deleted = cp_->deleted();
  ASSERT_EQ(deleted.size(), 2u);
  EXPECT_EQ(deleted[0].names_size(), 1);
  EXPECT_EQ(deleted[0].names(0), "service/demo/web");
  ASSERT_EQ(deleted[1].names_size(), 2);
  EXPECT_EQ(deleted[1].names(1), "workload/demo/web-v2-a");
}

TEST_F(ControlPlaneTest, DeleteTheResourcesOfAFile) {
  hold(kAfter);
  cp_->apply_response = counts("9", 0, 0, 0, 3);
  const auto r = run({"delete", "-f", write("web.yaml", kAfter).string()});
  EXPECT_EQ(r.err, "");
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.out,
            "workload/demo/web-v1-a deleted\n"
            "workload/demo/web-v2-a deleted\n"
            "service/demo/web deleted\n"
            "3 deleted: the control plane is at version 9\n");
}

TEST_F(ControlPlaneTest, DeleteOfWhatIsNotThereDeletesNothing) {
  hold(kAfter);
  auto r = run({"delete", "service", "web", "demo/web", "node", "n1"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err,
            "meshctl: not in the control plane: service/default/web, service/default/node, "
            "service/default/n1; nothing was deleted\n");
  r = run({"delete", "pods", "web"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(
      r.err,
      "meshctl: unknown kind \"pods\": one of workload, service, node, authorizationpolicy\n");
  r = run({"delete", "service", "demo/web", "-n", "demo"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err,
            "meshctl: service \"demo/web\": give the namespace once, with -n or as "
            "NAMESPACE/NAME\n");
  EXPECT_TRUE(cp_->deleted().empty());
}

TEST_F(ControlPlaneTest, DeleteRefusedByTheControlPlane) {
  hold(kAfter);
  cp_->change_status =
      grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                   "service \"demo/web\": spec.endpoints[0].workload: unknown workload "
                   "\"web-v1-a\" in namespace \"demo\"");
  const auto r = run({"delete", "workload", "demo/web-v1-a"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err,
            "meshctl: the control plane refused the deletion; nothing was deleted:\n"
            "  service \"demo/web\": spec.endpoints[0].workload: unknown workload \"web-v1-a\" in "
            "namespace \"demo\"\n");
}

TEST_F(ControlPlaneTest, DeleteUsageErrors) {
  for (const std::vector<std::string> &args : std::vector<std::vector<std::string>>{
           {"delete"}, {"delete", "service"}, {"delete", "service", "web", "-f", "x.yaml"}}) {
    const auto r = run(args);
    EXPECT_EQ(r.code, 2) << r.err;
    EXPECT_TRUE(r.err.starts_with("meshctl: delete: ")) << r.err;
  }
}

TEST_F(ControlPlaneTest, GetWorkloads) {
  hold(kAfter);
  auto r = run({"get", "workloads"});
  EXPECT_EQ(r.err, "");
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.out,
            "NAMESPACE   NAME       NODE   ADDRESSES                  SERVICE-ACCOUNT   LABELS\n"
            "demo        web-v1-a   n1     10.78.1.10,fd00:78:1::10   web               "
            "app=web,version=v1\n"
            "demo        web-v2-a   n2     10.78.2.11                 web               "
            "app=web,version=v2\n");
  cp_->resources.clear();
  r = run({"get", "workloads"});
  EXPECT_EQ(r.out, "No workloads.\n");
}

TEST_F(ControlPlaneTest, GetWorkloadsAsJsonAndYaml) {
  hold(R"(apiVersion: sockmesh/v1
kind: Workload
metadata: {name: client, namespace: demo}
spec: {node: n1, addresses: [10.78.1.20]}
)");
  auto r = run({"get", "workloads", "-o", "json"});
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.out, R"({
  "version": "7",
  "resources": [
    {
      "name": "workload/demo/client",
      "version": "r1",
      "workload": {
        "metadata": {
          "name": "client",
          "namespace": "demo",
          "labels": {}
        },
        "serviceAccount": "default",
        "node": "n1",
        "addresses": [
          "10.78.1.20"
        ],
        "cgroupPath": "",
        "captured": true
      }
    }
  ]
}
)");
  r = run({"get", "workloads", "-o", "yaml"});
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.out,
            "version: \"7\"\n"
            "resources:\n"
            "  - name: workload/demo/client\n"
            "    version: r1\n"
            "    workload:\n"
            "      metadata:\n"
            "        name: client\n"
            "        namespace: demo\n"
            "        labels: {}\n"
            "      serviceAccount: default\n"
            "      node: n1\n"
            "      addresses:\n"
            "        - \"10.78.1.20\"\n"
            "      cgroupPath: \"\"\n"
            "      captured: true\n");
}

TEST_F(ControlPlaneTest, GetNodesJoinsTheAgents) {
  hold(kNodes);
  *cp_->status.add_agents() = agent("n2", false, "5");
  *cp_->status.add_agents() = agent("n1", true, "7");
  const auto r = run({"get", "nodes"});
  EXPECT_EQ(r.err, "");
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.out,
            "NAME   ADDRESSES              AGENT          ACKED-VERSION\n"
            "n1     10.77.0.1              connected      7\n"
            "n2     10.77.0.2,fd00:77::2   disconnected   5\n"
            "n3     10.77.0.3              never          -\n");
}

TEST_F(ControlPlaneTest, GetNodesAsJson) {
  hold(R"(apiVersion: sockmesh/v1
kind: Node
metadata: {name: n1}
spec: {addresses: [10.77.0.1]}
)");
  const auto r = run({"get", "nodes", "-o", "json"});
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.out, R"({
  "version": "7",
  "resources": [
    {
      "name": "node/default/n1",
      "version": "r1",
      "node": {
        "metadata": {
          "name": "n1",
          "namespace": "default",
          "labels": {}
        },
        "addresses": [
          "10.77.0.1"
        ]
      }
    }
  ]
}
)");
}

TEST_F(ControlPlaneTest, GetServicesFromTheControlPlane) {
  hold(std::string(kAfter) + R"(---
apiVersion: sockmesh/v1
kind: Service
metadata: {name: api, namespace: demo}
spec:
  vips: [{address: 10.96.0.11, port: 53, protocol: UDP}]
  lbPolicy: MAGLEV
  maglev: {tableSize: 13}
  endpoints: [{workload: web-v1-a, port: 53}]
)");
  const auto r = run({"get", "services", "--from-controlplane"});
  EXPECT_EQ(r.err, "");
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.out,
            "NAMESPACE   NAME   VIPS                                    POLICY         ENDPOINTS "
            "  VERSION\n"
            "demo        api    10.96.0.11:53/UDP                       MAGLEV(13)     1         "
            "  r4\n"
            "demo        web    10.96.0.10:80/TCP,[fd00:96::a]:80/TCP   MAGLEV(4093)   2         "
            "  r3\n");
}

TEST_F(ControlPlaneTest, DescribeServiceShowsWhichAgentsHoldItsVersion) {
  hold(kAfter);  // service/demo/web is "r3"
  auto acked = agent("n1", true, "7");
  (*acked.mutable_resource_versions())["service/demo/web"] = "r3";
  auto behind = agent("n2", true, "6");
  (*behind.mutable_resource_versions())["service/demo/web"] = "r1";
  auto nacked = agent("n4", true, "6");
  nacked.set_nacked_version("7");
  nacked.mutable_last_nack()->set_resource("service/demo/web");
  nacked.mutable_last_nack()->set_message(
      "service \"demo/web\": spec.vips[1].address: IPv6 is disabled on this node");
  *cp_->status.add_agents() = nacked;
  *cp_->status.add_agents() = agent("n3", false, "7");
  *cp_->status.add_agents() = behind;
  *cp_->status.add_agents() = acked;
  *cp_->status.add_agents() = agent("n5", true, "");
  auto r = run({"describe", "service", "web", "-n", "demo"});
  EXPECT_EQ(r.err, "");
  EXPECT_EQ(r.code, 0);
  const std::string expected =
      "Service:     demo/web\n"
      "Version:     r3\n"
      "Labels:      -\n"
      "VIPs:        10.96.0.10:80/TCP, [fd00:96::a]:80/TCP\n"
      "Policy:      MAGLEV(4093)\n"
      "\n"
      "Subsets:\n"
      "NAME   LABELS       WEIGHT\n"
      "v1     version=v1   80\n"
      "v2     version=v2   20\n"
      "\n"
      "Endpoints:\n"
      "WORKLOAD   ADDRESSES                  PORT   WEIGHT   SUBSET\n"
      "web-v1-a   10.78.1.10,fd00:78:1::10   8080   1        v1\n"
      "web-v2-a   10.78.2.11                 8080   3        v2\n"
      "\n"
      "Agents:\n"
      "NODE   THIS VERSION\n"
      "n1     ACKed\n"
      "n2     behind (has r1)\n"
      "n3     not connected\n"
      "n4     NACKed: service \"demo/web\": spec.vips[1].address: IPv6 is disabled on this node\n"
      "n5     behind (has none)\n"
      "\n"
      "Resilience:  unavailable: " +
      no_agent() + "\n";
  EXPECT_EQ(r.out, expected);
  EXPECT_EQ(run({"describe", "svc", "demo/web"}).out, expected);
}

TEST_F(ControlPlaneTest, DescribeAServiceWithoutSubsetsOrAgents) {
  hold(kBefore);
  const auto r = run({"describe", "service", "demo/web"});
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.out,
            "Service:     demo/web\n"
            "Version:     r2\n"
            "Labels:      -\n"
            "VIPs:        10.96.0.10:80/TCP\n"
            "Policy:      RANDOM\n"
            "\n"
            "Subsets:\n"
            "No subsets: endpoints share the traffic by weight.\n"
            "\n"
            "Endpoints:\n"
            "WORKLOAD   ADDRESSES                  PORT   WEIGHT   SUBSET\n"
            "web-v1-a   10.78.1.10,fd00:78:1::10   8080   1        -\n"
            "\n"
            "Agents:\n"
            "No agents.\n"
            "\n"
            "Resilience:  unavailable: " +
                no_agent() + "\n");
}

TEST_F(ControlPlaneTest, DescribeAnUnknownService) {
  hold(kAfter);
  const auto r = run({"describe", "service", "web"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err, "meshctl: service/default/web not in the control plane\n");
}

TEST_F(ControlPlaneTest, NodeAddPrintsTheTokenAndTheJoinCommand) {
  cp_->added.set_token("smt1.0123abcd.00112233445566778899aabbccddeeff");
  cp_->added.set_expires_unix(kNow / 1000 + 86400);
  cp_->added.set_ca_cert_hash("sha256:" + std::string(64, 'a'));
  cp_->added.set_trust_domain("cluster.local");
  auto r = run({"node", "add", "n3", "--ttl", "600"});
  EXPECT_EQ(r.err, "");
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.out,
            "Node \"n3\" may join the mesh (trust domain cluster.local) until " +
                format_utc(kNow + 86'400'000) +
                ", once, with:\n\n"
                "  meshd --node n3 --controlplane ADDRESS --join-token "
                "smt1.0123abcd.00112233445566778899aabbccddeeff --ca-cert-hash sha256:" +
                std::string(64, 'a') +
                "\n\nADDRESS is meshcp's agent address (--listen). The token is shown only now; "
                "meshcp keeps its hash.\n");
  ASSERT_EQ(cp_->add_node_requests.size(), 1u);
  EXPECT_EQ(cp_->add_node_requests[0].node(), "n3");
  EXPECT_EQ(cp_->add_node_requests[0].ttl_seconds(), 600);
  r = run({"node", "add", "Bad_Name"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err, "meshctl: the control plane refused: \"Bad_Name\" is not a valid node name\n");
  r = run({"node", "add", "n3", "--ttl", "0"});
  EXPECT_EQ(r.code, 2);
}

TEST_F(ControlPlaneTest, GetIdentitiesListsNodeCertificatesAndSvids) {
  cp_->identities.set_trust_domain("cluster.local");
  cp_->identities.set_ca_cert_hash("sha256:abc");
  auto add = [&](const std::string &node, const std::string &workload, const std::string &id,
                 int64_t in_s) {
    auto *c = cp_->identities.add_certificates();
    c->set_node(node);
    c->set_workload(workload);
    c->set_spiffe_id(id);
    c->set_serial("0123456789abcdef0123");
    c->set_not_after_unix(kNow / 1000 + in_s);
  };
  add("n2", "demo/web", "spiffe://cluster.local/ns/demo/sa/web", 1800);
  add("n1", "", "spiffe://cluster.local/sockmesh/node/n1", 86000);
  add("n1", "demo/client", "spiffe://cluster.local/ns/demo/sa/client", 3500);
  auto r = run({"get", "identities"});
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(
      r.out,
      "Domain:      cluster.local\n"
      "CA:          sha256:abc\n"
      "\n"
      "Certificates:\n"
      "NODE   WORKLOAD      SPIFFE-ID                                  SERIAL             EXPIRES\n"
      "n1     (node)        spiffe://cluster.local/sockmesh/node/n1    0123456789abcdef   in "
      "23h53m\n"
      "n1     demo/client   spiffe://cluster.local/ns/demo/sa/client   0123456789abcdef   in "
      "58m20s\n"
      "n2     demo/web      spiffe://cluster.local/ns/demo/sa/web      0123456789abcdef   in "
      "30m\n");
  r = run({"get", "identities", "--for-node", "n2"});
  EXPECT_EQ(r.code, 0);
  EXPECT_NE(r.out.find("n2     demo/web"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("n1 "), std::string::npos) << r.out;
}

TEST_F(ControlPlaneTest, ControlPlaneStatus) {
  cp_->status.set_version("12");
  cp_->status.set_state_dir("/var/lib/sockmesh/meshcp");
  cp_->status.set_resources(9);
  auto n2 = agent("n2", true, "11");
  n2.set_nacked_version("12");
  n2.mutable_last_nack()->set_resource("service/demo/web");
  n2.mutable_last_nack()->set_message("service \"demo/web\": spec.vips[1].address: no IPv6");
  n2.set_connected_unix_ms(kNow - 303'000);
  auto n1 = agent("n1", true, "12");
  n1.set_connected_unix_ms(kNow - 3'723'000);
  *cp_->status.add_agents() = n2;
  *cp_->status.add_agents() = agent("n3", false, "");
  *cp_->status.add_agents() = n1;
  const std::string expected =
      "Version:     12\n"
      "State dir:   /var/lib/sockmesh/meshcp\n"
      "Resources:   9\n"
      "\n"
      "Agents:\n"
      "NODE   CONNECTED    ACKED   NACKED   LAST-NACK\n"
      "n1     yes (1h2m)   12      -        -\n"
      "n2     yes (5m3s)   11      12       service \"demo/web\": spec.vips[1].address: no IPv6\n"
      "n3     no           -       -        -\n";
  auto r = run({"controlplane", "status"});
  EXPECT_EQ(r.err, "");
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.out, expected);
  EXPECT_EQ(run({"cp", "status"}).out, expected);

  cp_->status.clear_agents();
  r = run({"cp", "status", "-o", "json"});
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.out,
            "{\n"
            "  \"version\": \"12\",\n"
            "  \"stateDir\": \"/var/lib/sockmesh/meshcp\",\n"
            "  \"resources\": 9,\n"
            "  \"agents\": [],\n"
            "  \"identityRefusals\": {}\n"
            "}\n");
  cp_->status = v1::ControlPlaneStatus();
  EXPECT_EQ(run({"cp", "status"}).out,
            "Version:     -\n"
            "State dir:   -\n"
            "Resources:   0\n"
            "\n"
            "Agents:\n"
            "No agents.\n");
}

TEST_F(ControlPlaneTest, UnreachableControlPlane) {
  cp_.reset();
  fs::remove(socket_);
  const auto r = run({"cp", "status"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err, "meshctl: cannot reach the control plane at " + socket_.string() +
                       ": no such socket (is meshcp running?)\n");
  const auto file = write("web.yaml", kAfter);
  EXPECT_EQ(run({"apply", "-f", file.string()}).err, r.err);
  EXPECT_EQ(run({"delete", "-f", file.string()}).err, r.err);
}

TEST_F(ControlPlaneTest, DefaultSocketIsMeshcps) {
  std::ostringstream out, err;
  run_meshctl({"cp", "status", "--timeout", "0.2"}, out, err, env_);
  EXPECT_TRUE(
      err.str().starts_with("meshctl: cannot reach the control plane at "
                            "/run/sockmesh/meshcp/api.sock: "))
      << err.str();
}

TEST_F(ControlPlaneTest, SocketWithoutAListener) {
  cp_.reset();
  fs::remove(socket_);
  // A socket left behind by a meshcp that died: bound once, nobody listens.
  const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  ASSERT_LT(socket_.string().size(), sizeof(addr.sun_path));
  std::strcpy(addr.sun_path, socket_.c_str());
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr *>(&addr), sizeof(addr)), 0);
  ::close(fd);
  const auto r = run({"get", "workloads"});
  EXPECT_EQ(r.code, 1);
  EXPECT_TRUE(
      r.err.starts_with("meshctl: cannot reach the control plane at " + socket_.string() + ": "))
      << r.err;
  EXPECT_TRUE(r.err.ends_with(" (is meshcp running?)\n")) << r.err;
  EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << r.err;
}

// Tests run as root, who may open any socket: the message a non-root caller gets on the 0600
// socket (or the 0700 directory above it) is checked on the mapping itself.
TEST(SocketErrorReason, NamesWhatToDo) {
  const LocalSocket cp{.path = "/run/sockmesh/meshcp/api.sock",
                       .describe = "the control plane at /run/sockmesh/meshcp/api.sock",
                       .daemon = "meshcp",
                       .role = "control-plane socket"};
  EXPECT_EQ(socket_error_reason(cp, EACCES),
            "permission denied (the control-plane socket is root-only: run meshctl as root)");
  EXPECT_EQ(socket_error_reason(cp, EPERM), socket_error_reason(cp, EACCES));
  EXPECT_EQ(socket_error_reason(cp, ENOENT), "no such socket (is meshcp running?)");
  EXPECT_EQ(socket_error_reason(cp, ENOTDIR), std::strerror(ENOTDIR));
}

TEST_F(ControlPlaneTest, ControlPlaneCommandsInTheHelp) {
  auto r = run({"--help"});
  EXPECT_EQ(r.code, 0);
  for (const char *word : {"--controlplane PATH=/run/sockmesh/meshcp/api.sock", "apply", "delete",
                           "describe", "controlplane, cp"}) {
    EXPECT_NE(r.out.find(word), std::string::npos) << word << " missing from:\n" << r.out;
  }
  r = run({"get", "--help"});
  for (const char *word : {"workloads", "nodes"})
    EXPECT_NE(r.out.find(word), std::string::npos) << word << " missing from:\n" << r.out;
  r = run({"apply", "--help"});
  for (const char *word : {"-f,--filename FILE|DIR", "--dry-run"})
    EXPECT_NE(r.out.find(word), std::string::npos) << word << " missing from:\n" << r.out;
  r = run({"get", "services", "--help"});
  EXPECT_NE(r.out.find("--from-controlplane"), std::string::npos) << r.out;
  r = run({"get", "services", "--from-controlplane", "--watch"});
  EXPECT_EQ(r.code, 2);
}

}  // namespace
}  // namespace sockmesh::cli
