#include "resilience_check.h"

#include <charconv>
#include <cmath>
#include <map>
#include <string_view>

#include "duration.h"
#include "sockmesh/resources/resilience.h"
#include "syntax.h"

namespace sockmesh::resources::detail {
namespace {

std::string quoted(std::string_view s) {
  return "\"" + std::string(s) + "\"";
}

std::string range_error(uint32_t lo, uint32_t hi, uint32_t got) {
  return "must be between " + std::to_string(lo) + " and " + std::to_string(hi) + ", got " +
         std::to_string(got);
}

// The shortest text that reads back as `value`, as an author writes it: 12.5 (not 12.500000),
// 0.00001 (not 1e-05); values too long for that (far out of range) in scientific notation.
std::string number_text(double value) {
  char buf[128];
  auto result = std::to_chars(buf, buf + sizeof buf, value, std::chars_format::fixed);
  if (result.ec != std::errc{}) result = std::to_chars(buf, buf + sizeof buf, value);
  return std::string(buf, result.ptr);
}

// Whether `percent` is a whole number of 1/10^kFaultPercentDecimals: the kernel's unit is one part
// per million of connects. The tolerance only absorbs the binary form of decimals such as 33.3333;
// a fifth decimal is at least 0.1 of a unit away.
bool whole_ppm(double percent) {
  const double units = percent * std::pow(10.0, kFaultPercentDecimals);
  return std::abs(units - std::round(units)) <= 1e-6;
}

class ResilienceChecker {
 public:
  ResilienceChecker(const v1::Service &svc, const ReportFn &report) : svc_(svc), report_(report) {}

  void run() {
    if (svc_.has_circuit_breaker()) check_circuit_breaker(svc_.circuit_breaker());
    if (svc_.has_outlier_detection()) check_outlier_detection(svc_.outlier_detection());
    if (svc_.has_rate_limit()) check_rate_limit(svc_.rate_limit());
    if (svc_.has_fault_injection()) check_fault_injection(svc_.fault_injection());
    if (svc_.has_upstream_connect()) check_upstream_connect(svc_.upstream_connect());
  }

 private:
  // For fields whose 0 is allowed or stands for the default: only a value above `hi` is wrong.
  void at_most(const std::string &path, uint32_t value, uint32_t lo, uint32_t hi) {
    if (value > hi) report_(path, range_error(lo, hi, value));
  }

  // 0 stands for the default, so only a value above `hi_ms` is wrong.
  void duration_at_most(const std::string &path, uint64_t ms, uint64_t lo_ms, uint64_t hi_ms) {
    if (ms > hi_ms) report_(path, duration_range_error(lo_ms, hi_ms, format_duration_ms(ms)));
  }

  void check_circuit_breaker(const v1::CircuitBreaker &cb) {
    const std::string path = "spec.circuitBreaker.";
    at_most(path + "maxConnections", cb.max_connections(), 0, kMaxCircuitBreakerConnections);
    at_most(path + "maxConnectionsPerBackend", cb.max_connections_per_backend(), 0,
            kMaxCircuitBreakerConnections);
  }

  void check_outlier_detection(const v1::OutlierDetection &od) {
    const std::string path = "spec.outlierDetection.";
    at_most(path + "consecutiveFailures", od.consecutive_failures(), kMinConsecutiveFailures,
            kMaxConsecutiveFailures);
    const uint64_t base = od.base_ejection_time_ms();
    const uint64_t max = od.max_ejection_time_ms();
    duration_at_most(path + "baseEjectionTime", base, kMinEjectionTimeMs, kMaxEjectionTimeMs);
    duration_at_most(path + "maxEjectionTime", max, kMinEjectionTimeMs, kMaxEjectionTimeMs);
    // Compared as the agent will apply them: a 0 is its default.
    const uint64_t effective_base = base != 0 ? base : kDefaultBaseEjectionMs;
    const uint64_t effective_max = max != 0 ? max : kDefaultMaxEjectionMs;
    if (effective_base <= kMaxEjectionTimeMs && effective_max <= kMaxEjectionTimeMs &&
        effective_max < effective_base) {
      const std::string base_text =
          format_duration_ms(effective_base) + (base == 0 ? ", its default" : "");
      if (max == 0) {
        report_(path + "maxEjectionTime", "the default, " + format_duration_ms(effective_max) +
                                              ", is below baseEjectionTime (" + base_text +
                                              "); set it to at least " +
                                              format_duration_ms(effective_base));
      } else {
        report_(path + "maxEjectionTime", "must be at least baseEjectionTime (" + base_text +
                                              "), got " + format_duration_ms(max));
      }
    }
    if (od.has_max_ejection_percent())
      at_most(path + "maxEjectionPercent", od.max_ejection_percent(), 0, kMaxEjectionPercent);
  }

