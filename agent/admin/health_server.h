// meshd's health probes over HTTP/1.1 (docs/metrics.md, "Health probes"), for Kubernetes'
// livenessProbe and readinessProbe: GET /healthz/live and GET /healthz/ready answer 200 when the
// check passes and 503 when it fails, with health_json's body (admin/health.h). Every request
// asks AdminState::status() afresh: the probes see what `meshctl status` shows. Other paths get
// 404, other methods on the two paths 405, a request whose header exceeds max_request_bytes 431,
// a malformed one 400. One answer per connection (then it is closed); a connection that has not
// been answered and closed within `timeout` is closed. Its own thread; Asio stays out of this
// header (pimpl).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace sockmesh::admin {

class AdminState;

struct HealthOptions {
  // "host:port" (host an IPv4 address or [v6]); port 0 picks a free port (HealthServer::port()).
  std::string address = "0.0.0.0:15021";
  // From accept to the answer written and the connection closed: a slow client cannot pin it.
  std::chrono::milliseconds timeout{5000};
  // Request line and headers, at most.
  size_t max_request_bytes = 8192;
  // Connections open at once; one more is closed as soon as it is accepted.
  size_t max_connections = 64;
  // The time a node certificate is compared with (unix ms); the system clock when empty.
  std::function<int64_t()> now_unix_ms;
};

class HealthServer {
 public:
  // Binds and starts serving. Throws std::runtime_error with a one-line message when the address
  // is malformed or cannot be bound. `state` must outlive the server.
  HealthServer(HealthOptions opts, AdminState &state);
  // Stops: no call to `state` after it returns.
  ~HealthServer();
  HealthServer(const HealthServer &) = delete;
  HealthServer &operator=(const HealthServer &) = delete;

  // The port bound (the one given, or the kernel's pick for 0).
  int port() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace sockmesh::admin
