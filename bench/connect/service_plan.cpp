#include "service_plan.h"

#include <arpa/inet.h>
#include <fmt/format.h>

#include <stdexcept>

namespace sockmesh::bench {
namespace {

constexpr int kHostsPerBlock = 254;           // .1 .. .254 of each /24
constexpr int kBackendBlocks = 4 * 256;       // the /24s of 10.80.0.0/14
constexpr int kMaxServices = 16384;           // SM_MAX_SERVICES
constexpr int kMaxEndpoints = 64;             // SM_MAX_BACKENDS

in_addr make_addr(int a, int b, int c, int d) {
  in_addr out{};
  out.s_addr = htonl(uint32_t(a) << 24 | uint32_t(b) << 16 | uint32_t(c) << 8 | uint32_t(d));
  return out;
}

}  // namespace

void check_plan(const ServicePlan& plan) {
  if (plan.services < 1 || plan.services > kMaxServices)
    throw std::invalid_argument(
        fmt::format("services: must be between 1 and {}, got {}", kMaxServices, plan.services));
  if (plan.endpoints < 1 || plan.endpoints > kMaxEndpoints)
    throw std::invalid_argument(
        fmt::format("endpoints: must be between 1 and {}, got {}", kMaxEndpoints, plan.endpoints));
  long backends = long(plan.services) * plan.endpoints;
  if (backends > long(kHostsPerBlock) * kBackendBlocks)
    throw std::invalid_argument(fmt::format("{} services x {} endpoints = {} backends do not fit {} ({} addresses)",
                                            plan.services, plan.endpoints, backends, kBackendRange,
                                            kHostsPerBlock * kBackendBlocks));
}

in_addr vip_address(int service) {
  return make_addr(10, 96, service / kHostsPerBlock, service % kHostsPerBlock + 1);
}

in_addr backend_address(const ServicePlan& plan, int service, int endpoint) {
  int index = service * plan.endpoints + endpoint;
  int block = index / kHostsPerBlock;
  return make_addr(10, 80 + block / 256, block % 256, index % kHostsPerBlock + 1);
}

std::string to_string(in_addr addr) {
  char text[INET_ADDRSTRLEN] = {};
  inet_ntop(AF_INET, &addr, text, sizeof(text));
  return text;
}

std::string workload_name(int service, int endpoint) { return fmt::format("w{}-{}", service, endpoint); }

std::string service_name(int service) { return fmt::format("s{}", service); }

}  // namespace sockmesh::bench
