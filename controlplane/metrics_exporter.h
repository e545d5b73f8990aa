// meshcp's Prometheus endpoint (docs/metrics.md, sockmesh_cp_*): `/metrics` on
// --metrics-address, computed at scrape time from what the ControlPlane API's GetStatus shows
// (State, Agents, IdentityAuthority). prometheus-cpp stays out of this header (pimpl).
#pragma once

#include <memory>
#include <string>

namespace sockmesh::controlplane {

class State;
class IdentityAuthority;

class MetricsServer {
 public:
  // address: "host:port" (port 0 picks a free one). Throws std::runtime_error with a one-line
  // message when it is malformed or cannot be bound. state and authority must outlive the server.
  MetricsServer(const std::string &address, const State &state, const IdentityAuthority &authority,
                const std::string &version);
  ~MetricsServer();
  MetricsServer(const MetricsServer &) = delete;
  MetricsServer &operator=(const MetricsServer &) = delete;

  // The port bound (the one given, or the one the kernel picked for port 0).
  int port() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace sockmesh::controlplane
