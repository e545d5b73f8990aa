// Joining: the node pins meshcp's CA by its hash, trades its token for a node certificate, keeps
// its identity on disk and loads it on the next start without a token.
#include "identity/node_identity.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>

#include "fixture.h"
#include "helm_style_ca.h"
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
    servers_.emplace(*state_, identity_->authority(), std::vector<std::string>{xds()},
                     dir_.path() + "/api/api.sock");
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
  auto joined =
      NodeIdentity::load_or_join(dir, "n1", {xds(), token("n1"), hash}, pki::system_clock());
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
    EXPECT_EQ(std::string(e.what()),
              "the node certificate in " + dir +
                  " is not for node \"n2\"; join again with meshctl node add n2");
  }
}

TEST_F(NodeIdentityTest, RefusesAControlPlaneThatDoesNotPresentThePinnedCa) {
  const std::string wrong = "sha256:" + std::string(64, '0');
  try {
    NodeIdentity::load_or_join(dir_.path() + "/n1", "n1", {xds(), token("n1"), wrong},
                               pki::system_clock());
    FAIL();
  } catch (const std::runtime_error &e) {
    EXPECT_EQ(std::string(e.what()), "meshcp at " + xds() + " does not present the CA " + wrong +
                                         " (--ca-cert-hash): refusing to join it");
  }
  EXPECT_EQ(fetch_pinned_ca(xds(), identity_->authority().ca_cert_hash()),
            identity_->authority().ca().certificate().pem());
}

