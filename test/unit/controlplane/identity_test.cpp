// meshcp's CA as nodes meet it: bootstrap tokens, node certificates, SVIDs only for a node's own
// workloads, every refusal counted with its reason; the same over gRPC with TLS.
#include <gtest/gtest.h>

#include <fstream>

#include "fixture.h"
#include "identity_service.h"
#include "server.h"
#include "sockmesh/common/token_file.h"
#include "sockmesh/v1/controlplane.grpc.pb.h"
#include "sockmesh/v1/identity.grpc.pb.h"
#include "state.h"
#include "store.h"
#include "test_identity.h"

namespace sockmesh::controlplane {
namespace {

using namespace std::chrono_literals;
using testing::kMesh;
using testing::request_of;
using testing::TempDir;

class IdentityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = std::make_unique<Store>(dir_.path() + "/state");
    state_ = std::make_unique<State>(*store_);
    v1::ApplyResponse response;
    ASSERT_TRUE(state_->apply(request_of(kMesh), &response).ok());
    tokens_ = std::make_unique<BootstrapTokens>(dir_.path() + "/tokens", clock_);
    authority_ = std::make_unique<IdentityAuthority>(
        pki::CertificateAuthority::create("cluster.local", clock_), *tokens_, *state_,
        IdentityTtls{100s, 20s}, clock_);
  }

  std::string token_for(const std::string &node, int64_t ttl = 0) {
    v1::AddNodeRequest add;
    add.set_node(node);
    add.set_ttl_seconds(ttl);
    return authority_->add_node(add).token();
  }

  v1::JoinNodeRequest join_request(const std::string &node, const std::string &token) {
    v1::JoinNodeRequest request;
    request.set_node(node);
    request.set_token(token);
    request.set_csr_pem(pki::make_csr(node_key_, pki::SpiffeId::node("cluster.local", node)));
    return request;
  }

  v1::SignWorkloadsRequest sign_request(const std::string &workload,
                                        const std::string &sa = "default") {
    v1::SignWorkloadsRequest request;
    auto *csr = request.add_csrs();
    csr->set_workload(workload);
    const auto ns = workload.substr(0, workload.find('/'));
    csr->set_csr_pem(
        pki::make_csr(workload_key_, pki::SpiffeId::workload("cluster.local", ns, sa)));
    return request;
  }

  // The message of the refusal fn throws, with its reason checked and counted.
  std::string refusal(const std::string &reason, IdentityRefused::Code code,
                      const std::function<void()> &fn) {
    const uint64_t before = authority_->refusals()[reason];
    try {
      fn();
    } catch (const IdentityRefused &e) {
      EXPECT_EQ(e.reason(), reason);
      EXPECT_EQ(e.code(), code);
      EXPECT_EQ(authority_->refusals()[reason], before + 1);
      return e.what();
    }
    ADD_FAILURE() << "not refused";
    return "";
  }

  // Whole seconds: certificates carry no fractions.
  pki::TimePoint now_ = std::chrono::floor<std::chrono::seconds>(std::chrono::system_clock::now());
  pki::Clock clock_ = [this] { return now_; };
  TempDir dir_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<State> state_;
  std::unique_ptr<BootstrapTokens> tokens_;
  std::unique_ptr<IdentityAuthority> authority_;
  pki::PrivateKey node_key_ = pki::PrivateKey::generate();
  pki::PrivateKey workload_key_ = pki::PrivateKey::generate();
};

