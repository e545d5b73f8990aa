// What meshcp knows of each agent: connected or not, the versions it ACKed and NACKed, what it
// holds. Kept in memory; an agent reports what it holds again when it reconnects.
#pragma once

#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "sockmesh/v1/controlplane.pb.h"

namespace sockmesh::controlplane {

using VersionMap = std::map<std::string, std::string>;  // resource name -> version

class Agents {
 public:
  void connected(const std::string &node, const VersionMap &holds);
  void disconnected(const std::string &node);
  // What the agent holds changed by `set` and `unset` (the push it ACKed).
  void acked(const std::string &node, const std::string &version, const VersionMap &set,
             const std::vector<std::string> &unset);
  void nacked(const std::string &node, const std::string &version, const v1::ErrorDetail &detail);
  // A push sent to the agent: `resources` added or changed, `removed` names removed.
  void pushed(size_t resources, size_t removed);
  // Sorted by node.
  void fill(v1::ControlPlaneStatus *status) const;

  // Since start, over every agent (docs/metrics.md, sockmesh_cp_*).
  struct Counters {
    uint64_t streams = 0;  // discovery streams that named their node
    uint64_t pushes = 0;
    uint64_t pushed_resources = 0;  // resources added or changed, summed over pushes
    uint64_t pushed_removals = 0;   // names removed, summed over pushes
    uint64_t acks = 0;
    uint64_t nacks = 0;
  };
  Counters counters() const;

 private:
  struct Agent {
    v1::AgentView view;
    int streams = 0;
  };
  Agent &agent(const std::string &node);  // mu_ held

  mutable std::mutex mu_;
  std::map<std::string, Agent> agents_;
  Counters counters_;
};

}  // namespace sockmesh::controlplane
