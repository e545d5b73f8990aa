// The agent's end of the discovery stream (proto/sockmesh/v1/discovery.proto): connects to the
// control plane, announces what it holds so a resync sends only differences, hands every push to
// the agent to apply whole or refuse, and answers ACK or NACK. Reconnects with capped exponential
// backoff. Runs on its own thread.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "identity/identity_client.h"
#include "xds/last_known_good.h"

namespace sockmesh::xds {

struct StreamStatus {
  std::string state = "connecting";  // "connecting", "connected", "backoff", "stopped"
  std::string system_version;        // the version the agent is at (last ACK)
  std::string last_nack;             // the last refusal's message, cleared by the next ACK
  int64_t last_ack_unix_ms = 0;
};

// What one push changed: the names it added or replaced, and those it removed.
struct Delta {
  std::vector<std::string> changed;
  std::vector<std::string> removed;
};

class DiscoveryClient {
 public:
  // Applies a candidate state whole; returns an error detail to NACK it (nothing applied). The
  // delta says what differs from the state last applied, so the agent can do work proportional
  // to the change; the candidate is the whole state after it.
  using ApplyFn =
      std::function<std::optional<v1::ErrorDetail>(const KnownGood &candidate, const Delta &delta)>;

  // `held` is what the agent serves now (its last-known-good state, possibly empty). The stream
  // is TLS with the node's certificate (`security`).
  DiscoveryClient(std::string target, std::string node, identity::ChannelSecurity security,
                  KnownGood held, ApplyFn apply);
  ~DiscoveryClient();  // stop()s

  // Closes the stream and stops the thread: no push is applied after it returns. Idempotent.
  void stop();

  StreamStatus status() const;
  // A renewed node certificate: used from the next (re)connection on.
  void set_security(identity::ChannelSecurity security);

  // Calls fn with the state last applied (ACKed), with pushes held off meanwhile: how the agent's
  // last-known-good writer reads it without a copy.
  void with_held(const std::function<void(const KnownGood &)> &fn) const;
  // The held state in the last-known-good file's format, cheaply (see held_wire_).
  std::string serialize_held() const;

 private:
  void run();
  // One stream's life; returns when it ends.
  void stream_once();

  std::string target_;
  std::string node_;
  identity::ChannelSecurity security_;  // under mu_
  ApplyFn apply_;
  mutable std::mutex held_mu_;  // the stream thread changes held_ under it; with_held reads
  KnownGood held_;
  // Each held resource serialized, filled by serialize_held(); a push drops what it changes or
  // removes, so the stream's path never serializes.
  mutable std::map<std::string, std::string> held_wire_;

  mutable std::mutex mu_;
  StreamStatus status_;
  std::atomic<bool> stopping_{false};
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::thread thread_;
};

}  // namespace sockmesh::xds