TEST_F(IdentityTest, NodeJoinsOnceWithItsTokenAndGetsANodeCertificate) {
  const std::string token = token_for("n1");
  EXPECT_TRUE(token.starts_with("smt1.")) << token;
  EXPECT_EQ(token.size(), 5u + 8 + 1 + 32);
  const auto joined = authority_->join(join_request("n1", token));
  const auto cert = pki::Certificate::from_pem(joined.certificate_pem());
  EXPECT_EQ(cert.spiffe_id()->str(), "spiffe://cluster.local/sockmesh/node/n1");
  EXPECT_EQ(cert.not_after(), now_ + 100s);
  EXPECT_EQ(joined.trust_domain(), "cluster.local");
  EXPECT_EQ(joined.trust_bundle_pem(), authority_->ca().bundle_pem());
  EXPECT_TRUE(pki::verify_svid({cert}, joined.trust_bundle_pem(), "cluster.local", now_).ok());
  // The key is the node's: the certificate is for the CSR's public key.
  EXPECT_EQ(EVP_PKEY_eq(X509_get0_pubkey(cert.get()), node_key_.get()), 1);

  EXPECT_EQ(refusal("token_used", IdentityRefused::Code::kUnauthenticated,
                    [&] { authority_->join(join_request("n1", token)); }),
            "node \"n1\": bootstrap token " + token.substr(5, 8) +
                ": already used (tokens are one-time)");
}

TEST_F(IdentityTest, TokensAreRefusedWhenExpiredUnknownMalformedOrForAnotherNode) {
  const std::string token = token_for("n1", 60);
  EXPECT_EQ(
      refusal("token_wrong_node", IdentityRefused::Code::kUnauthenticated,
              [&] { authority_->join(join_request("n2", token)); }),
      "node \"n2\": bootstrap token " + token.substr(5, 8) + ": made for node \"n1\", not \"n2\"");
  std::string forged = token;
  forged.back() = forged.back() == '0' ? '1' : '0';
  EXPECT_EQ(refusal("token_unknown", IdentityRefused::Code::kUnauthenticated,
                    [&] { authority_->join(join_request("n1", forged)); }),
            "node \"n1\": bootstrap token: unknown token");
  EXPECT_EQ(refusal("token_malformed", IdentityRefused::Code::kUnauthenticated,
                    [&] { authority_->join(join_request("n1", "hello")); }),
            "node \"n1\": bootstrap token: not a sockmesh token (expected smt1.<id>.<secret>)");
  now_ += 61s;
  EXPECT_EQ(refusal("token_expired", IdentityRefused::Code::kUnauthenticated,
                    [&] { authority_->join(join_request("n1", token)); }),
            "node \"n1\": bootstrap token " + token.substr(5, 8) + ": expired");
}

TEST_F(IdentityTest, TokensSurviveARestartOfMeshcpAndStayOneTime) {
  const std::string used = token_for("n1");
  const std::string fresh = token_for("n2");
  authority_->join(join_request("n1", used));
  BootstrapTokens reloaded(dir_.path() + "/tokens", clock_);
  EXPECT_THROW(reloaded.consume("n1", used), TokenRefused);
  EXPECT_NO_THROW(reloaded.consume("n2", fresh));
}

