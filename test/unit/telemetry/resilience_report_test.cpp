// The resilience report: which services and backends it lists (from a desired state), and what it
// reads from sm_service_states and sm_backend_states, on maps of the kernel's layouts that the test
// creates (needs root for those; the selection needs nothing).
#include "telemetry/resilience_report.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "sockmesh/lb_maps.h"
#include "sockmesh/resilience.h"

namespace sockmesh::telemetry {
namespace {

using reconcile::DesiredBackend;
using reconcile::DesiredService;
using reconcile::DesiredState;
using reconcile::parse_ip;
using reconcile::ServiceKey;

constexpr uint64_t kWebId = 0x9f0e11b2c4d5a6e8ull;
constexpr uint64_t kS = 1000000000ull;

DesiredBackend backend(const char *addr, uint16_t port, uint32_t weight, const char *workload) {
  DesiredBackend b;
  b.addr = parse_ip(addr);
  b.port = port;
  b.weight = weight;
  b.workload = workload;
  return b;
}

DesiredService web(bool v6) {
  DesiredService s;
  s.service = "demo/web";
  s.policy = SM_LB_LEAST_CONN;
  if (v6) {
    s.backends = {backend("fd00:78:1::10", 8080, 1, "demo/web-v1-a")};
  } else {
    s.backends = {backend("10.78.1.10", 8080, 1, "demo/web-v1-a"),
                  backend("10.78.2.11", 8080, 3, "demo/web-v2-a"),
                  backend("10.78.2.12", 8080, 3, "demo/web-v2-b")};
  }
  auto &r = s.resilience;
  r.service_id = kWebId;
  r.max_connections = 100;
  r.max_backend_connections = 10;
  r.consecutive_failures = 5;
  r.max_ejection_percent = 10;
  r.base_ejection_ns = 30 * kS;
  r.max_ejection_ns = 300 * kS;
  r.rate_interval_ns = kS / 3;  // 3 per second: 333333333 ns, not exact
  r.rate_burst_ns = 19 * r.rate_interval_ns;
  r.rate_per_source = true;
  r.fault_ppm = 125000;
  r.fault_errno = ECONNRESET;
  r.fault_scoped = true;
  return s;
}

// demo/web on two IPv4 ports and one IPv6 VIP; shop/dns on UDP only; demo/api on TCP, untouched
// settings; zeta/web, another "web".
DesiredState desired() {
  DesiredState d;
  d[{parse_ip("10.96.0.10"), 80, IPPROTO_TCP}] = web(false);
  d[{parse_ip("10.96.0.10"), 8080, IPPROTO_TCP}] = web(false);
  d[{parse_ip("fd00:96::a"), 80, IPPROTO_TCP}] = web(true);
  DesiredService dns;
  dns.service = "shop/dns";
  dns.backends = {backend("10.78.1.53", 53, 1, "shop/dns-a")};
  d[{parse_ip("10.96.0.53"), 53, IPPROTO_UDP}] = dns;
  DesiredService api;
  api.service = "demo/api";
  api.backends = {backend("10.78.1.20", 9000, 1, "demo/api-a")};
  api.resilience.service_id = 7;
  d[{parse_ip("10.96.0.11"), 9000, IPPROTO_TCP}] = api;
  DesiredService zeta = web(false);
  zeta.service = "zeta/web";
  zeta.resilience.service_id = 8;
  d[{parse_ip("10.96.0.12"), 80, IPPROTO_TCP}] = zeta;
  return d;
}

std::vector<std::string> addresses(const ResilienceService &s) {
  std::vector<std::string> out;
  for (const auto &b : s.backends) out.push_back(reconcile::format_endpoint(b.addr, b.port));
  return out;
}

TEST(ResilienceSelection, EveryTrackedServiceOnceWithEachBackendOnce) {
  const auto s = select_resilience(desired(), "", "");
  ASSERT_EQ(s.tracked.size(), 3u);
  EXPECT_EQ(s.tracked[0].service, "demo/api");
  EXPECT_EQ(s.tracked[1].service, "demo/web");
  EXPECT_EQ(s.tracked[2].service, "zeta/web");
  // The two IPv4 VIPs share their backends: listed once, IPv4 first.
  EXPECT_EQ(addresses(s.tracked[1]),
            (std::vector<std::string>{"10.78.1.10:8080", "10.78.2.11:8080", "10.78.2.12:8080",
                                      "[fd00:78:1::10]:8080"}));
  EXPECT_EQ(s.tracked[1].settings.service_id, kWebId);
  EXPECT_EQ(s.tracked[1].policy, uint32_t(SM_LB_LEAST_CONN));
  EXPECT_EQ(s.untracked, std::vector<std::string>{"shop/dns"});
}

TEST(ResilienceSelection, FilterByNameInOneOrAnyNamespace) {
  auto s = select_resilience(desired(), "demo", "web");
  ASSERT_EQ(s.tracked.size(), 1u);
  EXPECT_EQ(s.tracked[0].service, "demo/web");
  EXPECT_TRUE(s.untracked.empty());
  s = select_resilience(desired(), "", "web");
  ASSERT_EQ(s.tracked.size(), 2u);
  EXPECT_EQ(s.tracked[1].service, "zeta/web");
  // Known, but UDP only: no error, listed as untracked.
  s = select_resilience(desired(), "shop", "dns");
  EXPECT_TRUE(s.tracked.empty());
  EXPECT_EQ(s.untracked, std::vector<std::string>{"shop/dns"});
}

TEST(ResilienceSelection, UnknownServiceIsOutOfRange) {
  try {
    select_resilience(desired(), "shop", "web");
    FAIL() << "no exception";
  } catch (const std::out_of_range &e) {
    EXPECT_STREQ(e.what(), "service \"shop/web\" not found");
  }
  try {
    select_resilience(desired(), "", "nope");
    FAIL() << "no exception";
  } catch (const std::out_of_range &e) {
    EXPECT_STREQ(e.what(), "service \"nope\" (any namespace) not found");
  }
  // Nothing selected without a filter is no error.
  EXPECT_TRUE(select_resilience({}, "", "").tracked.empty());
}

sm_backend_key key_of(uint64_t service, const char *addr, uint16_t port) {
  sm_backend_key key{};
  key.service = service;
  const auto ip = parse_ip(addr);
  std::memcpy(key.addr, ip.bytes.data(), ip.family == AF_INET ? 4 : 16);
  key.port = htons(port);
  key.family = ip.family == AF_INET ? SM_AF_INET : SM_AF_INET6;
  return key;
}

class ResilienceReportTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root (BPF maps)";
    services_ = bpf_map_create(BPF_MAP_TYPE_HASH, "sm_service_states", sizeof(uint64_t),
                               sizeof(sm_service_state), 64, nullptr);
    backends_ = bpf_map_create(BPF_MAP_TYPE_HASH, "sm_backend_states", sizeof(sm_backend_key),
                               sizeof(sm_backend_state), 64, nullptr);
    ASSERT_GE(services_, 0) << std::strerror(errno);
    ASSERT_GE(backends_, 0) << std::strerror(errno);
  }
  void TearDown() override {
    if (services_ >= 0) close(services_);
    if (backends_ >= 0) close(backends_);
  }

