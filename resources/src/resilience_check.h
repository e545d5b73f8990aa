// The rules of a Service's resilience settings (docs/config.md, "Resilience"), shared by the YAML
// loader (which checks what it can as written) and the validator (which checks any Snapshot,
// e.g. one applied through meshcp's API without YAML).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "sockmesh/v1/resources.pb.h"

namespace sockmesh::resources::detail {

inline constexpr uint32_t kMaxCircuitBreakerConnections = 1000000;
inline constexpr uint32_t kMinConsecutiveFailures = 1;
inline constexpr uint32_t kMaxConsecutiveFailures = 1000;
inline constexpr uint64_t kMinEjectionTimeMs = 1;
inline constexpr uint64_t kMaxEjectionTimeMs = 86400000;  // 24h
inline constexpr uint32_t kMaxEjectionPercent = 100;
inline constexpr uint32_t kMinRateLimit = 1;  // connectionsPerSecond and burst
inline constexpr uint32_t kMaxRateLimit = 1000000;
inline constexpr double kMaxFaultPercent = 100;
inline constexpr int kFaultPercentDecimals = 4;  // 1/10000 of a percent: one part per million
inline constexpr uint64_t kMinUpstreamConnectTimeoutMs = 1;
inline constexpr uint64_t kMaxUpstreamConnectTimeoutMs = 600000;  // 600s
inline constexpr uint32_t kMaxUpstreamRetries = 10;

// Reports a finding about the service: its YAML field path ("spec.rateLimit.burst") and what is
// wrong.
using ReportFn = std::function<void(const std::string &path, const std::string &what)>;

// Every rule of circuit_breaker, outlier_detection, rate_limit, fault_injection and
// upstream_connect, in field order.
void check_resilience(const v1::Service &svc, const ReportFn &report);

// "must be between 1ms and 24h, got 25h".
std::string duration_range_error(uint64_t lo_ms, uint64_t hi_ms, std::string_view got);

// "must be above 0 and at most 100, got <got>", for faultInjection.abort.percent.
std::string fault_percent_range_error(std::string_view got);

// `unknown error "EFOO" (one of ECONNREFUSED, ...)`.
std::string unknown_fault_error(std::string_view name);

}  // namespace sockmesh::resources::detail
