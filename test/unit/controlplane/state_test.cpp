// The store and Apply/Delete: round trip, all-or-nothing, and the exact reason of every refusal.
#include "state.h"

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include "fixture.h"
#include "node_filter.h"
#include "store.h"
#include "watch_dir.h"

namespace sockmesh::controlplane {
namespace {

namespace fs = std::filesystem;
using testing::kMesh;
using testing::request_of;
using testing::resource_of;
using testing::TempDir;

// Every file of the state dir with its content.
std::map<std::string, std::string> files_of(const std::string &dir) {
  std::map<std::string, std::string> files;
  for (const auto &e : fs::recursive_directory_iterator(dir)) {
    if (!e.is_regular_file()) continue;
    std::ifstream in(e.path());
    std::ostringstream text;
    text << in.rdbuf();
    files[e.path().string()] = text.str();
  }
  return files;
}

class StateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = std::make_unique<Store>(dir_.path());
    state_ = std::make_unique<State>(*store_);
    v1::ApplyResponse response;
    ASSERT_TRUE(state_->apply(request_of(kMesh), &response).ok());
    ASSERT_EQ(response.created(), 8u);
    ASSERT_EQ(response.version(), "1");
  }

  // Applies `request`, expects it refused with exactly `message`, and nothing changed.
  void expect_refused(const v1::ApplyRequest &request, const std::string &message) {
    const auto before = files_of(dir_.path());
    v1::ApplyResponse response;
    grpc::Status status = state_->apply(request, &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_EQ(status.error_message(), message);
    EXPECT_EQ(files_of(dir_.path()), before);
    EXPECT_EQ(state_->view().version, 1u);
  }

  v1::Resource web() { return state_->view().resources->at("service/demo/web"); }

  v1::ApplyRequest one(const v1::Resource &resource) {
    v1::ApplyRequest request;
    *request.add_resources() = resource;
    return request;
  }

  TempDir dir_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<State> state_;
};

TEST_F(StateTest, StoreRoundTrip) {
  EXPECT_TRUE(fs::exists(dir_.path() + "/resources/service/demo/web.json"));
  EXPECT_TRUE(fs::exists(dir_.path() + "/resources/node/default/n1.json"));
  EXPECT_EQ(files_of(dir_.path()).at(dir_.path() + "/version"), "1\n");
  StoredState loaded = Store(dir_.path()).load();
  EXPECT_EQ(loaded.version, 1u);
  ASSERT_EQ(loaded.resources.size(), 8u);
  for (const auto &[name, resource] : *state_->view().resources) {
    EXPECT_EQ(loaded.resources.at(name).version(), resource.version()) << name;
    EXPECT_EQ(loaded.resources.at(name).SerializeAsString(), resource.SerializeAsString());
  }
}

TEST_F(StateTest, CorruptStoreIsAStartUpErrorNamingTheFile) {
  const std::string path = dir_.path() + "/resources/service/demo/web.json";
  std::ofstream(path) << "{ not json";
  try {
    Store(dir_.path()).load();
    FAIL() << "loaded a corrupt store";
  } catch (const std::runtime_error &e) {
    EXPECT_TRUE(std::string(e.what()).starts_with(path + ": not a resource: ")) << e.what();
  }
}

TEST_F(StateTest, InconsistentStoreNamesTheResourceFile) {
  fs::remove(dir_.path() + "/resources/workload/demo/db.json");
  try {
    Store(dir_.path()).load();
    FAIL() << "loaded an inconsistent store";
  } catch (const std::runtime_error &e) {
    EXPECT_EQ(std::string(e.what()),
              "stored resources are invalid:\n" + dir_.path() +
                  "/resources/service/demo/db.json: service \"demo/db\": "
                  "spec.endpoints[0].workload: unknown workload \"db\" in namespace \"demo\"");
  }
}

TEST_F(StateTest, ApplyCountsAndBumpsTheVersionOnlyOnChange) {
  v1::ApplyResponse response;
  ASSERT_TRUE(state_->apply(request_of(kMesh), &response).ok());
  EXPECT_EQ(response.unchanged(), 8u);
  EXPECT_EQ(response.version(), "1");

  v1::Resource changed = web();
  changed.mutable_service()->mutable_endpoints(0)->set_weight(80);
  changed.clear_version();
  response.Clear();
  ASSERT_TRUE(state_->apply(one(changed), &response).ok());
  EXPECT_EQ(response.configured(), 1u);
  EXPECT_EQ(response.version(), "2");
  EXPECT_EQ(state_->view().resources->at("service/demo/web").service().endpoints(0).weight(), 80u);
  EXPECT_EQ(Store(dir_.path()).load().version, 2u);
}

TEST_F(StateTest, DryRunChangesNothing) {
  v1::Resource changed = web();
  changed.mutable_service()->mutable_endpoints(0)->set_weight(80);
  v1::ApplyRequest request = one(changed);
  request.set_dry_run(true);
  const auto before = files_of(dir_.path());
  v1::ApplyResponse response;
  ASSERT_TRUE(state_->apply(request, &response).ok());
  EXPECT_EQ(response.configured(), 1u);
  EXPECT_EQ(response.version(), "1");
  EXPECT_EQ(files_of(dir_.path()), before);
}

TEST_F(StateTest, RefusesUnknownEndpointWorkload) {
  v1::Resource r = web();
  r.mutable_service()->mutable_endpoints(0)->set_workload("ghost");
  expect_refused(
      one(r),
      R"(service "demo/web": spec.endpoints[0].workload: unknown workload "ghost" in namespace "demo")");
}

TEST_F(StateTest, RefusesDuplicateVipAcrossServices) {
  v1::Resource r = web();
  r.mutable_service()->mutable_metadata()->set_name("web2");
  r.clear_name();
  expect_refused(
      one(r),
      R"(service "demo/web2": spec.vips[0]: 10.96.0.10:80/TCP is already used by service "demo/web")");
}

TEST_F(StateTest, RefusesBadPort) {
  v1::Resource r = web();
  r.mutable_service()->mutable_endpoints(1)->set_port(70000);
  expect_refused(
      one(r),
      R"(service "demo/web": spec.endpoints[1].port: must be between 1 and 65535, got 70000)");
}

TEST_F(StateTest, RefusesAllZeroWeights) {
  v1::Resource r = web();
  for (auto &ep : *r.mutable_service()->mutable_endpoints()) ep.set_weight(0);
  expect_refused(
      one(r),
      R"(service "demo/web": spec.endpoints: every endpoint has weight 0; at least one must be positive)");
}

TEST_F(StateTest, RefusesTooManyEndpoints) {
  v1::Resource r = web();
  r.mutable_service()->clear_endpoints();
  for (uint32_t port = 1; port <= 65; ++port) {
    auto *ep = r.mutable_service()->add_endpoints();
    ep->set_workload("web-a");
    ep->set_port(port);
    ep->set_weight(1);
  }
  expect_refused(one(r),
                 R"(service "demo/web": spec.endpoints: at most 64 endpoints per service, got 65)");
}

TEST_F(StateTest, RefusesAnOutOfRangeResilienceSetting) {
  v1::Resource r = web();
  r.mutable_service()->mutable_outlier_detection()->set_max_ejection_percent(101);
  expect_refused(
      one(r),
      R"(service "demo/web": spec.outlierDetection.maxEjectionPercent: must be between 0 and 100, got 101)");
}

TEST_F(StateTest, RefusesEmptyBodyAndEmptyName) {
  v1::ApplyRequest request;
  request.add_resources()->set_name("service/demo/x");
  expect_refused(request,
                 "resources[0]: body is empty (one of workload, service, node, "
                 "authorizationPolicy is required)");
  v1::Resource r = state_->view().resources->at("workload/demo/tool");
  r.mutable_workload()->mutable_metadata()->clear_name();
  r.mutable_workload()->set_addresses(0, "10.78.2.99");
  r.clear_name();
  expect_refused(one(r), R"(workload "demo/": metadata.name: required)");
}

TEST_F(StateTest, RefusesNameThatDoesNotMatchTheBody) {
  v1::Resource r = web();
  r.set_name("service/demo/other");
  expect_refused(
      one(r),
      R"(resources[0]: name "service/demo/other" does not match its body ("service/demo/web"))");
}

TEST_F(StateTest, RefusesTheSameResourceTwice) {
  v1::ApplyRequest request = one(web());
  *request.add_resources() = web();
  expect_refused(request, "resources[1]: service/demo/web is given twice (also resources[0])");
}

TEST_F(StateTest, RefusesAnAddressUsedTwice) {
  v1::Resource r = state_->view().resources->at("workload/demo/tool");
  r.mutable_workload()->set_addresses(0, "10.78.1.10");
  expect_refused(
      one(r),
      R"(workload "demo/web-a": spec.addresses[0]: 10.78.1.10 is already used by workload "demo/tool")");
}

TEST_F(StateTest, MixedGoodAndBadAppliesNothing) {
  v1::Resource good = state_->view().resources->at("workload/demo/tool");
  good.mutable_workload()->mutable_metadata()->set_name("tool2");
  good.mutable_workload()->set_addresses(0, "10.78.2.31");
  good.clear_name();
  v1::Resource bad = web();
  bad.mutable_service()->mutable_vips(0)->set_port(0);
  v1::ApplyRequest request = one(good);
  *request.add_resources() = bad;
  expect_refused(request,
                 R"(service "demo/web": spec.vips[0].port: must be between 1 and 65535, got 0)");
  EXPECT_FALSE(state_->view().resources->contains("workload/demo/tool2"));
}

TEST_F(StateTest, ReportsEveryErrorOnItsOwnLine) {
  v1::Resource r = web();
  r.mutable_service()->mutable_endpoints(0)->set_workload("ghost");
  r.mutable_service()->mutable_endpoints(1)->set_port(0);
  expect_refused(
      one(r),
      "service \"demo/web\": spec.endpoints[0].workload: unknown workload \"ghost\" in "
      "namespace \"demo\"\n"
      "service \"demo/web\": spec.endpoints[1].port: must be between 1 and 65535, got 0");
}

TEST_F(StateTest, DeleteOfAReferencedWorkloadIsRefused) {
  const auto before = files_of(dir_.path());
  v1::DeleteRequest request;
  request.add_names("workload/demo/db");
  v1::ApplyResponse response;
  grpc::Status status = state_->remove(request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(
      status.error_message(),
      R"(service "demo/db": spec.endpoints[0].workload: unknown workload "db" in namespace "demo")");
  EXPECT_EQ(files_of(dir_.path()), before);
}

TEST_F(StateTest, DeleteOfAnUnknownNameIsNotFound) {
  const auto before = files_of(dir_.path());
  v1::DeleteRequest request;
  request.add_names("workload/demo/tool");
  request.add_names("service/demo/nope");
  v1::ApplyResponse response;
  grpc::Status status = state_->remove(request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(status.error_message(), R"(no resource "service/demo/nope")");
  EXPECT_EQ(files_of(dir_.path()), before);
}

TEST_F(StateTest, DeleteRemovesTheFileAndBumpsTheVersion) {
  v1::DeleteRequest request;
  request.add_names("service/demo/db");
  request.add_names("workload/demo/db");
  v1::ApplyResponse response;
  ASSERT_TRUE(state_->remove(request, &response).ok());
  EXPECT_EQ(response.deleted(), 2u);
  EXPECT_EQ(response.version(), "2");
  EXPECT_FALSE(fs::exists(dir_.path() + "/resources/workload/demo/db.json"));
  EXPECT_EQ(Store(dir_.path()).load().resources.size(), 6u);
}

TEST_F(StateTest, ListByKind) {
  v1::ListResponse response;
  ASSERT_TRUE(state_->list("service", &response).ok());
  ASSERT_EQ(response.resources_size(), 2);
  EXPECT_EQ(response.resources(0).name(), "service/demo/db");
  EXPECT_EQ(response.version(), "1");
  EXPECT_EQ(state_->list("pod", &response).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

// A change of services alone is checked on the services and the workloads they name, with
// indexes for the rest; it must refuse exactly what the whole-state validator refuses, with the
// same words.
TEST_F(StateTest, ServiceOnlyChangesAreRefusedLikeTheWholeStateCheck) {
  auto second_vip = [](v1::Resource r, const std::string &address) {
    auto *vip = r.mutable_service()->add_vips();
    vip->set_address(address);
    vip->set_port(5432);
    return r;
  };
  v1::Resource db = state_->view().resources->at("service/demo/db");
  std::vector<v1::Resource> bad;
  {
    v1::Resource r = web();
    r.mutable_service()->mutable_endpoints(0)->set_workload("ghost");
    bad.push_back(r);
  }
  {
    v1::Resource r = second_vip(web(), db.service().vips(0).address());  // db's VIP port
    r.mutable_service()->mutable_vips(1)->set_port(db.service().vips(0).port());
    bad.push_back(r);
  }
  {
    v1::Resource r = web();
    r.mutable_service()->mutable_metadata()->set_name("web3");
    r.clear_name();
    bad.push_back(r);  // web's VIP again, under another name
  }
  {
    v1::Resource r = web();
    r.mutable_service()->mutable_endpoints(1)->set_weight(100000);
    r.mutable_service()->mutable_vips(0)->set_port(0);
    bad.push_back(r);
  }
  for (const auto &r : bad) {
    Resources merged = *state_->view().resources;
    v1::Resource named = r;
    named.set_name(resources::resource_name(named));
    merged[named.name()] = named;
    std::string expected;
    for (const auto &line : resources::validate(resources::to_snapshot(merged)))
      expected += (expected.empty() ? "" : "\n") + line;
    ASSERT_FALSE(expected.empty()) << r.DebugString();
    expect_refused(one(r), expected);
  }
  // And a good one passes, with the VIP of a service it replaces free for reuse.
  v1::ApplyRequest swap;
  v1::Resource moved = web();
  moved.mutable_service()->mutable_vips(0)->set_port(8080);
  v1::Resource taker = db;
  *taker.mutable_service()->mutable_vips(0) = web().service().vips(0);
  *swap.add_resources() = moved;
  *swap.add_resources() = taker;
  v1::ApplyResponse response;
  const grpc::Status status = state_->apply(swap, &response);
  EXPECT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.configured(), 2u);
}

// The push of an agent at a known version names what changed since and nothing else; it equals
// the whole comparison, including workloads a changed service starts or stops naming.
TEST_F(StateTest, PushFromAKnownVersionEqualsTheWholeComparison) {
  const Push first = state_->push_for("n1", {}, std::nullopt);
  VersionMap holds = first.set;
  EXPECT_EQ(first.version, 1u);
  EXPECT_EQ(holds.size(), 8u);  // NodeFilter below: everything

  // web stops naming web-b and starts naming tool: only the service changes for n1.
  v1::Resource r = web();
  r.mutable_service()->mutable_endpoints(1)->set_workload("tool");
  v1::ApplyResponse response;
  ASSERT_TRUE(state_->apply(one(r), &response).ok());
  const Push delta = state_->push_for("n1", holds, first.version);
  const Push whole = state_->push_for("n1", holds, std::nullopt);
  auto names = [](const Push &p) {
    std::set<std::string> out;
    for (const auto &resource : p.resources) out.insert(resource.name());
    return out;
  };
  EXPECT_EQ(delta.version, 2u);
  EXPECT_EQ(names(delta), (std::set<std::string>{"service/demo/web"}));
  EXPECT_TRUE(delta.removed.empty());
  EXPECT_EQ(names(delta), names(whole));
  EXPECT_EQ(delta.removed, whole.removed);
  EXPECT_EQ(delta.set, whole.set);

  // Nothing changed since: nothing to send.
  for (const auto &name : delta.unset) holds.erase(name);
  for (const auto &[name, version] : delta.set) holds[name] = version;
  const Push none = state_->push_for("n1", holds, delta.version);
  EXPECT_TRUE(none.resources.empty());
  EXPECT_TRUE(none.removed.empty());
}

TEST(NodeFilter, EveryNodeGetsEveryWorkloadAndNode) {
  Resources all = resources::to_resources(resources::load_yaml_string(kMesh, "mesh.yaml").snapshot);
  auto names = [](const Resources &r) {
    std::vector<std::string> out;
    for (const auto &[name, _] : r) out.push_back(name);
    return out;
  };
  const std::vector<std::string> everything{
      "node/default/n1",  "node/default/n2",    "service/demo/db",     "service/demo/web",
      "workload/demo/db", "workload/demo/tool", "workload/demo/web-a", "workload/demo/web-b"};
  EXPECT_EQ(names(resources_for_node(all, "n1")), everything);
  EXPECT_EQ(names(resources_for_node(all, "n2")), everything);
}

TEST(WatchDir, FilesMayReferToEachOtherAndErrorsNameFileAndLine) {
  TempDir dir;
  const std::string text(kMesh);
  const size_t split = text.find("---\napiVersion: sockmesh/v1\nkind: Service");
  std::ofstream(dir.path() + "/a-workloads.yaml") << text.substr(0, split);
  std::ofstream(dir.path() + "/b-services.yaml") << text.substr(split + 4);
  DirLoad load = load_yaml_dir(dir.path());
  EXPECT_TRUE(load.errors.empty()) << load.errors.front();
  EXPECT_EQ(load.request.resources_size(), 8);

  std::ofstream(dir.path() + "/c-bad.yaml")
      << "apiVersion: sockmesh/v1\nkind: Node\nmetadata: {name: n3}\nspec: {addresses: [x]}\n";
  load = load_yaml_dir(dir.path());
  ASSERT_EQ(load.errors.size(), 1u);
  EXPECT_EQ(
      load.errors[0],
      dir.path() +
          R"(/c-bad.yaml:4: node "default/n3": spec.addresses[0]: "x" is not an IPv4 or IPv6 address)");
}

// The layout kubelet gives a ConfigMap volume (the chart's controlplane.meshResources): each file
// a symlink through "..data", which an update swaps atomically to a new timestamped directory.
TEST(WatchDir, AConfigMapVolumeUpdateIsApplied) {
  TempDir dir, store_dir;
  const std::string root = dir.path();
  fs::create_directory(root + "/..2026_11_26_1");
  std::ofstream(root + "/..2026_11_26_1/mesh.yaml") << kMesh;
  fs::create_directory_symlink("..2026_11_26_1", root + "/..data");
  fs::create_symlink("..data/mesh.yaml", root + "/mesh.yaml");

  Store store(store_dir.path());
  State state(store);
  DirWatcher watcher(state, root);
  ASSERT_EQ(state.view().version, 1u);
  const size_t before = state.view().resources->size();

  fs::create_directory(root + "/..2026_11_26_2");
  std::ofstream(root + "/..2026_11_26_2/mesh.yaml")
      << kMesh << "---\napiVersion: sockmesh/v1\nkind: Node\nmetadata: {name: n3}\n"
      << "spec: {addresses: [10.77.0.3]}\n";
  fs::create_directory_symlink("..2026_11_26_2", root + "/..data_tmp");
  fs::rename(root + "/..data_tmp", root + "/..data");

  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (state.view().version == 1u && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_EQ(state.view().version, 2u);
  EXPECT_EQ(state.view().resources->size(), before + 1);
}

}  // namespace
}  // namespace sockmesh::controlplane
