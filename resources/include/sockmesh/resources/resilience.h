// A Service's resilience settings (resources.proto: CircuitBreaker, OutlierDetection, RateLimit,
// FaultInjection, UpstreamConnect) as the agent applies them: the defaults a 0 or unset field
// stands for, and the conversions of fault injection's values into the kernel's units.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string_view>

namespace sockmesh::resources {

// What a field left 0 (or unset, for the optional ones) means. The loader does not store them, so
// a Service says only what its author wrote.
inline constexpr uint32_t kDefaultConsecutiveFailures = 5;          // OutlierDetection
inline constexpr uint32_t kDefaultBaseEjectionMs = 30000;           // OutlierDetection
inline constexpr uint32_t kDefaultMaxEjectionMs = 300000;           // OutlierDetection
inline constexpr uint32_t kDefaultMaxEjectionPercent = 10;          // OutlierDetection
inline constexpr uint32_t kDefaultUpstreamConnectTimeoutMs = 5000;  // UpstreamConnect
inline constexpr uint32_t kDefaultUpstreamRetries = 2;              // UpstreamConnect

// The errno names FaultAbort.error accepts, the default (what an empty name means) first.
inline constexpr std::array<std::string_view, 8> kFaultErrors = {
    "ECONNREFUSED", "ECONNRESET",   "ETIMEDOUT", "EHOSTUNREACH",
    "ENETUNREACH",  "ECONNABORTED", "EACCES",    "EPERM"};

// The errno (positive, as <cerrno> defines it) a FaultAbort.error names: ECONNREFUSED for the empty
// name, nothing for a name not in kFaultErrors (names are case-sensitive).
std::optional<int> fault_errno(std::string_view name);

// A FaultAbort.percent in parts per million of connects (12.5 -> 125000), rounded to the nearest;
// clamped to 0..1000000 (NaN gives 0). A valid percent (at most 4 decimals) converts exactly.
uint32_t fault_percent_ppm(double percent);

}  // namespace sockmesh::resources
