#include "reconcile/lb_maps.h"

#include <arpa/inet.h>

#include <cstring>
#include <stdexcept>

namespace sockmesh::reconcile {

sm_backend_set to_backend_set(const DesiredService &service) {
  if (service.backends.size() > SM_MAX_BACKENDS)
    throw std::invalid_argument("service " + service.service + " has more than " +
                                std::to_string(SM_MAX_BACKENDS) + " backends");
  sm_backend_set set;
  std::memset(&set, 0, sizeof(set));
  uint64_t cum = 0;
  for (const auto &backend : service.backends) {
    cum += backend.weight;
    if (cum > UINT32_MAX)
      throw std::invalid_argument("service " + service.service + ": total weight overflows");
    auto &out = set.backends[set.count++];
    out.addr = htonl(backend.addr);
    out.port = htons(backend.port);
    out.weight_cum = uint32_t(cum);
  }
  set.total_weight = uint32_t(cum);
  return set;
}

bool same_set(const sm_backend_set &a, const sm_backend_set &b) {
  if (a.count != b.count || a.total_weight != b.total_weight || a.count > SM_MAX_BACKENDS)
    return false;
  return std::memcmp(a.backends, b.backends, sizeof(sm_backend) * a.count) == 0;
}

}  // namespace sockmesh::reconcile
