// Which backend of a service a failed connect is retried on (docs/tunnel.md, "Connect timeout
// and retries"): a pure function of the service's backends, those already tried for this
// connection, and which of them the kernel ejects, so that the rule is tested on its own.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace sockmesh::proxy {

// One backend of a service VIP, as the kernel balances to it.
struct UpstreamBackend {
  std::string ip;  // "10.78.2.10", "fd00:78:2::10"; the VIP's family
  uint16_t port = 0;
  uint32_t weight = 0;   // the kernel's weight: 0 is listed but not chosen by the balancer
  std::string workload;  // "namespace/name"
  bool operator==(const UpstreamBackend &) const = default;
};

// (ip, port) of the backends a connection tried.
using TriedBackends = std::set<std::pair<std::string, uint16_t>>;
using BackendTest = std::function<bool(const UpstreamBackend &)>;

// The index in `backends` of the next backend to try, or nullopt when none is left. Candidates
// are the backends not in `tried` for which `usable` holds (null: all). Among them, in this order
// of preference: not ejected with a positive weight; not ejected with weight 0; ejected with a
// positive weight; ejected with weight 0 (an ejected backend only when no other is left, as the
// balancer falls back to it). Within the first non-empty group, uniformly at random by `draw`
// (any 64-bit random number). `ejected` null: none is.
std::optional<size_t> next_backend(const std::vector<UpstreamBackend> &backends,
                                   const TriedBackends &tried, const BackendTest &usable,
                                   const BackendTest &ejected, uint64_t draw);

}  // namespace sockmesh::proxy
