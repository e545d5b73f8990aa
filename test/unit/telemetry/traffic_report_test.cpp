// The traffic report from the kernel's per-tuple counters (agent/telemetry/traffic_counters.h):
// the sampling threshold the kernel compares its draws with, and the named, ordered pairs the
// admin API, `meshctl stats` and the Prometheus endpoint read. Reading the real map is the lab
// test's (test/lab/lb/telemetry_lab_test.cpp).
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "names_fixture.h"
#include "telemetry/traffic_counters.h"

namespace sockmesh::telemetry {
namespace {

// ---- sample_below ----

TEST(TrafficSampleBelow, Boundaries) {
  EXPECT_EQ(sample_below(0), 0u);
  EXPECT_EQ(sample_below(0.5), 0x80000000u);
  EXPECT_EQ(sample_below(1), 0xffffffffu);
  EXPECT_EQ(sample_below(0.25), 0x40000000u);
  EXPECT_EQ(sample_below(0.01), 42949672u);  // floor(0.01 * 2^32)
}

TEST(TrafficSampleBelow, OutOfRangeIsClamped) {
  EXPECT_EQ(sample_below(-0.5), 0u);
  EXPECT_EQ(sample_below(std::nan("")), 0u);
  EXPECT_EQ(sample_below(1.5), 0xffffffffu);
  EXPECT_EQ(sample_below(INFINITY), 0xffffffffu);
  EXPECT_EQ(sample_below(-INFINITY), 0u);
}

TEST(TrafficSampleBelow, JustBelowOneStaysBelowAll) {
  EXPECT_EQ(sample_below(1 - 1.0 / 4294967296.0 * 2), 0xfffffffeu);
  EXPECT_EQ(sample_below(0.999), uint32_t(std::floor(0.999 * 4294967296.0)));
}

// ---- fill_report ----

using testing::names;
using testing::tcp_key;

TrafficTuple tuple4(const char *vip, uint16_t vip_port, const char *backend, uint16_t backend_port,
                    uint32_t src, uint32_t dst) {
  TrafficTuple t;
  t.key = tcp_key(AF_INET, vip, vip_port, backend, backend_port, src, dst);
  return t;
}

TEST(TrafficReport, NamesAndEveryCounterOfAVipTuple) {
  TrafficTuple t = tuple4("10.96.0.10", 80, "10.78.2.10", 8080, 3, 4);
  t.value = {.balanced = 11,
             .captured = 12,
             .no_backend = 13,
             .denied = 14,
             .opened = 15,
             .failed = 16,
             .closed = 10,
             .reset = 2,
             .bytes_sent = 1000,
             .bytes_received = 2000,
             .fastpath_bytes_sent = 300,
             .fastpath_bytes_received = 400,
             .retransmits = 17,
             .srtt_samples = 18,
             .srtt_us_sum = 19000};
  v1::TrafficReport report;
  fill_report({t}, names(), &report);
  ASSERT_EQ(report.pairs_size(), 1);
  const auto &p = report.pairs(0);
  EXPECT_EQ(p.service(), "demo/server");
  EXPECT_EQ(p.vip(), "10.96.0.10:80/tcp");
  EXPECT_EQ(p.backend(), "10.78.2.10:8080");
  EXPECT_EQ(p.source_workload(), "demo/client");
  EXPECT_EQ(p.source_principal(), "spiffe://cluster.local/ns/demo/sa/client");
  EXPECT_EQ(p.destination_workload(), "demo/server");
  EXPECT_EQ(p.destination_principal(), "spiffe://cluster.local/ns/demo/sa/server");
  EXPECT_EQ(p.balanced(), 11u);
  EXPECT_EQ(p.captured(), 12u);
  EXPECT_EQ(p.no_backend(), 13u);
  EXPECT_EQ(p.denied(), 14u);
  EXPECT_EQ(p.opened(), 15u);
  EXPECT_EQ(p.failed(), 16u);
  EXPECT_EQ(p.closed(), 10u);
  EXPECT_EQ(p.active(), 5u);  // opened - closed
  EXPECT_EQ(p.reset(), 2u);
  EXPECT_EQ(p.bytes_sent(), 1000u);
  EXPECT_EQ(p.bytes_received(), 2000u);
  EXPECT_EQ(p.fastpath_bytes_sent(), 300u);
  EXPECT_EQ(p.fastpath_bytes_received(), 400u);
  EXPECT_EQ(p.retransmits(), 17u);
  EXPECT_EQ(p.srtt_samples(), 18u);
  EXPECT_EQ(p.srtt_us_sum(), 19000u);
  // fill_report only adds pairs.
  EXPECT_EQ(report.unix_ms(), 0);
  EXPECT_EQ(report.untracked(), 0u);
  EXPECT_FALSE(report.has_access_log());
}

TEST(TrafficReport, DirectConnectHasNoServiceOrVip) {
  const TrafficTuple t = tuple4(nullptr, 0, "10.78.2.10", 8080, 3, 4);
  v1::TrafficReport report;
  fill_report({t}, names(), &report);
  ASSERT_EQ(report.pairs_size(), 1);
  EXPECT_EQ(report.pairs(0).service(), "");
  EXPECT_EQ(report.pairs(0).vip(), "");
  EXPECT_EQ(report.pairs(0).backend(), "10.78.2.10:8080");
}

TEST(TrafficReport, NoBackendHasAnEmptyBackend) {
  TrafficTuple t = tuple4("10.96.0.10", 80, nullptr, 0, 3, 0);
  t.value.no_backend = 4;
  v1::TrafficReport report;
  fill_report({t}, names(), &report);
  ASSERT_EQ(report.pairs_size(), 1);
  const auto &p = report.pairs(0);
  EXPECT_EQ(p.service(), "demo/server");
  EXPECT_EQ(p.vip(), "10.96.0.10:80/tcp");
  EXPECT_EQ(p.backend(), "");
  EXPECT_EQ(p.destination_workload(), "unknown");
  EXPECT_EQ(p.destination_principal(), "");
  EXPECT_EQ(p.no_backend(), 4u);
}

TEST(TrafficReport, UnknownNumbersAndZero) {
  // 7 and 8: numbers the agent has no name for; 0: no mesh workload.
  const std::vector<TrafficTuple> tuples = {tuple4(nullptr, 0, "10.78.2.10", 8080, 7, 8),
                                            tuple4(nullptr, 0, "10.78.2.10", 8080, 0, 0),
                                            tuple4(nullptr, 0, "10.78.2.10", 8080, 5, 3)};
  v1::TrafficReport report;
  fill_report(tuples, names(), &report);
  ASSERT_EQ(report.pairs_size(), 3);
  EXPECT_EQ(report.pairs(0).source_workload(), "#7");
  EXPECT_EQ(report.pairs(0).source_principal(), "");
  EXPECT_EQ(report.pairs(0).destination_workload(), "#8");
  EXPECT_EQ(report.pairs(0).destination_principal(), "");
  EXPECT_EQ(report.pairs(1).source_workload(), "unknown");
  EXPECT_EQ(report.pairs(1).source_principal(), "");
  EXPECT_EQ(report.pairs(1).destination_workload(), "unknown");
  EXPECT_EQ(report.pairs(1).destination_principal(), "");
  // A known source's principal does not leak into an unknown destination's, nor the reverse.
  EXPECT_EQ(report.pairs(2).source_workload(), "files/web");
  EXPECT_EQ(report.pairs(2).source_principal(), "");
  EXPECT_EQ(report.pairs(2).destination_workload(), "demo/client");
  EXPECT_EQ(report.pairs(2).destination_principal(), "spiffe://cluster.local/ns/demo/sa/client");

  fill_report({tuple4(nullptr, 0, "10.78.2.10", 8080, 3, 9)}, names(), &report);
  ASSERT_EQ(report.pairs_size(), 4);  // appended
  EXPECT_EQ(report.pairs(3).source_principal(), "spiffe://cluster.local/ns/demo/sa/client");
  EXPECT_EQ(report.pairs(3).destination_workload(), "#9");
  EXPECT_EQ(report.pairs(3).destination_principal(), "");
}

TEST(TrafficReport, AVipNoServiceIsKnownForIsUnknown) {
  const TrafficTuple t = tuple4("10.96.0.99", 443, "10.78.2.10", 8443, 3, 4);
  v1::TrafficReport report;
  fill_report({t}, names(), &report);
  ASSERT_EQ(report.pairs_size(), 1);
  EXPECT_EQ(report.pairs(0).service(), "unknown");
  EXPECT_EQ(report.pairs(0).vip(), "10.96.0.99:443/tcp");
  // The key form includes the port and protocol: the same address on another port is another VIP.
  v1::TrafficReport other;
  fill_report({tuple4("10.96.0.10", 81, "10.78.2.10", 8080, 3, 4)}, names(), &other);
  EXPECT_EQ(other.pairs(0).service(), "unknown");
  EXPECT_EQ(other.pairs(0).vip(), "10.96.0.10:81/tcp");
}

TEST(TrafficReport, Ipv6) {
  TrafficTuple t;
  t.key = tcp_key(AF_INET6, "fd00:96::10", 80, "fd00:78:2::10", 8080, 3, 4);
  TrafficTuple direct = t;
  for (auto &w : direct.key.vip) w = 0;
  direct.key.vip_port = 0;
  v1::TrafficReport report;
  fill_report({t, direct}, names(), &report);
  ASSERT_EQ(report.pairs_size(), 2);
  EXPECT_EQ(report.pairs(0).service(), "demo/server6");
  EXPECT_EQ(report.pairs(0).vip(), "[fd00:96::10]:80/tcp");
  EXPECT_EQ(report.pairs(0).backend(), "[fd00:78:2::10]:8080");
  EXPECT_EQ(report.pairs(1).service(), "");
  EXPECT_EQ(report.pairs(1).vip(), "");
  EXPECT_EQ(report.pairs(1).backend(), "[fd00:78:2::10]:8080");
}

TEST(TrafficReport, ActiveIsOpenedMinusClosedNeverNegative) {
  TrafficTuple a = tuple4(nullptr, 0, "10.78.2.10", 8080, 3, 4);
  a.value.opened = 3;
  a.value.closed = 3;
  TrafficTuple b = a;
  b.value.opened = 2;
  b.value.closed = 5;  // cannot happen with the kernel's sums; must not wrap
  TrafficTuple c = a;
  c.value.opened = 9;
  c.value.closed = 0;
  v1::TrafficReport report;
  fill_report({a, b, c}, names(), &report);
  ASSERT_EQ(report.pairs_size(), 3);
  EXPECT_EQ(report.pairs(0).active(), 0u);
  EXPECT_EQ(report.pairs(1).active(), 0u);
  EXPECT_EQ(report.pairs(2).active(), 9u);
}

TEST(TrafficReport, BusiestFirstByBytesThenConnects) {
  // Named by backend port so the order reads plainly.
  auto make = [](uint16_t port, uint64_t sent, uint64_t received, uint64_t balanced,
                 uint64_t captured) {
    TrafficTuple t = tuple4("10.96.0.10", 80, "10.78.2.10", port, 3, 4);
    t.value.bytes_sent = sent;
    t.value.bytes_received = received;
    t.value.balanced = balanced;
    t.value.captured = captured;
    return t;
  };
  const std::vector<TrafficTuple> tuples = {
      make(1, 0, 0, 1, 0),    // idle, 1 connect
      make(2, 100, 0, 0, 0),  // 100 bytes
      make(3, 0, 0, 0, 5),    // idle, 5 connects (captured)
      make(4, 40, 70, 0, 0),  // 110 bytes: sent and received together
      make(5, 0, 100, 9, 0),  // 100 bytes, 9 connects: before port 2
      make(6, 0, 0, 0, 0),    // nothing
      make(7, 0, 0, 2, 2),    // idle, 4 connects
      make(8, 100, 0, 0, 0),  // ties with port 2: keeps its place after it
  };
  v1::TrafficReport report;
  fill_report(tuples, names(), &report);
  std::vector<std::string> order;
  for (const auto &p : report.pairs()) order.push_back(p.backend());
  EXPECT_EQ(order, (std::vector<std::string>{"10.78.2.10:4", "10.78.2.10:5", "10.78.2.10:2",
                                             "10.78.2.10:8", "10.78.2.10:3", "10.78.2.10:7",
                                             "10.78.2.10:1", "10.78.2.10:6"}));
}

TEST(TrafficReport, EmptyInputAddsNothing) {
  v1::TrafficReport report;
  fill_report({}, names(), &report);
  EXPECT_EQ(report.pairs_size(), 0);
}

}  // namespace
}  // namespace sockmesh::telemetry
