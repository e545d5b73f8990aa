#include "sockmesh/resources/resilience.h"

#include <cerrno>
#include <cmath>

namespace sockmesh::resources {
namespace {

constexpr uint32_t kPpmPerPercent = 10000;
constexpr uint32_t kPpmMax = 100 * kPpmPerPercent;

}  // namespace

std::optional<int> fault_errno(std::string_view name) {
  // The numbers come from <cerrno> rather than a table, so that they are the kernel's on the
  // platform the agent is built for.
  if (name.empty() || name == "ECONNREFUSED") return ECONNREFUSED;
  if (name == "ECONNRESET") return ECONNRESET;
  if (name == "ETIMEDOUT") return ETIMEDOUT;
  if (name == "EHOSTUNREACH") return EHOSTUNREACH;
  if (name == "ENETUNREACH") return ENETUNREACH;
  if (name == "ECONNABORTED") return ECONNABORTED;
  if (name == "EACCES") return EACCES;
  if (name == "EPERM") return EPERM;
  return std::nullopt;
}

uint32_t fault_percent_ppm(double percent) {
  if (!(percent > 0)) return 0;  // also NaN
  if (percent >= 100) return kPpmMax;
  return uint32_t(std::lround(percent * kPpmPerPercent));
}

}  // namespace sockmesh::resources