// meshcp --bootstrap-token-file: the cluster's reusable token joins any node name, any number of
// times, beside the one-time per-node tokens, which stay one-time; every join is counted by method.
TEST_F(IdentityTest, TheClusterTokenJoinsAnyNodeBesideOneTimeTokens) {
  const std::string cluster = "k8s-secret-0123456789abcdefghijklmnopqrstuv";  // 43 characters
  tokens_ = std::make_unique<BootstrapTokens>(dir_.path() + "/tokens", clock_, cluster);
  authority_ = std::make_unique<IdentityAuthority>(
      pki::CertificateAuthority::create("cluster.local", clock_), *tokens_, *state_,
      IdentityTtls{100s, 20s}, clock_);
  for (const std::string node : {"n1", "n2", "n1"}) {
    const auto joined = authority_->join(join_request(node, cluster));
    const auto cert = pki::Certificate::from_pem(joined.certificate_pem());
    EXPECT_EQ(cert.spiffe_id()->str(), "spiffe://cluster.local/sockmesh/node/" + node);
    EXPECT_TRUE(pki::verify_svid({cert}, joined.trust_bundle_pem(), "cluster.local", now_).ok());
  }
  // A one-time token beside it: accepted once, for its node only.
  const std::string once = token_for("n3");
  EXPECT_EQ(
      refusal("token_wrong_node", IdentityRefused::Code::kUnauthenticated,
              [&] { authority_->join(join_request("n2", once)); }),
      "node \"n2\": bootstrap token " + once.substr(5, 8) + ": made for node \"n3\", not \"n2\"");
  authority_->join(join_request("n3", once));
  EXPECT_EQ(
      refusal("token_used", IdentityRefused::Code::kUnauthenticated,
              [&] { authority_->join(join_request("n3", once)); }),
      "node \"n3\": bootstrap token " + once.substr(5, 8) + ": already used (tokens are one-time)");
  // Wrong tokens keep the per-node reasons: a near miss of the cluster token is malformed, a
  // well-formed unknown one unknown. Neither says a cluster token exists.
  std::string near = cluster;
  near.back() = 'w';
  EXPECT_EQ(refusal("token_malformed", IdentityRefused::Code::kUnauthenticated,
                    [&] { authority_->join(join_request("n1", near)); }),
            "node \"n1\": bootstrap token: not a sockmesh token (expected smt1.<id>.<secret>)");
  EXPECT_EQ(refusal("token_malformed", IdentityRefused::Code::kUnauthenticated,
                    [&] { authority_->join(join_request("n1", cluster + "\n")); }),
            "node \"n1\": bootstrap token: not a sockmesh token (expected smt1.<id>.<secret>)");
  EXPECT_EQ(refusal("token_unknown", IdentityRefused::Code::kUnauthenticated,
                    [&] {
                      authority_->join(join_request("n1", "smt1.0123abcd." + std::string(32, 'e')));
                    }),
            "node \"n1\": bootstrap token: unknown token");
  auto bad_name = join_request("n1", cluster);  // any name, but a valid one
  bad_name.set_node("N1!");
  EXPECT_EQ(refusal("bad_node_name", IdentityRefused::Code::kInvalidArgument,
                    [&] { authority_->join(bad_name); }),
            "node \"N1!\": not a valid node name");
  EXPECT_EQ(authority_->joins(),
            (std::map<std::string, uint64_t>{{"cluster_token", 3}, {"node_token", 1}}));
  EXPECT_EQ(authority_->issued().at("node"), 4u);
  // Without the cluster token (meshcp restarted without the file) it is just malformed.
  BootstrapTokens without(dir_.path() + "/tokens", clock_);
  EXPECT_FALSE(without.has_cluster_token());
  try {
    without.consume("n1", cluster);
    ADD_FAILURE() << "accepted";
  } catch (const TokenRefused &e) {
    EXPECT_EQ(e.reason(), "malformed");
  }
  EXPECT_EQ(BootstrapTokens(dir_.path() + "/tokens", clock_, cluster).consume("n9", cluster),
            BootstrapTokens::Method::kClusterToken);
  try {
    BootstrapTokens(dir_.path() + "/tokens", clock_, "short");
    ADD_FAILURE() << "a 5-character cluster token was taken";
  } catch (const std::invalid_argument &e) {
    EXPECT_EQ(std::string(e.what()),
              "the cluster bootstrap token must have at least 32 characters");
  }
}

