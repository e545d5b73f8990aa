#include "reconcile/fault_sources.h"

#include <bpf/bpf.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "sockmesh/resilience.h"
#include "sockmesh/v1/resources.pb.h"

namespace sockmesh::reconcile {
namespace {

sm_rate_source_key key_of(const std::pair<uint64_t, uint32_t> &entry) {
  sm_rate_source_key key{};
  key.service = entry.first;
  key.workload = entry.second;
  return key;
}

}  // namespace

bool fault_source_matches(const v1::FaultSources &sources, const std::string &ns,
                          const std::map<std::string, std::string> &labels) {
  if (!sources.namespaces().empty() &&
      std::find(sources.namespaces().begin(), sources.namespaces().end(), ns) ==
          sources.namespaces().end())
    return false;
  for (const auto &[k, v] : sources.match_labels()) {
    auto it = labels.find(k);
    if (it == labels.end() || it->second != v) return false;
  }
  return true;
}

FaultSourceMap::FaultSourceMap(int fd) : fd_(fd) {
  sm_rate_source_key key{}, next{};
  const void *prev = nullptr;
  while (bpf_map_get_next_key(fd_, prev, &next) == 0) {
    key = next;
    prev = &key;
    held_.insert({key.service, key.workload});
  }
}

FaultSourceMap::Stats FaultSourceMap::sync(const FaultSourceSet &wanted) {
  Stats stats;
  for (const auto &entry : wanted) {
    if (held_.count(entry)) continue;
    const auto key = key_of(entry);
    const uint32_t one = 1;
    if (bpf_map_update_elem(fd_, &key, &one, BPF_ANY) != 0)
      throw std::runtime_error(std::string("write a fault source: ") + std::strerror(errno));
    held_.insert(entry);
    stats.written++;
  }
  for (auto it = held_.begin(); it != held_.end();) {
    if (wanted.count(*it)) {
      ++it;
      continue;
    }
    const auto key = key_of(*it);
    if (bpf_map_delete_elem(fd_, &key) != 0 && errno != ENOENT)
      throw std::runtime_error(std::string("remove a fault source: ") + std::strerror(errno));
    it = held_.erase(it);
    stats.removed++;
  }
  return stats;
}

}  // namespace sockmesh::reconcile
