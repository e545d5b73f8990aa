// Resilience settings on snapshots that did not come from YAML (meshcp's API, meshctl apply): the
// same rules as the loader's, 0 and unset meaning the defaults; the public conversions
// (resilience.h); and meshcp's JSON store keeping every field.
#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>

#include <cerrno>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "sockmesh/resources/resilience.h"
#include "sockmesh/resources/resource_set.h"
#include "sockmesh/resources/validate.h"

namespace sockmesh::resources {
namespace {

using Errors = std::vector<std::string>;

v1::Snapshot base() {
  v1::Snapshot s;
  v1::Workload *w = s.add_workloads();
  w->mutable_metadata()->set_namespace_("demo");
  w->mutable_metadata()->set_name("web-a");
  w->set_service_account("web");
  w->set_node("n1");
  w->add_addresses("10.78.1.10");
  v1::Service *svc = s.add_services();
  svc->mutable_metadata()->set_namespace_("demo");
  svc->mutable_metadata()->set_name("web");
  v1::VirtualAddress *vip = svc->add_vips();
  vip->set_address("10.96.0.10");
  vip->set_port(80);
  v1::Endpoint *ep = svc->add_endpoints();
  ep->set_workload("web-a");
  ep->set_port(8080);
  ep->set_weight(1);
  return s;
}

// Every field set, to values that are not the defaults.
v1::Service full_service() {
  v1::Service svc = base().services(0);
  svc.set_lb_policy(v1::LB_POLICY_LEAST_CONNECTIONS);
  svc.mutable_circuit_breaker()->set_max_connections(100);
  svc.mutable_circuit_breaker()->set_max_connections_per_backend(10);
  v1::OutlierDetection *od = svc.mutable_outlier_detection();
  od->set_consecutive_failures(3);
  od->set_base_ejection_time_ms(1500);
  od->set_max_ejection_time_ms(86400000);
  od->set_max_ejection_percent(0);
  v1::RateLimit *rl = svc.mutable_rate_limit();
  rl->set_connections_per_second(100);
  rl->set_burst(20);
  rl->set_per_source_workload(true);
  v1::FaultInjection *fi = svc.mutable_fault_injection();
  fi->mutable_abort()->set_percent(12.3456);
  fi->mutable_abort()->set_error("ETIMEDOUT");
  fi->mutable_sources()->add_namespaces("demo");
  fi->mutable_sources()->add_namespaces("ops");
  (*fi->mutable_sources()->mutable_match_labels())["app"] = "client";
  (*fi->mutable_sources()->mutable_match_labels())["tier"] = "";
  svc.mutable_upstream_connect()->set_timeout_ms(2000);
  svc.mutable_upstream_connect()->set_retries(0);
  return svc;
}

// The errors of base() with its service changed by `change`.
template <typename Change>
Errors errors_with(Change change) {
  v1::Snapshot s = base();
  change(*s.mutable_services(0));
  return validate(s);
}

Errors one(const std::string &path_and_what) {
  return Errors{R"(service "demo/web": )" + path_and_what};
}

TEST(ResilienceValidateTest, EveryFieldSetIsValid) {
  v1::Snapshot s = base();
  *s.mutable_services(0) = full_service();
  EXPECT_EQ(validate(s), Errors{});
}

TEST(ResilienceValidateTest, LeastConnectionsIsAccepted) {
  EXPECT_EQ(
      errors_with([](v1::Service &svc) { svc.set_lb_policy(v1::LB_POLICY_LEAST_CONNECTIONS); }),
      Errors{});
}

// 0 (or unset) is the default, so empty messages are valid.
TEST(ResilienceValidateTest, EmptySettingsAreTheDefaults) {
  EXPECT_EQ(errors_with([](v1::Service &svc) {
              svc.mutable_circuit_breaker();
              svc.mutable_outlier_detection();
              svc.mutable_upstream_connect();
            }),
            Errors{});
}

TEST(ResilienceValidateTest, CircuitBreakerRanges) {
  EXPECT_EQ(errors_with([](v1::Service &svc) {
              svc.mutable_circuit_breaker()->set_max_connections(1000000);
              svc.mutable_circuit_breaker()->set_max_connections_per_backend(1000000);
            }),
            Errors{});
  EXPECT_EQ(
      errors_with([](v1::Service &svc) {
        svc.mutable_circuit_breaker()->set_max_connections(1000001);
        svc.mutable_circuit_breaker()->set_max_connections_per_backend(4294967295);
      }),
      (Errors{
          R"(service "demo/web": spec.circuitBreaker.maxConnections: must be between 0 and 1000000, got 1000001)",
          R"(service "demo/web": spec.circuitBreaker.maxConnectionsPerBackend: must be between 0 and 1000000, got 4294967295)",
      }));
}

TEST(ResilienceValidateTest, OutlierDetectionRanges) {
  EXPECT_EQ(errors_with([](v1::Service &svc) {
              svc.mutable_outlier_detection()->set_consecutive_failures(1001);
            }),
            one("spec.outlierDetection.consecutiveFailures: must be between 1 and 1000, got 1001"));
  EXPECT_EQ(
      errors_with([](v1::Service &svc) {
        svc.mutable_outlier_detection()->set_base_ejection_time_ms(86400001);
        svc.mutable_outlier_detection()->set_max_ejection_time_ms(90000000);
      }),
      (Errors{
          R"(service "demo/web": spec.outlierDetection.baseEjectionTime: must be between 1ms and 24h, got 86400001ms)",
          R"(service "demo/web": spec.outlierDetection.maxEjectionTime: must be between 1ms and 24h, got 25h)",
      }));
  EXPECT_EQ(errors_with([](v1::Service &svc) {
              svc.mutable_outlier_detection()->set_max_ejection_percent(101);
            }),
            one("spec.outlierDetection.maxEjectionPercent: must be between 0 and 100, got 101"));
  EXPECT_EQ(errors_with([](v1::Service &svc) {
              svc.mutable_outlier_detection()->set_consecutive_failures(1000);
              svc.mutable_outlier_detection()->set_base_ejection_time_ms(86400000);
              svc.mutable_outlier_detection()->set_max_ejection_time_ms(86400000);
              svc.mutable_outlier_detection()->set_max_ejection_percent(100);
            }),
            Errors{});
}

TEST(ResilienceValidateTest, MaxEjectionTimeAtLeastTheBase) {
  const auto with = [](uint32_t base_ms, uint32_t max_ms) {
    return errors_with([&](v1::Service &svc) {
      svc.mutable_outlier_detection()->set_base_ejection_time_ms(base_ms);
      svc.mutable_outlier_detection()->set_max_ejection_time_ms(max_ms);
    });
  };
  EXPECT_EQ(with(60000, 60000), Errors{});
  EXPECT_EQ(with(60000, 59999),
            one("spec.outlierDetection.maxEjectionTime: must be at least baseEjectionTime (1m), "
                "got 59999ms"));
  // Compared with the defaults where a value is 0: base 30s, max 5m.
  EXPECT_EQ(with(0, 30000), Errors{});
  EXPECT_EQ(with(0, 29999),
            one("spec.outlierDetection.maxEjectionTime: must be at least baseEjectionTime (30s, "
                "its default), got 29999ms"));
  EXPECT_EQ(with(300000, 0), Errors{});
  EXPECT_EQ(with(300001, 0), one("spec.outlierDetection.maxEjectionTime: the default, 5m, is below "
                                 "baseEjectionTime (300001ms); set it to at least 300001ms"));
}

TEST(ResilienceValidateTest, RateLimitRanges) {
  EXPECT_EQ(errors_with([](v1::Service &svc) { svc.mutable_rate_limit(); }),
            one("spec.rateLimit.connectionsPerSecond: required"));
  EXPECT_EQ(
      errors_with([](v1::Service &svc) {
        svc.mutable_rate_limit()->set_connections_per_second(1000001);
        svc.mutable_rate_limit()->set_burst(1000001);
      }),
      (Errors{
          R"(service "demo/web": spec.rateLimit.connectionsPerSecond: must be between 1 and 1000000, got 1000001)",
          R"(service "demo/web": spec.rateLimit.burst: must be between 1 and 1000000, got 1000001)",
      }));
  EXPECT_EQ(errors_with(
                [](v1::Service &svc) { svc.mutable_rate_limit()->set_connections_per_second(1); }),
            Errors{});
  EXPECT_EQ(errors_with([](v1::Service &svc) {
              svc.mutable_rate_limit()->set_connections_per_second(1000000);
              svc.mutable_rate_limit()->set_burst(1000000);
            }),
            Errors{});
}

TEST(ResilienceValidateTest, FaultInjectionNeedsAnAbort) {
  EXPECT_EQ(errors_with([](v1::Service &svc) {
              svc.mutable_fault_injection()->mutable_sources()->add_namespaces("demo");
            }),
            one("spec.faultInjection.abort: required"));
}

TEST(ResilienceValidateTest, FaultPercent) {
  const auto with = [](double percent) {
    return errors_with([&](v1::Service &svc) {
      svc.mutable_fault_injection()->mutable_abort()->set_percent(percent);
    });
  };
  for (double ok : {0.0001, 1.0, 12.5, 33.3333, 99.9999, 100.0})
    EXPECT_EQ(with(ok), Errors{}) << ok;
  EXPECT_EQ(with(0),
            one("spec.faultInjection.abort.percent: must be above 0 and at most 100, got 0"));
  EXPECT_EQ(with(-1),
            one("spec.faultInjection.abort.percent: must be above 0 and at most 100, got -1"));
  EXPECT_EQ(
      with(100.0001),
      one("spec.faultInjection.abort.percent: must be above 0 and at most 100, got 100.0001"));
  EXPECT_EQ(with(std::numeric_limits<double>::quiet_NaN()),
            one("spec.faultInjection.abort.percent: must be above 0 and at most 100, got nan"));
  EXPECT_EQ(with(std::numeric_limits<double>::infinity()),
            one("spec.faultInjection.abort.percent: must be above 0 and at most 100, got inf"));
  EXPECT_EQ(with(1e300), one("spec.faultInjection.abort.percent: must be above 0 and at most 100, "
                             "got 1e+300"));
  EXPECT_EQ(with(0.00005), one("spec.faultInjection.abort.percent: must have at most 4 decimals "
                               "(steps of 0.0001), got 0.00005"));
  EXPECT_EQ(with(12.34567), one("spec.faultInjection.abort.percent: must have at most 4 decimals "
                                "(steps of 0.0001), got 12.34567"));
}

TEST(ResilienceValidateTest, FaultError) {
  for (std::string_view name : kFaultErrors) {
    EXPECT_EQ(errors_with([&](v1::Service &svc) {
                svc.mutable_fault_injection()->mutable_abort()->set_percent(1);
                svc.mutable_fault_injection()->mutable_abort()->set_error(std::string(name));
              }),
              Errors{})
        << name;
  }
  EXPECT_EQ(
      errors_with([](v1::Service &svc) {
        svc.mutable_fault_injection()->mutable_abort()->set_percent(1);
        svc.mutable_fault_injection()->mutable_abort()->set_error("EIO");
      }),
      one(R"(spec.faultInjection.abort.error: unknown error "EIO" (one of ECONNREFUSED, ECONNRESET, ETIMEDOUT, EHOSTUNREACH, ENETUNREACH, ECONNABORTED, EACCES, EPERM))"));
}

TEST(ResilienceValidateTest, FaultSources) {
  EXPECT_EQ(
      errors_with([](v1::Service &svc) {
        v1::FaultInjection *fi = svc.mutable_fault_injection();
        fi->mutable_abort()->set_percent(1);
        fi->mutable_sources()->add_namespaces("demo");
        fi->mutable_sources()->add_namespaces("");
        fi->mutable_sources()->add_namespaces("Ops");
        fi->mutable_sources()->add_namespaces("demo");
        (*fi->mutable_sources()->mutable_match_labels())["b/c/d"] = "x";
        (*fi->mutable_sources()->mutable_match_labels())["app"] = "-x";
      }),
      (Errors{
          R"(service "demo/web": spec.faultInjection.sources.namespaces[1]: must not be empty)",
          R"(service "demo/web": spec.faultInjection.sources.namespaces[2]: "Ops" is not a DNS-1123 label (lowercase letters, digits and '-', starting and ending with a letter or digit, at most 63 characters))",
          R"(service "demo/web": spec.faultInjection.sources.namespaces[3]: demo is listed twice (also spec.faultInjection.sources.namespaces[0]))",
          R"(service "demo/web": spec.faultInjection.sources.matchLabels.app: "-x" is not a label value (empty, or at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit))",
          R"(service "demo/web": spec.faultInjection.sources.matchLabels.b/c/d: "b/c/d" is not a label key (an optional DNS-1123 subdomain and '/', then at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit))",
      }));
}

TEST(ResilienceValidateTest, UpstreamConnectRanges) {
  EXPECT_EQ(
      errors_with([](v1::Service &svc) {
        svc.mutable_upstream_connect()->set_timeout_ms(600001);
        svc.mutable_upstream_connect()->set_retries(11);
      }),
      (Errors{
          R"(service "demo/web": spec.upstreamConnect.timeout: must be between 1ms and 10m, got 600001ms)",
          R"(service "demo/web": spec.upstreamConnect.retries: must be between 0 and 10, got 11)",
      }));
  EXPECT_EQ(errors_with([](v1::Service &svc) {
              svc.mutable_upstream_connect()->set_timeout_ms(600000);
              svc.mutable_upstream_connect()->set_retries(10);
            }),
            Errors{});
}

// The defaults the agent applies are the ones resources.proto documents.
TEST(ResilienceApiTest, Defaults) {
  EXPECT_EQ(kDefaultConsecutiveFailures, 5u);
  EXPECT_EQ(kDefaultBaseEjectionMs, 30000u);
  EXPECT_EQ(kDefaultMaxEjectionMs, 300000u);
  EXPECT_EQ(kDefaultMaxEjectionPercent, 10u);
  EXPECT_EQ(kDefaultUpstreamConnectTimeoutMs, 5000u);
  EXPECT_EQ(kDefaultUpstreamRetries, 2u);
}

TEST(ResilienceApiTest, FaultErrno) {
  EXPECT_EQ(fault_errno(""), ECONNREFUSED);
  EXPECT_EQ(fault_errno("ECONNREFUSED"), ECONNREFUSED);
  EXPECT_EQ(fault_errno("ECONNRESET"), ECONNRESET);
  EXPECT_EQ(fault_errno("ETIMEDOUT"), ETIMEDOUT);
  EXPECT_EQ(fault_errno("EHOSTUNREACH"), EHOSTUNREACH);
  EXPECT_EQ(fault_errno("ENETUNREACH"), ENETUNREACH);
  EXPECT_EQ(fault_errno("ECONNABORTED"), ECONNABORTED);
  EXPECT_EQ(fault_errno("EACCES"), EACCES);
  EXPECT_EQ(fault_errno("EPERM"), EPERM);
  EXPECT_EQ(fault_errno("econnreset"), std::nullopt);
  EXPECT_EQ(fault_errno("EIO"), std::nullopt);
  EXPECT_EQ(fault_errno(" ECONNRESET"), std::nullopt);
  for (std::string_view name : kFaultErrors) EXPECT_TRUE(fault_errno(name).has_value()) << name;
  EXPECT_EQ(kFaultErrors[0], "ECONNREFUSED");
}

TEST(ResilienceApiTest, FaultPercentPpm) {
  EXPECT_EQ(fault_percent_ppm(12.5), 125000u);
  EXPECT_EQ(fault_percent_ppm(100), 1000000u);
  EXPECT_EQ(fault_percent_ppm(0.0001), 1u);
  EXPECT_EQ(fault_percent_ppm(33.3333), 333333u);
  EXPECT_EQ(fault_percent_ppm(99.9999), 999999u);
  EXPECT_EQ(fault_percent_ppm(1), 10000u);
  // Rounded to the nearest part per million.
  EXPECT_EQ(fault_percent_ppm(0.00004), 0u);
  EXPECT_EQ(fault_percent_ppm(0.00006), 1u);
  // Clamped.
  EXPECT_EQ(fault_percent_ppm(0), 0u);
  EXPECT_EQ(fault_percent_ppm(-5), 0u);
  EXPECT_EQ(fault_percent_ppm(150), 1000000u);
  EXPECT_EQ(fault_percent_ppm(std::numeric_limits<double>::quiet_NaN()), 0u);
  EXPECT_EQ(fault_percent_ppm(std::numeric_limits<double>::infinity()), 1000000u);
  // Every valid percent converts exactly: n / 10000 % is n ppm.
  for (uint32_t n = 1; n <= 1000000; n += 7) {
    EXPECT_EQ(fault_percent_ppm(double(n) / 10000), n) << n;
  }
}

// meshcp stores each resource as protobuf JSON (controlplane/store.cpp: MessageToJsonString with
// whitespace, JsonStringToMessage with default options). Every new field, and the presence of the
// optional ones set to 0, must come back.
TEST(ResilienceStoreTest, JsonRoundTripKeepsEveryField) {
  v1::Resource resource;
  *resource.mutable_service() = full_service();
  google::protobuf::util::JsonPrintOptions print;
  print.add_whitespace = true;
  std::string json;
  ASSERT_TRUE(google::protobuf::util::MessageToJsonString(resource, &json, print).ok());
  EXPECT_NE(json.find("\"maxEjectionPercent\": 0"), std::string::npos) << json;
  EXPECT_NE(json.find("\"retries\": 0"), std::string::npos) << json;
  EXPECT_NE(json.find("\"percent\": 12.3456"), std::string::npos) << json;

  v1::Resource back;
  google::protobuf::util::JsonParseOptions parse;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(json, &back, parse).ok());
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(resource, back))
      << back.DebugString();
  EXPECT_TRUE(back.service().outlier_detection().has_max_ejection_percent());
  EXPECT_TRUE(back.service().upstream_connect().has_retries());
  EXPECT_EQ(content_version(back), content_version(resource));

  // Unset optional fields stay unset.
  resource.mutable_service()->mutable_outlier_detection()->clear_max_ejection_percent();
  resource.mutable_service()->mutable_upstream_connect()->clear_retries();
  std::string unset_json;  // MessageToJsonString appends
  ASSERT_TRUE(google::protobuf::util::MessageToJsonString(resource, &unset_json, print).ok());
  back.Clear();
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(unset_json, &back, parse).ok());
  EXPECT_FALSE(back.service().outlier_detection().has_max_ejection_percent());
  EXPECT_FALSE(back.service().upstream_connect().has_retries());
}

}  // namespace
}  // namespace sockmesh::resources
