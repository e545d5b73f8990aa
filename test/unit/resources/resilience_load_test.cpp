// YAML -> Service resilience settings (circuitBreaker, outlierDetection, rateLimit,
// faultInjection, upstreamConnect): what is accepted and stored, what each edge refuses, exactly.
#include <gtest/gtest.h>

#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "sockmesh/resources/load.h"

namespace sockmesh::resources {
namespace {

using Errors = std::vector<std::string>;

// A service "demo/web" with one VIP; the given spec lines start at line 6.
std::string service(std::string_view spec_lines) {
  return "apiVersion: sockmesh/v1\n"
         "kind: Service\n"
         "metadata: {name: web, namespace: demo}\n"
         "spec:\n"
         "  vips: [{address: 10.96.0.10, port: 80}]\n" +
         std::string(spec_lines);
}

Errors errors_of(std::string_view spec_lines) {
  return load_yaml_string(service(spec_lines), "demo.yaml").errors;
}

v1::Service loaded(std::string_view spec_lines) {
  LoadResult r = load_yaml_string(service(spec_lines), "demo.yaml");
  EXPECT_EQ(r.errors, Errors{}) << spec_lines;
  return r.ok() ? r.snapshot.services(0) : v1::Service{};
}

struct Case {
  std::string name;
  std::string spec_lines;
  std::string error;  // without `demo.yaml:<line>: service "demo/web": `
  int line;
};

void PrintTo(const Case &c, std::ostream *os) {
  *os << c.name;
}

class ResilienceErrorTest : public testing::TestWithParam<Case> {};

TEST_P(ResilienceErrorTest, ReportsExactlyThisError) {
  const Case &c = GetParam();
  EXPECT_EQ(errors_of(c.spec_lines),
            Errors{"demo.yaml:" + std::to_string(c.line) + ": service \"demo/web\": " + c.error})
      << c.spec_lines;
}

constexpr std::string_view kFaultErrorChoices =
    "(one of ECONNREFUSED, ECONNRESET, ETIMEDOUT, EHOSTUNREACH, ENETUNREACH, ECONNABORTED, "
    "EACCES, EPERM)";

const Case kCases[] = {
    // circuitBreaker
    {"CircuitBreakerNotMap", "  circuitBreaker: 100\n",
     R"(spec.circuitBreaker: must be a map, got "100")", 6},
    {"CircuitBreakerUnknownField", "  circuitBreaker:\n    maxRequests: 5\n",
     "spec.circuitBreaker.maxRequests: unknown field", 7},
    {"MaxConnectionsTooBig", "  circuitBreaker:\n    maxConnections: 1000001\n",
     "spec.circuitBreaker.maxConnections: must be between 0 and 1000000, got 1000001", 7},
    {"MaxConnectionsNegative", "  circuitBreaker:\n    maxConnections: -1\n",
     "spec.circuitBreaker.maxConnections: must be between 0 and 1000000, got -1", 7},
    {"MaxConnectionsNotInteger", "  circuitBreaker:\n    maxConnections: many\n",
     R"(spec.circuitBreaker.maxConnections: must be an integer, got "many")", 7},
    {"MaxConnectionsPerBackendTooBig",
     "  circuitBreaker:\n    maxConnections: 10\n    maxConnectionsPerBackend: 1000001\n",
     "spec.circuitBreaker.maxConnectionsPerBackend: must be between 0 and 1000000, got 1000001", 8},

    // outlierDetection
    {"OutlierDetectionUnknownField", "  outlierDetection:\n    interval: 10s\n",
     "spec.outlierDetection.interval: unknown field", 7},
    {"ConsecutiveFailuresZero", "  outlierDetection:\n    consecutiveFailures: 0\n",
     "spec.outlierDetection.consecutiveFailures: must be between 1 and 1000, got 0", 7},
    {"ConsecutiveFailuresTooBig", "  outlierDetection:\n    consecutiveFailures: 1001\n",
     "spec.outlierDetection.consecutiveFailures: must be between 1 and 1000, got 1001", 7},
    {"BaseEjectionTimeZero", "  outlierDetection:\n    baseEjectionTime: 0s\n",
     "spec.outlierDetection.baseEjectionTime: must be between 1ms and 24h, got 0s", 7},
    {"BaseEjectionTimeTooLong", "  outlierDetection:\n    baseEjectionTime: 86400001ms\n",
     "spec.outlierDetection.baseEjectionTime: must be between 1ms and 24h, got 86400001ms", 7},
    {"BaseEjectionTimeHuge", "  outlierDetection:\n    baseEjectionTime: 99999999999999999999h\n",
     "spec.outlierDetection.baseEjectionTime: must be between 1ms and 24h, got "
     "99999999999999999999h",
     7},
    {"BaseEjectionTimeWithoutUnit", "  outlierDetection:\n    baseEjectionTime: 30\n",
     "spec.outlierDetection.baseEjectionTime: must be a duration with a unit (ms, s, m or h), got "
     "30; add a unit, e.g. 30s",
     7},
    {"BaseEjectionTimeNumberWithoutUnit", "  outlierDetection:\n    baseEjectionTime: 1.5\n",
     "spec.outlierDetection.baseEjectionTime: must be a duration with a unit (ms, s, m or h), got "
     "1.5; add a unit, e.g. 1.5s",
     7},
    {"BaseEjectionTimeUnknownUnit", "  outlierDetection:\n    baseEjectionTime: 1d\n",
     R"(spec.outlierDetection.baseEjectionTime: must be a duration (e.g. 500ms, 2s, 1.5s, 5m or 1h), got "1d")",
     7},
    {"BaseEjectionTimeFractionOfAMillisecond", "  outlierDetection:\n    baseEjectionTime: 1.5ms\n",
     "spec.outlierDetection.baseEjectionTime: must be a whole number of milliseconds, got 1.5ms",
     7},
    {"BaseEjectionTimeNegative", "  outlierDetection:\n    baseEjectionTime: -30s\n",
     "spec.outlierDetection.baseEjectionTime: must not be negative, got -30s", 7},
    {"BaseEjectionTimeNotScalar", "  outlierDetection:\n    baseEjectionTime: [30s]\n",
     "spec.outlierDetection.baseEjectionTime: must be a duration, got a list", 7},
    {"MaxEjectionTimeTooLong", "  outlierDetection:\n    maxEjectionTime: 25h\n",
     "spec.outlierDetection.maxEjectionTime: must be between 1ms and 24h, got 25h", 7},
    {"MaxEjectionTimeBelowBase",
     "  outlierDetection:\n    baseEjectionTime: 1m\n    maxEjectionTime: 59s\n",
     "spec.outlierDetection.maxEjectionTime: must be at least baseEjectionTime (1m), got 59s", 8},
    {"MaxEjectionTimeBelowDefaultBase", "  outlierDetection:\n    maxEjectionTime: 10s\n",
     "spec.outlierDetection.maxEjectionTime: must be at least baseEjectionTime (30s, its "
     "default), got 10s",
     7},
    {"DefaultMaxEjectionTimeBelowBase", "  outlierDetection:\n    baseEjectionTime: 10m\n",
     "spec.outlierDetection.maxEjectionTime: the default, 5m, is below baseEjectionTime (10m); "
     "set it to at least 10m",
     6},
    // A base that is wrong is the one error: the maximum's relation to it is unknown.
    {"BadBaseIsTheOnlyError",
     "  outlierDetection:\n    baseEjectionTime: 1d\n    maxEjectionTime: 10s\n",
     R"(spec.outlierDetection.baseEjectionTime: must be a duration (e.g. 500ms, 2s, 1.5s, 5m or 1h), got "1d")",
     7},
    {"MaxEjectionPercentTooBig", "  outlierDetection:\n    maxEjectionPercent: 101\n",
     "spec.outlierDetection.maxEjectionPercent: must be between 0 and 100, got 101", 7},

    // rateLimit
    {"RateLimitUnknownField", "  rateLimit:\n    connectionsPerSecond: 10\n    unit: second\n",
     "spec.rateLimit.unit: unknown field", 8},
    {"ConnectionsPerSecondMissing", "  rateLimit:\n    burst: 5\n",
     "spec.rateLimit.connectionsPerSecond: required", 6},
    {"RateLimitEmpty", "  rateLimit: {}\n", "spec.rateLimit.connectionsPerSecond: required", 6},
    {"ConnectionsPerSecondZero", "  rateLimit:\n    connectionsPerSecond: 0\n",
     "spec.rateLimit.connectionsPerSecond: must be between 1 and 1000000, got 0", 7},
    {"ConnectionsPerSecondTooBig", "  rateLimit:\n    connectionsPerSecond: 1000001\n",
     "spec.rateLimit.connectionsPerSecond: must be between 1 and 1000000, got 1000001", 7},
    {"BurstZero", "  rateLimit:\n    connectionsPerSecond: 10\n    burst: 0\n",
     "spec.rateLimit.burst: must be between 1 and 1000000, got 0", 8},
    {"BurstTooBig", "  rateLimit:\n    connectionsPerSecond: 10\n    burst: 1000001\n",
     "spec.rateLimit.burst: must be between 1 and 1000000, got 1000001", 8},
    {"PerSourceWorkloadNotBool",
     "  rateLimit:\n    connectionsPerSecond: 10\n    perSourceWorkload: yes\n",
     R"(spec.rateLimit.perSourceWorkload: must be true or false, got "yes")", 8},

    // faultInjection
    {"FaultInjectionUnknownField",
     "  faultInjection:\n    abort: {percent: 1}\n    delay: {percent: 1}\n",
     "spec.faultInjection.delay: unknown field", 8},
    {"FaultInjectionEmpty", "  faultInjection: {}\n", "spec.faultInjection.abort: required", 6},
    {"AbortMissing", "  faultInjection:\n    sources: {namespaces: [demo]}\n",
     "spec.faultInjection.abort: required", 6},
    {"AbortNotMap", "  faultInjection:\n    abort: 50\n",
     R"(spec.faultInjection.abort: must be a map, got "50")", 7},
    {"AbortUnknownField", "  faultInjection:\n    abort:\n      percent: 1\n      delay: 1s\n",
     "spec.faultInjection.abort.delay: unknown field", 9},
    {"PercentMissing", "  faultInjection:\n    abort:\n      error: ECONNRESET\n",
     "spec.faultInjection.abort.percent: required", 7},
    {"PercentZero", "  faultInjection:\n    abort:\n      percent: 0\n",
     "spec.faultInjection.abort.percent: must be above 0 and at most 100, got 0", 8},
    {"PercentNegative", "  faultInjection:\n    abort:\n      percent: -5\n",
     "spec.faultInjection.abort.percent: must be above 0 and at most 100, got -5", 8},
    {"PercentAbove100", "  faultInjection:\n    abort:\n      percent: 100.0001\n",
     "spec.faultInjection.abort.percent: must be above 0 and at most 100, got 100.0001", 8},
    {"PercentFiveDecimals", "  faultInjection:\n    abort:\n      percent: 12.34567\n",
     "spec.faultInjection.abort.percent: must have at most 4 decimals (steps of 0.0001), got "
     "12.34567",
     8},
    {"PercentBelowOnePerMillion", "  faultInjection:\n    abort:\n      percent: 0.00001\n",
     "spec.faultInjection.abort.percent: must have at most 4 decimals (steps of 0.0001), got "
     "0.00001",
     8},
    {"PercentWithPercentSign", "  faultInjection:\n    abort:\n      percent: 12.5%\n",
     R"(spec.faultInjection.abort.percent: must be a number, got "12.5%" (write the percentage without '%'))",
     8},
    {"PercentNotNumber", "  faultInjection:\n    abort:\n      percent: half\n",
     R"(spec.faultInjection.abort.percent: must be a number, got "half")", 8},
    {"PercentExponent", "  faultInjection:\n    abort:\n      percent: 1e1\n",
     R"(spec.faultInjection.abort.percent: must be a number, got "1e1")", 8},
    {"PercentNotScalar", "  faultInjection:\n    abort:\n      percent: [1]\n",
     "spec.faultInjection.abort.percent: must be a number, got a list", 8},
    {"PercentHuge",
     "  faultInjection:\n    abort:\n      percent: 1" + std::string(400, '0') + "\n",
     "spec.faultInjection.abort.percent: must be above 0 and at most 100, got 1" +
         std::string(400, '0'),
     8},
    {"ErrorUnknown", "  faultInjection:\n    abort:\n      percent: 1\n      error: EFOO\n",
     R"(spec.faultInjection.abort.error: unknown error "EFOO" )" + std::string(kFaultErrorChoices),
     9},
    {"ErrorLowercase", "  faultInjection:\n    abort:\n      percent: 1\n      error: econnreset\n",
     R"(spec.faultInjection.abort.error: unknown error "econnreset" )" +
         std::string(kFaultErrorChoices),
     9},
    {"ErrorNumber", "  faultInjection:\n    abort:\n      percent: 1\n      error: 104\n",
     R"(spec.faultInjection.abort.error: unknown error "104" )" + std::string(kFaultErrorChoices),
     9},
    {"SourcesUnknownField",
     "  faultInjection:\n    abort: {percent: 1}\n    sources:\n      principals: [a]\n",
     "spec.faultInjection.sources.principals: unknown field", 9},
    {"SourcesNamespacesEmpty",
     "  faultInjection:\n    abort: {percent: 1}\n    sources:\n      namespaces: []\n",
     "spec.faultInjection.sources.namespaces: must not be empty (omit namespaces to match every "
     "namespace)",
     9},
    {"SourcesNamespaceNotDns1123",
     "  faultInjection:\n    abort: {percent: 1}\n    sources:\n      namespaces:\n        - "
     "Demo\n",
     R"(spec.faultInjection.sources.namespaces[0]: "Demo" is not a DNS-1123 label (lowercase letters, digits and '-', starting and ending with a letter or digit, at most 63 characters))",
     10},
    {"SourcesNamespaceTwice",
     "  faultInjection:\n    abort: {percent: 1}\n    sources:\n      namespaces:\n        - demo\n"
     "        - demo\n",
     "spec.faultInjection.sources.namespaces[1]: demo is listed twice (also "
     "spec.faultInjection.sources.namespaces[0])",
     11},
    {"SourcesNamespacesNotList",
     "  faultInjection:\n    abort: {percent: 1}\n    sources:\n      namespaces: demo\n",
     R"(spec.faultInjection.sources.namespaces: must be a list, got "demo")", 9},
    {"SourcesMatchLabelKeyBad",
     "  faultInjection:\n    abort: {percent: 1}\n    sources:\n      matchLabels:\n"
     "        -app: client\n",
     R"(spec.faultInjection.sources.matchLabels.-app: "-app" is not a label key (an optional DNS-1123 subdomain and '/', then at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit))",
     10},
    {"SourcesMatchLabelValueBad",
     "  faultInjection:\n    abort: {percent: 1}\n    sources:\n      matchLabels:\n"
     "        app: client-\n",
     R"(spec.faultInjection.sources.matchLabels.app: "client-" is not a label value (empty, or at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit))",
     10},

    // upstreamConnect
    {"UpstreamConnectUnknownField", "  upstreamConnect:\n    attempts: 3\n",
     "spec.upstreamConnect.attempts: unknown field", 7},
    {"TimeoutZero", "  upstreamConnect:\n    timeout: 0ms\n",
     "spec.upstreamConnect.timeout: must be between 1ms and 10m, got 0ms", 7},
    {"TimeoutTooLong", "  upstreamConnect:\n    timeout: 601s\n",
     "spec.upstreamConnect.timeout: must be between 1ms and 10m, got 601s", 7},
    {"TimeoutWithoutUnit", "  upstreamConnect:\n    timeout: 2\n",
     "spec.upstreamConnect.timeout: must be a duration with a unit (ms, s, m or h), got 2; add a "
     "unit, e.g. 2s",
     7},
    {"RetriesTooBig", "  upstreamConnect:\n    retries: 11\n",
     "spec.upstreamConnect.retries: must be between 0 and 10, got 11", 7},
    {"RetriesNegative", "  upstreamConnect:\n    retries: -1\n",
     "spec.upstreamConnect.retries: must be between 0 and 10, got -1", 7},
};
INSTANTIATE_TEST_SUITE_P(Resilience, ResilienceErrorTest, testing::ValuesIn(kCases),
                         [](const auto &info) { return info.param.name; });

struct GoodCase {
  std::string name;
  std::string spec_lines;
};

void PrintTo(const GoodCase &c, std::ostream *os) {
  *os << c.name;
}

class ResilienceGoodTest : public testing::TestWithParam<GoodCase> {};

TEST_P(ResilienceGoodTest, LoadsWithoutErrors) {
  EXPECT_EQ(errors_of(GetParam().spec_lines), Errors{}) << GetParam().spec_lines;
}

const GoodCase kGoodCases[] = {
    {"LeastConnections", "  lbPolicy: LEAST_CONNECTIONS\n"},
    {"LeastConnectionsWithCircuitBreaker",
     "  lbPolicy: LEAST_CONNECTIONS\n  circuitBreaker: {maxConnectionsPerBackend: 10}\n"},
    {"EmptyBlocks", "  circuitBreaker: {}\n  outlierDetection: {}\n  upstreamConnect: {}\n"},
    {"CircuitBreakerLimitsZero",
     "  circuitBreaker: {maxConnections: 0, maxConnectionsPerBackend: 0}\n"},
    {"CircuitBreakerLimitsMax",
     "  circuitBreaker: {maxConnections: 1000000, maxConnectionsPerBackend: 1000000}\n"},
    {"ConsecutiveFailuresMin", "  outlierDetection: {consecutiveFailures: 1}\n"},
    {"ConsecutiveFailuresMax", "  outlierDetection: {consecutiveFailures: 1000}\n"},
    {"EjectionTimeEdges", "  outlierDetection: {baseEjectionTime: 1ms, maxEjectionTime: 24h}\n"},
    {"EjectionTimesEqual", "  outlierDetection: {baseEjectionTime: 10m, maxEjectionTime: 600s}\n"},
    {"BaseAtMostTheDefaultMax", "  outlierDetection: {baseEjectionTime: 5m}\n"},
    {"MaxAtLeastTheDefaultBase", "  outlierDetection: {maxEjectionTime: 30s}\n"},
    {"EjectionTimeFraction",
     "  outlierDetection: {baseEjectionTime: 1.5s, maxEjectionTime: 0.5h}\n"},
    {"MaxEjectionPercentZero", "  outlierDetection: {maxEjectionPercent: 0}\n"},
    {"MaxEjectionPercentMax", "  outlierDetection: {maxEjectionPercent: 100}\n"},
    {"RateLimitMin", "  rateLimit: {connectionsPerSecond: 1, burst: 1}\n"},
    {"RateLimitMax",
     "  rateLimit: {connectionsPerSecond: 1000000, burst: 1000000, perSourceWorkload: true}\n"},
    {"PercentOnePerMillion", "  faultInjection: {abort: {percent: 0.0001}}\n"},
    {"PercentAll", "  faultInjection: {abort: {percent: 100}}\n"},
    {"PercentFourDecimals", "  faultInjection: {abort: {percent: 33.3333}}\n"},
    {"PercentTrailingZeros", "  faultInjection: {abort: {percent: 12.50000}}\n"},
    {"PercentQuoted", "  faultInjection: {abort: {percent: \"12.5\"}}\n"},
    {"ErrorDefaultWritten", "  faultInjection: {abort: {percent: 1, error: ECONNREFUSED}}\n"},
    {"SourcesEmpty", "  faultInjection: {abort: {percent: 1}, sources: {}}\n"},
    {"SourcesMatchLabelsOnly",
     "  faultInjection: {abort: {percent: 1}, sources: {matchLabels: {app.kubernetes.io/name: "
     "c}}}\n"},
    {"TimeoutMin", "  upstreamConnect: {timeout: 1ms, retries: 0}\n"},
    {"TimeoutMax", "  upstreamConnect: {timeout: 600s, retries: 10}\n"},
};
INSTANTIATE_TEST_SUITE_P(Edges, ResilienceGoodTest, testing::ValuesIn(kGoodCases),
                         [](const auto &info) { return info.param.name; });

TEST(ResilienceLoadTest, EveryErrorNameIsAccepted) {
  for (const char *name : {"ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "EHOSTUNREACH", "ENETUNREACH",
                           "ECONNABORTED", "EACCES", "EPERM"}) {
    const v1::Service svc =
        loaded("  faultInjection: {abort: {percent: 1, error: " + std::string(name) + "}}\n");
    EXPECT_EQ(svc.fault_injection().abort().error(), name);
  }
}

TEST(ResilienceLoadTest, LeastConnectionsIsStored) {
  EXPECT_EQ(loaded("  lbPolicy: LEAST_CONNECTIONS\n").lb_policy(), v1::LB_POLICY_LEAST_CONNECTIONS);
}

// The YAML of the issue, field by field.
TEST(ResilienceLoadTest, EveryFieldIsStored) {
  const v1::Service svc = loaded(R"(  lbPolicy: LEAST_CONNECTIONS
  circuitBreaker:
    maxConnections: 100
    maxConnectionsPerBackend: 10
  outlierDetection:
    consecutiveFailures: 5
    baseEjectionTime: 30s
    maxEjectionTime: 300s
    maxEjectionPercent: 10
  rateLimit:
    connectionsPerSecond: 100
    burst: 20
    perSourceWorkload: false
  faultInjection:
    abort:
      percent: 12.5
      error: ECONNRESET
    sources:
      namespaces: [demo]
      matchLabels: {app: client}
  upstreamConnect:
    timeout: 2s
    retries: 2
)");
  EXPECT_EQ(svc.lb_policy(), v1::LB_POLICY_LEAST_CONNECTIONS);
  EXPECT_EQ(svc.circuit_breaker().max_connections(), 100u);
  EXPECT_EQ(svc.circuit_breaker().max_connections_per_backend(), 10u);
  const v1::OutlierDetection &od = svc.outlier_detection();
  EXPECT_EQ(od.consecutive_failures(), 5u);
  EXPECT_EQ(od.base_ejection_time_ms(), 30000u);
  EXPECT_EQ(od.max_ejection_time_ms(), 300000u);
  ASSERT_TRUE(od.has_max_ejection_percent());
  EXPECT_EQ(od.max_ejection_percent(), 10u);
  EXPECT_EQ(svc.rate_limit().connections_per_second(), 100u);
  EXPECT_EQ(svc.rate_limit().burst(), 20u);
  EXPECT_FALSE(svc.rate_limit().per_source_workload());
  const v1::FaultInjection &fi = svc.fault_injection();
  EXPECT_EQ(fi.abort().percent(), 12.5);
  EXPECT_EQ(fi.abort().error(), "ECONNRESET");
  ASSERT_TRUE(fi.has_sources());
  ASSERT_EQ(fi.sources().namespaces_size(), 1);
  EXPECT_EQ(fi.sources().namespaces(0), "demo");
  EXPECT_EQ(fi.sources().match_labels().at("app"), "client");
  EXPECT_EQ(svc.upstream_connect().timeout_ms(), 2000u);
  ASSERT_TRUE(svc.upstream_connect().has_retries());
  EXPECT_EQ(svc.upstream_connect().retries(), 2u);
}

TEST(ResilienceLoadTest, DurationsInEveryUnit) {
  const auto od = [](std::string_view base, std::string_view max) {
    return loaded("  outlierDetection: {baseEjectionTime: " + std::string(base) +
                  ", maxEjectionTime: " + std::string(max) + "}\n")
        .outlier_detection();
  };
  EXPECT_EQ(od("500ms", "1.5s").base_ejection_time_ms(), 500u);
  EXPECT_EQ(od("500ms", "1.5s").max_ejection_time_ms(), 1500u);
  EXPECT_EQ(od("2s", "5m").max_ejection_time_ms(), 300000u);
  EXPECT_EQ(od("1m", "1h").max_ejection_time_ms(), 3600000u);
  EXPECT_EQ(od("0.5m", "24h").base_ejection_time_ms(), 30000u);
  EXPECT_EQ(od("0.5m", "24h").max_ejection_time_ms(), 86400000u);
  EXPECT_EQ(loaded("  upstreamConnect: {timeout: 250ms}\n").upstream_connect().timeout_ms(), 250u);
}

// What is absent stays 0 or unset in the proto: the agent applies the defaults (resilience.h).
TEST(ResilienceLoadTest, DefaultsAreNotStored) {
  const v1::Service none = loaded("");
  EXPECT_FALSE(none.has_circuit_breaker());
  EXPECT_FALSE(none.has_outlier_detection());
  EXPECT_FALSE(none.has_rate_limit());
  EXPECT_FALSE(none.has_fault_injection());
  EXPECT_FALSE(none.has_upstream_connect());

  const v1::Service empty = loaded(
      "  circuitBreaker: {}\n  outlierDetection: {}\n  upstreamConnect: {}\n"
      "  rateLimit: {connectionsPerSecond: 7}\n  faultInjection: {abort: {percent: 1}}\n");
  EXPECT_TRUE(empty.has_circuit_breaker());
  EXPECT_EQ(empty.circuit_breaker().max_connections(), 0u);
  EXPECT_EQ(empty.circuit_breaker().max_connections_per_backend(), 0u);
  ASSERT_TRUE(empty.has_outlier_detection());
  EXPECT_EQ(empty.outlier_detection().consecutive_failures(), 0u);
  EXPECT_EQ(empty.outlier_detection().base_ejection_time_ms(), 0u);
  EXPECT_EQ(empty.outlier_detection().max_ejection_time_ms(), 0u);
  EXPECT_FALSE(empty.outlier_detection().has_max_ejection_percent());
  EXPECT_EQ(empty.rate_limit().burst(), 0u);
  EXPECT_FALSE(empty.rate_limit().per_source_workload());
  EXPECT_EQ(empty.fault_injection().abort().error(), "");
  EXPECT_FALSE(empty.fault_injection().has_sources());
  ASSERT_TRUE(empty.has_upstream_connect());
  EXPECT_EQ(empty.upstream_connect().timeout_ms(), 0u);
  EXPECT_FALSE(empty.upstream_connect().has_retries());
}

// An optional field written 0 is not the same as absent: 0 % may be ejected, 0 retries made.
TEST(ResilienceLoadTest, OptionalZeroIsStoredAsPresent) {
  const v1::Service svc =
      loaded("  outlierDetection: {maxEjectionPercent: 0}\n  upstreamConnect: {retries: 0}\n");
  ASSERT_TRUE(svc.outlier_detection().has_max_ejection_percent());
  EXPECT_EQ(svc.outlier_detection().max_ejection_percent(), 0u);
  ASSERT_TRUE(svc.upstream_connect().has_retries());
  EXPECT_EQ(svc.upstream_connect().retries(), 0u);
}

// Every error of the blocks at once, in file order.
TEST(ResilienceLoadTest, CollectsEveryError) {
  EXPECT_EQ(
      errors_of(R"(  circuitBreaker: {maxConnections: 2000000}
  outlierDetection: {consecutiveFailures: 0, baseEjectionTime: 30}
  rateLimit: {burst: 0}
  faultInjection: {abort: {percent: 0, error: EIO}}
  upstreamConnect: {timeout: 1h, retries: 99}
)"),
      (Errors{
          R"(demo.yaml:6: service "demo/web": spec.circuitBreaker.maxConnections: must be between 0 and 1000000, got 2000000)",
          R"(demo.yaml:7: service "demo/web": spec.outlierDetection.consecutiveFailures: must be between 1 and 1000, got 0)",
          R"(demo.yaml:7: service "demo/web": spec.outlierDetection.baseEjectionTime: must be a duration with a unit (ms, s, m or h), got 30; add a unit, e.g. 30s)",
          R"(demo.yaml:8: service "demo/web": spec.rateLimit.connectionsPerSecond: required)",
          R"(demo.yaml:8: service "demo/web": spec.rateLimit.burst: must be between 1 and 1000000, got 0)",
          R"(demo.yaml:9: service "demo/web": spec.faultInjection.abort.percent: must be above 0 and at most 100, got 0)",
          R"(demo.yaml:9: service "demo/web": spec.faultInjection.abort.error: unknown error "EIO" (one of ECONNREFUSED, ECONNRESET, ETIMEDOUT, EHOSTUNREACH, ENETUNREACH, ECONNABORTED, EACCES, EPERM))",
          R"(demo.yaml:10: service "demo/web": spec.upstreamConnect.timeout: must be between 1ms and 10m, got 1h)",
          R"(demo.yaml:10: service "demo/web": spec.upstreamConnect.retries: must be between 0 and 10, got 99)",
      }));
}

// A change applied after demo-services.yaml: its endpoints are that file's workloads.
TEST(ResilienceLoadTest, ExampleLoads) {
  LoadResult r = load_yaml_file(SOCKMESH_SOURCE_DIR "/examples/resilience.yaml", Scope::kPartial);
  ASSERT_EQ(r.errors, Errors{});
  ASSERT_EQ(r.snapshot.services_size(), 1);
  const v1::Service &svc = r.snapshot.services(0);
  EXPECT_EQ(svc.lb_policy(), v1::LB_POLICY_LEAST_CONNECTIONS);
  EXPECT_TRUE(svc.has_circuit_breaker());
  EXPECT_TRUE(svc.has_outlier_detection());
  EXPECT_TRUE(svc.has_rate_limit());
  EXPECT_TRUE(svc.has_fault_injection());
  EXPECT_TRUE(svc.fault_injection().has_sources());
  EXPECT_TRUE(svc.has_upstream_connect());
}

// ... and with them, the two files are one valid mesh.
TEST(ResilienceLoadTest, ExampleLoadsWithTheDemoMesh) {
  LoadResult demo = load_yaml_file(SOCKMESH_SOURCE_DIR "/examples/demo-services.yaml");
  LoadResult change =
      load_yaml_file(SOCKMESH_SOURCE_DIR "/examples/resilience.yaml", Scope::kPartial);
  ASSERT_EQ(demo.errors, Errors{});
  ASSERT_EQ(change.errors, Errors{});
  v1::Snapshot mesh = demo.snapshot;
  for (const v1::Service &svc : change.snapshot.services()) *mesh.add_services() = svc;
  EXPECT_EQ(validate(mesh), Errors{});
}

}  // namespace
}  // namespace sockmesh::resources