// The file of --bootstrap-token-file (and meshd's --join-token-file): one line, trimmed, at least
// 32 characters; each refusal is one line naming the flag and the file.
TEST(TokenFileTest, OneTrimmedLineOfAtLeast32CharactersOrAOneLineError) {
  TempDir dir;
  const std::string flag = "--bootstrap-token-file";
  auto write = [&](const std::string &name, const std::string &text) {
    std::ofstream(dir.path() + "/" + name, std::ios::binary) << text;
    return dir.path() + "/" + name;
  };
  auto error_of = [&](const std::string &path) {
    try {
      read_token_file(path, flag);
    } catch (const std::runtime_error &e) {
      return std::string(e.what());
    }
    return std::string("<accepted>");
  };
  const std::string token(40, 'x');
  EXPECT_EQ(read_token_file(write("secret", token + "\n"), flag), token);  // as kubectl writes it
  EXPECT_EQ(read_token_file(write("crlf", token + "\r\n \t\n"), flag), token);
  EXPECT_EQ(read_token_file(write("bare", std::string(32, '7')), flag), std::string(32, '7'));

  const std::string missing = dir.path() + "/missing";
  EXPECT_EQ(error_of(missing), flag + " " + missing + ": cannot read: No such file or directory");
  EXPECT_EQ(error_of(dir.path()), flag + " " + dir.path() + ": cannot read: Is a directory");
  const auto empty = write("empty", "");
  EXPECT_EQ(error_of(empty), flag + " " + empty + ": empty (it must hold one token line)");
  const auto blank = write("blank", "\n  \n");
  EXPECT_EQ(error_of(blank), flag + " " + blank + ": empty (it must hold one token line)");
  const auto short_token = write("short", "abcdefghij0123456789abcdefghij1\n");  // 31
  EXPECT_EQ(error_of(short_token),
            flag + " " + short_token + ": the token has 31 characters, at least 32 are needed");
  const auto two = write("two", token + "\n" + token + "\n");
  EXPECT_EQ(error_of(two), flag + " " + two + ": more than one line (it must hold one token line)");
  const auto spaced = write("spaced", "token: " + token + "\n");
  EXPECT_EQ(error_of(spaced),
            flag + " " + spaced + ": the token holds a space or a control character");
  const auto big = write("big", std::string(70000, 'x'));
  EXPECT_EQ(error_of(big), flag + " " + big + ": larger than 64 KiB (it must hold one token line)");
}

TEST_F(IdentityTest, SvidsOnlyForTheCallersOwnWorkloads) {
  // web-a runs on n1 (fixture.h).
  const auto response = authority_->sign_workloads("n1", sign_request("demo/web-a"));
  ASSERT_EQ(response.svids_size(), 1);
  const auto chain = pki::Certificate::chain_from_pem(response.svids(0).certificate_pem());
  EXPECT_EQ(chain.front().spiffe_id()->str(), "spiffe://cluster.local/ns/demo/sa/default");
  EXPECT_EQ(response.svids(0).spiffe_id(), "spiffe://cluster.local/ns/demo/sa/default");
  EXPECT_EQ(chain.front().not_after(), now_ + 20s);
  EXPECT_EQ(EVP_PKEY_eq(X509_get0_pubkey(chain.front().get()), workload_key_.get()), 1);

  EXPECT_EQ(refusal("workload_on_other_node", IdentityRefused::Code::kPermissionDenied,
                    [&] { authority_->sign_workloads("n1", sign_request("demo/web-b")); }),
            "node \"n1\" asked for the SVID of workload \"demo/web-b\", which runs on node \"n2\"");
  EXPECT_EQ(refusal("unknown_workload", IdentityRefused::Code::kNotFound,
                    [&] { authority_->sign_workloads("n1", sign_request("demo/nope")); }),
            "node \"n1\": no workload \"demo/nope\"");
  EXPECT_EQ(refusal("csr_id_mismatch", IdentityRefused::Code::kInvalidArgument,
                    [&] { authority_->sign_workloads("n1", sign_request("demo/web-a", "admin")); }),
            "workload \"demo/web-a\": the CSR asks for spiffe://cluster.local/ns/demo/sa/admin, "
            "the workload's "
            "identity is spiffe://cluster.local/ns/demo/sa/default");
}

TEST_F(IdentityTest, ListShowsWhatIsValidPerNode) {
  authority_->join(join_request("n1", token_for("n1")));
  authority_->sign_workloads("n1", sign_request("demo/web-a"));
  auto listed = authority_->list({});
  ASSERT_EQ(listed.certificates_size(), 2);
  EXPECT_EQ(listed.certificates(0).workload(), "");
  EXPECT_EQ(listed.certificates(1).workload(), "demo/web-a");
  EXPECT_EQ(listed.ca_cert_hash(), authority_->ca().certificate().sha256_fingerprint());
  now_ += 21s;  // the SVID expired, the node certificate not
  listed = authority_->list({});
  ASSERT_EQ(listed.certificates_size(), 1);
  EXPECT_EQ(listed.certificates(0).spiffe_id(), "spiffe://cluster.local/sockmesh/node/n1");
}

