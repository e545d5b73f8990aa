// PKCS#10 requests: the agent proves it holds its key and says which ID it wants; the CA (which
// decides the ID itself) only trusts the signature and takes the public key.
#include <openssl/pem.h>

#include "internal.h"
#include "openssl_util.h"

namespace sockmesh::pki {
namespace {

detail::X509ExtPtr uri_san_extension(const std::string &uri) {
  std::string value = "URI:" + uri;
  detail::X509ExtPtr ext(
      X509V3_EXT_nconf_nid(nullptr, nullptr, NID_subject_alt_name, value.c_str()));
  if (!ext) detail::throw_openssl("CSR: building the URI SAN for " + uri);
  return ext;
}

}  // namespace

std::string make_csr(const PrivateKey &key, const SpiffeId &id) {
  detail::X509ReqPtr req(X509_REQ_new());
  if (!req) detail::throw_openssl("CSR: X509_REQ_new");
  if (!X509_REQ_set_version(req.get(), 0) || !X509_REQ_set_pubkey(req.get(), key.get()))
    detail::throw_openssl("CSR: setting the key");

  auto ext = uri_san_extension(id.str());
  STACK_OF(X509_EXTENSION) *exts = sk_X509_EXTENSION_new_null();
  if (!exts || !sk_X509_EXTENSION_push(exts, ext.get())) {
    sk_X509_EXTENSION_free(exts);
    detail::throw_openssl("CSR: building the extension list");
  }
  int added = X509_REQ_add_extensions(req.get(), exts);  // copies the extensions
  sk_X509_EXTENSION_free(exts);                          // ext itself stays owned by `ext`
  if (!added) detail::throw_openssl("CSR: adding the SAN");

  if (X509_REQ_sign(req.get(), key.get(), EVP_sha256()) <= 0) detail::throw_openssl("CSR: signing");
  auto bio = detail::new_mem_bio();
  if (!PEM_write_bio_X509_REQ(bio.get(), req.get())) detail::throw_openssl("CSR: writing PEM");
  return detail::bio_string(bio.get());
}

Csr parse_csr(std::string_view pem) {
  auto bio = detail::mem_bio(pem);
  detail::X509ReqPtr req(PEM_read_bio_X509_REQ(bio.get(), nullptr, nullptr, nullptr));
  if (!req) detail::throw_openssl("CSR: not a PEM certificate request");

  EVP_PKEY *pub = X509_REQ_get0_pubkey(req.get());
  if (!pub) detail::throw_openssl("CSR: no readable public key");
  // X509_REQ_verify: 1 = good, 0 = bad signature, <0 = could not check; all but 1 refuse.
  if (X509_REQ_verify(req.get(), pub) != 1) {
    detail::clear_errors();
    throw PkiError("CSR: signature does not verify");
  }

  STACK_OF(X509_EXTENSION) *exts = X509_REQ_get_extensions(req.get());
  detail::GeneralNamesPtr names;
  if (exts) {
    names.reset(
        static_cast<GENERAL_NAMES *>(X509V3_get_d2i(exts, NID_subject_alt_name, nullptr, nullptr)));
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
  }
  detail::clear_errors();
  auto uris = detail::uri_sans(names.get());
  if (uris.empty()) throw PkiError("CSR: no SPIFFE ID URI SAN");
  if (uris.size() > 1) throw PkiError("CSR: more than one URI SAN");
  auto id = SpiffeId::parse(uris[0]);
  if (!id) throw PkiError("CSR: URI SAN is not a valid SPIFFE ID: " + uris[0]);

  Csr csr{*id, {}, {}};
  auto pub_bio = detail::new_mem_bio();
  if (!PEM_write_bio_PUBKEY(pub_bio.get(), pub)) detail::throw_openssl("CSR: writing the key");
  csr.public_pem = detail::bio_string(pub_bio.get());
  unsigned char *der = nullptr;
  int len = i2d_X509_REQ(req.get(), &der);
  if (len <= 0) detail::throw_openssl("CSR: encoding DER");
  csr.der.assign(reinterpret_cast<const char *>(der), static_cast<size_t>(len));
  OPENSSL_free(der);
  return csr;
}

}  // namespace sockmesh::pki
