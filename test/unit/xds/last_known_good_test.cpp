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
