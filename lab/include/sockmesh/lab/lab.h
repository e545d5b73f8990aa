// The multi-node lab (DESIGN.md "The lab"): nodes and pods as network namespaces with their own cgroups, on one
// machine. Tests, the demo and the benchmarks build their clusters with it; `meshlab` drives it from a shell.
#pragma once

#include <sys/types.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace sockmesh::lab {

struct PodSpec {
  std::string name;  // [a-z0-9][a-z0-9-]*, at most 40 characters, unique in the lab
  int node = 1;      // 1-based
  std::string ip;    // empty: the next free address from 10.78.<node>.10 on
};

struct LabSpec {
  int nodes = 2;  // 1..200
  std::vector<PodSpec> pods;
  std::string run_id;  // [a-z0-9]{1,12}; empty: a fresh random 5-hex-digit id
  pid_t owner = 0;     // the lab is stale once this process is gone; 0: this process
};

struct LabState;

class Lab {
 public:
  // Builds the lab. Removes stale labs first. Throws std::runtime_error naming what failed; on failure nothing
  // of this lab is left behind.
  static std::unique_ptr<Lab> up(const LabSpec& spec);
  // A handle on a lab made elsewhere, read from its state file. Throws if there is no such lab. The handle is
  // detached: destroying it leaves the lab running; call down() to tear it down.
  static std::unique_ptr<Lab> attach(const std::string& run_id);

  ~Lab();
  Lab(const Lab&) = delete;
  Lab& operator=(const Lab&) = delete;

  // Removes everything the lab made (processes, cgroups, netns, pins, run dirs, state file). Idempotent.
  void down();
  // Leaves the lab running after this object is gone (meshlab up); `meshlab down`/gc remove it later.
  void detach();

  const std::string& run_id() const;
  int node_count() const;
  std::string node_name(int node) const;        // "sm<run>-n<i>", also meshd's --node
  std::string node_netns(int node) const;       // "sm<run>-n<i>"
  std::string node_address(int node) const;     // "10.77.0.<i>"
  std::string node_pod_cidr(int node) const;    // "10.78.<i>.0/24"
  std::string node_address6(int node) const;    // "fd00:77::<i>" (/64 on the node network)
  std::string node_pod_cidr6(int node) const;   // "fd00:78:<i>::/64"
  std::string workload_cgroup(int node) const;  // <cg2>/sockmesh-lab/sm<run>/n<i>/pods
  std::string agent_cgroup(int node) const;     // <cg2>/sockmesh-lab/sm<run>/n<i>/agent
  std::string bridge_netns() const;             // "sm<run>-br"
  std::string pod_ip(const std::string& pod) const;   // "10.78.<node>.<k>"
  std::string pod_ip6(const std::string& pod) const;  // "fd00:78:<node>::<k>", the same k as in pod_ip
  int pod_node(const std::string& pod) const;
  std::string pod_netns(const std::string& pod) const;   // "sm<run>-p-<pod>"
  std::string pod_cgroup(const std::string& pod) const;  // <cg2>/sockmesh-lab/sm<run>/n<i>/pods/<pod>
  std::vector<std::string> pods() const;

  // Starts a background process inside the pod (its cgroup and netns) or the node (agent cgroup, node netns).
  // Tracked in the state file and killed at down(). stdout/stderr are appended to log_path if given, else
  // inherited. Throws if the program cannot be executed.
  pid_t spawn_in_pod(const std::string& pod, const std::vector<std::string>& argv, const std::string& log_path = "");
  pid_t spawn_in_node(int node, const std::vector<std::string>& argv, const std::string& log_path = "");

  // Runs to completion and returns the exit status (128+N when killed by signal N, 127 when it cannot be
  // executed). stdout goes to *out if given, else it is inherited; stderr is inherited.
  int run_in_pod(const std::string& pod, const std::vector<std::string>& argv, std::string* out = nullptr);
  int run_in_node(int node, const std::vector<std::string>& argv, std::string* out = nullptr);

  // Runs fn in a child process that has joined the pod (cgroup + netns); returns fn's return value
  // as the exit status. For tests that make syscalls from inside a pod. The child shares this
  // process's memory (vfork), so it may fill variables it captured, and this thread waits until it
  // exits. What it writes to file descriptor 1 (dprintf(STDOUT_FILENO, ...), write(1, ...)) goes to
  // *out if given; stdio's buffers are shared with the parent's threads, so printf's output would
  // not.
  int call_in_pod(const std::string& pod, const std::function<int()>& fn, std::string* out = nullptr);

  // The state as written to /run/sockmesh-lab/<run>.json.
  std::string state_json() const;

 private:
  explicit Lab(std::unique_ptr<LabState> state, bool owned);
  pid_t spawn(const std::string& cgroup, const std::string& netns, const std::vector<std::string>& argv,
              const std::string& log_path, const std::string& where);
  int run(const std::string& cgroup, const std::string& netns, const std::vector<std::string>& argv,
          std::string* out);

  std::unique_ptr<LabState> state_;
  bool owned_;                   // down() at destruction
  std::vector<pid_t> children_;  // background processes this process forked (reaped at down())
};

// Mount point of the cgroup v2 hierarchy, from /proc/mounts. Throws if there is none.
std::string cgroup2_mount();
// Tears down every lab whose owner process is gone; returns their run ids. Labs with a live owner are untouched.
std::vector<std::string> remove_stale_labs();
// Run ids that have a state file.
std::vector<std::string> list_labs();
// Tears down the lab with this run id from its state file and what carries its name. Idempotent.
void remove_lab(const std::string& run_id);

}  // namespace sockmesh::lab
