// The agent's side of the same-node fast path (docs/fastpath.md): which network namespace each
// address of this node lives in. Writes the kernel map sm_netns (bpf/include/sockmesh/
// fastpath.h), from which sock_ops finds a socket's peer's namespace.
//
// Like the capture maps, each sync takes the complete desired content, validates it whole
// (std::invalid_argument, nothing written) and writes only what differs, as adopted at
// construction: a restarted agent rewrites nothing that is right.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "reconcile/capture_maps.h"
#include "reconcile/desired_state.h"

namespace sockmesh::fastpath {

struct NetnsAddress {
  reconcile::IpAddress addr;  // an IPv4-mapped IPv6 address is stored as IPv4
  uint64_t netns = 0;         // its namespace's cookie (SO_NETNS_COOKIE), not 0
};

class NetnsMap {
 public:
  // `fd` stays owned by the caller (Datapath::netns_fd()). Reads the map's current contents.
  explicit NetnsMap(int fd);

  // Adds and changes the given addresses, removes those not given. Throws std::invalid_argument
  // for an address given twice, of an unknown family, or a cookie of 0.
  reconcile::CaptureSyncStats sync(const std::vector<NetnsAddress> &addresses);
  size_t size() const { return entries_.size(); }

 private:
  struct Entry {
    sm_ip_key key;
    uint64_t netns;
  };
  int fd_;
  std::vector<Entry> entries_;  // sorted by key bytes
};

// The cookie of this thread's network namespace. Throws std::runtime_error.
uint64_t own_netns_cookie();
// The cookie of the network namespace `ns_file` names (/proc/PID/ns/net, /run/netns/NAME):
// entered on a short-lived thread of its own, so no other thread changes namespace. Throws
// std::runtime_error.
uint64_t netns_cookie_of(const std::string &ns_file);
// Every address of every interface of this process's network namespace.
std::vector<reconcile::IpAddress> own_addresses();
// The network namespace file of a process in cgroup v2 directory `dir` (its own cgroup.procs,
// else a child cgroup's): /proc/PID/ns/net, or nullopt while the cgroup has no process.
std::optional<std::string> netns_file_of_cgroup(const std::string &dir);

}  // namespace sockmesh::fastpath