  void put(uint64_t id, const sm_service_state &st) {
    ASSERT_EQ(bpf_map_update_elem(services_, &id, &st, BPF_ANY), 0) << std::strerror(errno);
  }
  void put(const sm_backend_key &key, const sm_backend_state &st) {
    ASSERT_EQ(bpf_map_update_elem(backends_, &key, &st, BPF_ANY), 0) << std::strerror(errno);
  }

  // The kernel's clock at 1000 s; the wall clock at 2024-05-01 12:00:00 UTC.
  const ClockPair now_{.monotonic_ns = 1000 * kS, .realtime_ns = 1'714'564'800'000'000'000};
  int services_ = -1;
  int backends_ = -1;
};

TEST_F(ResilienceReportTest, ReadsServiceAndBackendStates) {
  sm_service_state svc{};
  svc.active = 12;
  svc.overflows = 3;
  svc.no_backend = 1;
  svc.rate_limited = 41;
  svc.faults = 7;
  put(kWebId, svc);
  sm_backend_state a{};  // busy and healthy
  a.active = 4;
  a.connects = 1203;
  put(key_of(kWebId, "10.78.1.10", 8080), a);
  sm_backend_state b{};  // ejected for 23.4 s more, its second ejection in a row
  b.connects = 17;
  b.failures = 9;
  b.ejected_until = now_.monotonic_ns + 23'400'000'000ull;
  b.ejections = 2;
  b.ejections_total = 2;
  b.overflows = 1;
  put(key_of(kWebId, "10.78.2.11", 8080), b);
  sm_backend_state v6{};  // back since 5 s, one failure since; more releases than charges
  v6.active = -1;
  v6.consecutive = 1;
  v6.failures = 6;
  v6.ejected_until = now_.monotonic_ns - 5 * kS;
  v6.ejections = 1;
  v6.ejections_total = 1;
  put(key_of(kWebId, "fd00:78:1::10", 8080), v6);
  // 10.78.2.12 has no entry.

  const auto report =
      resilience_report(select_resilience(desired(), "demo", "web"), services_, backends_, now_);
  EXPECT_EQ(report.unix_ms(), 1'714'564'800'000);
  ASSERT_EQ(report.services_size(), 1);
  const auto &s = report.services(0);
  EXPECT_EQ(s.namespace_(), "demo");
  EXPECT_EQ(s.name(), "web");
  EXPECT_EQ(s.service_id(), "9f0e11b2c4d5a6e8");

  const auto &set = s.settings();
  EXPECT_EQ(set.lb_policy(), v1::LB_POLICY_LEAST_CONNECTIONS);
  EXPECT_EQ(set.max_connections(), 100u);
  EXPECT_EQ(set.max_connections_per_backend(), 10u);
  EXPECT_EQ(set.consecutive_failures(), 5u);
  EXPECT_EQ(set.base_ejection_ms(), 30000u);
  EXPECT_EQ(set.max_ejection_ms(), 300000u);
  EXPECT_EQ(set.max_ejection_percent(), 10u);
  EXPECT_EQ(set.rate_per_second(), 3u);
  EXPECT_EQ(set.rate_burst(), 20u);
  EXPECT_TRUE(set.rate_per_source());
  EXPECT_DOUBLE_EQ(set.fault_percent(), 12.5);
  EXPECT_EQ(set.fault_error(), "ECONNRESET");
  EXPECT_TRUE(set.fault_scoped());

  EXPECT_TRUE(s.state().tracked());
  EXPECT_EQ(s.state().active_connections(), 12u);
  EXPECT_EQ(s.state().overflows(), 3u);
  EXPECT_EQ(s.state().no_backend(), 1u);
  EXPECT_EQ(s.state().rate_limited(), 41u);
  EXPECT_EQ(s.state().faults(), 7u);

  ASSERT_EQ(s.backends_size(), 4);
  const auto &ba = s.backends(0);
  EXPECT_EQ(ba.address(), "10.78.1.10:8080");
  EXPECT_EQ(ba.workload(), "demo/web-v1-a");
  EXPECT_EQ(ba.weight(), 1u);
  EXPECT_TRUE(ba.tracked());
  EXPECT_EQ(ba.active_connections(), 4u);
  EXPECT_EQ(ba.connects(), 1203u);
  EXPECT_FALSE(ba.ejected());
  EXPECT_EQ(ba.ejected_until_unix_ms(), 0);
  EXPECT_EQ(ba.ejection_remaining_ms(), 0);

  const auto &bb = s.backends(1);
  EXPECT_EQ(bb.address(), "10.78.2.11:8080");
  EXPECT_EQ(bb.weight(), 3u);
  EXPECT_TRUE(bb.ejected());
  EXPECT_EQ(bb.ejected_until_unix_ms(), 1'714'564'823'400);
  EXPECT_EQ(bb.ejection_remaining_ms(), 23400);
  EXPECT_EQ(bb.ejections_in_a_row(), 2u);
  EXPECT_EQ(bb.ejections_total(), 2u);
  EXPECT_EQ(bb.failures(), 9u);
  EXPECT_EQ(bb.overflows(), 1u);

  const auto &bc = s.backends(2);
  EXPECT_EQ(bc.address(), "10.78.2.12:8080");
  EXPECT_FALSE(bc.tracked());
  EXPECT_EQ(bc.connects(), 0u);

  const auto &bd = s.backends(3);
  EXPECT_EQ(bd.address(), "[fd00:78:1::10]:8080");
  EXPECT_TRUE(bd.tracked());
  EXPECT_EQ(bd.active_connections(), 0u);  // clamped
  EXPECT_FALSE(bd.ejected());
  EXPECT_EQ(bd.ejected_until_unix_ms(), 1'714'564'795'000);  // when it came back
  EXPECT_EQ(bd.ejection_remaining_ms(), 0);
  EXPECT_EQ(bd.consecutive_failures(), 1u);
  EXPECT_EQ(bd.ejections_in_a_row(), 1u);
}

