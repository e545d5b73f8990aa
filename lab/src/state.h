// What a lab is made of (names, addresses, cgroups, processes) and its state file /run/sockmesh-lab/<run>.json.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace sockmesh::lab {

inline constexpr const char* kStateDir = "/run/sockmesh-lab";
inline constexpr const char* kCgroupParent = "sockmesh-lab";

struct NodeState {
  int index = 0;
  std::string name;  // node name for meshd and netns name: sm<run>-n<i>
  std::string address;
  std::string pod_cidr;
  std::string gateway;
  std::string address6;   // fd00:77::<i>
  std::string pod_cidr6;  // fd00:78:<i>::/64
  std::string gateway6;   // fd00:78:<i>::1
  std::string cgroup;  // .../n<i>
  std::string agent_cgroup;
  std::string workload_cgroup;
  std::string pin_dir;
  std::string run_dir;
};

struct PodState {
  std::string name;
  int node = 0;
  std::string ip;
  std::string ip6;  // fd00:78:<node>::<k>, k = the last octet of ip
  std::string netns;
  std::string cgroup;
  std::string node_veth;  // the pod's veth end in the node netns
};

struct ProcessState {
  pid_t pid = 0;
  std::string where;  // "pod:<name>" or "node:<i>"
  std::vector<std::string> argv;
  std::string log;
};

struct LabState {
  std::string run_id;
  pid_t owner_pid = 0;
  unsigned long long owner_start = 0;  // start time (clock ticks since boot) of the owner; 0: unknown
  std::string cgroup_root;             // <cg2>/sockmesh-lab/sm<run>
  std::string bridge_netns;
  std::vector<NodeState> nodes;
  std::vector<PodState> pods;
  std::vector<ProcessState> processes;

  const NodeState& node(int index) const;  // throws on a bad index
  const PodState& pod(const std::string& name) const;  // throws on an unknown pod
};

struct LabSpec;

// "sm<run>": the prefix of every name the lab gives (netns, node names, cgroup dir).
std::string name_prefix(const std::string& run_id);
// Validates the spec and lays out names and addresses. Throws std::invalid_argument naming the bad field.
LabState plan_lab(const LabSpec& spec, const std::string& run_id, const std::string& cgroup2);
bool valid_run_id(const std::string& run_id);

nlohmann::json to_json(const LabState& state);
LabState state_from_json(const nlohmann::json& j);

std::string state_path(const std::string& run_id);
// Serializes read-modify-write of state files between processes (flock on /run/sockmesh-lab/.lock).
class StateLock {
 public:
  StateLock();
  ~StateLock();
  StateLock(const StateLock&) = delete;
  StateLock& operator=(const StateLock&) = delete;

 private:
  int fd_ = -1;
};
// Atomic write (temp file + rename). Call under StateLock.
void write_state(const LabState& state);
// nullopt when the file is missing; throws when it is unreadable.
std::optional<LabState> read_state(const std::string& run_id);
std::vector<std::string> state_run_ids();

// Start time of a process (field 22 of /proc/<pid>/stat); 0 when it does not exist or has exited (zombie).
unsigned long long process_start_time(pid_t pid);
bool owner_alive(const LabState& state);

}  // namespace sockmesh::lab
