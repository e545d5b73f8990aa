// The services the connect benchmark serves, the same for sockmesh and for the iptables baseline:
// `services` services, each with one VIP 10.96.x.y:80 and `endpoints` backends 10.80.a.b:8080, every
// backend address distinct across all services (docs/benchmarks.md "connect").
#pragma once

#include <netinet/in.h>

#include <cstdint>
#include <string>

namespace sockmesh::bench {

inline constexpr uint16_t kVipPort = 80;
inline constexpr uint16_t kBackendPort = 8080;
// Every backend address lies in this range; each client pod routes it to lo as `local` (AnyIP), so
// one listener on 0.0.0.0:8080 in the pod answers for all of them.
inline constexpr const char* kBackendRange = "10.80.0.0/14";
// The lab's VIP range (unreachable in every lab netns unless a pod routes it otherwise).
inline constexpr const char* kVipRange = "10.96.0.0/16";

struct ServicePlan {
  int services = 0;
  int endpoints = 10;
};

// Throws std::invalid_argument naming the limit when the plan does not fit the address ranges or
// the mesh's limits (16,384 VIPs, 64 endpoints per service).
void check_plan(const ServicePlan& plan);

// VIP of service s (0-based): 10.96.<s / 254>.<s % 254 + 1>.
in_addr vip_address(int service);
// Backend j of service s: the (s * endpoints + j)-th address of kBackendRange, skipping .0 and .255.
in_addr backend_address(const ServicePlan& plan, int service, int endpoint);

std::string to_string(in_addr addr);
// Workload and service names used in the mesh config and in the iptables chain names.
std::string workload_name(int service, int endpoint);
std::string service_name(int service);

}  // namespace sockmesh::bench
