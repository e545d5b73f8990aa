// The node's kernel data path: loads the BPF objects, pins their maps and links under
// /sys/fs/bpf/sockmesh/<node>/ and attaches the programs to the node's workload cgroup, and
// (attach_agent) the capture programs to the agent's own cgroup.
//
// A restarted agent adopts what is pinned: the maps keep their contents; a pinned link whose
// program is the one this agent would load (same instructions, same load-time settings: the
// pinned sm_loader digest) is kept as it is, so the program IDs stay; any other pinned link is
// switched to the newly loaded program in place (bpf_link_update). Either way there is no moment
// without a program attached.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "sockmesh/common/unique_fd.h"

struct sock_lb;
struct capture;
struct fastpath;
struct bpf_link;
struct bpf_program;

namespace sockmesh::loader {

struct ProgramInfo {
  std::string name;         // program name, e.g. "sm_connect4"
  std::string attach_type;  // section, e.g. "cgroup/connect4"
  uint32_t prog_id = 0;
  uint32_t link_id = 0;
  // Attached now, as the kernel says at the time programs() is called (a link detached by
  // `bpftool link detach`, or by its cgroup's removal, is not).
  bool attached = false;
  // The program an earlier agent attached, kept as it was (the same program this agent loaded).
  bool kept = false;
};

struct MapInfo {
  std::string name;
  std::string type;
  uint32_t id = 0;
  uint32_t max_entries = 0;
};

// What the kernel lets the programs use (from the feature probe, features.h).
struct DatapathOptions {
  // bpf_set_retval: ECONNREFUSED on a VIP without backends and on a connect policy denies, else
  // EPERM
  bool set_retval = true;
  // Size of the connection-event ring buffer (sm_events): a power of two, at least a page.
  uint32_t events_ring_bytes = 4u << 20;
  // The kernel supports the same-node fast path (features.h: fast_path_missing() is empty): the
  // sk_msg program is loaded and attached to sm_fastpath, and sock_ops may insert sockets
  // (whether it does is the agent's switch in sm_agent). Without it the code is pruned.
  bool fast_path = true;
  // The cgroup v2 directory the agent runs in (empty: not told; what sm_agent_cgroup holds stays).
  // When it lies inside the workload cgroup, its id goes into sm_agent_cgroup before any workload
  // program is attached, and the workload programs leave the agent's sockets alone
  // (docs/datapath.md, "The agent inside the workload cgroup"); otherwise (beside it, or above it
  // with no agent-cgroup programs) 0 goes there. It must not be the workload cgroup itself
  // (std::runtime_error).
  std::string agent_cgroup = {};
};

class Datapath {
 public:
  // Throws std::runtime_error naming the step that failed.
  Datapath(const std::string &node, const std::string &workload_cgroup,
           const DatapathOptions &options = {});
  ~Datapath();
  Datapath(const Datapath &) = delete;
  Datapath &operator=(const Datapath &) = delete;

  // Attaches the agent's end of capture (docs/datapath.md, "Capture") to `agent_cgroup`, the
  // cgroup v2 directory meshd runs in: a sock_ops program that takes capture records over onto
  // the agent's accepted sockets, and a cgroup/getsockopt program that answers SO_ORIGINAL_DST
  // and SM_SO_CAPTURE_INFO on them. Must be neither the workload cgroup nor above it
  // (std::runtime_error otherwise); inside it, the workload programs are told to leave the
  // agent's sockets alone (as DatapathOptions::agent_cgroup, which the agent passes so that this
  // holds from the first workload program on). Pinned like the other links; a pinned link of an
  // earlier agent is switched to the new program in place, or, when the agent's cgroup is another
  // one now (a service manager re-creates it on restart), replaced. Idempotent; attaching this
  // instance to a second agent cgroup is refused.
  void attach_agent(const std::string &agent_cgroup);

  int services_fd() const;
  int backend_sets_fd() const;
  int counters_fd() const;
  // Capture maps (bpf/include/sockmesh/capture_maps.h).
  int workloads_fd() const;
  int endpoints_fd() const;
  int agent_config_fd() const;
  int capture_flows_fd() const;
  // Same-node authorization (bpf/include/sockmesh/policy.h): the compiled decisions and the
  // per-rule denial counters.
  int policy_fd() const;
  // Traffic telemetry (bpf/include/sockmesh/telemetry.h): the per-tuple counters, the switch
  // and epoch, and the connection-event ring buffer.
  int traffic_fd() const;
  int telemetry_fd() const;
  int events_fd() const;
  int policy_denials_fd() const;
  // Same-node fast path (bpf/include/sockmesh/fastpath.h): the sockets, and the addresses'
  // network namespaces (agent-written).
  int fastpath_fd() const;
  int netns_fd() const;
  // Resilience (bpf/include/sockmesh/resilience.h): per-service and per-backend state, the
  // sources a fault applies to (agent-written), per-source rate buckets.
  int service_states_fd() const;
  int backend_states_fd() const;
  int fault_sources_fd() const;
  int rate_sources_fd() const;
  // The agent's cgroup as the workload programs know it (bpf/include/sockmesh/capture_maps.h).
  int agent_cgroup_fd() const;
  bool fast_path_loaded() const { return fastpath_ != nullptr; }

  const std::string &pin_dir() const { return pin_dir_; }
  // The cgroup programs in attach order, then the fast path's sk_msg program (link_id 0: it is
  // attached to the sm_fastpath map, not through a link). `attached` is asked of the kernel.
  std::vector<ProgramInfo> programs() const;
  std::vector<MapInfo> maps() const;
  // true when the pinned state of an earlier agent was adopted.
  bool adopted() const { return adopted_; }

  // Detaches every program of `node` and removes its pins. Idempotent.
  static void uninstall(const std::string &node);

 private:
  struct Slot {
    ::bpf_program *prog;
    const char *attach_type;
    const char *pin_name;
  };
  enum class OtherCgroup { kRefuse, kReplace };
  void attach_all(int cgroup_fd, uint64_t cgroup_id);
  // Writes sm_agent_cgroup for an agent in `agent_cgroup` (see DatapathOptions::agent_cgroup).
  void set_agent_cgroup(const std::string &agent_cgroup);
  void attach_slots(const std::vector<Slot> &slots, int cgroup_fd, uint64_t cgroup_id,
                    OtherCgroup other);
  void destroy();
  void attach_fast_path();

  std::string pin_dir_;
  std::string workload_cgroup_;
  uint64_t agent_cgroup_id_ = 0;  // of the cgroup attach_agent() attached to
  sock_lb *skel_ = nullptr;
  capture *capture_ = nullptr;
  ::fastpath *fastpath_ = nullptr;  // null when the kernel lacks the fast path
  std::vector<::bpf_link *> links_;
  std::vector<uint64_t> link_cgroups_;  // the cgroup each of links_ was attached to
  std::vector<ProgramInfo> programs_;
  ProgramInfo fast_path_program_;
  bool adopted_ = false;
  // The pinned programs were loaded with this agent's settings (sm_loader holds their digest and
  // the event ring they write was found): a pinned program identical to the loaded one is kept.
  bool keep_identical_ = false;
  std::array<uint8_t, 32> settings_digest_{};
};

// The cgroup v2 mount point, from /proc/mounts.
std::string cgroup2_mount();
// The cgroup v2 path (absolute, under the mount) of this process.
std::string own_cgroup();

}  // namespace sockmesh::loader
