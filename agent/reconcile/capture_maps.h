// The agent's side of capture (docs/datapath.md, "Capture"): which workloads of this node are
// captured, where every mesh workload runs, and where the agent's outbound listener is. Writes
// the kernel maps sm_workloads, sm_endpoints and sm_agent (bpf/include/sockmesh/capture_maps.h).
//
// Each call takes the complete desired content, validates it whole (std::invalid_argument, with
// nothing written) and writes only what differs from the maps, as adopted at construction: a
// restarted agent rewrites nothing that is right.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "reconcile/desired_state.h"
#include "sockmesh/capture_maps.h"

namespace sockmesh::reconcile {

// One listening address of the agent's outbound listener.
struct ListenAddress {
  IpAddress addr;     // of the family it serves
  uint16_t port = 0;  // host order, not 0
  bool operator==(const ListenAddress &) const = default;
};

// Where captured connections go. With capture off (or no listener of a connection's family) the
// kernel leaves connections alone: an agent that does not listen yet must not blackhole traffic.
struct AgentListener {
  std::optional<ListenAddress> ipv4;  // AF_INET, for IPv4 destinations (also IPv4-mapped ones)
  std::optional<ListenAddress> ipv6;  // AF_INET6, for IPv6 destinations
  bool capture_on = false;            // requires at least one listener
  bool fast_path = false;             // same-node hops ride the fast path (docs/fastpath.md)
  bool fast_path_agent_hops = false;  // ... the hops to and from the agent too
  bool operator==(const AgentListener &) const = default;
};

// A workload of this node, known to the kernel by its cgroup.
struct CapturedWorkload {
  uint64_t cgroup_id = 0;  // inode number of its cgroup v2 directory: cgroup_id_of(path)
  uint32_t id = 0;         // agent-assigned workload number, not 0
  bool captured = false;   // its outbound TCP to workloads on other nodes goes via the agent
};

// An address of a mesh workload (any node, both families).
struct MeshEndpoint {
  IpAddress addr;  // an IPv4-mapped IPv6 address is stored as IPv4
  uint32_t workload_id = 0;
  uint32_t node_id = 0;
  bool remote = false;  // the workload runs on another node
};

// The kernel's key for an address: IPv4 in addr[0], an IPv4-mapped IPv6 address as IPv4. Throws
// std::invalid_argument for an unknown family.
sm_ip_key ip_key_of(const IpAddress &addr);
IpAddress address_of(const sm_ip_key &key);
std::string text_of(const sm_ip_key &key);
// Byte order of keys, as the map writers keep their mirrors sorted.
bool less_key(const sm_ip_key &a, const sm_ip_key &b);
bool same_key(const sm_ip_key &a, const sm_ip_key &b);

struct CaptureSyncStats {
  size_t written = 0;    // entries added or changed
  size_t removed = 0;    // entries deleted
  size_t unchanged = 0;  // entries already right
};

class CaptureMaps {
 public:
  // The fds stay owned by the caller (the loaded datapath: Datapath::workloads_fd(),
  // endpoints_fd(), agent_config_fd()). Reads the maps' current contents.
  CaptureMaps(int workloads_fd, int endpoints_fd, int agent_fd);

  // Writes the listener and the capture switch (one array element: the kernel sees the old or
  // the new config). Throws std::invalid_argument for a listener of the wrong family, port 0,
  // or capture on without a listener.
  void set_agent(const AgentListener &agent);
  // What sm_agent holds now.
  AgentListener agent() const;

  // This node's workloads: adds and changes the given ones, removes those not given. Throws
  // std::invalid_argument for a cgroup id of 0, a workload id of 0 or a cgroup id given twice.
  CaptureSyncStats sync_workloads(const std::vector<CapturedWorkload> &workloads);
  // Every mesh workload's addresses: likewise. Throws std::invalid_argument for an address that
  // is neither IPv4 nor IPv6 or given twice.
  CaptureSyncStats sync_endpoints(const std::vector<MeshEndpoint> &endpoints);

  size_t workloads() const { return workloads_.size(); }
  size_t endpoints() const { return endpoints_.size(); }

  // The cgroup id of a cgroup v2 directory (its inode number). Throws std::runtime_error.
  static uint64_t cgroup_id_of(const std::string &cgroup_dir);

  // Kernel entries, sorted by key (the mirror of the maps).
  struct WorkloadEntry {
    uint64_t cgroup_id;
    sm_workload value;
  };
  struct EndpointEntry {
    sm_ip_key key;
    sm_endpoint value;
  };
  // What the maps hold (the workload and node numbers an earlier agent gave included).
  const std::vector<WorkloadEntry> &workload_entries() const { return workloads_; }
  const std::vector<EndpointEntry> &endpoint_entries() const { return endpoints_; }

 private:
  void adopt_workloads();
  void adopt_endpoints();

  int workloads_fd_;
  int endpoints_fd_;
  int agent_fd_;
  std::vector<WorkloadEntry> workloads_;  // sorted by cgroup id
  std::vector<EndpointEntry> endpoints_;  // sorted by key bytes
};

}  // namespace sockmesh::reconcile