  void check_rate_limit(const v1::RateLimit &rl) {
    const std::string path = "spec.rateLimit.";
    if (rl.connections_per_second() == 0) {
      report_(path + "connectionsPerSecond", "required");
    } else {
      at_most(path + "connectionsPerSecond", rl.connections_per_second(), kMinRateLimit,
              kMaxRateLimit);
    }
    at_most(path + "burst", rl.burst(), kMinRateLimit, kMaxRateLimit);
  }

  void check_fault_injection(const v1::FaultInjection &fi) {
    const std::string path = "spec.faultInjection.";
    if (!fi.has_abort()) {
      report_(path + "abort", "required");
    } else {
      const double percent = fi.abort().percent();
      if (!(percent > 0 && percent <= kMaxFaultPercent)) {
        report_(path + "abort.percent", fault_percent_range_error(number_text(percent)));
      } else if (!whole_ppm(percent)) {
        report_(path + "abort.percent",
                "must have at most " + std::to_string(kFaultPercentDecimals) +
                    " decimals (steps of 0.0001), got " + number_text(percent));
      }
      if (!fault_errno(fi.abort().error())) {
        report_(path + "abort.error", unknown_fault_error(fi.abort().error()));
      }
    }
    if (fi.has_sources()) check_sources(fi.sources(), path + "sources.");
  }

  void check_sources(const v1::FaultSources &sources, const std::string &path) {
    std::map<std::string, int> seen;
    for (int i = 0; i < sources.namespaces_size(); ++i) {
      const std::string &ns = sources.namespaces(i);
      const std::string p = path + "namespaces[" + std::to_string(i) + "]";
      if (ns.empty()) {
        report_(p, "must not be empty");
      } else if (!is_dns1123_label(ns)) {
        report_(p, quoted(ns) + " is not a DNS-1123 label (" + std::string(kDns1123Rule) + ")");
      } else if (auto [it, inserted] = seen.emplace(ns, i); !inserted) {
        report_(p, ns + " is listed twice (also " + path + "namespaces[" +
                       std::to_string(it->second) + "])");
      }
    }
    // Map order is not defined: report in key order.
    const auto &labels = sources.match_labels();
    const std::map<std::string, std::string> sorted(labels.begin(), labels.end());
    for (const auto &[key, value] : sorted) {
      if (auto error = selector_label_error(key, value))
        report_(path + "matchLabels." + key, *error);
    }
  }

  void check_upstream_connect(const v1::UpstreamConnect &uc) {
    const std::string path = "spec.upstreamConnect.";
    duration_at_most(path + "timeout", uc.timeout_ms(), kMinUpstreamConnectTimeoutMs,
                     kMaxUpstreamConnectTimeoutMs);
    if (uc.has_retries()) at_most(path + "retries", uc.retries(), 0, kMaxUpstreamRetries);
  }

  const v1::Service &svc_;
  const ReportFn &report_;
};

}  // namespace

std::string duration_range_error(uint64_t lo_ms, uint64_t hi_ms, std::string_view got) {
  return "must be between " + format_duration_ms(lo_ms) + " and " + format_duration_ms(hi_ms) +
         ", got " + std::string(got);
}

std::string fault_percent_range_error(std::string_view got) {
  return "must be above 0 and at most 100, got " + std::string(got);
}

std::string unknown_fault_error(std::string_view name) {
  std::string choices;
  for (std::string_view e : kFaultErrors) choices += (choices.empty() ? "" : ", ") + std::string(e);
  return "unknown error " + quoted(name) + " (one of " + choices + ")";
}

void check_resilience(const v1::Service &svc, const ReportFn &report) {
  ResilienceChecker(svc, report).run();
}

}  // namespace sockmesh::resources::detail
