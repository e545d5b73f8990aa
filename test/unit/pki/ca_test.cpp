#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "helm_style_ca.h"
#include "pki_test_util.h"

namespace sockmesh::pki {
namespace {

using namespace std::chrono_literals;
using testing::error_of;
using testing::fixed_clock;
using testing::issue_credential;
using testing::test_now;

bool critical(X509 *cert, int nid) {
  int idx = X509_get_ext_by_NID(cert, nid, -1);
  return idx >= 0 && X509_EXTENSION_get_critical(X509_get_ext(cert, idx)) == 1;
}

std::string subject_of(X509 *cert) {
  BIO *bio = BIO_new(BIO_s_mem());
  X509_NAME_print_ex(bio, X509_get_subject_name(cert), 0, XN_FLAG_RFC2253);
  char *data = nullptr;
  long len = BIO_get_mem_data(bio, &data);
  std::string out(data, static_cast<size_t>(len));
  BIO_free(bio);
  return out;
}

std::vector<std::string> uris_of(X509 *cert) {
  std::vector<std::string> out;
  auto *names =
      static_cast<GENERAL_NAMES *>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  for (int i = 0; i < sk_GENERAL_NAME_num(names); ++i) {
    GENERAL_NAME *n = sk_GENERAL_NAME_value(names, i);
    EXPECT_EQ(n->type, GEN_URI);
    if (n->type == GEN_URI)
      out.emplace_back(
          reinterpret_cast<const char *>(ASN1_STRING_get0_data(n->d.uniformResourceIdentifier)));
  }
  GENERAL_NAMES_free(names);
  return out;
}

TEST(CaTest, RootHasTheRequiredProfile) {
  TimePoint now = test_now();
  auto ca = CertificateAuthority::create("td.test", fixed_clock(now));
  X509 *root = ca.certificate().get();
  EXPECT_EQ(ca.trust_domain(), "td.test");
  EXPECT_TRUE(ca.certificate().is_ca());
  EXPECT_EQ(X509_self_signed(root, 1), 1);
  EXPECT_EQ(X509_get_pathlen(root), 0);
  EXPECT_TRUE(critical(root, NID_basic_constraints));
  EXPECT_TRUE(critical(root, NID_key_usage));
  EXPECT_EQ(X509_get_key_usage(root), static_cast<uint32_t>(KU_KEY_CERT_SIGN | KU_CRL_SIGN));
  EXPECT_NE(X509_get0_subject_key_id(root), nullptr);
  EXPECT_EQ(uris_of(root), std::vector<std::string>{"spiffe://td.test"});
  EXPECT_FALSE(ca.certificate().spiffe_id());  // a trust domain, not an ID
  EXPECT_EQ(EVP_PKEY_get_bits(X509_get0_pubkey(root)), 256);
  EXPECT_EQ(ca.certificate().not_before(), now - 60s);
  EXPECT_EQ(ca.certificate().not_after(), now + 24h * 3650);
  EXPECT_EQ(ca.bundle_pem(), ca.certificate().pem());
  std::string serial = ca.certificate().serial_hex();
  EXPECT_GE(serial.size(), 30u) << serial;  // 128 random bits (leading zero nibbles aside)
  EXPECT_LE(serial.size(), 32u) << serial;
  EXPECT_NE(serial,
            CertificateAuthority::create("td.test", fixed_clock(now)).certificate().serial_hex());
  std::string fp = ca.certificate().sha256_fingerprint();
  EXPECT_TRUE(fp.starts_with("sha256:"));
  EXPECT_EQ(fp.size(), 7u + 64u);
  EXPECT_EQ(fp.find_first_not_of("0123456789abcdef", 7), std::string::npos);
  EXPECT_EQ(ca.certificate().trust_domain(), "td.test");
  EXPECT_FALSE(ca.certificate().spiffe_id());  // spiffe://td.test has no path
}

TEST(CaTest, IssuesALeafWithTheRequiredProfile) {
  TimePoint now = test_now();
  auto ca = CertificateAuthority::create("td.test", fixed_clock(now));
  SpiffeId id = SpiffeId::workload("td.test", "default", "web");
  PrivateKey key = PrivateKey::generate();
  // The CSR asks for another ID: the CA uses the one its caller passes.
  Csr csr = parse_csr(make_csr(key, SpiffeId::workload("td.test", "kube-system", "admin")));
  std::string pem = ca.issue(csr, id, IssueOptions{}, now);
  auto chain = Certificate::chain_from_pem(pem);
  ASSERT_EQ(chain.size(), 1u);  // a root CA's leaves come alone
  X509 *leaf = chain[0].get();
  EXPECT_EQ(chain[0].spiffe_id(), id);
  EXPECT_EQ(uris_of(leaf), std::vector<std::string>{"spiffe://td.test/ns/default/sa/web"});
  EXPECT_FALSE(chain[0].is_ca());
  EXPECT_TRUE(critical(leaf, NID_basic_constraints));
  EXPECT_TRUE(critical(leaf, NID_key_usage));
  EXPECT_EQ(X509_get_key_usage(leaf), static_cast<uint32_t>(KU_DIGITAL_SIGNATURE));
  EXPECT_EQ(X509_get_extended_key_usage(leaf),
            static_cast<uint32_t>(XKU_SSL_SERVER | XKU_SSL_CLIENT));
  ASSERT_NE(X509_get0_authority_key_id(leaf), nullptr);
  EXPECT_EQ(ASN1_OCTET_STRING_cmp(X509_get0_authority_key_id(leaf),
                                  X509_get0_subject_key_id(ca.certificate().get())),
            0);
  EXPECT_NE(X509_get0_subject_key_id(leaf), nullptr);
  EXPECT_EQ(subject_of(leaf), "O=sockmesh");
  EXPECT_EQ(chain[0].not_before(), now - 60s);
  EXPECT_EQ(chain[0].not_after(), now + 3600s);
  EXPECT_EQ(EVP_PKEY_eq(X509_get0_pubkey(leaf), key.get()), 1);
  EXPECT_EQ(X509_verify(leaf, X509_get0_pubkey(ca.certificate().get())), 1);
  EXPECT_NE(chain[0].serial_hex(), issue_credential(ca, id, now).chain[0].serial_hex());
}

TEST(CaTest, DnsNamesGoBesideTheSpiffeId) {
  TimePoint now = test_now();
  auto ca = CertificateAuthority::create("td.test", fixed_clock(now));
  PrivateKey key = PrivateKey::generate();
  const SpiffeId id{"td.test", "/sockmesh/controlplane"};
  IssueOptions options;
  options.dns_names = {"meshcp", "meshcp.sockmesh-system.svc"};
  auto chain =
      Certificate::chain_from_pem(ca.issue(parse_csr(make_csr(key, id)), id, options, now));
  ASSERT_EQ(chain.size(), 1u);
  EXPECT_EQ(chain[0].spiffe_id(), id);  // the DNS names do not hide the one URI SAN
  auto *names = static_cast<GENERAL_NAMES *>(
      X509_get_ext_d2i(chain[0].get(), NID_subject_alt_name, nullptr, nullptr));
  std::vector<std::string> dns;
  for (int i = 0; i < sk_GENERAL_NAME_num(names); ++i) {
    GENERAL_NAME *n = sk_GENERAL_NAME_value(names, i);
    if (n->type == GEN_DNS)
      dns.emplace_back(reinterpret_cast<const char *>(ASN1_STRING_get0_data(n->d.dNSName)));
  }
  GENERAL_NAMES_free(names);
  EXPECT_EQ(dns, options.dns_names);
  options.dns_names = {"meshcp,URI:spiffe://td.test/ns/x/sa/y"};
  EXPECT_EQ(error_of([&] { ca.issue(parse_csr(make_csr(key, id)), id, options, now); }),
            "CA: \"meshcp,URI:spiffe://td.test/ns/x/sa/y\" is not a DNS name");
}

TEST(CaTest, LifetimeIsCappedAtTheCaExpiry) {
  TimePoint now = test_now();
  auto ca = CertificateAuthority::create("td.test", fixed_clock(now));
  IssueOptions options;
  options.ttl = 24h * 365 * 20;
  options.backdate = 5s;
  auto cred = issue_credential(ca, SpiffeId::node("td.test", "n1"), now, options);
  EXPECT_EQ(cred.chain[0].not_after(), ca.certificate().not_after());
  EXPECT_EQ(cred.chain[0].not_before(), now - 5s);
}

TEST(CaTest, RefusesAnIdOutsideItsTrustDomain) {
  TimePoint now = test_now();
  auto ca = CertificateAuthority::create("td.test", fixed_clock(now));
  PrivateKey key = PrivateKey::generate();
  SpiffeId foreign = SpiffeId::workload("other.test", "a", "b");
  Csr csr = parse_csr(make_csr(key, foreign));
  EXPECT_EQ(error_of([&] { ca.issue(csr, foreign, {}, now); }),
            "CA for trust domain td.test cannot issue spiffe://other.test/ns/a/sa/b");
}

TEST(CaTest, RefusesToIssueAfterItsOwnExpiry) {
  TimePoint now = test_now();
  auto ca = CertificateAuthority::create("td.test", fixed_clock(now));
  SpiffeId id = SpiffeId::node("td.test", "n1");
  PrivateKey key = PrivateKey::generate();
  Csr csr = parse_csr(make_csr(key, id));
  EXPECT_EQ(error_of([&] { ca.issue(csr, id, {}, now + 24h * 3651); }),
            "CA: certificate spiffe://td.test has expired");
}

TEST(CaTest, RenewAtIsHalfTheLifetime) {
  TimePoint now = test_now();
  auto ca = CertificateAuthority::create("td.test", fixed_clock(now));
  auto cred = issue_credential(ca, SpiffeId::node("td.test", "n1"), now);  // now-60s .. now+3600s
  EXPECT_EQ(renew_at(cred.chain[0]), now + 1770s);
}

TEST(CaTest, FromPemChecksKeyRoleAndTrustDomain) {
  TimePoint now = test_now();
  auto root = testing::make_root("td.test", now);
  auto ca = CertificateAuthority::from_pem(root.cert.pem(), root.key.pem());
  EXPECT_EQ(ca.trust_domain(), "td.test");
  EXPECT_EQ(ca.certificate().sha256_fingerprint(), root.cert.sha256_fingerprint());

  EXPECT_EQ(error_of([&] {
              CertificateAuthority::from_pem(root.cert.pem(), PrivateKey::generate().pem());
            }),
            "CA: the key does not match the certificate spiffe://td.test");
  PrivateKey leaf_key = PrivateKey::generate();
  auto leaf = testing::craft(leaf_key, root.cert.get(), root.key, {"spiffe://td.test/ns/a/sa/b"},
                             false, now);
  EXPECT_EQ(error_of([&] { CertificateAuthority::from_pem(leaf.pem(), leaf_key.pem()); }),
            "CA: certificate spiffe://td.test/ns/a/sa/b is not a CA (basicConstraints)");
  auto no_td = testing::craft(leaf_key, nullptr, leaf_key, {}, true, now, "bare");
  EXPECT_EQ(error_of([&] { CertificateAuthority::from_pem(no_td.pem(), leaf_key.pem()); }),
            "CA: certificate subject \"CN=bare\" has no trust domain URI SAN spiffe://<td>");
}

// The chart's CA (genCAWithKey: CN only, no URI SAN, SEC1 key, CA:TRUE without pathlen, EKU
// serverAuth+clientAuth) is for the trust domain meshcp is given, and signs node certificates that
// verify against it.
TEST(CaTest, AHelmStyleCaWithoutUriSanIsForTheGivenTrustDomain) {
  const auto helm = sockmesh::testing::make_helm_style_ca();
  const TimePoint now = test_now();  // after the CA's not_before (whole seconds, not backdated)
  EXPECT_EQ(helm.key_pem.rfind("-----BEGIN EC PRIVATE KEY-----\n", 0), 0u) << helm.key_pem;
  EXPECT_EQ(error_of([&] { CertificateAuthority::from_pem(helm.cert_pem, helm.key_pem); }),
            "CA: certificate subject \"CN=sockmesh-ca\" has no trust domain URI SAN spiffe://<td>");
  EXPECT_EQ(
      error_of([&] { CertificateAuthority::from_pem(helm.cert_pem, helm.key_pem, "Not A TD"); }),
      "CA: invalid trust domain \"Not A TD\"");

  auto ca = CertificateAuthority::from_pem(helm.cert_pem, helm.key_pem, "cluster.local");
  EXPECT_EQ(ca.trust_domain(), "cluster.local");
  EXPECT_EQ(ca.certificate().sha256_fingerprint(),
            Certificate::from_pem(helm.cert_pem).sha256_fingerprint());
  EXPECT_EQ(ca.certificate().trust_domain(), std::nullopt);
  EXPECT_EQ(X509_get_pathlen(ca.certificate().get()), -1);  // no pathlen, as Go writes it

  const SpiffeId id = SpiffeId::node("cluster.local", "n1");
  auto cred = issue_credential(ca, id, now);
  ASSERT_EQ(cred.chain.size(), 1u);  // self-signed: the leaf comes alone
  EXPECT_EQ(cred.chain[0].spiffe_id(), id);
  EXPECT_EQ(ASN1_OCTET_STRING_cmp(X509_get0_authority_key_id(cred.chain[0].get()),
                                  X509_get0_subject_key_id(ca.certificate().get())),
            0);
  const auto verified = verify_svid(cred.chain, ca.bundle_pem(), "cluster.local", now);
  EXPECT_TRUE(verified.ok()) << verified.detail;
  EXPECT_EQ(verified.id, id);
  // The trust domain is the given one: a leaf of another is still refused.
  EXPECT_EQ(error_of([&] { issue_credential(ca, SpiffeId::node("other.test", "n1"), now); }),
            "CA for trust domain cluster.local cannot issue spiffe://other.test/sockmesh/node/n1");
  // Given a trust domain, a CA that names another one keeps its own (meshcp then refuses the
  // mismatch), and one whose URI SAN is not a trust domain is not re-purposed.
  auto root = testing::make_root("td.test", now);
  EXPECT_EQ(CertificateAuthority::from_pem(root.cert.pem(), root.key.pem(), "cluster.local")
                .trust_domain(),
            "td.test");
  PrivateKey key = PrivateKey::generate();
  auto pathy = testing::craft(key, nullptr, key, {"spiffe://td.test/ca"}, true, now, "pathy");
  EXPECT_EQ(
      error_of([&] { CertificateAuthority::from_pem(pathy.pem(), key.pem(), "cluster.local"); }),
      "CA: certificate spiffe://td.test/ca has no trust domain URI SAN spiffe://<td>");
}

class LoadOrCreateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/pki_test.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    base_ = tmpl;
    dir_ = base_ + "/state/ca";  // neither level exists yet
  }
  void TearDown() override { std::filesystem::remove_all(base_); }
  std::string base_, dir_;
};

