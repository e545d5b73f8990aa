#include "identity/node_identity.h"

#include <fcntl.h>
#include <netdb.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <optional>
#include <stdexcept>

#include "identity/identity_client.h"
#include "sockmesh/common/atomic_file.h"
#include "sockmesh/common/token_file.h"
#include "sockmesh/common/unique_fd.h"

namespace sockmesh::identity {
namespace {

namespace fs = std::filesystem;

// A connected stream socket to a gRPC target of the forms meshcp listens on.
UniqueFd connect_target(const std::string &target) {
  std::string rest = target;
  if (rest.starts_with("unix:")) {
    rest = rest.substr(5);
    if (rest.starts_with("//")) rest = rest.substr(2);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (rest.size() >= sizeof(addr.sun_path))
      throw std::runtime_error("socket path too long: " + rest);
    std::memcpy(addr.sun_path, rest.c_str(), rest.size() + 1);
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (fd.get() < 0 || ::connect(fd.get(), reinterpret_cast<sockaddr *>(&addr), sizeof(addr)) != 0)
      throw std::runtime_error("cannot connect to " + target + ": " + std::strerror(errno));
    return fd;
  }
  if (rest.starts_with("dns:")) rest = rest.substr(4);
  if (rest.starts_with("ipv4:") || rest.starts_with("ipv6:")) rest = rest.substr(5);
  const auto colon = rest.rfind(':');
  if (colon == std::string::npos) throw std::runtime_error("not host:port: " + target);
  std::string host = rest.substr(0, colon), port = rest.substr(colon + 1);
  if (host.size() > 1 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  addrinfo hints{}, *found = nullptr;
  hints.ai_socktype = SOCK_STREAM;
  if (int rc = ::getaddrinfo(host.c_str(), port.c_str(), &hints, &found); rc != 0)
    throw std::runtime_error("cannot resolve " + target + ": " + gai_strerror(rc));
  std::unique_ptr<addrinfo, decltype(&freeaddrinfo)> list(found, freeaddrinfo);
  for (auto *ai = found; ai; ai = ai->ai_next) {
    UniqueFd fd(::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol));
    if (fd.get() >= 0 && ::connect(fd.get(), ai->ai_addr, ai->ai_addrlen) == 0) return fd;
  }
  throw std::runtime_error("cannot connect to " + target + ": " + std::strerror(errno));
}

// A certificate OpenSSL handed over, as the pki library's type (a reference of its own).
pki::Certificate to_certificate(X509 *x509) {
  BIO *bio = BIO_new(BIO_s_mem());
  PEM_write_bio_X509(bio, x509);
  char *data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  std::string pem(data, size_t(n));
  BIO_free(bio);
  return pki::Certificate::from_pem(pem);
}

// The whole file, or "<where>cannot read: <why>".
std::string read_file(const std::string &path, const std::string &where) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) throw std::runtime_error(where + "cannot read: " + std::strerror(errno));
  std::string text;
  char buffer[4096];
  while (true) {
    const ssize_t n = ::read(fd.get(), buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw std::runtime_error(where + "cannot read: " + std::strerror(errno));
    if (n == 0) return text;
    text.append(buffer, size_t(n));
  }
}

// The identity kept in dir, when it is for `node` and unexpired; throws saying why not.
NodeIdentity load_identity(const std::string &dir, const std::string &node,
                           const pki::Clock &clock) {
  NodeIdentity id{node, "", pki::PrivateKey::from_pem(read_whole_file(fs::path(dir) / "node.key")),
                  read_whole_file(fs::path(dir) / "node.crt"),
                  read_whole_file(fs::path(dir) / "bundle.pem")};
  const auto cert = pki::Certificate::from_pem(id.certificate_pem);
  const auto spiffe = cert.spiffe_id();
  if (!spiffe || spiffe->node_name() != node)
    throw std::runtime_error("the node certificate in " + dir + " is not for node \"" + node +
                             "\"; join again with meshctl node add " + node);
  if (cert.not_after() <= clock())
    throw std::runtime_error("the node certificate in " + dir +
                             " has expired; join again: meshctl node add " + node +
                             ", then --join-token");
  id.trust_domain = spiffe->trust_domain;
  return id;
}

}  // namespace

