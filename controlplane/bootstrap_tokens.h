// One-time bootstrap tokens with which a new node joins (meshctl node add NAME → meshd
// --join-token). Only a hash of each token's secret is kept, in <dir>/<id>.json (0600), with the
// node it is for, its expiry and whether it was used; a used token stays on record so that a
// second use is refused as "used", not as "unknown".
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
  BootstrapTokens(std::string dir, pki::Clock clock);

  struct Issued {
    std::string token;  // "smt1.<id>.<secret>": id 8 hex digits, secret 32
    pki::TimePoint expires;
  };
  // ttl 0: kDefaultTtl; refused (std::invalid_argument) beyond kMaxTtl or negative.
  Issued create(const std::string &node, std::chrono::seconds ttl);

  // Checks and uses up the token for `node`; throws TokenRefused otherwise. The use is on disk
  // before this returns.
  void consume(const std::string &node, const std::string &token);

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
  std::mutex mu_;
  std::map<std::string, Record> records_;  // by id
};

}  // namespace sockmesh::controlplane
