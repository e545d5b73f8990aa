// The mesh CA (meshcp): a P-256 root per trust domain, leaf SVIDs for verified CSRs, and the root's
// on-disk persistence.
#include <fcntl.h>
#include <openssl/pem.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "internal.h"
#include "openssl_util.h"

namespace sockmesh::pki {
namespace {

constexpr std::chrono::seconds kRootLifetime{std::chrono::hours(24) * 3650};
constexpr std::chrono::seconds kRootBackdate{60};

// 128 random bits (RFC 5280 allows 20 octets; CA/B asks for at least 64 bits of entropy), never
// zero, so serials from a restarted CA do not repeat.
void set_random_serial(X509 *cert) {
  detail::BnPtr bn(BN_new());
  if (!bn) detail::throw_openssl("serial: BN_new");
  do {
    if (!BN_rand(bn.get(), 128, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY))
      detail::throw_openssl("serial: BN_rand");
  } while (BN_is_zero(bn.get()));
  if (!BN_to_ASN1_INTEGER(bn.get(), X509_get_serialNumber(cert)))
    detail::throw_openssl("serial: BN_to_ASN1_INTEGER");
}

void set_validity(X509 *cert, TimePoint not_before, TimePoint not_after) {
  if (!ASN1_TIME_set(X509_getm_notBefore(cert), std::chrono::system_clock::to_time_t(not_before)) ||
      !ASN1_TIME_set(X509_getm_notAfter(cert), std::chrono::system_clock::to_time_t(not_after)))
    detail::throw_openssl("certificate: setting validity");
}

// Adds one extension in openssl.cnf syntax ("critical,CA:TRUE,pathlen:0"); ctx knows the subject
// and issuer so "hash" / "keyid:always" resolve.
void add_ext(X509 *cert, X509V3_CTX *ctx, int nid, const std::string &value) {
  detail::X509ExtPtr ext(X509V3_EXT_nconf_nid(nullptr, ctx, nid, value.c_str()));
  if (!ext || !X509_add_ext(cert, ext.get(), -1))
    detail::throw_openssl(std::string("certificate: adding ") + OBJ_nid2sn(nid) + "=" + value);
}

X509_NAME *make_name(const std::vector<std::pair<const char *, std::string>> &entries) {
  X509_NAME *name = X509_NAME_new();
  if (!name) detail::throw_openssl("X509_NAME_new");
  for (const auto &[field, value] : entries) {
    if (!X509_NAME_add_entry_by_txt(name, field, MBSTRING_UTF8,
                                    reinterpret_cast<const unsigned char *>(value.c_str()), -1, -1,
                                    0)) {
      X509_NAME_free(name);
      detail::throw_openssl(std::string("name: adding ") + field);
    }
  }
  return name;
}

void sign(X509 *cert, const PrivateKey &key) {
  if (X509_sign(cert, key.get(), EVP_sha256()) <= 0) detail::throw_openssl("certificate: signing");
}

std::string read_file(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw PkiError("cannot read " + path + ": " + std::strerror(errno));
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// temp file + fsync + rename + fsync(dir): a crash leaves either the old file or the complete new
// one, never a truncated key.
void write_file_atomically(const std::string &dir, const std::string &name, const std::string &data,
                           mode_t mode) {
  std::string path = dir + "/" + name;
  std::string tmp = path + ".tmp." + std::to_string(::getpid());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) throw PkiError("cannot create " + tmp + ": " + std::strerror(errno));
  auto fail = [&](const char *what) {
    int err = errno;
    ::close(fd);
    ::unlink(tmp.c_str());
    throw PkiError(std::string(what) + " " + tmp + ": " + std::strerror(err));
  };
  if (::fchmod(fd, mode) != 0) fail("cannot chmod");  // exact mode whatever the umask
  for (size_t off = 0; off < data.size();) {
    ssize_t n = ::write(fd, data.data() + off, data.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) fail("cannot write");
    off += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) fail("cannot fsync");
  if (::close(fd) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    throw PkiError("cannot close " + tmp + ": " + std::strerror(err));
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    throw PkiError("cannot rename " + tmp + " to " + path + ": " + std::strerror(err));
  }
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);  // makes the rename durable
    ::close(dfd);
  }
}

}  // namespace

