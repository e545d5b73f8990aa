// Helpers shared by the pki tests: a fixed clock, issuing credentials, and hand-crafted
// certificates the CA would refuse to make (no SAN, CA leaf, wrong signer).
#pragma once

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <chrono>
#include <stdexcept>
#include <string>
#include <vector>

#include "sockmesh/pki/pki.h"

namespace sockmesh::pki::testing {

// Certificates hold whole seconds: keep test times whole too so equality checks are exact.
inline TimePoint whole_seconds(TimePoint t) {
  return std::chrono::time_point_cast<std::chrono::seconds>(t);
}
inline TimePoint test_now() {
  return whole_seconds(std::chrono::system_clock::now());
}
inline Clock fixed_clock(TimePoint t) {
  return [t] { return t; };
}

inline Credential issue_credential(const CertificateAuthority &ca, const SpiffeId &id,
                                   TimePoint now, IssueOptions options = {}) {
  PrivateKey key = PrivateKey::generate();
  Csr csr = parse_csr(make_csr(key, id));
  return Credential{key, Certificate::chain_from_pem(ca.issue(csr, id, options, now))};
}

// A root whose key the test holds (CertificateAuthority keeps its own private).
struct TestRoot {
  Certificate cert;
  PrivateKey key;
};

inline void add_ext(X509 *cert, X509 *issuer, int nid, const std::string &value) {
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION *ext = X509V3_EXT_nconf_nid(nullptr, &ctx, nid, value.c_str());
  if (!ext || !X509_add_ext(cert, ext, -1)) throw std::runtime_error("add_ext " + value);
  X509_EXTENSION_free(ext);
}

// A certificate for `subject_key` signed by `signer_key` with issuer name taken from `issuer`
// (nullptr: self-issued). uris become URI SANs; ca sets basicConstraints CA:TRUE.
inline Certificate craft(const PrivateKey &subject_key, X509 *issuer, const PrivateKey &signer_key,
                         const std::vector<std::string> &uris, bool ca, TimePoint now,
                         const std::string &cn = "crafted") {
  X509 *x = X509_new();
  X509_set_version(x, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x), 4242);
  X509_NAME *name = X509_NAME_new();
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                             reinterpret_cast<const unsigned char *>(cn.c_str()), -1, -1, 0);
  X509_set_subject_name(x, name);
  X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name);
  X509_NAME_free(name);
  X509_set_pubkey(x, subject_key.get());
  ASN1_TIME_set(X509_getm_notBefore(x), std::chrono::system_clock::to_time_t(now) - 60);
  ASN1_TIME_set(X509_getm_notAfter(x), std::chrono::system_clock::to_time_t(now) + 3600);
  X509 *iss = issuer ? issuer : x;
  add_ext(x, iss, NID_basic_constraints, ca ? "critical,CA:TRUE" : "critical,CA:FALSE");
  add_ext(x, iss, NID_key_usage, ca ? "critical,keyCertSign" : "critical,digitalSignature");
  std::string san;
  for (const auto &u : uris) san += (san.empty() ? "URI:" : ",URI:") + u;
  if (!san.empty()) add_ext(x, iss, NID_subject_alt_name, san);
  if (X509_sign(x, signer_key.get(), EVP_sha256()) <= 0) throw std::runtime_error("sign");
  BIO *bio = BIO_new(BIO_s_mem());
  PEM_write_bio_X509(bio, x);
  char *data = nullptr;
  long len = BIO_get_mem_data(bio, &data);
  std::string pem(data, static_cast<size_t>(len));
  BIO_free(bio);
  X509_free(x);
  return Certificate::from_pem(pem);
}

// A root for trust domain td built by hand (so the test has its key), loaded into a CA.
inline TestRoot make_root(const std::string &td, TimePoint now) {
  PrivateKey key = PrivateKey::generate();
  X509 *x = X509_new();
  X509_set_version(x, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
  X509_NAME *name = X509_NAME_new();
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                             reinterpret_cast<const unsigned char *>("test root"), -1, -1, 0);
  X509_set_subject_name(x, name);
  X509_set_issuer_name(x, name);
  X509_NAME_free(name);
  X509_set_pubkey(x, key.get());
  ASN1_TIME_set(X509_getm_notBefore(x), std::chrono::system_clock::to_time_t(now) - 3600);
  ASN1_TIME_set(X509_getm_notAfter(x), std::chrono::system_clock::to_time_t(now) + 86400);
  add_ext(x, x, NID_basic_constraints, "critical,CA:TRUE");
  add_ext(x, x, NID_key_usage, "critical,keyCertSign,cRLSign");
  add_ext(x, x, NID_subject_key_identifier, "hash");
  add_ext(x, x, NID_subject_alt_name, "URI:spiffe://" + td);
  X509_sign(x, key.get(), EVP_sha256());
  BIO *bio = BIO_new(BIO_s_mem());
  PEM_write_bio_X509(bio, x);
  char *data = nullptr;
  long len = BIO_get_mem_data(bio, &data);
  std::string pem(data, static_cast<size_t>(len));
  BIO_free(bio);
  X509_free(x);
  return TestRoot{Certificate::from_pem(pem), key};
}

template <typename F>
std::string error_of(F &&f) {
  try {
    f();
  } catch (const PkiError &e) {
    return e.what();
  }
  return "<no PkiError>";
}

}  // namespace sockmesh::pki::testing
