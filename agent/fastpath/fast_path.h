// The agent's side of the same-node fast path (docs/fastpath.md): keeps sm_netns right (every
// address of this node's workloads, and of the node itself, with its network namespace's cookie)
// and reports what rides the fast path.
//
// A workload's namespace is found through its cgroup: a process in it, /proc/PID/ns/net, entered
// on a thread of its own to read SO_NETNS_COOKIE. A workload whose cgroup has no process yet is
// looked at again every second, as is every known one (a pod's sandbox may be recreated); an
// address two namespaces claim is left out (no fast path is better than a wrong one).
#pragma once

#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "fastpath/netns_map.h"
#include "reconcile/desired_state.h"
#include "sockmesh/v1/admin.pb.h"

namespace sockmesh::fastpath {

struct LocalWorkload {
  std::string id;          // "ns/name"
  std::string cgroup_dir;  // its cgroup v2 directory (absolute)
  std::vector<reconcile::IpAddress> addresses;
};

struct FastPathOptions {
  bool switched_on = true;                    // meshd --fast-path
  bool agent_hops = false;                    // meshd --fast-path-agent-hops
  std::vector<std::string> missing_features;  // loader::fast_path_missing(): empty = supported
  std::chrono::milliseconds refresh{1000};
};

class FastPath {
 public:
  // The fds stay owned by the caller (Datapath::netns_fd(), fastpath_fd()). Writes the node's own
  // addresses at once.
  FastPath(int netns_fd, int fastpath_fd, FastPathOptions options);
  ~FastPath();
  FastPath(const FastPath &) = delete;
  FastPath &operator=(const FastPath &) = delete;

  // Switched on and supported by the kernel.
  bool enabled() const { return options_.switched_on && options_.missing_features.empty(); }
  // The hops to and from the agent ride it too.
  bool agent_hops() const { return enabled() && options_.agent_hops; }

  // This node's workloads now (after every applied change); their namespaces are resolved and
  // written before it returns.
  void set_workloads(std::vector<LocalWorkload> workloads);

  v1::FastPathReport report(int counters_fd) const;

 private:
  void refresh_locked();
  void loop();

  int fastpath_fd_;
  FastPathOptions options_;
  uint64_t node_netns_ = 0;
  mutable std::mutex mu_;
  std::condition_variable wake_;
  bool stopping_ = false;
  NetnsMap map_;
  std::vector<LocalWorkload> workloads_;
  std::map<std::string, uint64_t> netns_of_;        // workload id -> cookie (known ones)
  std::map<std::string, std::string> unknown_why_;  // workload id -> why not known
  std::map<std::string, uint64_t> cookie_of_file_;  // ns inode ("dev:ino") -> cookie
  std::thread thread_;
};

}  // namespace sockmesh::fastpath