CertificateAuthority::CertificateAuthority(Certificate cert, PrivateKey key,
                                           std::string trust_domain)
    : cert_(std::move(cert)), key_(std::move(key)), trust_domain_(std::move(trust_domain)) {}

CertificateAuthority CertificateAuthority::create(std::string_view trust_domain,
                                                  const Clock &clock) {
  if (!detail::valid_trust_domain(trust_domain))
    throw PkiError("CA: invalid trust domain \"" + std::string(trust_domain) + "\"");
  const std::string td(trust_domain);
  PrivateKey key = PrivateKey::generate();
  X509Ptr cert(X509_new());
  if (!cert) detail::throw_openssl("CA: X509_new");
  if (!X509_set_version(cert.get(), 2)) detail::throw_openssl("CA: setting version");
  set_random_serial(cert.get());
  detail::X509NamePtr name(make_name({{"O", "sockmesh"}, {"CN", "sockmesh root " + td}}));
  if (!X509_set_subject_name(cert.get(), name.get()) ||
      !X509_set_issuer_name(cert.get(), name.get()) || !X509_set_pubkey(cert.get(), key.get()))
    detail::throw_openssl("CA: setting names and key");
  TimePoint now = clock();
  set_validity(cert.get(), now - kRootBackdate, now + kRootLifetime);

  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, cert.get(), cert.get(), nullptr, nullptr, 0);
  add_ext(cert.get(), &ctx, NID_basic_constraints, "critical,CA:TRUE,pathlen:0");
  add_ext(cert.get(), &ctx, NID_key_usage, "critical,keyCertSign,cRLSign");
  add_ext(cert.get(), &ctx, NID_subject_key_identifier, "hash");
  add_ext(cert.get(), &ctx, NID_subject_alt_name, "URI:spiffe://" + td);
  sign(cert.get(), key);
  return CertificateAuthority(Certificate(std::move(cert)), std::move(key), td);
}

CertificateAuthority CertificateAuthority::from_pem(std::string_view cert_pem,
                                                    std::string_view key_pem,
                                                    std::string_view trust_domain) {
  Certificate cert = Certificate::from_pem(cert_pem);
  PrivateKey key = PrivateKey::from_pem(key_pem);
  std::string who = detail::describe(cert.get());
  if (X509_check_private_key(cert.get(), key.get()) != 1) {
    detail::clear_errors();
    throw PkiError("CA: the key does not match the certificate " + who);
  }
  if (!cert.is_ca()) throw PkiError("CA: certificate " + who + " is not a CA (basicConstraints)");
  auto uris = detail::uri_sans(cert.get());
  std::optional<std::string> td;
  if (uris.size() == 1) td = detail::parse_trust_domain_uri(uris[0]);
  // A CA that names nothing is for the trust domain it is given; one that names something else
  // (a path, several URIs) is not silently re-purposed.
  if (!td && uris.empty() && !trust_domain.empty()) {
    if (!detail::valid_trust_domain(trust_domain))
      throw PkiError("CA: invalid trust domain \"" + std::string(trust_domain) + "\"");
    td = std::string(trust_domain);
  }
  if (!td) throw PkiError("CA: certificate " + who + " has no trust domain URI SAN spiffe://<td>");
  return CertificateAuthority(std::move(cert), std::move(key), *td);
}

