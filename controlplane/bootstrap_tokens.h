// Bootstrap tokens with which a new node joins.
// - One-time, per-node tokens (meshctl node add NAME → meshd --join-token). Only a hash of each
//   token's secret is kept, in <dir>/<id>.json (0600), with the node it is for, its expiry and
//   whether it was used; a used token stays on record so that a second use is refused as "used",
//   not as "unknown".
// - Optionally one reusable cluster token (meshcp --bootstrap-token-file, for DaemonSets, like
//   kubeadm's bootstrap tokens): it joins any node name, any number of times, until meshcp is
//   restarted without it. Only its SHA-256 is kept, in memory.
#pragma once

#include <chrono>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string>

#include "sockmesh/pki/pki.h"

namespace sockmesh::controlplane {

// Why a token was refused; reason() is the counter label (unknown, malformed, expired, used,
// wrong_node).
class TokenRefused : public std::runtime_error {
 public:
  TokenRefused(std::string reason, const std::string &message)
      : std::runtime_error(message), reason_(std::move(reason)) {}
  const std::string &reason() const { return reason_; }

 private:
  std::string reason_;
};

class BootstrapTokens {
 public:
  static constexpr std::chrono::seconds kDefaultTtl{24 * 3600};
  static constexpr std::chrono::seconds kMaxTtl{7 * 24 * 3600};

  // Loads the records in dir (created 0700 when missing); throws naming a file it cannot read.
  // cluster_token: the reusable cluster token, empty for none (std::invalid_argument when shorter
  // than kMinTokenLength, sockmesh/common/token_file.h).
  BootstrapTokens(std::string dir, pki::Clock clock, const std::string &cluster_token = "");

  struct Issued {
    std::string token;  // "smt1.<id>.<secret>": id 8 hex digits, secret 32
    pki::TimePoint expires;
  };
  // ttl 0: kDefaultTtl; refused (std::invalid_argument) beyond kMaxTtl or negative.
  Issued create(const std::string &node, std::chrono::seconds ttl);

  // How a join was accepted.
  enum class Method { kNodeToken, kClusterToken };
  static const char *method_name(Method method);  // "node_token", "cluster_token"
  bool has_cluster_token() const { return !cluster_sha256_.empty(); }

  // The cluster token (compared in constant time) is accepted for any node; otherwise a per-node
  // token is checked and used up for `node`; throws TokenRefused otherwise, with the per-node
  // token's reasons (a wrong cluster token reads as a malformed or unknown per-node token). The
  // use of a per-node token is on disk before this returns.
  Method consume(const std::string &node, const std::string &token);

 private:
  struct Record {
    std::string node;
    std::string secret_sha256;  // hex
    int64_t expires_unix = 0;
    bool used = false;
  };
  void save(const std::string &id, const Record &record) const;

  std::string dir_;
  pki::Clock clock_;
  std::string cluster_sha256_;  // raw digest of the cluster token; empty: none
  std::mutex mu_;
  std::map<std::string, Record> records_;  // by id
};

}  // namespace sockmesh::controlplane
