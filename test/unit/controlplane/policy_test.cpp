// AuthorizationPolicies in meshcp: stored, validated (a policy-only change alone, with the
// validator's words), listed, deleted, and pushed to every node.
#include <gtest/gtest.h>

#include <filesystem>
#include <set>

#include "fixture.h"
#include "node_filter.h"
#include "state.h"
#include "store.h"

namespace sockmesh::controlplane {
namespace {

namespace fs = std::filesystem;
using testing::kMesh;
using testing::request_of;
using testing::TempDir;

constexpr std::string_view kPolicy = R"(apiVersion: sockmesh/v1
kind: AuthorizationPolicy
metadata: {name: web-from-client, namespace: demo}
spec:
  selector: {matchLabels: {version: v1}}
  rules:
    - from: [{source: {principals: [cluster.local/ns/demo/sa/client]}}]
      to: [{operation: {ports: [8080]}}]
)";

constexpr std::string_view kName = "authorizationpolicy/demo/web-from-client";

class PolicyStateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = std::make_unique<Store>(dir_.path());
    state_ = std::make_unique<State>(*store_);
    v1::ApplyResponse response;
    ASSERT_TRUE(state_->apply(request_of(kMesh), &response).ok());
  }

  grpc::Status apply(const v1::ApplyRequest &request, v1::ApplyResponse *response = nullptr) {
    v1::ApplyResponse ignored;
    return state_->apply(request, response ? response : &ignored);
  }

  v1::Resource policy() { return state_->view().resources->at(std::string(kName)); }

  static std::set<std::string> names(const Push &push) {
    std::set<std::string> out;
    for (const auto &r : push.resources) out.insert(r.name());
    return out;
  }

  TempDir dir_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<State> state_;
};

TEST_F(PolicyStateTest, StoredListedReloadedAndDeleted) {
  v1::ApplyResponse response;
  ASSERT_TRUE(apply(request_of(kPolicy), &response).ok());
  EXPECT_EQ(response.created(), 1u);
  EXPECT_EQ(response.version(), "2");
  EXPECT_TRUE(fs::exists(dir_.path() + "/resources/authorizationpolicy/demo/web-from-client.json"));

  v1::ListResponse list;
  ASSERT_TRUE(state_->list("authorizationpolicy", &list).ok());
  ASSERT_EQ(list.resources_size(), 1);
  EXPECT_EQ(list.resources(0).name(), kName);
  EXPECT_EQ(list.resources(0).authorization_policy().rules(0).to(0).operation().ports(0), 8080u);
  v1::ListResponse all;
  ASSERT_TRUE(state_->list("", &all).ok());
  EXPECT_EQ(all.resources_size(), 9);

  // A restart reads it back, same version.
  const StoredState stored = Store(dir_.path()).load();
  ASSERT_TRUE(stored.resources.contains(std::string(kName)));
  EXPECT_EQ(stored.resources.at(std::string(kName)).version(), policy().version());

  // The same again changes nothing; another action is a change.
  ASSERT_TRUE(apply(request_of(kPolicy), &response).ok());
  EXPECT_EQ(response.unchanged(), 1u);
  EXPECT_EQ(response.version(), "2");
  v1::ApplyRequest deny;
  *deny.add_resources() = policy();
  deny.mutable_resources(0)->mutable_authorization_policy()->set_action(
      v1::AUTHORIZATION_ACTION_DENY);
  ASSERT_TRUE(apply(deny, &response).ok());
  EXPECT_EQ(response.configured(), 1u);

  v1::DeleteRequest remove;
  remove.add_names(std::string(kName));
  ASSERT_TRUE(state_->remove(remove, &response).ok());
  EXPECT_EQ(response.deleted(), 1u);
  EXPECT_FALSE(
      fs::exists(dir_.path() + "/resources/authorizationpolicy/demo/web-from-client.json"));
  v1::ListResponse after;
  ASSERT_TRUE(state_->list("authorizationpolicy", &after).ok());
  EXPECT_EQ(after.resources_size(), 0);
}

TEST_F(PolicyStateTest, UnknownKindNamesThePolicies) {
  v1::ListResponse list;
  const grpc::Status status = state_->list("policy", &list);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(status.error_message(),
            "unknown kind \"policy\" (one of workload, service, node, authorizationpolicy, or "
            "empty for all)");
}