TEST_F(ResilienceReportTest, MissingEntriesAreUntrackedAndSettingsOffAreZero) {
  const auto report =
      resilience_report(select_resilience(desired(), "demo", "api"), services_, backends_, now_);
  ASSERT_EQ(report.services_size(), 1);
  const auto &s = report.services(0);
  EXPECT_EQ(s.service_id(), "0000000000000007");
  EXPECT_FALSE(s.state().tracked());
  EXPECT_EQ(s.state().active_connections(), 0u);
  ASSERT_EQ(s.backends_size(), 1);
  EXPECT_FALSE(s.backends(0).tracked());
  const auto &set = s.settings();
  EXPECT_EQ(set.lb_policy(), v1::LB_POLICY_RANDOM);
  EXPECT_EQ(set.max_connections(), 0u);
  EXPECT_EQ(set.consecutive_failures(), 0u);
  EXPECT_EQ(set.rate_per_second(), 0u);
  EXPECT_EQ(set.rate_burst(), 0u);
  EXPECT_EQ(set.fault_percent(), 0);
  EXPECT_EQ(set.fault_error(), "");
}

TEST_F(ResilienceReportTest, AMapThatCannotBeReadIsAnError) {
  EXPECT_THROW(resilience_report(select_resilience(desired(), "demo", "api"), -1, backends_, now_),
               std::runtime_error);
  // Nothing selected: no map is read.
  EXPECT_EQ(resilience_report({}, -1, -1, now_).services_size(), 0);
}

}  // namespace
}  // namespace sockmesh::telemetry