CertificateAuthority CertificateAuthority::load_or_create(const std::string &dir,
                                                          std::string_view trust_domain,
                                                          const Clock &clock) {
  namespace fs = std::filesystem;
  const std::string crt = dir + "/ca.crt", key = dir + "/ca.key";
  std::error_code ec;
  bool has_crt = fs::exists(crt, ec), has_key = fs::exists(key, ec);
  if (has_crt && has_key) {
    auto ca = from_pem(read_file(crt), read_file(key));
    if (ca.trust_domain() != trust_domain)
      throw PkiError("CA in " + dir + " is for trust domain " + ca.trust_domain() + ", not " +
                     std::string(trust_domain));
    return ca;
  }
  if (has_crt != has_key)
    throw PkiError("CA: " + (has_crt ? crt : key) + " exists without " + (has_crt ? key : crt) +
                   " (restore the pair or remove it)");

  // The key must never be readable by others, so the directory is created 0700 (parents with
  // default permissions).
  if (!fs::exists(dir, ec)) {
    fs::path parent = fs::path(dir).parent_path();
    if (!parent.empty()) fs::create_directories(parent, ec);
    if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST)
      throw PkiError("cannot create " + dir + ": " + std::strerror(errno));
  }
  auto ca = create(trust_domain, clock);
  // Key first: a crash between the two leaves a lone key, which the next start refuses loudly
  // instead of trusting a certificate whose key is lost.
  write_file_atomically(dir, "ca.key", ca.key_.pem(), 0600);
  write_file_atomically(dir, "ca.crt", ca.cert_.pem(), 0644);
  return ca;
}

std::string CertificateAuthority::bundle_pem() const {
  return cert_.pem();
}

std::string CertificateAuthority::issue(const Csr &csr, const SpiffeId &id,
                                        const IssueOptions &options, TimePoint now) const {
  if (id.trust_domain != trust_domain_)
    throw PkiError("CA for trust domain " + trust_domain_ + " cannot issue " + id.str());
  if (!SpiffeId::parse(id.str())) throw PkiError("CA: not a valid SPIFFE ID: " + id.str());

  auto pub_bio = detail::mem_bio(csr.public_pem);
  PkeyPtr pub(PEM_read_bio_PUBKEY(pub_bio.get(), nullptr, nullptr, nullptr));
  if (!pub) detail::throw_openssl("CA: the CSR's public key for " + id.str() + " is unreadable");

  TimePoint not_before = now - options.backdate;
  TimePoint not_after = std::min(now + options.ttl, cert_.not_after());
  if (not_after <= now)
    throw PkiError("CA: certificate " + detail::describe(cert_.get()) + " has expired");

  X509Ptr cert(X509_new());
  if (!cert) detail::throw_openssl("issue: X509_new");
  if (!X509_set_version(cert.get(), 2)) detail::throw_openssl("issue: setting version");
  set_random_serial(cert.get());
  // An empty subject is legal with a SAN, but some tools print nothing useful; O=sockmesh says
  // who issued it.
  detail::X509NamePtr subject(make_name({{"O", "sockmesh"}}));
  if (!X509_set_subject_name(cert.get(), subject.get()) ||
      !X509_set_issuer_name(cert.get(), X509_get_subject_name(cert_.get())) ||
      !X509_set_pubkey(cert.get(), pub.get()))
    detail::throw_openssl("issue: setting names and key");
  set_validity(cert.get(), not_before, not_after);

  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, cert_.get(), cert.get(), nullptr, nullptr, 0);
  add_ext(cert.get(), &ctx, NID_basic_constraints, "critical,CA:FALSE");
  add_ext(cert.get(), &ctx, NID_key_usage, "critical,digitalSignature");
  add_ext(cert.get(), &ctx, NID_ext_key_usage, "serverAuth,clientAuth");
  add_ext(cert.get(), &ctx, NID_subject_key_identifier, "hash");
  add_ext(cert.get(), &ctx, NID_authority_key_identifier, "keyid:always");
  std::string sans = "URI:" + id.str();
  for (const auto &name : options.dns_names) {
    // The names go into an OpenSSL config string: only host-name characters, so none can inject.
    if (name.empty() ||
        name.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789.-") != std::string::npos)
      throw PkiError("CA: \"" + name + "\" is not a DNS name");
    sans += ",DNS:" + name;
  }
  add_ext(cert.get(), &ctx, NID_subject_alt_name, sans);
  sign(cert.get(), key_);

  std::string out = Certificate(std::move(cert)).pem();
  // An intermediate's leaves need it in the chain; a root is in every peer's bundle already.
  if (X509_self_signed(cert_.get(), 0) != 1) out += cert_.pem();
  detail::clear_errors();
  return out;
}

}  // namespace sockmesh::pki
