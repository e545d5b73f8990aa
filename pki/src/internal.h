// Private functions one pki source provides to another (not part of the public contract).
#pragma once

#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <optional>
#include <string>
#include <string_view>

#include "sockmesh/pki/pki.h"

namespace sockmesh::pki::detail {

// "spiffe://<td>" (no path, as in a CA's URI SAN) → "<td>"; nullopt otherwise.
std::optional<std::string> parse_trust_domain_uri(std::string_view uri);
bool valid_trust_domain(std::string_view td);

// The URI entries of a SAN extension (empty when none).
std::vector<std::string> uri_sans(const GENERAL_NAMES *names);
std::vector<std::string> uri_sans(const X509 *cert);

// ASN1_TIME ↔ TimePoint (whole seconds).
TimePoint to_time_point(const ASN1_TIME *t);

// "spiffe://td/x" when the certificate carries one URI SAN, else "subject <RFC 2253 subject>":
// what log lines name a certificate by.
std::string describe(X509 *cert);

// The one check behind verify_svid and the TLS verify callback: the chain (leaf plus untrusted
// intermediates) against `store` at `now`, then the leaf's role and SPIFFE ID. x509_error receives
// the OpenSSL X509_V_ERR_* code that best explains a refusal (for the TLS alert).
Verified verify_leaf(X509 *leaf, STACK_OF(X509) * untrusted, X509_STORE *store,
                     std::string_view trust_domain, TimePoint now, int *x509_error);
// An X509_STORE holding every certificate of bundle_pem; throws PkiError when it holds none.
X509_STORE *make_store(std::string_view bundle_pem);

}  // namespace sockmesh::pki::detail
