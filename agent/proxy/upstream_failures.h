// Where the agent reports how its connects to backends went (docs/tunnel.md, "Connect timeout
// and retries"), so that the kernel's outlier detection counts the failures of connections the
// agent carries to other nodes: those connects happen on the peer node, out of sight of this
// node's kernel. NodeProxyOptions::upstream_failures; null: nobody is told.
#pragma once

#include <cstdint>
#include <string>

namespace sockmesh::proxy {

// One attempt at connecting a captured connection to a backend of a service.
struct UpstreamAttempt {
  std::string service_key;  // "namespace/name"
  std::string backend_ip;   // as the backend's address is written ("10.78.2.10", "fd00:78:2::10")
  uint16_t backend_port = 0;
};

// Called on the proxy's thread, once per attempt, so implementations must be quick and must not
// throw; ejected() is asked while choosing a backend to retry on.
class UpstreamFailureSink {
 public:
  virtual ~UpstreamFailureSink() = default;
  // The backend refused or did not answer in time, or the tunnel to its node could not carry the
  // attempt (docs/tunnel.md lists what counts).
  virtual void failed(const UpstreamAttempt &) = 0;
  // The backend accepted the connection (the CONNECT was answered 200).
  virtual void succeeded(const UpstreamAttempt &) = 0;
  // True when the kernel currently ejects this backend: retries skip it when another is left.
  virtual bool ejected(const UpstreamAttempt &) const = 0;
};

}  // namespace sockmesh::proxy
