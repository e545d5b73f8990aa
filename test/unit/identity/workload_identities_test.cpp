// The agent's SVIDs: one per identity, renewed at half their lifetime with a new key and a new
// generation, nothing changed when meshcp refuses. Time is injected.
#include "identity/workload_identities.h"

#include <gtest/gtest.h>

namespace sockmesh::identity {
namespace {

using namespace std::chrono_literals;

class WorkloadIdentitiesTest : public ::testing::Test {
 protected:
  WorkloadIdentitiesTest()
      : ca_(pki::CertificateAuthority::create("cluster.local", clock_)),
        identities_([this](const v1::SignWorkloadsRequest &r) { return sign(r); }, clock_) {}

  // meshcp's CA as a fake: signs every CSR for its own ID with a 100 s lifetime.
  v1::SignWorkloadsResponse sign(const v1::SignWorkloadsRequest &request) {
    ++calls_;
    last_ = request;
    if (!refuse_.empty()) throw std::runtime_error(refuse_);
    v1::SignWorkloadsResponse response;
    for (const auto &item : request.csrs()) {
      const auto csr = pki::parse_csr(item.csr_pem());
      pki::IssueOptions options;
      options.ttl = 100s;
      options.backdate = 0s;
      auto *svid = response.add_svids();
      svid->set_workload(item.workload());
      svid->set_spiffe_id(csr.id.str());
      svid->set_certificate_pem(ca_.issue(csr, answer_id_ ? *answer_id_ : csr.id, options, now_));
    }
    response.set_trust_bundle_pem(ca_.bundle_pem());
    return response;
  }

  static pki::SpiffeId id(const std::string &sa) { return pki::SpiffeId::workload("cluster.local", "demo", sa); }

  pki::TimePoint now_ = std::chrono::floor<std::chrono::seconds>(std::chrono::system_clock::now());
  pki::Clock clock_ = [this] { return now_; };
  pki::CertificateAuthority ca_;
  WorkloadIdentities identities_;
  int calls_ = 0;
  v1::SignWorkloadsRequest last_;
  std::string refuse_;
  std::optional<pki::SpiffeId> answer_id_;
};

TEST_F(WorkloadIdentitiesTest, OneSvidPerIdentityRenewedAtHalfLife) {
  identities_.set_workloads({{"demo/client-a", id("client")}, {"demo/client-b", id("client")}, {"demo/web", id("web")}});
  EXPECT_EQ(identities_.refresh(), now_ + 50s);
  ASSERT_EQ(calls_, 1);
  ASSERT_EQ(last_.csrs_size(), 2);  // client-a and client-b share one identity
  const auto first = identities_.current(id("client"));
  ASSERT_TRUE(first);
  EXPECT_EQ(first->generation, 1u);
  EXPECT_EQ(first->not_after, now_ + 100s);
  EXPECT_EQ(first->credential.chain.front().spiffe_id(), id("client"));
  EXPECT_EQ(identities_.bundle_pem(), ca_.bundle_pem());

  now_ += 49s;  // not due: nothing asked
  EXPECT_EQ(identities_.refresh(), now_ + 1s);
  EXPECT_EQ(calls_, 1);

  now_ += 1s;  // due: both renewed in one request, each with a new key
  EXPECT_EQ(identities_.refresh(), now_ + 50s);
  EXPECT_EQ(calls_, 2);
  EXPECT_EQ(last_.csrs_size(), 2);
  const auto second = identities_.current(id("client"));
  EXPECT_EQ(second->generation, 2u);
  EXPECT_EQ(second->workload, first->workload);  // renewals name the same workload
  EXPECT_NE(EVP_PKEY_eq(second->credential.key.get(), first->credential.key.get()), 1);
  EXPECT_NE(second->credential.chain.front().serial_hex(), first->credential.chain.front().serial_hex());
}

TEST_F(WorkloadIdentitiesTest, ARefusalChangesNothingAndIsRetried) {
  identities_.set_workloads({{"demo/web", id("web")}});
  identities_.refresh();
  now_ += 60s;
  refuse_ = "meshcp refused SignWorkloads: no";
  EXPECT_THROW(identities_.refresh(), std::runtime_error);
  EXPECT_EQ(identities_.current(id("web"))->generation, 1u);  // the old SVID keeps serving
  refuse_.clear();
  identities_.refresh();
  EXPECT_EQ(identities_.current(id("web"))->generation, 2u);
}

TEST_F(WorkloadIdentitiesTest, GoneWorkloadsDropTheirIdentityAndGenerationsNeverRepeat) {
  identities_.set_workloads({{"demo/web", id("web")}});
  identities_.refresh();
  identities_.set_workloads({});
  EXPECT_FALSE(identities_.current(id("web")));
  EXPECT_EQ(identities_.refresh(), pki::TimePoint::max());
  identities_.set_workloads({{"demo/web", id("web")}});
  identities_.refresh();
  EXPECT_EQ(identities_.current(id("web"))->generation, 2u);
}

TEST_F(WorkloadIdentitiesTest, AnSvidForAnotherIdentityIsRefused) {
  identities_.set_workloads({{"demo/web", id("web")}});
  answer_id_ = id("admin");
  try {
    identities_.refresh();
    FAIL() << "accepted";
  } catch (const std::runtime_error &e) {
    EXPECT_STREQ(e.what(), "meshcp answered an SVID for another identity than spiffe://cluster.local/ns/demo/sa/web");
  }
  EXPECT_FALSE(identities_.current(id("web")));
}

}  // namespace
}  // namespace sockmesh::identity
