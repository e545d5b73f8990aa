// The persisted last-known-good state: round trip, absence, corruption.
#include "xds/last_known_good.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace sockmesh::xds {
namespace {

class LastKnownGoodTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/sockmesh-lkg-XXXXXX";
    ASSERT_TRUE(mkdtemp(tmpl));
    dir_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string dir_;
};

TEST_F(LastKnownGoodTest, SavedStateLoadsBackWhole) {
  KnownGood state;
  state.system_version = "42";
  v1::Resource service;
  service.set_name("service/demo/web");
  service.set_version("abc");
  service.mutable_service()->mutable_metadata()->set_name("web");
  state.resources[service.name()] = service;
  LastKnownGood store(dir_ + "/node/state.pb");  // parent directories are made
  store.save(state);
  auto loaded = store.load();
  ASSERT_TRUE(loaded);
  EXPECT_EQ(loaded->system_version, "42");
  ASSERT_EQ(loaded->resources.size(), 1u);
  EXPECT_EQ(loaded->resources.at("service/demo/web").version(), "abc");
  EXPECT_EQ(loaded->resources.at("service/demo/web").service().metadata().name(), "web");
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/node/state.pb.tmp"));
}

// Every kind of resource survives a restart of the agent, the policies (which the kernel does not
// hold) too.
TEST_F(LastKnownGoodTest, AuthorizationPoliciesLoadBack) {
  KnownGood state;
  state.system_version = "7";
  v1::Resource policy;
  policy.set_name("authorizationpolicy/demo/web-from-client");
  policy.set_version("p1");
  auto *body = policy.mutable_authorization_policy();
  body->mutable_metadata()->set_name("web-from-client");
  body->mutable_metadata()->set_namespace_("demo");
  body->set_action(v1::AUTHORIZATION_ACTION_DENY);
  body->add_rules()->add_from()->mutable_source()->add_principals("cluster.local/ns/demo/sa/x");
  state.resources[policy.name()] = policy;
  LastKnownGood store(dir_ + "/state.pb");
  store.write(LastKnownGood::serialize(state));
  auto loaded = store.load();
  ASSERT_TRUE(loaded);
  ASSERT_EQ(loaded->resources.size(), 1u);
  const v1::Resource &back = loaded->resources.at(policy.name());
  EXPECT_EQ(back.version(), "p1");
  EXPECT_EQ(back.SerializeAsString(), policy.SerializeAsString());
}

TEST_F(LastKnownGoodTest, NoFileMeansNoState) {
  EXPECT_FALSE(LastKnownGood(dir_ + "/missing.pb").load());
}

TEST_F(LastKnownGoodTest, CorruptFileIsAnErrorNamingIt) {
  std::ofstream(dir_ + "/bad.pb") << "\xff\xff\xff not a protobuf";
  try {
    LastKnownGood(dir_ + "/bad.pb").load();
    FAIL() << "expected an error";
  } catch (const std::runtime_error &e) {
    EXPECT_EQ(std::string(e.what()),
              dir_ + "/bad.pb is not a last-known-good state file (corrupt?)");
  }
}

}  // namespace
}  // namespace sockmesh::xds
