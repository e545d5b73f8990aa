// The kernel's load-balancing state as the agent wants it: one entry per service VIP port,
// derived from a resource snapshot by translate(). Plain data; no protobuf, no libbpf.
#pragma once

#include <array>
#include <compare>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace sockmesh::reconcile {

// An IPv4 or IPv6 address; bytes in network order (IPv4 in bytes[0..4), the rest zero).
struct IpAddress {
  uint8_t family = 0;  // AF_INET or AF_INET6
  std::array<uint8_t, 16> bytes{};
  auto operator<=>(const IpAddress&) const = default;
};

// Throws std::invalid_argument for text that is neither an IPv4 nor an IPv6 address.
IpAddress parse_ip(const std::string& text);
std::string format_ip(const IpAddress& addr);  // "10.96.0.10", "fd00:96::a"

// A VIP port.
struct ServiceKey {
  IpAddress addr;
  uint16_t port = 0;  // host order
  uint8_t proto = 0;  // IPPROTO_TCP / IPPROTO_UDP
  auto operator<=>(const ServiceKey&) const = default;
};

struct DesiredBackend {
  IpAddress addr;         // same family as the VIP
  uint16_t port = 0;      // host order
  uint32_t weight = 0;    // the kernel's weight: 0 means listed but never chosen
  std::string workload;   // "namespace/name"
  std::string subset;     // empty when the service has no subsets
  bool operator==(const DesiredBackend&) const = default;
};

// A service's resilience settings as the kernel takes them (struct sm_resilience,
// docs/resilience.md). All zero: nothing tracked (UDP VIPs).
struct DesiredResilience {
  uint64_t service_id = 0;  // service_id_of("namespace/name") on TCP VIPs
  uint32_t max_connections = 0;
  uint32_t max_backend_connections = 0;
  uint32_t consecutive_failures = 0;  // 0: outlier detection off
  uint32_t max_ejection_percent = 0;
  uint64_t base_ejection_ns = 0;
  uint64_t max_ejection_ns = 0;
  uint64_t rate_interval_ns = 0;  // 0: no rate limit
  uint64_t rate_burst_ns = 0;
  bool rate_per_source = false;
  uint32_t fault_ppm = 0;  // 0: no fault injection
  uint32_t fault_errno = 0;
  bool fault_scoped = false;  // only sources listed in sm_fault_sources
  bool operator==(const DesiredResilience&) const = default;
};

struct DesiredService {
  std::string service;  // "namespace/name"
  uint32_t policy = 0;  // enum sm_lb_policy
  uint32_t maglev_size = 0;  // entries of the Maglev table when policy is MAGLEV
  std::vector<DesiredBackend> backends;  // in a stable order (by workload, then port)
  DesiredResilience resilience;
  bool operator==(const DesiredService&) const = default;
};

// The kernel's id of a service (key of sm_service_states): a 64-bit FNV-1a hash of
// "namespace/name", never 0. The same on every node and across agent restarts, so counts of
// live connections survive a restart and metrics agree between nodes.
uint64_t service_id_of(const std::string& service);

using DesiredState = std::map<ServiceKey, DesiredService>;

std::string format_endpoint(const IpAddress& addr, uint16_t port);  // "1.2.3.4:80", "[fd00::1]:80"
std::string format_key(const ServiceKey& key);                      // "10.96.0.10:80/TCP"

}  // namespace sockmesh::reconcile
