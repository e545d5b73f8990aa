// OpenSSL error reporting and BIO plumbing shared by every pki source.
#include "openssl_util.h"

#include <openssl/err.h>

#include <climits>

namespace sockmesh::pki::detail {

void throw_openssl(std::string_view what) {
  // The first queued error is the root cause; later ones are the callers unwinding.
  unsigned long code = ERR_peek_error();
  std::string message(what);
  if (code != 0) {
    char buf[256];
    ERR_error_string_n(code, buf, sizeof buf);
    message += ": ";
    message += buf;
  }
  ERR_clear_error();
  throw PkiError(message);
}

BioPtr mem_bio(std::string_view data) {
  if (data.size() > INT_MAX) throw PkiError("input too large for OpenSSL");
  BioPtr bio(BIO_new_mem_buf(data.data(), static_cast<int>(data.size())));
  if (!bio) throw_openssl("BIO_new_mem_buf");
  return bio;
}

BioPtr new_mem_bio() {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio) throw_openssl("BIO_new");
  return bio;
}

std::string bio_string(BIO *bio) {
  char *data = nullptr;
  long len = BIO_get_mem_data(bio, &data);
  return len > 0 ? std::string(data, static_cast<size_t>(len)) : std::string();
}

}  // namespace sockmesh::pki::detail
