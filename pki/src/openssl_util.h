// Private helpers shared by the pki sources: OpenSSL error → PkiError, owning pointers for the
// OpenSSL types the public header does not need, and memory BIO conversions.
#pragma once

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <memory>
#include <string>
#include <string_view>

#include "sockmesh/pki/pki.h"

namespace sockmesh::pki::detail {

// Throws PkiError("<what>: <first queued OpenSSL error>") and clears the queue, so a later
// failure never reports a stale error left behind by this one.
[[noreturn]] void throw_openssl(std::string_view what);
// Drops whatever OpenSSL queued (used where a failure is an expected answer, e.g. end of a PEM).
inline void clear_errors() {
  ERR_clear_error();
}

template <auto Fn>
struct Deleter {
  template <typename T>
  void operator()(T *p) const {
    Fn(p);
  }
};
using BioPtr = std::unique_ptr<BIO, Deleter<BIO_free_all>>;
using BnPtr = std::unique_ptr<BIGNUM, Deleter<BN_free>>;
using X509ReqPtr = std::unique_ptr<X509_REQ, Deleter<X509_REQ_free>>;
using X509ExtPtr = std::unique_ptr<X509_EXTENSION, Deleter<X509_EXTENSION_free>>;
using X509NamePtr = std::unique_ptr<X509_NAME, Deleter<X509_NAME_free>>;
using X509StorePtr = std::unique_ptr<X509_STORE, Deleter<X509_STORE_free>>;
using X509StoreCtxPtr = std::unique_ptr<X509_STORE_CTX, Deleter<X509_STORE_CTX_free>>;
using GeneralNamesPtr = std::unique_ptr<GENERAL_NAMES, Deleter<GENERAL_NAMES_free>>;

// A read-only memory BIO over `data` (valid while `data` is).
BioPtr mem_bio(std::string_view data);
// An empty writable memory BIO, and its contents as a string.
BioPtr new_mem_bio();
std::string bio_string(BIO *bio);

}  // namespace sockmesh::pki::detail
