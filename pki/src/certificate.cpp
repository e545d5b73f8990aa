// Reading certificates and the few facts the mesh needs from them (SPIFFE ID, validity, serial,
// fingerprint, CA flag).
#include <openssl/pem.h>

#include <algorithm>
#include <cctype>
#include <ctime>

#include "internal.h"
#include "openssl_util.h"

namespace sockmesh::pki {
namespace detail {

std::vector<std::string> uri_sans(const GENERAL_NAMES *names) {
  std::vector<std::string> out;
  for (int i = 0; names && i < sk_GENERAL_NAME_num(names); ++i) {
    const GENERAL_NAME *name = sk_GENERAL_NAME_value(names, i);
    if (name->type != GEN_URI) continue;
    const ASN1_IA5STRING *uri = name->d.uniformResourceIdentifier;
    out.emplace_back(reinterpret_cast<const char *>(ASN1_STRING_get0_data(uri)),
                     static_cast<size_t>(ASN1_STRING_length(uri)));
  }
  return out;
}

std::vector<std::string> uri_sans(const X509 *cert) {
  GeneralNamesPtr names(
      static_cast<GENERAL_NAMES *>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr)));
  clear_errors();  // a malformed extension reads as "no SAN"; do not leak its error
  return uri_sans(names.get());
}

TimePoint to_time_point(const ASN1_TIME *t) {
  std::tm tm{};
  if (!t || !ASN1_TIME_to_tm(t, &tm)) throw_openssl("certificate: unreadable time");
  return std::chrono::system_clock::from_time_t(timegm(&tm));
}

std::string describe(X509 *cert) {
  auto uris = uri_sans(cert);
  if (uris.size() == 1) return uris[0];
  auto bio = new_mem_bio();
  X509_NAME_print_ex(bio.get(), X509_get_subject_name(cert), 0, XN_FLAG_RFC2253);
  std::string subject = bio_string(bio.get());
  return "subject \"" + subject + "\"";
}

}  // namespace detail

Certificate Certificate::from_pem(std::string_view pem) {
  auto bio = detail::mem_bio(pem);
  X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  if (!cert) detail::throw_openssl("certificate: not a PEM certificate");
  return Certificate(std::move(cert));
}

std::vector<Certificate> Certificate::chain_from_pem(std::string_view pem) {
  auto bio = detail::mem_bio(pem);
  std::vector<Certificate> out;
  while (true) {
    X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
    if (!cert) {
      // Running out of PEM blocks ends the loop with PEM_R_NO_START_LINE; anything else is a
      // damaged block and must not silently shorten the chain.
      unsigned long err = ERR_peek_last_error();
      if (ERR_GET_LIB(err) == ERR_LIB_PEM && ERR_GET_REASON(err) == PEM_R_NO_START_LINE) {
        detail::clear_errors();
        break;
      }
      detail::throw_openssl("certificate chain: bad PEM block #" + std::to_string(out.size() + 1));
    }
    out.push_back(Certificate(std::move(cert)));
  }
  return out;
}

std::string Certificate::pem() const {
  auto bio = detail::new_mem_bio();
  if (!PEM_write_bio_X509(bio.get(), cert_.get()))
    detail::throw_openssl("certificate: writing PEM");
  return detail::bio_string(bio.get());
}

std::optional<SpiffeId> Certificate::spiffe_id() const {
  auto uris = detail::uri_sans(cert_.get());
  if (uris.size() != 1) return std::nullopt;
  return SpiffeId::parse(uris[0]);
}

std::optional<std::string> Certificate::trust_domain() const {
  auto uris = detail::uri_sans(cert_.get());
  if (uris.size() != 1) return std::nullopt;
  return detail::parse_trust_domain_uri(uris[0]);
}

TimePoint Certificate::not_before() const {
  return detail::to_time_point(X509_get0_notBefore(cert_.get()));
}

TimePoint Certificate::not_after() const {
  return detail::to_time_point(X509_get0_notAfter(cert_.get()));
}

std::string Certificate::serial_hex() const {
  detail::BnPtr bn(ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert_.get()), nullptr));
  if (!bn) detail::throw_openssl("certificate: reading the serial");
  char *hex = BN_bn2hex(bn.get());
  if (!hex) detail::throw_openssl("certificate: formatting the serial");
  std::string out(hex);
  OPENSSL_free(hex);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

std::string Certificate::sha256_fingerprint() const {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (!X509_digest(cert_.get(), EVP_sha256(), md, &len))
    detail::throw_openssl("certificate: computing the fingerprint");
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out = "sha256:";
  for (unsigned int i = 0; i < len; ++i) {
    out += kHex[md[i] >> 4];
    out += kHex[md[i] & 0xf];
  }
  return out;
}

bool Certificate::is_ca() const {
  // basicConstraints CA:TRUE only (X509_check_ca would also count v1 roots and keyCertSign).
  return (X509_get_extension_flags(cert_.get()) & EXFLAG_CA) != 0;
}

}  // namespace sockmesh::pki

namespace sockmesh::pki {

// Half the lifetime: a renewal then has the other half for retries before the SVID expires.
TimePoint renew_at(const Certificate &cert) {
  TimePoint nb = cert.not_before();
  return nb + (cert.not_after() - nb) / 2;
}

}  // namespace sockmesh::pki
