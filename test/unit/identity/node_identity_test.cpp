// Joining: the node pins meshcp's CA by its hash, trades its token for a node certificate, keeps
// its identity on disk and loads it on the next start without a token.
#include "identity/node_identity.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include "fixture.h"
#include "server.h"
#include "state.h"
#include "store.h"
#include "test_identity.h"

namespace sockmesh::identity {
namespace {

using controlplane::testing::TempDir;

class NodeIdentityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_.emplace(dir_.path() + "/state");
    state_.emplace(*store_);
    identity_.emplace(dir_.path(), *state_);
    servers_.emplace(*state_, identity_->authority(), std::vector<std::string>{xds()}, dir_.path() + "/api/api.sock");
  }
  void TearDown() override { servers_.reset(); }
  std::string xds() const { return "unix:" + dir_.path() + "/xds.sock"; }
  std::string token(const std::string &node) {
    v1::AddNodeRequest add;
    add.set_node(node);
    return identity_->authority().add_node(add).token();
  }

  TempDir dir_;
  std::optional<controlplane::Store> store_;
  std::optional<controlplane::State> state_;
  std::optional<controlplane::testing::TestIdentity> identity_;
  std::optional<controlplane::Servers> servers_;
};

TEST_F(NodeIdentityTest, JoinsOnceThenLoadsFromDisk) {
  const std::string dir = dir_.path() + "/n1/identity";
  const auto hash = identity_->authority().ca_cert_hash();
  auto joined = NodeIdentity::load_or_join(dir, "n1", {xds(), token("n1"), hash}, pki::system_clock());
  EXPECT_EQ(joined.trust_domain, "cluster.local");
  EXPECT_EQ(pki::Certificate::from_pem(joined.certificate_pem).spiffe_id()->str(),
            "spiffe://cluster.local/sockmesh/node/n1");
  struct stat st {};
  ASSERT_EQ(::stat((dir + "/node.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  // Next start: no token needed; the same key and certificate.
  auto loaded = NodeIdentity::load_or_join(dir, "n1", {xds(), "", ""}, pki::system_clock());
  EXPECT_EQ(loaded.certificate_pem, joined.certificate_pem);
  EXPECT_EQ(loaded.key.pem(), joined.key.pem());
  // Another node's name on the same files is refused.
  try {
    NodeIdentity::load_or_join(dir, "n2", {xds(), "", ""}, pki::system_clock());
    FAIL();
  } catch (const std::runtime_error &e) {
    EXPECT_EQ(std::string(e.what()), "the node certificate in " + dir +
                                         " is not for node \"n2\"; join again with meshctl node add n2");
  }
}

TEST_F(NodeIdentityTest, RefusesAControlPlaneThatDoesNotPresentThePinnedCa) {
  const std::string wrong = "sha256:" + std::string(64, '0');
  try {
    NodeIdentity::load_or_join(dir_.path() + "/n1", "n1", {xds(), token("n1"), wrong}, pki::system_clock());
    FAIL();
  } catch (const std::runtime_error &e) {
    EXPECT_EQ(std::string(e.what()),
              "meshcp at " + xds() + " does not present the CA " + wrong + " (--ca-cert-hash): refusing to join it");
  }
  EXPECT_EQ(fetch_pinned_ca(xds(), identity_->authority().ca_cert_hash()),
            identity_->authority().ca().certificate().pem());
}

TEST_F(NodeIdentityTest, WithoutTokenOrIdentityTheErrorSaysWhatToDo) {
  try {
    NodeIdentity::load_or_join(dir_.path() + "/n1", "n1", {xds(), "", ""}, pki::system_clock());
    FAIL();
  } catch (const std::runtime_error &e) {
    EXPECT_EQ(std::string(e.what()), "node \"n1\" has not joined the mesh (no " + dir_.path() +
                                         "/n1/node.key): run `meshctl node add n1` and start meshd with "
                                         "--join-token and --ca-cert-hash");
  }
}

TEST_F(NodeIdentityTest, AReusedTokenIsRefusedByMeshcp) {
  const auto hash = identity_->authority().ca_cert_hash();
  const std::string t = token("n1");
  NodeIdentity::load_or_join(dir_.path() + "/a", "n1", {xds(), t, hash}, pki::system_clock());
  try {
    NodeIdentity::load_or_join(dir_.path() + "/b", "n1", {xds(), t, hash}, pki::system_clock());
    FAIL();
  } catch (const std::runtime_error &e) {
    EXPECT_EQ(std::string(e.what()), "meshcp refused JoinNode: node \"n1\": bootstrap token " + t.substr(5, 8) +
                                         ": already used (tokens are one-time)");
  }
  EXPECT_EQ(identity_->authority().refusals().at("token_used"), 1u);
}

}  // namespace
}  // namespace sockmesh::identity