// The same over gRPC: meshcp's agent listener is TLS with its CA; only JoinNode works without a
// node certificate, and the caller's node is the one its certificate names.
TEST(IdentityServiceTest, OverTlsTheCallerIsItsCertificatesNode) {
  TempDir dir;
  Store store(dir.path() + "/state");
  State state(store);
  v1::ApplyResponse applied;
  ASSERT_TRUE(state.apply(request_of(kMesh), &applied).ok());
  testing::TestIdentity identity(dir.path(), state);
  const std::string xds = "unix:" + dir.path() + "/xds.sock";
  Servers servers(state, identity.authority(), {xds}, dir.path() + "/api/api.sock");

  // Join over TLS without a client certificate, trusting meshcp's CA.
  testing::NodeCredentials anonymous{identity.authority().ca().bundle_pem(), "", ""};
  auto stub = v1::Identity::NewStub(testing::TestIdentity::channel(xds, anonymous));
  v1::AddNodeRequest add;
  add.set_node("n2");
  const auto key = pki::PrivateKey::generate();
  v1::JoinNodeRequest join;
  join.set_node("n2");
  join.set_token(identity.authority().add_node(add).token());
  join.set_csr_pem(pki::make_csr(key, pki::SpiffeId::node("cluster.local", "n2")));
  v1::JoinNodeResponse joined;
  {
    grpc::ClientContext context;
    ASSERT_TRUE(stub->JoinNode(&context, join, &joined).ok());
  }
  {
    grpc::ClientContext context;  // anonymous callers cannot get SVIDs
    v1::SignWorkloadsResponse svids;
    const auto status = stub->SignWorkloads(&context, {}, &svids);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
    EXPECT_EQ(status.error_message(),
              "this call needs a node certificate (join first with meshd --join-token)");
  }
  auto as_n2 = v1::Identity::NewStub(testing::TestIdentity::channel(
      xds, {joined.trust_bundle_pem(), key.pem(), joined.certificate_pem()}));
  const auto workload_key = pki::PrivateKey::generate();
  v1::SignWorkloadsRequest request;
  auto *csr = request.add_csrs();
  csr->set_workload("demo/web-a");  // on n1
  csr->set_csr_pem(
      pki::make_csr(workload_key, pki::SpiffeId::workload("cluster.local", "demo", "default")));
  {
    grpc::ClientContext context;
    v1::SignWorkloadsResponse svids;
    const auto status = as_n2->SignWorkloads(&context, request, &svids);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
    EXPECT_EQ(
        status.error_message(),
        "node \"n2\" asked for the SVID of workload \"demo/web-a\", which runs on node \"n1\"");
  }
  csr->set_workload("demo/web-b");  // on n2
  {
    grpc::ClientContext context;
    v1::SignWorkloadsResponse svids;
    ASSERT_TRUE(as_n2->SignWorkloads(&context, request, &svids).ok());
    ASSERT_EQ(svids.svids_size(), 1);
    EXPECT_EQ(svids.svids(0).workload(), "demo/web-b");
  }
  // A node certificate of another CA does not get through the TLS handshake at all.
  TempDir other_dir;
  testing::TestIdentity other(other_dir.path(), state);
  auto foreign = other.join("n2");
  foreign.bundle_pem =
      identity.authority().ca().bundle_pem();  // trusts meshcp, presents a foreign cert
  auto as_foreign = v1::Identity::NewStub(testing::TestIdentity::channel(xds, foreign));
  {
    grpc::ClientContext context;
    v1::SignWorkloadsResponse svids;
    EXPECT_FALSE(as_foreign->SignWorkloads(&context, request, &svids).ok());
  }
  // The API reports the refusals.
  v1::ControlPlaneStatus status;
  auto api = v1::ControlPlane::NewStub(grpc::CreateChannel("unix:" + dir.path() + "/api/api.sock",
                                                           grpc::InsecureChannelCredentials()));
  grpc::ClientContext context;
  ASSERT_TRUE(api->GetStatus(&context, {}, &status).ok());
  EXPECT_EQ(status.identity_refusals().at("workload_on_other_node"), 1u);
  servers.shutdown();
}

}  // namespace
}  // namespace sockmesh::controlplane
