// The kernel's load-balancing state as the agent wants it: one entry per service VIP port,
// derived from a resource snapshot by translate(). Plain data; no protobuf, no libbpf.
#pragma once

#include <compare>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace sockmesh::reconcile {

// A VIP port in host byte order.
struct ServiceKey {
  uint32_t addr = 0;  // IPv4, host order
  uint16_t port = 0;
  uint8_t proto = 0;  // IPPROTO_TCP / IPPROTO_UDP
  auto operator<=>(const ServiceKey &) const = default;
};

struct DesiredBackend {
  uint32_t addr = 0;  // host order
  uint16_t port = 0;
  uint32_t weight = 0;   // the kernel's weight: 0 means listed but never chosen
  std::string workload;  // "namespace/name"
  std::string subset;    // empty when the service has no subsets
  bool operator==(const DesiredBackend &) const = default;
};

struct DesiredService {
  std::string service;                   // "namespace/name"
  std::vector<DesiredBackend> backends;  // in a stable order (by workload, then port)
  bool operator==(const DesiredService &) const = default;
};

using DesiredState = std::map<ServiceKey, DesiredService>;

std::string format_key(const ServiceKey &key);  // "10.96.0.10:80/TCP"
std::string format_ipv4(uint32_t host_order);   // "10.96.0.10"

}  // namespace sockmesh::reconcile
