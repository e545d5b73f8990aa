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

#include "xds/last_known_good.h"

namespace sockmesh::xds {

struct StreamStatus {
  std::string state = "connecting";  // "connecting", "connected", "backoff", "stopped"
  std::string system_version;        // the version the agent is at (last ACK)
  std::string last_nack;             // the last refusal's message, cleared by the next ACK
  int64_t last_ack_unix_ms = 0;
};

class DiscoveryClient {
 public:
  // Applies a candidate state whole; returns an error detail to NACK it (nothing applied).
  using ApplyFn = std::function<std::optional<v1::ErrorDetail>(const KnownGood &candidate)>;

  // `held` is what the agent serves now (its last-known-good state, possibly empty).
  DiscoveryClient(std::string target, std::string node, KnownGood held, ApplyFn apply);
  ~DiscoveryClient();  // stops the thread and closes the stream

  StreamStatus status() const;

 private:
  void run();
  // One stream's life; returns when it ends.
  void stream_once();

  std::string target_;
  std::string node_;
  ApplyFn apply_;
  KnownGood held_;  // touched by the stream thread only

  mutable std::mutex mu_;
  StreamStatus status_;
  std::atomic<bool> stopping_{false};
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::thread thread_;
};

}  // namespace sockmesh::xds
