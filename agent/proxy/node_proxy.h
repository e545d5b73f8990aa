// The agent's transparent L4 proxy for traffic between nodes: the outbound listener that captured
// connections land on (the kernel redirected them at connect(), docs/datapath.md "Capture"), the
// tunnel to other nodes' agents presenting the source workload's SVID, and the inbound tunnel
// listener that checks the peer's SVID against authorization policy and connects to the local
// pod. It also keeps the kernel's capture maps in step with the mesh view, so that the kernel
// only captures what this proxy can carry.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "proxy/tunnel_server.h"
#include "proxy/tunnel_stats.h"
#include "proxy/upstream_failures.h"
#include "proxy/upstream_table.h"

namespace sockmesh::identity {
class Rotator;
}
namespace sockmesh::telemetry {
struct Names;
}
namespace sockmesh::fastpath {
class FastPath;
}
namespace sockmesh::reconcile {
class CaptureMaps;
class PolicyMaps;
struct MeshView;
}  // namespace sockmesh::reconcile

namespace sockmesh::proxy {

struct NodeProxyOptions {
  std::string node;
  std::string trust_domain;
  std::string workload_cgroup;     // workloads' cgroup_path is relative to it
  uint16_t outbound_port = 15001;  // captured connections (on the node's own address)
  uint16_t inbound_port = 15008;   // tunnel from other nodes' agents
  // The same-node fast path (docs/fastpath.md), when the kernel supports it and it is switched
  // on: told this node's workloads with every view. Null: off.
  fastpath::FastPath *fast_path = nullptr;
  // Told how every connect attempt to a backend went, and asked which backends the kernel ejects
  // (outlier detection). Null: nobody.
  UpstreamFailureSink *upstream_failures = nullptr;
  // Listening sockets handed over by the agent this one replaces (agent/upgrade/handover.h), in
  // the order of NodeProxy::listener_fds(); -1: bind one. Owned by the proxy from construction on.
  std::array<int, 3> inherited_listeners = {-1, -1, -1};
};

struct NodeProxyStats {
  TunnelStats outbound;            // the tunnel client
  TunnelStats inbound;             // the tunnel server
  uint64_t captured_accepted = 0;  // connections accepted on the outbound listener
  // Accepted but not carried, by reason: no_capture_record, unknown_source, no_svid,
  // unknown_destination_node.
  std::map<std::string, uint64_t> outbound_dropped;
  // Connect attempts to backends for carried connections (docs/tunnel.md, "Connect timeout and
  // retries"): every attempt, the first ones included; those that were retries after a failed
  // one; failed attempts by reason (connect_refused, connect_timeout, attempt_timeout, tunnel);
  // connections reset because their last allowed attempt failed or no backend was left.
  uint64_t upstream_attempts = 0;
  uint64_t upstream_retries = 0;
  std::map<std::string, uint64_t> upstream_failed;
  uint64_t upstream_exhausted = 0;
  std::vector<InboundConnection> inbound_connections;
};

class NodeProxy {
 public:
  // Starts listening (throws std::runtime_error when it cannot) and the proxy's thread. Capture
  // is switched on in the kernel only once a mesh view names this node's address. With `policy`,
  // the kernel's same-node authorization follows the view's policies too.
  NodeProxy(NodeProxyOptions options, identity::Rotator &identities,
            reconcile::CaptureMaps &capture, reconcile::PolicyMaps *policy = nullptr);
  ~NodeProxy();  // stops; capture stays on (fail closed, docs/decisions.md)

  // A new view of the mesh (workloads, nodes, policies): the proxy's tables, the policy index and
  // the kernel's policy and capture maps follow it.
  void set_view(std::shared_ptr<const reconcile::MeshView> view);
  // The services' VIPs, backends and connect settings, for retrying failed connects; replaced
  // whole with every applied change of services or workloads. Until the first: no retries.
  void set_upstreams(std::shared_ptr<const UpstreamTable> upstreams);
  NodeProxyStats stats() const;
  // The listening sockets: captured IPv4, captured IPv6, tunnel. For handing them over.
  std::array<int, 3> listener_fds() const;
  // Stops accepting and closes this process's descriptors of the listeners (the next agent holds
  // its own); the connections carry on. The captured-connection listeners are closed when it
  // returns; the tunnel's is closed on the tunnel server's strand just after.
  void stop_accepting();
  // With handed-over listeners (NodeProxyOptions::inherited_listeners): starts accepting, which
  // the proxy does not do before. The agent calls it once the first view is set (its numbers
  // adopted from the kernel's maps) and the workloads' SVIDs are issued. Idempotent.
  void accept_handed_over();
  // Tunnel streams still open, both ways: what an upgrade's drain waits for.
  uint64_t open_streams() const;
  // The workload and node numbers the kernel's maps hold, with their names and SPIFFE IDs.
  void name_numbers(telemetry::Names *names) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace sockmesh::proxy
