#include "reconcile/lb_maps.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstring>
#include <stdexcept>

#include "maglev/maglev.h"
#include "sockmesh/resilience.h"

namespace sockmesh::reconcile {

bool SlotImage::operator==(const SlotImage& other) const {
  const auto& a = set;
  const auto& b = other.set;
  if (a.count != b.count || a.total_weight != b.total_weight || a.policy != b.policy ||
      a.maglev_size != b.maglev_size || a.count > SM_MAX_BACKENDS)
    return false;
  return std::memcmp(&a.rs, &b.rs, sizeof(a.rs)) == 0 &&
         std::memcmp(a.backends, b.backends, sizeof(sm_backend) * a.count) == 0 &&
         maglev == other.maglev;
}

SlotImage to_slot_image(const DesiredService& service) {
  if (service.backends.size() > SM_MAX_BACKENDS)
    throw std::invalid_argument("service " + service.service + " has more than " +
                                std::to_string(SM_MAX_BACKENDS) + " backends");
  SlotImage image;
  auto& set = image.set;
  std::memset(&set, 0, sizeof(set));
  set.policy = service.policy;
  const auto &r = service.resilience;
  set.rs.service = r.service_id;
  set.rs.max_connections = r.max_connections;
  set.rs.max_backend_connections = r.max_backend_connections;
  set.rs.consecutive_failures = r.consecutive_failures;
  set.rs.max_ejection_percent = r.max_ejection_percent;
  set.rs.base_ejection_ns = r.base_ejection_ns;
  set.rs.max_ejection_ns = r.max_ejection_ns;
  set.rs.rate_interval_ns = r.rate_interval_ns;
  set.rs.rate_burst_ns = r.rate_burst_ns;
  set.rs.fault_ppm = r.fault_ppm;
  set.rs.fault_errno = r.fault_errno;
  set.rs.flags = (r.rate_per_source ? SM_RS_RATE_PER_SOURCE : 0) | (r.fault_scoped ? SM_RS_FAULT_SCOPED : 0);
  uint64_t cum = 0;
  std::vector<maglev::Backend> ring;
  for (const auto& backend : service.backends) {
    cum += backend.weight;
    if (cum > UINT32_MAX)
      throw std::invalid_argument("service " + service.service + ": total weight overflows");
    auto& out = set.backends[set.count++];
    std::memcpy(out.addr, backend.addr.bytes.data(), sizeof(out.addr));
    out.family = backend.addr.family == AF_INET6 ? SM_AF_INET6 : SM_AF_INET;
    out.port = htons(backend.port);
    out.weight_cum = uint32_t(cum);
    ring.push_back({format_endpoint(backend.addr, backend.port), backend.weight});
  }
  set.total_weight = uint32_t(cum);
  if (service.policy == SM_LB_MAGLEV) {
    set.maglev_size = service.maglev_size ? service.maglev_size : SM_MAGLEV_DEFAULT_SIZE;
    // Without a usable backend there is no table: the kernel refuses on total_weight == 0.
    if (cum > 0) image.maglev = maglev::build_table(ring, set.maglev_size);
    else image.maglev.assign(set.maglev_size, 0);
  }
  return image;
}

}  // namespace sockmesh::reconcile
