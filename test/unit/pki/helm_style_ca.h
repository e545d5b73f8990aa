// A CA in the shape the Helm chart makes with `genPrivateKey "ecdsa"` and
// `genCAWithKey "sockmesh-ca" 3650 $key` (sprig, Go crypto/x509): an ECDSA P-256 key in SEC1 PEM
// ("EC PRIVATE KEY"), a self-signed certificate with only CN in its subject, no SAN at all, a
// random 128-bit serial, not_before = now (no backdating), basicConstraints critical CA:TRUE
// without pathlen, keyUsage critical digitalSignature|keyEncipherment|keyCertSign, extKeyUsage
// serverAuth+clientAuth, and a subject key identifier (Go adds one to every CA). OpenSSL only (no
// sockmesh library), so that unit and lab tests can both use it.
#pragma once

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <ctime>
#include <stdexcept>
#include <string>

namespace sockmesh::testing {

struct HelmStyleCa {
  std::string cert_pem;  // tls.crt of the chart's CA Secret
  std::string key_pem;   // tls.key: "-----BEGIN EC PRIVATE KEY-----" (SEC1)
};

inline HelmStyleCa make_helm_style_ca(const std::string &cn = "sockmesh-ca", int days = 3650) {
  auto fail = [](const char *what) {
    throw std::runtime_error(std::string("helm-style CA: ") + what);
  };
  EVP_PKEY *key = EVP_EC_gen("P-256");
  if (!key) fail("EVP_EC_gen");
  X509 *x = X509_new();
  auto bio_text = [](BIO *bio) {
    char *data = nullptr;
    const long n = BIO_get_mem_data(bio, &data);
    std::string text(data, size_t(n));
    BIO_free(bio);
    return text;
  };
  X509_set_version(x, 2);
  BIGNUM *serial = BN_new();
  BN_rand(serial, 128, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY);
  BN_to_ASN1_INTEGER(serial, X509_get_serialNumber(x));
  BN_free(serial);
  X509_NAME *name = X509_NAME_new();
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                             reinterpret_cast<const unsigned char *>(cn.c_str()), -1, -1, 0);
  X509_set_subject_name(x, name);
  X509_set_issuer_name(x, name);
  X509_NAME_free(name);
  X509_set_pubkey(x, key);
  const time_t now = std::time(nullptr);
  ASN1_TIME_set(X509_getm_notBefore(x), now);
  ASN1_TIME_set(X509_getm_notAfter(x), now + time_t(days) * 24 * 3600);
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, x, x, nullptr, nullptr, 0);
  for (const auto &[nid, value] :
       {std::pair{NID_key_usage, "critical,digitalSignature,keyEncipherment,keyCertSign"},
        {NID_ext_key_usage, "serverAuth,clientAuth"},
        {NID_basic_constraints, "critical,CA:TRUE"},
        {NID_subject_key_identifier, "hash"}}) {
    X509_EXTENSION *ext = X509V3_EXT_nconf_nid(nullptr, &ctx, nid, value);
    if (!ext || !X509_add_ext(x, ext, -1)) fail(value);
    X509_EXTENSION_free(ext);
  }
  if (X509_sign(x, key, EVP_sha256()) <= 0) fail("X509_sign");
  BIO *cert_bio = BIO_new(BIO_s_mem());
  PEM_write_bio_X509(cert_bio, x);
  // The traditional form of an EC key is SEC1: "EC PRIVATE KEY", as Go's MarshalECPrivateKey.
  BIO *key_bio = BIO_new(BIO_s_mem());
  if (!PEM_write_bio_PrivateKey_traditional(key_bio, key, nullptr, nullptr, 0, nullptr, nullptr))
    fail("PEM_write_bio_PrivateKey_traditional");
  HelmStyleCa ca{bio_text(cert_bio), bio_text(key_bio)};
  X509_free(x);
  EVP_PKEY_free(key);
  if (ca.key_pem.find("-----BEGIN EC PRIVATE KEY-----") != 0) fail("the key is not SEC1 PEM");
  return ca;
}

}  // namespace sockmesh::testing
