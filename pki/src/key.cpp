// ECDSA P-256 keys through the EVP API only (no EC_KEY): generation, PEM in and out, and the
// deleters the public header declares.
#include <openssl/core_names.h>
#include <openssl/pem.h>

#include "openssl_util.h"

namespace sockmesh::pki {

void PkeyFree::operator()(EVP_PKEY *p) const {
  EVP_PKEY_free(p);
}
void X509Free::operator()(X509 *p) const {
  X509_free(p);
}
void SslCtxFree::operator()(SSL_CTX *p) const {
  SSL_CTX_free(p);
}

Clock system_clock() {
  return [] { return std::chrono::system_clock::now(); };
}

namespace {

// The mesh only ever uses P-256 (what every peer and the CA accept); a key of another type in a
// file is a configuration mistake worth naming rather than a handshake failure later.
void require_p256(EVP_PKEY *key) {
  if (!EVP_PKEY_is_a(key, "EC")) throw PkiError("private key: not an EC key (ECDSA P-256 needed)");
  char group[64] = {};
  size_t len = 0;
  if (!EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group, &len))
    detail::throw_openssl("private key: cannot read the EC group");
  if (std::string_view(group, len) != "prime256v1" && std::string_view(group, len) != "P-256")
    throw PkiError("private key: EC group " + std::string(group, len) + " (P-256 needed)");
}

}  // namespace

PrivateKey PrivateKey::generate() {
  PkeyPtr key(EVP_EC_gen("P-256"));
  if (!key) detail::throw_openssl("generating a P-256 key");
  return PrivateKey(std::move(key));
}

PrivateKey PrivateKey::from_pem(std::string_view pem) {
  auto bio = detail::mem_bio(pem);
  // PEM_read_bio_PrivateKey goes through the OpenSSL 3 decoders: PKCS#8 ("PRIVATE KEY") and
  // SEC1 ("EC PRIVATE KEY") both load. No passphrase callback: encrypted keys are refused.
  PkeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, const_cast<char *>("")));
  if (!key) detail::throw_openssl("private key: not a PEM private key");
  require_p256(key.get());
  return PrivateKey(std::move(key));
}

std::string PrivateKey::pem() const {
  auto bio = detail::new_mem_bio();
  if (!PEM_write_bio_PrivateKey(bio.get(), key_.get(), nullptr, nullptr, 0, nullptr, nullptr))
    detail::throw_openssl("private key: writing PEM");
  return detail::bio_string(bio.get());
}

std::string PrivateKey::public_pem() const {
  auto bio = detail::new_mem_bio();
  if (!PEM_write_bio_PUBKEY(bio.get(), key_.get()))
    detail::throw_openssl("public key: writing PEM");
  return detail::bio_string(bio.get());
}

}  // namespace sockmesh::pki
