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
  // Sorted by node.
  void fill(v1::ControlPlaneStatus *status) const;

 private:
  struct Agent {
    v1::AgentView view;
    int streams = 0;
  };
  Agent &agent(const std::string &node);  // mu_ held

  mutable std::mutex mu_;
  std::map<std::string, Agent> agents_;
};

}  // namespace sockmesh::controlplane
