#include <gtest/gtest.h>
#include <openssl/rsa.h>

#include "pki_test_util.h"

namespace sockmesh::pki {
namespace {

using testing::error_of;

std::string pem_of(EVP_PKEY *key, bool traditional) {
  BIO *bio = BIO_new(BIO_s_mem());
  if (traditional)
    PEM_write_bio_PrivateKey_traditional(bio, key, nullptr, nullptr, 0, nullptr, nullptr);
  else
    PEM_write_bio_PrivateKey(bio, key, nullptr, nullptr, 0, nullptr, nullptr);
  char *data = nullptr;
  long len = BIO_get_mem_data(bio, &data);
  std::string out(data, static_cast<size_t>(len));
  BIO_free(bio);
  return out;
}

TEST(KeyTest, PemRoundTrip) {
  PrivateKey key = PrivateKey::generate();
  std::string pem = key.pem();
  EXPECT_TRUE(pem.starts_with("-----BEGIN PRIVATE KEY-----\n")) << pem;
  PrivateKey again = PrivateKey::from_pem(pem);
  EXPECT_EQ(again.pem(), pem);
  EXPECT_EQ(again.public_pem(), key.public_pem());
  EXPECT_TRUE(key.public_pem().starts_with("-----BEGIN PUBLIC KEY-----\n"));
  EXPECT_NE(PrivateKey::generate().public_pem(), key.public_pem());
}

TEST(KeyTest, Sec1PemLoads) {
  PrivateKey key = PrivateKey::generate();
  std::string sec1 = pem_of(key.get(), true);
  ASSERT_TRUE(sec1.starts_with("-----BEGIN EC PRIVATE KEY-----\n")) << sec1;
  EXPECT_EQ(PrivateKey::from_pem(sec1).public_pem(), key.public_pem());
}

TEST(KeyTest, RefusesGarbageAndNonP256) {
  std::string garbage = error_of([] { PrivateKey::from_pem("not a key"); });
  EXPECT_TRUE(garbage.starts_with("private key: not a PEM private key: error:")) << garbage;

  EVP_PKEY *rsa = EVP_RSA_gen(1024);
  ASSERT_NE(rsa, nullptr);
  std::string rsa_pem = pem_of(rsa, false);
  EVP_PKEY_free(rsa);
  EXPECT_EQ(error_of([&] { PrivateKey::from_pem(rsa_pem); }),
            "private key: not an EC key (ECDSA P-256 needed)");

  EVP_PKEY *p384 = EVP_EC_gen("P-384");
  ASSERT_NE(p384, nullptr);
  std::string p384_pem = pem_of(p384, false);
  EVP_PKEY_free(p384);
  EXPECT_EQ(error_of([&] { PrivateKey::from_pem(p384_pem); }),
            "private key: EC group secp384r1 (P-256 needed)");
  EXPECT_EQ(ERR_peek_error(), 0u) << "error queue left non-empty";
}

TEST(CsrTest, RoundTrip) {
  PrivateKey key = PrivateKey::generate();
  SpiffeId id = SpiffeId::node("td.test", "node-a");
  std::string pem = make_csr(key, id);
  EXPECT_TRUE(pem.starts_with("-----BEGIN CERTIFICATE REQUEST-----\n")) << pem;
  Csr csr = parse_csr(pem);
  EXPECT_EQ(csr.id, id);
  EXPECT_EQ(csr.public_pem, key.public_pem());
  ASSERT_FALSE(csr.der.empty());
  EXPECT_EQ(static_cast<unsigned char>(csr.der[0]), 0x30);  // DER SEQUENCE
}

// Re-encodes a PEM CSR after replacing `from` with `to` (same length) inside its DER.
std::string tamper(const std::string &pem, const std::string &from, const std::string &to) {
  BIO *in = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  X509_REQ *req = PEM_read_bio_X509_REQ(in, nullptr, nullptr, nullptr);
  BIO_free(in);
  unsigned char *der = nullptr;
  int len = i2d_X509_REQ(req, &der);
  X509_REQ_free(req);
  std::string bytes(reinterpret_cast<char *>(der), static_cast<size_t>(len));
  OPENSSL_free(der);
  size_t at = bytes.find(from);
  if (at == std::string::npos) return "";
  bytes.replace(at, from.size(), to);
  BIO *out = BIO_new(BIO_s_mem());
  PEM_write_bio(out, "CERTIFICATE REQUEST", "",
                reinterpret_cast<const unsigned char *>(bytes.data()),
                static_cast<long>(bytes.size()));
  char *data = nullptr;
  long n = BIO_get_mem_data(out, &data);
  std::string result(data, static_cast<size_t>(n));
  BIO_free(out);
  return result;
}

TEST(CsrTest, TamperedRequestIsRefused) {
  PrivateKey key = PrivateKey::generate();
  std::string pem = make_csr(key, SpiffeId::node("td.test", "node-a"));
  std::string forged = tamper(pem, "node-a", "node-b");  // asks for another node's identity
  ASSERT_FALSE(forged.empty());
  EXPECT_EQ(error_of([&] { parse_csr(forged); }), "CSR: signature does not verify");
  EXPECT_EQ(ERR_peek_error(), 0u);
}

TEST(CsrTest, RequestWithoutSpiffeIdIsRefused) {
  PrivateKey key = PrivateKey::generate();
  X509_REQ *req = X509_REQ_new();
  X509_REQ_set_pubkey(req, key.get());
  X509_REQ_sign(req, key.get(), EVP_sha256());
  BIO *bio = BIO_new(BIO_s_mem());
  PEM_write_bio_X509_REQ(bio, req);
  char *data = nullptr;
  long len = BIO_get_mem_data(bio, &data);
  std::string pem(data, static_cast<size_t>(len));
  BIO_free(bio);
  X509_REQ_free(req);
  EXPECT_EQ(error_of([&] { parse_csr(pem); }), "CSR: no SPIFFE ID URI SAN");
}

TEST(CsrTest, GarbageIsRefused) {
  std::string msg = error_of([] { parse_csr("-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n"); });
  EXPECT_TRUE(msg.starts_with("CSR: not a PEM certificate request: error:")) << msg;
  EXPECT_EQ(ERR_peek_error(), 0u);
}

}  // namespace
}  // namespace sockmesh::pki
