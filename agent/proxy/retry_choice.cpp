#include "proxy/retry_choice.h"

#include <array>

namespace sockmesh::proxy {

std::optional<size_t> next_backend(const std::vector<UpstreamBackend> &backends,
                                   const TriedBackends &tried, const BackendTest &usable,
                                   const BackendTest &ejected, uint64_t draw) {
  // Preference groups: index = 2 * ejected + (weight == 0).
  std::array<std::vector<size_t>, 4> groups;
  for (size_t i = 0; i < backends.size(); ++i) {
    const UpstreamBackend &b = backends[i];
    if (tried.count({b.ip, b.port})) continue;
    if (usable && !usable(b)) continue;
    const bool out = ejected && ejected(b);
    groups[2 * size_t(out) + size_t(b.weight == 0)].push_back(i);
  }
  for (const auto &group : groups)
    if (!group.empty()) return group[draw % group.size()];
  return std::nullopt;
}

}  // namespace sockmesh::proxy
