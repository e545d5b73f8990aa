#include "bootstrap_tokens.h"

#include <fmt/format.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "sockmesh/common/atomic_file.h"
#include "sockmesh/common/token_file.h"

namespace sockmesh::controlplane {
namespace {

namespace fs = std::filesystem;
constexpr std::string_view kPrefix = "smt1.";

std::string random_hex(size_t bytes) {
  std::string raw(bytes, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char *>(raw.data()), int(bytes)) != 1)
    throw std::runtime_error("bootstrap token: the random generator failed");
  std::string hex;
  for (unsigned char c : raw) hex += fmt::format("{:02x}", c);
  return hex;
}

std::string sha256(const std::string &text) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (EVP_Digest(text.data(), text.size(), digest, &length, EVP_sha256(), nullptr) != 1)
    throw std::runtime_error("bootstrap token: SHA-256 failed");
  return std::string(reinterpret_cast<const char *>(digest), length);
}

std::string sha256_hex(const std::string &text) {
  std::string hex;
  for (unsigned char c : sha256(text)) hex += fmt::format("{:02x}", c);
  return hex;
}

bool is_hex(std::string_view s, size_t length) {
  if (s.size() != length) return false;
  for (char c : s)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}

int64_t unix_seconds(pki::TimePoint t) {
  return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
}

}  // namespace

BootstrapTokens::BootstrapTokens(std::string dir, pki::Clock clock,
                                 const std::string &cluster_token)
    : dir_(std::move(dir)), clock_(std::move(clock)) {
  if (!cluster_token.empty()) {
    if (cluster_token.size() < kMinTokenLength)
      throw std::invalid_argument(fmt::format(
          "the cluster bootstrap token must have at least {} characters", kMinTokenLength));
    // Compared as digests: equal lengths whatever is presented, so the comparison's time says
    // nothing about the token, not even its length.
    cluster_sha256_ = sha256(cluster_token);
  }
  std::error_code ec;
  fs::create_directories(dir_, ec);
  if (ec) throw std::runtime_error("cannot create " + dir_ + ": " + ec.message());
  fs::permissions(dir_, fs::perms::owner_all, ec);
  for (const auto &entry : fs::directory_iterator(dir_)) {
    if (entry.path().extension() != ".json") continue;
    try {
      const auto json = nlohmann::json::parse(read_whole_file(entry.path()));
      Record r;
      r.node = json.at("node").get<std::string>();
      r.secret_sha256 = json.at("secretSha256").get<std::string>();
      r.expires_unix = json.at("expiresUnix").get<int64_t>();
      r.used = json.at("used").get<bool>();
      records_[entry.path().stem().string()] = r;
    } catch (const nlohmann::json::exception &e) {
      throw std::runtime_error(entry.path().string() +
                               ": not a bootstrap token record: " + e.what());
    }
  }
}

void BootstrapTokens::save(const std::string &id, const Record &r) const {
  const nlohmann::json json = {{"node", r.node},
                               {"secretSha256", r.secret_sha256},
                               {"expiresUnix", r.expires_unix},
                               {"used", r.used}};
  write_file_atomically(fs::path(dir_) / (id + ".json"), json.dump() + "\n", 0600);
}

BootstrapTokens::Issued BootstrapTokens::create(const std::string &node, std::chrono::seconds ttl) {
  if (ttl.count() < 0) throw std::invalid_argument("the token's TTL must not be negative");
  if (ttl > kMaxTtl)
    throw std::invalid_argument(
        fmt::format("the token's TTL must be at most {} s (7 days)", kMaxTtl.count()));
  if (ttl.count() == 0) ttl = kDefaultTtl;
  std::lock_guard lock(mu_);
  std::string id;
  do id = random_hex(4);
  while (records_.count(id));
  const std::string secret = random_hex(16);
  const auto expires = clock_() + ttl;
  Record r{node, sha256_hex(secret), unix_seconds(expires), false};
  save(id, r);
  records_[id] = r;
  return {std::string(kPrefix) + id + "." + secret, expires};
}

const char *BootstrapTokens::method_name(Method method) {
  return method == Method::kClusterToken ? "cluster_token" : "node_token";
}

BootstrapTokens::Method BootstrapTokens::consume(const std::string &node,
                                                 const std::string &token) {
  // First: the cluster token has no smt1.<id>.<secret> shape, the checks below would call it
  // malformed.
  if (!cluster_sha256_.empty()) {
    const std::string presented = sha256(token);
    if (CRYPTO_memcmp(presented.data(), cluster_sha256_.data(), presented.size()) == 0)
      return Method::kClusterToken;
  }
  std::string_view rest(token);
  if (!rest.starts_with(kPrefix))
    throw TokenRefused("malformed",
                       "bootstrap token: not a sockmesh token (expected smt1.<id>.<secret>)");
  rest.remove_prefix(kPrefix.size());
  const auto dot = rest.find('.');
  const std::string_view id = rest.substr(0, dot);
  const std::string_view secret = dot == std::string_view::npos ? "" : rest.substr(dot + 1);
  if (!is_hex(id, 8) || !is_hex(secret, 32))
    throw TokenRefused("malformed",
                       "bootstrap token: not a sockmesh token (expected smt1.<id>.<secret>)");
  std::lock_guard lock(mu_);
  auto it = records_.find(std::string(id));
  // A wrong secret reads like an unknown token: nothing tells a guesser which ids exist.
  const std::string hash = sha256_hex(std::string(secret));
  if (it == records_.end() ||
      CRYPTO_memcmp(hash.data(), it->second.secret_sha256.data(), hash.size()) != 0 ||
      it->second.secret_sha256.size() != hash.size())
    throw TokenRefused("unknown", "bootstrap token: unknown token");
  Record &r = it->second;
  if (r.used)
    throw TokenRefused("used",
                       fmt::format("bootstrap token {}: already used (tokens are one-time)", id));
  if (unix_seconds(clock_()) >= r.expires_unix)
    throw TokenRefused("expired", fmt::format("bootstrap token {}: expired", id));
  if (r.node != node)
    throw TokenRefused(
        "wrong_node",
        fmt::format("bootstrap token {}: made for node \"{}\", not \"{}\"", id, r.node, node));
  r.used = true;
  save(std::string(id), r);
  return Method::kNodeToken;
}

}  // namespace sockmesh::controlplane