TEST_F(NodeIdentityTest, WithoutTokenOrIdentityTheErrorSaysWhatToDo) {
  try {
    NodeIdentity::load_or_join(dir_.path() + "/n1", "n1", {xds(), "", ""}, pki::system_clock());
    FAIL();
  } catch (const std::runtime_error &e) {
    EXPECT_EQ(std::string(e.what()),
              "node \"n1\" has not joined the mesh (no " + dir_.path() +
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
    EXPECT_EQ(std::string(e.what()), "meshcp refused JoinNode: node \"n1\": bootstrap token " +
                                         t.substr(5, 8) + ": already used (tokens are one-time)");
  }
  EXPECT_EQ(identity_->authority().refusals().at("token_used"), 1u);
}

std::string write_file(const std::string &path, const std::string &text) {
  std::ofstream(path, std::ios::binary) << text;
  return path;
}

std::string error_of(const std::function<void()> &fn) {
  try {
    fn();
  } catch (const std::runtime_error &e) {
    return e.what();
  }
  return "<no error>";
}

// --ca-cert-file pins the fingerprint --ca-cert-hash names (the same function computes both); the
// flags' errors are one line each.
TEST_F(NodeIdentityTest, CaCertFileIsPinnedLikeItsHash) {
  const auto &ca = identity_->authority().ca();
  const std::string ca_file = write_file(dir_.path() + "/ca.crt", ca.certificate().pem());
  EXPECT_EQ(ca_cert_file_hash(ca_file), identity_->authority().ca_cert_hash());
  EXPECT_EQ(ca_cert_file_hash(ca_file), ca.certificate().sha256_fingerprint());
  const std::string hash = identity_->authority().ca_cert_hash();
  EXPECT_EQ(join_options({.token = "t", .ca_cert_hash = hash}).ca_cert_hash, hash);
  EXPECT_EQ(join_options({.token = "t", .ca_cert_file = ca_file}).ca_cert_hash, hash);
  EXPECT_EQ(
      join_options({.token = "t", .ca_cert_hash = hash, .ca_cert_file = ca_file}).ca_cert_hash,
      hash);
  // The file joins as the hash does.
  auto joined = NodeIdentity::load_or_join(dir_.path() + "/n1", "n1",
                                           {xds(), token("n1"), ca_cert_file_hash(ca_file)},
                                           pki::system_clock());
  EXPECT_EQ(pki::Certificate::from_pem(joined.certificate_pem).spiffe_id()->str(),
            "spiffe://cluster.local/sockmesh/node/n1");

  const std::string other = "sha256:" + std::string(64, 'a');
  EXPECT_EQ(error_of([&] {
              join_options({.token = "t", .ca_cert_hash = other, .ca_cert_file = ca_file});
            }),
            "--ca-cert-file " + ca_file + " is the CA " + hash + ", not the --ca-cert-hash " +
                other + ": give one of them, or the same CA");
  const std::string missing = dir_.path() + "/nope.crt";
  EXPECT_EQ(error_of([&] { ca_cert_file_hash(missing); }),
            "--ca-cert-file " + missing + ": cannot read: No such file or directory");
  const std::string key_file =
      write_file(dir_.path() + "/tls.key", pki::PrivateKey::generate().pem());
  EXPECT_EQ(error_of([&] { ca_cert_file_hash(key_file); }),
            "--ca-cert-file " + key_file +
                ": not a PEM certificate (no -----BEGIN CERTIFICATE----- block)");
  const std::string leaf_file = write_file(dir_.path() + "/node.crt", joined.certificate_pem);
  EXPECT_EQ(error_of([&] { ca_cert_file_hash(leaf_file); }),
            "--ca-cert-file " + leaf_file +
                ": not a CA certificate (no basicConstraints CA:TRUE); give meshcp's CA "
                "certificate, e.g. the "
                "tls.crt of the CA's Secret");
}

TEST_F(NodeIdentityTest, JoinFlagsErrors) {
  const std::string token_file = write_file(dir_.path() + "/token", std::string(40, 'k') + "\n");
  const std::string hash = identity_->authority().ca_cert_hash();
  EXPECT_EQ(error_of([&] {
              join_options({.token = "t", .token_file = token_file, .ca_cert_hash = hash});
            }),
            "give --join-token or --join-token-file, not both");
  EXPECT_EQ(
      error_of([&] { join_options({.token_file = token_file}); }),
      "--join-token-file needs --ca-cert-hash or --ca-cert-file (the CA meshcp must present)");
  EXPECT_EQ(error_of([&] { join_options({.token = "t"}); }),
            "--join-token needs --ca-cert-hash or --ca-cert-file (the CA meshcp must present)");
  const std::string short_file = write_file(dir_.path() + "/short", "smt1.x\n");
  EXPECT_EQ(
      error_of([&] { join_options({.token_file = short_file, .ca_cert_hash = hash}); }),
      "--join-token-file " + short_file + ": the token has 6 characters, at least 32 are needed");
  const auto read = join_options({.token_file = token_file, .ca_cert_hash = hash});
  EXPECT_EQ(read.token, std::string(40, 'k'));
  EXPECT_TRUE(read.token_only_when_needed);
  EXPECT_FALSE(join_options({.token = "t", .ca_cert_hash = hash}).token_only_when_needed);
  EXPECT_EQ(join_options({}).token, "");  // no join flags: the node must have joined
}

// What a Kubernetes DaemonSet does: meshcp runs with the chart's CA (Helm genCAWithKey: CN only,
// no URI SAN, SEC1 key) and a cluster token from a Secret; every node's meshd gets the same
// --join-token-file and --ca-cert-file (the CA Secret's tls.crt), and a restart keeps its identity.
class ClusterTokenJoinTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_.emplace(dir_.path() + "/state");
    state_.emplace(*store_);
    identity_.emplace(
        dir_.path(), *state_,
        pki::CertificateAuthority::from_pem(helm_.cert_pem, helm_.key_pem, "cluster.local"),
        kToken);
    servers_.emplace(*state_, identity_->authority(), std::vector<std::string>{xds()},
                     dir_.path() + "/api/api.sock");
  }
  void TearDown() override { servers_.reset(); }
  std::string xds() const { return "unix:" + dir_.path() + "/xds.sock"; }
  JoinOptions daemonset_join() {
    auto join =
        join_options({.token_file = write_file(dir_.path() + "/token", kToken + "\n"),
                      .ca_cert_file = write_file(dir_.path() + "/tls.crt", helm_.cert_pem)});
    join.controlplane = xds();
    return join;
  }

  const std::string kToken = "Zq3Xv9LmN2pR7sT1uW4yA6bC8dE0fG5hJ";  // 33 characters, randAlphaNum
  const sockmesh::testing::HelmStyleCa helm_ = sockmesh::testing::make_helm_style_ca();
  TempDir dir_;
  std::optional<controlplane::Store> store_;
  std::optional<controlplane::State> state_;
  std::optional<controlplane::testing::TestIdentity> identity_;
  std::optional<controlplane::Servers> servers_;
};

