// What a captured connection was for, read on the agent's end of it (docs/datapath.md,
// "Capture"): the kernel answers getsockopt(SOL_IP, SM_SO_CAPTURE_INFO) on a socket the agent
// accepted on its outbound listener with the record connect() left.
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <optional>
#include <string>

#include "reconcile/desired_state.h"

namespace sockmesh::proxy {

struct CapturedAddress {
  reconcile::IpAddress addr;  // AF_INET or AF_INET6 (an IPv4-mapped address is given as IPv4)
  uint16_t port = 0;          // host order
  bool operator==(const CapturedAddress &) const = default;
  std::string to_string() const;  // "10.96.0.10:80", "[fd00:96::a]:80"
  // As a socket address (sockaddr_in or sockaddr_in6); *len receives its length.
  sockaddr_storage sockaddr(socklen_t *len) const;
};

struct CaptureInfo {
  CapturedAddress original;   // what the application connected to (a VIP, or a pod address)
  CapturedAddress backend;    // the endpoint the kernel chose for it (== original for a pod)
  uint32_t src_workload = 0;  // workload number of the client (CapturedWorkload::id)
  uint32_t dst_workload = 0;  // workload number of the backend (MeshEndpoint::workload_id)
  uint32_t dst_node = 0;      // node number of the backend (MeshEndpoint::node_id)
  bool operator==(const CaptureInfo &) const = default;
};

// The capture record of `accepted_fd`, a socket accepted on the agent's outbound listener.
// std::nullopt when there is none — the connection was not captured (e.g. a direct connect to
// the listener), or the kernel's capture programs are not attached to the agent's cgroup — or the
// call failed; then *error (when given) says which, in words for a log line.
std::optional<CaptureInfo> read_capture_info(int accepted_fd, std::string *error = nullptr);

}  // namespace sockmesh::proxy