// A change of policies (and services) is checked without the whole state; it must refuse exactly
// what the whole-state validator refuses, with the same words.
TEST_F(PolicyStateTest, PolicyChangesAreRefusedLikeTheWholeStateCheck) {
  ASSERT_TRUE(apply(request_of(kPolicy)).ok());
  std::vector<v1::ApplyRequest> bad;
  {
    v1::ApplyRequest r;
    *r.add_resources() = policy();
    auto *source = r.mutable_resources(0)
                       ->mutable_authorization_policy()
                       ->mutable_rules(0)
                       ->mutable_from(0)
                       ->mutable_source();
    source->set_principals(0, "cluster.local/ns/demo/client");
    source->add_namespaces("Demo");
    bad.push_back(r);
  }
  {
    // With a service change that is wrong too: both are reported.
    v1::ApplyRequest r;
    *r.add_resources() = policy();
    r.mutable_resources(0)
        ->mutable_authorization_policy()
        ->mutable_rules(0)
        ->mutable_to(0)
        ->mutable_operation()
        ->set_ports(0, 0);
    v1::Resource web = state_->view().resources->at("service/demo/web");
    web.mutable_service()->mutable_endpoints(0)->set_workload("ghost");
    *r.add_resources() = web;
    bad.push_back(r);
  }
  for (const auto &request : bad) {
    Resources merged = *state_->view().resources;
    for (auto resource : request.resources()) {
      resource.set_name(resources::resource_name(resource));
      merged[resource.name()] = resource;
    }
    std::string expected;
    for (const auto &line : resources::validate(resources::to_snapshot(merged)))
      expected += (expected.empty() ? "" : "\n") + line;
    ASSERT_FALSE(expected.empty());
    const grpc::Status status = apply(request);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_EQ(status.error_message(), expected);
  }
  EXPECT_EQ(state_->version(), 2u);
  EXPECT_EQ(
      apply(bad[0]).error_message(),
      R"(authorizationpolicy "demo/web-from-client": spec.rules[0].from[0].source.principals[0]: "cluster.local/ns/demo/client" is not a workload SPIFFE ID (<trust-domain>/ns/<namespace>/sa/<service-account>, spiffe:// optional); a leading or trailing '*' matches others)"
      "\n"
      R"(authorizationpolicy "demo/web-from-client": spec.rules[0].from[0].source.namespaces[0]: "Demo" is not a DNS-1123 label (lowercase letters, digits and '-', starting and ending with a letter or digit, at most 63 characters))");
}

TEST_F(PolicyStateTest, PoliciesReferToNothing) {
  ASSERT_TRUE(apply(request_of(kPolicy)).ok());
  // The workloads it selects may go; a policy may select none.
  v1::DeleteRequest remove;
  remove.add_names("service/demo/web");
  remove.add_names("workload/demo/web-a");
  v1::ApplyResponse response;
  const grpc::Status status = state_->remove(remove, &response);
  EXPECT_TRUE(status.ok()) << status.error_message();
}

TEST_F(PolicyStateTest, EveryNodeIsPushedEveryPolicy) {
  const Push n1 = state_->push_for("n1", {}, std::nullopt);
  const Push n2 = state_->push_for("n2", {}, std::nullopt);
  ASSERT_TRUE(apply(request_of(kPolicy)).ok());
  for (const auto &[node, before] : {std::pair{"n1", n1}, std::pair{"n2", n2}}) {
    const Push delta = state_->push_for(node, before.set, before.version);
    EXPECT_EQ(names(delta), std::set<std::string>{std::string(kName)}) << node;
    EXPECT_EQ(names(delta), names(state_->push_for(node, before.set, std::nullopt))) << node;
    EXPECT_TRUE(delta.removed.empty());
  }
  // Also a node that runs nothing and is not declared.
  EXPECT_TRUE(names(state_->push_for("n9", {}, std::nullopt)).contains(std::string(kName)));

  VersionMap holds = n1.set;
  holds[std::string(kName)] = policy().version();
  v1::DeleteRequest remove;
  remove.add_names(std::string(kName));
  v1::ApplyResponse response;
  ASSERT_TRUE(state_->remove(remove, &response).ok());
  const Push removal = state_->push_for("n1", holds, 2);
  EXPECT_TRUE(removal.resources.empty());
  EXPECT_EQ(removal.removed, std::vector<std::string>{std::string(kName)});
}

TEST(PolicyNodeFilter, AllPoliciesForEveryNode) {
  auto loaded =
      resources::load_yaml_string(std::string(kMesh) + "---\n" + std::string(kPolicy), "mesh.yaml");
  ASSERT_TRUE(loaded.ok());
  const Resources all = resources::to_resources(loaded.snapshot);
  for (const char *node : {"n1", "n2", "elsewhere"})
    EXPECT_TRUE(resources_for_node(all, node).contains(std::string(kName))) << node;
}

}  // namespace
}  // namespace sockmesh::controlplane