TEST_F(LoadOrCreateTest, CreatesPersistsAndReloads) {
  TimePoint now = test_now();
  auto created = CertificateAuthority::load_or_create(dir_, "td.test", fixed_clock(now));
  struct stat st {};
  ASSERT_EQ(stat((dir_ + "/ca.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(stat(dir_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  std::vector<std::string> files;
  for (const auto &e : std::filesystem::directory_iterator(dir_))
    files.push_back(e.path().filename());
  std::sort(files.begin(), files.end());
  EXPECT_EQ(files, (std::vector<std::string>{"ca.crt", "ca.key"}));  // no temp files left

  auto loaded = CertificateAuthority::load_or_create(dir_, "td.test", fixed_clock(now + 1h));
  EXPECT_EQ(loaded.certificate().sha256_fingerprint(), created.certificate().sha256_fingerprint());
  EXPECT_EQ(loaded.trust_domain(), "td.test");
  // The reloaded key signs leaves that chain to the persisted root.
  auto cred = issue_credential(loaded, SpiffeId::node("td.test", "n1"), now);
  EXPECT_TRUE(verify_svid(cred.chain, created.bundle_pem(), "td.test", now).ok());
}

TEST_F(LoadOrCreateTest, RefusesAnotherTrustDomain) {
  TimePoint now = test_now();
  CertificateAuthority::load_or_create(dir_, "td.test", fixed_clock(now));
  EXPECT_EQ(
      error_of([&] { CertificateAuthority::load_or_create(dir_, "other.test", fixed_clock(now)); }),
      "CA in " + dir_ + " is for trust domain td.test, not other.test");
}

TEST_F(LoadOrCreateTest, RefusesALoneFile) {
  TimePoint now = test_now();
  CertificateAuthority::load_or_create(dir_, "td.test", fixed_clock(now));
  std::filesystem::remove(dir_ + "/ca.crt");
  EXPECT_EQ(
      error_of([&] { CertificateAuthority::load_or_create(dir_, "td.test", fixed_clock(now)); }),
      "CA: " + dir_ + "/ca.key exists without " + dir_ + "/ca.crt (restore the pair or remove it)");
  std::filesystem::remove(dir_ + "/ca.key");
  std::ofstream(dir_ + "/ca.crt") << "x";
  EXPECT_EQ(
      error_of([&] { CertificateAuthority::load_or_create(dir_, "td.test", fixed_clock(now)); }),
      "CA: " + dir_ + "/ca.crt exists without " + dir_ + "/ca.key (restore the pair or remove it)");
}

}  // namespace
}  // namespace sockmesh::pki
