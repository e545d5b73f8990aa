#include <gtest/gtest.h>

#include "pki_test_util.h"

namespace sockmesh::pki {
namespace {

using namespace std::chrono_literals;
using testing::error_of;
using testing::fixed_clock;
using testing::issue_credential;
using testing::test_now;

class VerifyTest : public ::testing::Test {
 protected:
  TimePoint now_ = test_now();
  // Root created a day earlier so "before the leaf" is still inside the root's validity.
  CertificateAuthority ca_ = CertificateAuthority::create("td.test", fixed_clock(now_ - 24h));
  SpiffeId id_ = SpiffeId::workload("td.test", "default", "web");
};

TEST_F(VerifyTest, AcceptsAnIssuedLeaf) {
  auto cred = issue_credential(ca_, id_, now_);
  Verified v = verify_svid(cred.chain, ca_.bundle_pem(), "td.test", now_);
  EXPECT_TRUE(v.ok());
  EXPECT_EQ(v.id, id_);
  EXPECT_FALSE(v.reject);
  EXPECT_EQ(v.detail, "");
  // The root sent along (untrusted) changes nothing.
  auto with_root = cred.chain;
  with_root.push_back(ca_.certificate());
  EXPECT_EQ(verify_svid(with_root, ca_.bundle_pem(), "td.test", now_).id, id_);
  EXPECT_EQ(ERR_peek_error(), 0u);
}

TEST_F(VerifyTest, OtherCaIsUnknown) {
  auto other = CertificateAuthority::create("td.test", fixed_clock(now_));
  auto cred = issue_credential(other, id_, now_);
  Verified v = verify_svid(cred.chain, ca_.bundle_pem(), "td.test", now_);
  EXPECT_FALSE(v.ok());
  EXPECT_EQ(v.reject, Reject::kUnknownCa);
  EXPECT_EQ(v.detail, "spiffe://td.test/ns/default/sa/web: unable to get local issuer certificate");
  // A self-signed certificate (no SAN) presented directly.
  PrivateKey key = PrivateKey::generate();
  auto self = testing::craft(key, nullptr, key, {}, false, now_, "self");
  Verified s = verify_svid({self}, ca_.bundle_pem(), "td.test", now_);
  EXPECT_EQ(s.reject, Reject::kUnknownCa);
  EXPECT_EQ(s.detail, "subject \"CN=self\": self-signed certificate");
}

TEST_F(VerifyTest, ExpiredViaInjectedTime) {
  auto cred = issue_credential(ca_, id_, now_);
  Verified v = verify_svid(cred.chain, ca_.bundle_pem(), "td.test", now_ + 3601s);
  EXPECT_EQ(v.reject, Reject::kExpired);
  EXPECT_EQ(v.detail, "spiffe://td.test/ns/default/sa/web: certificate has expired");
  EXPECT_TRUE(verify_svid(cred.chain, ca_.bundle_pem(), "td.test", now_ + 3599s).ok());
}

TEST_F(VerifyTest, NotYetValid) {
  auto cred = issue_credential(ca_, id_, now_);  // not_before = now - 60 s
  Verified v = verify_svid(cred.chain, ca_.bundle_pem(), "td.test", now_ - 61s);
  EXPECT_EQ(v.reject, Reject::kNotYetValid);
  EXPECT_EQ(v.detail, "spiffe://td.test/ns/default/sa/web: certificate is not yet valid");
  EXPECT_TRUE(verify_svid(cred.chain, ca_.bundle_pem(), "td.test", now_ - 59s).ok());
}

TEST_F(VerifyTest, WrongTrustDomain) {
  // A CA refuses foreign IDs, so the foreign leaf comes from a second CA trusted in the same
  // bundle.
  auto other = CertificateAuthority::create("other.test", fixed_clock(now_));
  auto cred = issue_credential(other, SpiffeId::workload("other.test", "default", "web"), now_);
  std::string bundle = ca_.bundle_pem() + other.bundle_pem();
  Verified v = verify_svid(cred.chain, bundle, "td.test", now_);
  EXPECT_EQ(v.reject, Reject::kWrongTrustDomain);
  EXPECT_EQ(v.detail,
            "spiffe://other.test/ns/default/sa/web: trust domain other.test, expected td.test");
  EXPECT_TRUE(verify_svid(cred.chain, bundle, "other.test", now_).ok());
}

TEST_F(VerifyTest, SpiffeIdMustBeOneValidUri) {
  auto root = testing::make_root("td.test", now_);
  PrivateKey key = PrivateKey::generate();
  auto none = testing::craft(key, root.cert.get(), root.key, {}, false, now_, "nosan");
  Verified v = verify_svid({none}, root.cert.pem(), "td.test", now_);
  EXPECT_EQ(v.reject, Reject::kNoSpiffeId);
  EXPECT_EQ(v.detail, "subject \"CN=nosan\": no SPIFFE ID (no URI SAN)");

  auto two = testing::craft(key, root.cert.get(), root.key,
                            {"spiffe://td.test/a", "spiffe://td.test/b"}, false, now_, "two");
  v = verify_svid({two}, root.cert.pem(), "td.test", now_);
  EXPECT_EQ(v.reject, Reject::kNoSpiffeId);
  EXPECT_EQ(v.detail, "subject \"CN=two\": no SPIFFE ID (2 URI SANs)");

  auto bad = testing::craft(key, root.cert.get(), root.key, {"spiffe://td.test/a//b"}, false, now_);
  v = verify_svid({bad}, root.cert.pem(), "td.test", now_);
  EXPECT_EQ(v.reject, Reject::kNoSpiffeId);
  EXPECT_EQ(v.detail, "spiffe://td.test/a//b: no SPIFFE ID (URI SAN is not a valid SPIFFE ID)");
}

TEST_F(VerifyTest, CaAsLeafAndBadSignatureAreBadCertificates) {
  auto root = testing::make_root("td.test", now_);
  PrivateKey key = PrivateKey::generate();
  auto ca_leaf = testing::craft(key, root.cert.get(), root.key, {"spiffe://td.test/x"}, true, now_);
  Verified v = verify_svid({ca_leaf}, root.cert.pem(), "td.test", now_);
  EXPECT_EQ(v.reject, Reject::kBadCertificate);
  EXPECT_EQ(v.detail, "spiffe://td.test/x: is a CA certificate, not a leaf");

  // Right issuer name, wrong signer.
  auto forged = testing::craft(key, root.cert.get(), key, {"spiffe://td.test/x"}, false, now_);
  v = verify_svid({forged}, root.cert.pem(), "td.test", now_);
  EXPECT_EQ(v.reject, Reject::kBadCertificate);
  EXPECT_EQ(v.detail, "spiffe://td.test/x: certificate signature failure");
  EXPECT_EQ(ERR_peek_error(), 0u);
}

TEST_F(VerifyTest, EmptyChainIsNoCertificate) {
  Verified v = verify_svid({}, ca_.bundle_pem(), "td.test", now_);
  EXPECT_EQ(v.reject, Reject::kNoCertificate);
  EXPECT_EQ(v.detail, "no certificate presented");
  EXPECT_FALSE(v.ok());
}

TEST_F(VerifyTest, EmptyBundleIsAnError) {
  auto cred = issue_credential(ca_, id_, now_);
  EXPECT_EQ(error_of([&] { verify_svid(cred.chain, "", "td.test", now_); }),
            "trust bundle: no certificate in it");
}

TEST(ReasonNameTest, StableNames) {
  EXPECT_EQ(reason_name(Reject::kNoCertificate), "no_certificate");
  EXPECT_EQ(reason_name(Reject::kUnknownCa), "unknown_ca");
  EXPECT_EQ(reason_name(Reject::kExpired), "expired");
  EXPECT_EQ(reason_name(Reject::kNotYetValid), "not_yet_valid");
  EXPECT_EQ(reason_name(Reject::kNoSpiffeId), "no_spiffe_id");
  EXPECT_EQ(reason_name(Reject::kWrongTrustDomain), "wrong_trust_domain");
  EXPECT_EQ(reason_name(Reject::kBadCertificate), "bad_certificate");
}

TEST(CertificateTest, ChainFromPemKeepsOrderAndRefusesDamage) {
  TimePoint now = test_now();
  auto ca = CertificateAuthority::create("td.test", fixed_clock(now));
  auto cred = issue_credential(ca, SpiffeId::node("td.test", "n1"), now);
  std::string pem = cred.chain[0].pem() + ca.certificate().pem();
  auto chain = Certificate::chain_from_pem(pem);
  ASSERT_EQ(chain.size(), 2u);
  EXPECT_EQ(chain[0].sha256_fingerprint(), cred.chain[0].sha256_fingerprint());
  EXPECT_EQ(chain[1].sha256_fingerprint(), ca.certificate().sha256_fingerprint());
  EXPECT_TRUE(Certificate::chain_from_pem("").empty());
  std::string damaged =
      cred.chain[0].pem() + "-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n";
  std::string msg = error_of([&] { Certificate::chain_from_pem(damaged); });
  EXPECT_TRUE(msg.starts_with("certificate chain: bad PEM block #2: error:")) << msg;
  EXPECT_EQ(ERR_peek_error(), 0u);
}

}  // namespace
}  // namespace sockmesh::pki
