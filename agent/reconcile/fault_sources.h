// The sources a scoped fault applies to (docs/resilience.md, "Fault injection"): the kernel's
// sm_fault_sources holds one entry per (service, workload of this node) the fault's `sources`
// select, looked up at connect() by the caller's workload number. Rewritten whole from the
// services and this node's workloads whenever either changes, writing only the differences.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <utility>

namespace sockmesh::v1 {
class FaultSources;
}

namespace sockmesh::reconcile {

// Whether a workload of namespace `ns` with `labels` is one of `sources`: its namespace among
// the listed ones (any when none is listed) and every listed label on it.
bool fault_source_matches(const v1::FaultSources &sources, const std::string &ns,
                          const std::map<std::string, std::string> &labels);

using FaultSourceSet = std::set<std::pair<uint64_t, uint32_t>>;  // (service id, workload number)

class FaultSourceMap {
 public:
  // The fd stays owned by the caller (the loaded datapath); what the map holds is adopted.
  explicit FaultSourceMap(int fd);
  struct Stats {
    size_t written = 0, removed = 0;
  };
  // Makes the map hold exactly `wanted`. Throws std::runtime_error when a write fails (the map
  // then holds part of the change; the next sync finishes it).
  Stats sync(const FaultSourceSet &wanted);
  size_t size() const { return held_.size(); }

 private:
  int fd_;
  FaultSourceSet held_;
};

}  // namespace sockmesh::reconcile