std::string ca_cert_file_hash(const std::string &path) {
  const std::string where = "--ca-cert-file " + path + ": ";
  const std::string pem = read_file(path, where);
  std::optional<pki::Certificate> cert;
  try {
    cert = pki::Certificate::from_pem(pem);
  } catch (const pki::PkiError &) {
    throw std::runtime_error(where +
                             "not a PEM certificate (no -----BEGIN CERTIFICATE----- block)");
  }
  if (!cert->is_ca())
    throw std::runtime_error(where +
                             "not a CA certificate (no basicConstraints CA:TRUE); give meshcp's CA "
                             "certificate, e.g. the tls.crt of the CA's Secret");
  return cert->sha256_fingerprint();
}

JoinOptions join_options(const JoinFlags &flags) {
  if (!flags.token.empty() && !flags.token_file.empty())
    throw std::runtime_error("give --join-token or --join-token-file, not both");
  JoinOptions join;
  join.token = flags.token;
  if (!flags.token_file.empty()) {
    join.token = read_token_file(flags.token_file, "--join-token-file");
    join.token_only_when_needed = true;
  }
  join.ca_cert_hash = flags.ca_cert_hash;
  if (!flags.ca_cert_file.empty()) {
    const std::string hash = ca_cert_file_hash(flags.ca_cert_file);
    if (!flags.ca_cert_hash.empty() && flags.ca_cert_hash != hash)
      throw std::runtime_error("--ca-cert-file " + flags.ca_cert_file + " is the CA " + hash +
                               ", not the --ca-cert-hash " + flags.ca_cert_hash +
                               ": give one of them, or the same CA");
    join.ca_cert_hash = hash;
  }
  if (!join.token.empty() && join.ca_cert_hash.empty())
    throw std::runtime_error(
        std::string(flags.token_file.empty() ? "--join-token" : "--join-token-file") +
        " needs --ca-cert-hash or --ca-cert-file (the CA meshcp must present)");
  return join;
}

std::string fetch_pinned_ca(const std::string &controlplane, const std::string &expected_hash,
                            std::string *serving_trust_domain) {
  UniqueFd fd = connect_target(controlplane);
  timeval timeout{10, 0};
  ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  ::setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout));
  // Nothing is trusted yet: the handshake only collects the chain; the pin decides.
  std::unique_ptr<SSL_CTX, decltype(&SSL_CTX_free)> ctx(SSL_CTX_new(TLS_client_method()),
                                                        SSL_CTX_free);
  std::unique_ptr<SSL, decltype(&SSL_free)> ssl(SSL_new(ctx.get()), SSL_free);
  static const unsigned char kAlpn[] = {2, 'h', '2'};
  SSL_set_alpn_protos(ssl.get(), kAlpn, sizeof(kAlpn));
  SSL_set_verify(ssl.get(), SSL_VERIFY_NONE, nullptr);
  SSL_set_fd(ssl.get(), fd.get());
  if (SSL_connect(ssl.get()) != 1) {
    ERR_clear_error();
    throw std::runtime_error("TLS handshake with meshcp at " + controlplane + " failed");
  }
  STACK_OF(X509) *chain = SSL_get_peer_cert_chain(ssl.get());
  X509 *leaf = SSL_get0_peer_certificate(ssl.get());
  std::string found;
  for (int i = 0; chain && i < sk_X509_num(chain); ++i) {
    const pki::Certificate cert = to_certificate(sk_X509_value(chain, i));
    if (cert.sha256_fingerprint() != expected_hash || !cert.is_ca()) continue;
    if (!leaf || X509_verify(leaf, X509_get0_pubkey(cert.get())) != 1) {
      ERR_clear_error();
      throw std::runtime_error(
          "meshcp presented the pinned CA, but its serving certificate is not signed by it");
    }
    found = cert.pem();
    if (serving_trust_domain) {
      const auto id = to_certificate(leaf).spiffe_id();
      *serving_trust_domain = id ? id->trust_domain : "";
    }
  }
  SSL_shutdown(ssl.get());
  ERR_clear_error();
  if (found.empty())
    throw std::runtime_error("meshcp at " + controlplane + " does not present the CA " +
                             expected_hash + " (--ca-cert-hash): refusing to join it");
  return found;
}