TEST_F(ClusterTokenJoinTest, EveryNodeJoinsWithTheSameFilesAndARestartKeepsItsIdentity) {
  const auto join = daemonset_join();
  EXPECT_EQ(join.ca_cert_hash, pki::Certificate::from_pem(helm_.cert_pem).sha256_fingerprint());
  std::map<std::string, NodeIdentity> joined;
  for (const std::string node : {"n1", "n2"}) {
    auto id = NodeIdentity::load_or_join(dir_.path() + "/" + node, node, join, pki::system_clock());
    // The CA names no trust domain; meshd took it from meshcp's serving certificate.
    EXPECT_EQ(id.trust_domain, "cluster.local");
    const auto cert = pki::Certificate::from_pem(id.certificate_pem);
    EXPECT_EQ(cert.spiffe_id()->str(), "spiffe://cluster.local/sockmesh/node/" + node);
    EXPECT_TRUE(
        pki::verify_svid({cert}, helm_.cert_pem, "cluster.local", pki::system_clock()()).ok());
    EXPECT_EQ(id.bundle_pem, pki::Certificate::from_pem(helm_.cert_pem).pem());
    joined.emplace(node, std::move(id));
  }
  EXPECT_EQ(identity_->authority().joins().at("cluster_token"), 2u);

  // A restart with the same (always mounted) files: the identity on disk, no new join.
  const auto again =
      NodeIdentity::load_or_join(dir_.path() + "/n1", "n1", join, pki::system_clock());
  EXPECT_EQ(again.certificate_pem, joined.at("n1").certificate_pem);
  EXPECT_EQ(again.key.pem(), joined.at("n1").key.pem());
  EXPECT_EQ(identity_->authority().joins().at("cluster_token"), 2u);

  // Identity files of another node name (a reused host path): joined anew under this name.
  const auto renamed =
      NodeIdentity::load_or_join(dir_.path() + "/n1", "n3", join, pki::system_clock());
  EXPECT_EQ(pki::Certificate::from_pem(renamed.certificate_pem).spiffe_id()->str(),
            "spiffe://cluster.local/sockmesh/node/n3");
  EXPECT_EQ(identity_->authority().joins().at("cluster_token"), 3u);

  // Pinned to another CA (a chart reinstalled with a new one): the identity on disk is not of it,
  // so the node joins anew, and this meshcp does not present that CA.
  auto other_ca = join;
  other_ca.ca_cert_hash = "sha256:" + std::string(64, 'b');
  EXPECT_EQ(error_of([&] {
              NodeIdentity::load_or_join(dir_.path() + "/n2", "n2", other_ca, pki::system_clock());
            }),
            "meshcp at " + xds() + " does not present the CA " + other_ca.ca_cert_hash +
                " (--ca-cert-hash): refusing to join it");

  // A wrong token in the file is refused with the per-node token's reason.
  auto wrong = join;
  wrong.token = std::string(33, 'w');
  EXPECT_EQ(error_of([&] {
              NodeIdentity::load_or_join(dir_.path() + "/n4", "n4", wrong, pki::system_clock());
            }),
            "meshcp refused JoinNode: node \"n4\": bootstrap token: not a sockmesh token (expected "
            "smt1.<id>.<secret>)");
  EXPECT_EQ(identity_->authority().refusals().at("token_malformed"), 1u);
}

}  // namespace
}  // namespace sockmesh::identity
