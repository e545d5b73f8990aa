// The node's kernel data path: loads the BPF objects, pins their maps and links under
// /sys/fs/bpf/sockmesh/<node>/ and attaches the programs to the node's workload cgroup.
//
// A restarted agent adopts what is pinned: the maps keep their contents, and each pinned link is
// switched to the newly loaded program in place (bpf_link_update), so there is no moment without
// a program attached.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "sockmesh/common/unique_fd.h"

struct sock_lb;
struct bpf_link;

namespace sockmesh::loader {

struct ProgramInfo {
  std::string name;         // program name, e.g. "sm_connect4"
  std::string attach_type;  // section, e.g. "cgroup/connect4"
  uint32_t prog_id = 0;
  uint32_t link_id = 0;
};

struct MapInfo {
  std::string name;
  std::string type;
  uint32_t id = 0;
  uint32_t max_entries = 0;
};

// What the kernel lets the programs use (from the feature probe, features.h).
struct DatapathOptions {
  bool set_retval = true;  // bpf_set_retval: ECONNREFUSED on a VIP without backends, else EPERM
};

class Datapath {
 public:
  // Throws std::runtime_error naming the step that failed.
  Datapath(const std::string &node, const std::string &workload_cgroup,
           const DatapathOptions &options = {});
  ~Datapath();
  Datapath(const Datapath &) = delete;
  Datapath &operator=(const Datapath &) = delete;

  int services_fd() const;
  int backend_sets_fd() const;
  int counters_fd() const;

  const std::string &pin_dir() const { return pin_dir_; }
  std::vector<ProgramInfo> programs() const;
  std::vector<MapInfo> maps() const;
  // true when the pinned state of an earlier agent was adopted.
  bool adopted() const { return adopted_; }

  // Detaches every program of `node` and removes its pins. Idempotent.
  static void uninstall(const std::string &node);

 private:
  void attach_all(int cgroup_fd, uint64_t cgroup_id);

  std::string pin_dir_;
  sock_lb *skel_ = nullptr;
  std::vector<::bpf_link *> links_;
  std::vector<ProgramInfo> programs_;
  bool adopted_ = false;
};

// The cgroup v2 mount point, from /proc/mounts.
std::string cgroup2_mount();
// The cgroup v2 path (absolute, under the mount) of this process.
std::string own_cgroup();

}  // namespace sockmesh::loader