pki::Credential NodeIdentity::credential() const {
  return {key, pki::Certificate::chain_from_pem(certificate_pem)};
}

void NodeIdentity::save(const std::string &dir) const {
  write_file_atomically(fs::path(dir) / "node.key", key.pem(), 0600);
  write_file_atomically(fs::path(dir) / "node.crt", certificate_pem, 0644);
  write_file_atomically(fs::path(dir) / "bundle.pem", bundle_pem, 0644);
}

NodeIdentity NodeIdentity::load_or_join(const std::string &dir, const std::string &node,
                                        const JoinOptions &join, const pki::Clock &clock) {
  const fs::path key_file = fs::path(dir) / "node.key";
  if (fs::exists(key_file) && join.token.empty()) return load_identity(dir, node, clock);
  if (fs::exists(key_file) && join.token_only_when_needed) {
    // Kept when usable and of the pinned CA (a CA made anew, e.g. by a reinstalled chart, needs a
    // new join); otherwise the token joins anew.
    try {
      auto id = load_identity(dir, node, clock);
      bool pinned = join.ca_cert_hash.empty();
      for (const auto &ca : pki::Certificate::chain_from_pem(id.bundle_pem))
        pinned |= ca.sha256_fingerprint() == join.ca_cert_hash;
      if (!pinned)
        throw std::runtime_error("its trust bundle does not hold the CA " + join.ca_cert_hash);
      spdlog::info("event=node_identity_kept node={} dir={} (the join token is not needed)", node,
                   dir);
      return id;
    } catch (const std::exception &e) {
      spdlog::warn("event=node_identity_unusable node={} reason=\"{}\" action=join", node,
                   e.what());
    }
  }
  if (join.token.empty())
    throw std::runtime_error("node \"" + node + "\" has not joined the mesh (no " +
                             key_file.string() + "): run `meshctl node add " + node +
                             "` and start meshd with --join-token and --ca-cert-hash");
  if (join.ca_cert_hash.empty()) throw std::runtime_error("--join-token needs --ca-cert-hash");
  std::string serving_td;
  const std::string ca = fetch_pinned_ca(join.controlplane, join.ca_cert_hash, &serving_td);
  auto key = pki::PrivateKey::generate();
  // A CA without a URI SAN (Helm's genCA) names no trust domain; meshcp's serving certificate,
  // signed by it, does (spiffe://<td>/sockmesh/controlplane). meshcp decides the node's ID anyway.
  auto td = pki::Certificate::from_pem(ca).trust_domain();
  if (!td && !serving_td.empty()) td = serving_td;
  if (!td)
    throw std::runtime_error("meshcp's CA names no trust domain, nor does its serving certificate");
  v1::JoinNodeRequest request;
  request.set_node(node);
  request.set_token(join.token);
  request.set_csr_pem(pki::make_csr(key, pki::SpiffeId::node(*td, node)));
  IdentityClient client(join.controlplane, {ca, "", ""});
  const auto response = client.join(request);
  NodeIdentity id{node, response.trust_domain(), std::move(key), response.certificate_pem(),
                  response.trust_bundle_pem()};
  id.save(dir);
  spdlog::info("event=node_joined node={} trust_domain={} certificate_expires_unix={}", node,
               id.trust_domain,
               std::chrono::duration_cast<std::chrono::seconds>(
                   pki::Certificate::from_pem(id.certificate_pem).not_after().time_since_epoch())
                   .count());
  return id;
}

}  // namespace sockmesh::identity
