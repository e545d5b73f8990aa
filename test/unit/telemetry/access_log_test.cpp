// The access log's text (agent/telemetry/access_log.h): one JSON line per connection event, with
// the agent's names, and the checks of its options. The file and the ring buffer are the lab
// test's (test/lab/lb/telemetry_lab_test.cpp).
#include "telemetry/access_log.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>

#include "names_fixture.h"

namespace sockmesh::telemetry {
namespace {

// 2024-05-01T12:00:00Z is Unix 1714564800; the kernel's clock reads 5 s then, and the event is
// 123456789 ns later.
constexpr int64_t kUnixOffsetNs = 1714564800ll * 1000000000 - 5ll * 1000000000;
constexpr uint64_t kEventNs = 5ull * 1000000000 + 123456789;

using testing::ip4;
using testing::ip6;
using testing::names;
using testing::tcp_key;

// demo/client 10.78.1.5:43210 -> VIP 10.96.0.10:80 -> demo/server 10.78.2.10:8080.
sm_conn_event open4() {
  sm_conn_event e{};
  e.time_ns = kEventNs;
  e.cookie = 12345;
  e.key = tcp_key(AF_INET, "10.96.0.10", 80, "10.78.2.10", 8080, 3, 4);
  ip4(e.src_addr, "10.78.1.5");
  e.src_port = htons(43210);
  e.kind = SM_EVENT_OPEN;
  e.reason = SM_CLOSE_NONE;
  e.flags = SM_CONN_SAMPLED | SM_CONN_ESTABLISHED;
  return e;
}

// An unknown process [fd00:78:1::5]:50000 straight to [fd00:78:2::9]:9000, a workload number the
// agent does not know, through the tunnel; reset after 1.5 ms.
sm_conn_event close6() {
  sm_conn_event e{};
  e.time_ns = kEventNs;
  e.duration_ns = 1500000;
  e.cookie = std::numeric_limits<uint64_t>::max();
  e.bytes_sent = 1000;
  e.bytes_received = 123456789012ull;
  e.key = tcp_key(AF_INET6, nullptr, 0, "fd00:78:2::9", 9000, 0, 9);
  ip6(e.src_addr, "fd00:78:1::5");
  e.src_port = htons(50000);
  e.kind = SM_EVENT_CLOSE;
  e.reason = SM_CLOSE_RESET;
  e.srtt_us = 250;
  e.retransmits = 2;
  e.flags = SM_CONN_SAMPLED | SM_CONN_ESTABLISHED | SM_CONN_CAPTURED;
  return e;
}

nlohmann::json parsed(const std::string &line) {
  EXPECT_EQ(line.find('\n'), std::string::npos) << line;
  return nlohmann::json::parse(line);  // throws on invalid JSON
}

// ---- event_json ----

TEST(AccessLogJson, OpenIpv4ThroughAVip) {
  const std::string line = event_json(open4(), names(), kUnixOffsetNs);
  EXPECT_EQ(line, R"({"time":"2024-05-01T12:00:00.123456Z","event":"open","connection":12345,)"
                  R"("source":{"address":"10.78.1.5:43210","workload":"demo/client",)"
                  R"("principal":"spiffe://cluster.local/ns/demo/sa/client"},)"
                  R"("destination":{"service":"demo/server","vip":"10.96.0.10:80/tcp",)"
                  R"("address":"10.78.2.10:8080","workload":"demo/server",)"
                  R"("principal":"spiffe://cluster.local/ns/demo/sa/server"},"route":"direct"})");
  const auto j = parsed(line);
  EXPECT_EQ(j["event"], "open");
  EXPECT_EQ(j["connection"].get<uint64_t>(), 12345u);
  EXPECT_EQ(j["destination"]["service"], "demo/server");
  EXPECT_FALSE(j.contains("reason"));
  EXPECT_FALSE(j.contains("bytes_sent"));
}

TEST(AccessLogJson, CloseIpv6DirectUnknownWorkloadsThroughTheTunnel) {
  const std::string line = event_json(close6(), names(), kUnixOffsetNs);
  EXPECT_EQ(line,
            R"({"time":"2024-05-01T12:00:00.123456Z","event":"close","reason":"reset",)"
            R"("connection":18446744073709551615,)"
            R"("source":{"address":"[fd00:78:1::5]:50000","workload":"unknown","principal":""},)"
            R"("destination":{"service":"","vip":"","address":"[fd00:78:2::9]:9000",)"
            R"("workload":"#9","principal":""},"route":"tunnel",)"
            R"("bytes_sent":1000,"bytes_received":123456789012,"duration_ms":1.500,)"
            R"("srtt_us":250,"retransmits":2})");
  const auto j = parsed(line);
  EXPECT_EQ(j["connection"].get<uint64_t>(), std::numeric_limits<uint64_t>::max());
  EXPECT_EQ(j["bytes_received"].get<uint64_t>(), 123456789012ull);
  EXPECT_DOUBLE_EQ(j["duration_ms"].get<double>(), 1.5);
  EXPECT_EQ(j["route"], "tunnel");
}

TEST(AccessLogJson, CloseIpv4ThroughAVipInOrder) {
  sm_conn_event e = open4();
  e.kind = SM_EVENT_CLOSE;
  e.reason = SM_CLOSE_FIN;
  e.duration_ns = 2000000000ull + 1234567;  // 2001.234567 ms
  e.bytes_sent = 5;
  e.bytes_received = 7;
  e.srtt_us = 31;
  e.retransmits = 0;
  const std::string line = event_json(e, names(), kUnixOffsetNs);
  EXPECT_EQ(line, R"({"time":"2024-05-01T12:00:00.123456Z","event":"close","reason":"closed",)"
                  R"("connection":12345,)"
                  R"("source":{"address":"10.78.1.5:43210","workload":"demo/client",)"
                  R"("principal":"spiffe://cluster.local/ns/demo/sa/client"},)"
                  R"("destination":{"service":"demo/server","vip":"10.96.0.10:80/tcp",)"
                  R"("address":"10.78.2.10:8080","workload":"demo/server",)"
                  R"("principal":"spiffe://cluster.local/ns/demo/sa/server"},"route":"direct",)"
                  R"("bytes_sent":5,"bytes_received":7,"duration_ms":2001.235,"srtt_us":31,)"
                  R"("retransmits":0})");
  parsed(line);
}

TEST(AccessLogJson, OpenIpv6ThroughAVipWithAFileModeWorkload) {
  sm_conn_event e{};
  e.time_ns = kEventNs;
  e.cookie = 1;
  e.key = tcp_key(AF_INET6, "fd00:96::10", 80, "fd00:78:2::10", 8080, 5, 0);
  ip6(e.src_addr, "fd00:78:1::5");
  e.src_port = htons(1024);
  e.kind = SM_EVENT_OPEN;
  const std::string line = event_json(e, names(), kUnixOffsetNs);
  EXPECT_EQ(line,
            R"({"time":"2024-05-01T12:00:00.123456Z","event":"open","connection":1,)"
            R"("source":{"address":"[fd00:78:1::5]:1024","workload":"files/web","principal":""},)"
            R"("destination":{"service":"demo/server6","vip":"[fd00:96::10]:80/tcp",)"
            R"("address":"[fd00:78:2::10]:8080","workload":"unknown","principal":""},)"
            R"("route":"direct"})");
  parsed(line);
}

TEST(AccessLogJson, AVipNoServiceIsKnownForIsUnknown) {
  sm_conn_event e = open4();
  ip4(e.key.vip, "10.96.0.99");
  e.key.vip_port = htons(443);
  const auto j = parsed(event_json(e, names(), kUnixOffsetNs));
  EXPECT_EQ(j["destination"]["service"], "unknown");
  EXPECT_EQ(j["destination"]["vip"], "10.96.0.99:443/tcp");
  // Without any names at all: numbers and "unknown", never a missing field.
  const auto bare = parsed(event_json(open4(), Names{}, kUnixOffsetNs));
  EXPECT_EQ(bare["destination"]["service"], "unknown");
  EXPECT_EQ(bare["source"]["workload"], "#3");
  EXPECT_EQ(bare["source"]["principal"], "");
  EXPECT_EQ(bare["destination"]["workload"], "#4");
}

TEST(AccessLogJson, RefusedAtConnectHasNoBackendAddress) {
  sm_conn_event e = open4();
  e.kind = SM_EVENT_CLOSE;
  e.reason = SM_CLOSE_NO_BACKEND;
  std::memset(e.key.backend, 0, sizeof(e.key.backend));
  e.key.backend_port = 0;
  e.key.dst_workload = 0;
  e.flags = SM_CONN_SAMPLED;
  const std::string line = event_json(e, names(), kUnixOffsetNs);
  EXPECT_EQ(line, R"({"time":"2024-05-01T12:00:00.123456Z","event":"close","reason":"no_backend",)"
                  R"("connection":12345,)"
                  R"("source":{"address":"10.78.1.5:43210","workload":"demo/client",)"
                  R"("principal":"spiffe://cluster.local/ns/demo/sa/client"},)"
                  R"("destination":{"service":"demo/server","vip":"10.96.0.10:80/tcp",)"
                  R"("address":"","workload":"unknown","principal":""},"route":"direct",)"
                  R"("bytes_sent":0,"bytes_received":0,"duration_ms":0.000,"srtt_us":0,)"
                  R"("retransmits":0})");
  parsed(line);
}

TEST(AccessLogJson, UnknownSourceAddressIsEmpty) {
  sm_conn_event e = open4();
  std::memset(e.src_addr, 0, sizeof(e.src_addr));
  e.src_port = 0;
  EXPECT_EQ(parsed(event_json(e, names(), kUnixOffsetNs))["source"]["address"], "");
  // A zero address with a port is still shown.
  e.src_port = htons(7);
  EXPECT_EQ(parsed(event_json(e, names(), kUnixOffsetNs))["source"]["address"], "0.0.0.0:7");
}

TEST(AccessLogJson, EveryCloseReasonHasItsWord) {
  const std::pair<uint8_t, const char *> reasons[] = {
      {SM_CLOSE_FIN, "closed"},
      {SM_CLOSE_RESET, "reset"},
      {SM_CLOSE_CONNECT_FAILED, "connect_failed"},
      {SM_CLOSE_NO_BACKEND, "no_backend"},
      {SM_CLOSE_DENIED, "denied"},
      {SM_CLOSE_NONE, ""},
      {99, ""},
  };
  for (const auto &[reason, word] : reasons) {
    sm_conn_event e = close6();
    e.reason = reason;
    const std::string line = event_json(e, names(), kUnixOffsetNs);
    EXPECT_NE(line.find(std::string(R"("event":"close","reason":")") + word + "\""),
              std::string::npos)
        << line;
    EXPECT_EQ(parsed(line)["reason"], word);
  }
}

TEST(AccessLogJson, NamesAreEscaped) {
  Names n = names();
  const std::string weird = "we\"ird\\name\n\r\t\x01\x1f end/\x7f caf\xc3\xa9";
  n.workloads[3] = {weird, "spiffe://x/\"q\""};
  n.service_by_vip["10.96.0.10:80/tcp"] = "ns/svc\"1";
  const std::string line = event_json(open4(), n, kUnixOffsetNs);
  EXPECT_NE(line.find(R"("workload":"we\"ird\\name\n\r\t\u0001\u001f end/)"
                      "\x7f caf\xc3\xa9\""),
            std::string::npos)
      << line;
  EXPECT_NE(line.find(R"("principal":"spiffe://x/\"q\"")"), std::string::npos) << line;
  EXPECT_NE(line.find(R"("service":"ns/svc\"1")"), std::string::npos) << line;
  const auto j = parsed(line);
  EXPECT_EQ(j["source"]["workload"], weird);
  EXPECT_EQ(j["source"]["principal"], "spiffe://x/\"q\"");
  EXPECT_EQ(j["destination"]["service"], "ns/svc\"1");
}

TEST(AccessLogJson, TimeIsUtcWithMicroseconds) {
  sm_conn_event e = open4();
  e.time_ns = 0;
  EXPECT_EQ(parsed(event_json(e, names(), 0))["time"], "1970-01-01T00:00:00.000000Z");
  EXPECT_EQ(parsed(event_json(e, names(), 999))["time"], "1970-01-01T00:00:00.000000Z");
  EXPECT_EQ(parsed(event_json(e, names(), 1000))["time"], "1970-01-01T00:00:00.000001Z");
  e.time_ns = 86400ull * 1000000000 - 1;
  EXPECT_EQ(parsed(event_json(e, names(), 0))["time"], "1970-01-01T23:59:59.999999Z");
  // 2024 is a leap year.
  e.time_ns = 0;
  EXPECT_EQ(parsed(event_json(e, names(), 1709164800ll * 1000000000))["time"],
            "2024-02-29T00:00:00.000000Z");
}

// ---- options ----

std::string error_of(const AccessLogOptions &options) {
  try {
    check_access_log_options(options);
  } catch (const std::invalid_argument &e) {
    return e.what();
  }
  return "";
}

AccessLogOptions options(std::string mode, double sampling, std::string path = "-") {
  AccessLogOptions o;
  o.mode = std::move(mode);
  o.sampling = sampling;
  o.path = std::move(path);
  return o;
}

TEST(AccessLogOptionsCheck, DefaultsAreOffToStandardOutput) {
  const AccessLogOptions o;
  EXPECT_EQ(o.mode, "off");
  EXPECT_EQ(o.sampling, 0.01);
  EXPECT_EQ(o.path, "-");
  EXPECT_NO_THROW(check_access_log_options(o));
}

TEST(AccessLogOptionsCheck, ValidOptionsPass) {
  EXPECT_NO_THROW(check_access_log_options(options("off", 0.01)));
  EXPECT_NO_THROW(check_access_log_options(options("sampled", 0.01, "/var/log/access.json")));
  EXPECT_NO_THROW(check_access_log_options(options("sampled", 0.999999)));
  EXPECT_NO_THROW(check_access_log_options(options("sampled", 1e-9)));
  // The sampling matters in mode sampled only.
  EXPECT_NO_THROW(check_access_log_options(options("all", 0)));
  EXPECT_NO_THROW(check_access_log_options(options("all", 7)));
  EXPECT_NO_THROW(check_access_log_options(options("off", -1)));
}

TEST(AccessLogOptionsCheck, UnknownModeIsNamed) {
  EXPECT_EQ(error_of(options("verbose", 0.5)),
            R"(--access-log-mode: "verbose" is none of off, sampled, all)");
  EXPECT_EQ(error_of(options("All", 0.5)),
            R"(--access-log-mode: "All" is none of off, sampled, all)");
  EXPECT_EQ(error_of(options("", 0.5)), R"(--access-log-mode: "" is none of off, sampled, all)");
}

TEST(AccessLogOptionsCheck, SamplingOutsideTheOpenIntervalIsRefused) {
  const std::string tail = " is not in (0, 1); use --access-log-mode all to log every connection";
  EXPECT_EQ(error_of(options("sampled", 0)), "--access-log-sampling: 0" + tail);
  EXPECT_EQ(error_of(options("sampled", 1)), "--access-log-sampling: 1" + tail);
  EXPECT_EQ(error_of(options("sampled", 1.5)), "--access-log-sampling: 1.5" + tail);
  EXPECT_EQ(error_of(options("sampled", -0.25)), "--access-log-sampling: -0.25" + tail);
  EXPECT_EQ(error_of(options("sampled", std::nan(""))), "--access-log-sampling: nan" + tail);
}

TEST(AccessLogOptionsCheck, EmptyPathIsRefused) {
  EXPECT_EQ(error_of(options("all", 1, "")), "--access-log: an empty path");
  EXPECT_EQ(error_of(options("sampled", 0.5, "")), "--access-log: an empty path");
  // The mode is checked first.
  EXPECT_EQ(error_of(options("loud", 0.5, "")),
            R"(--access-log-mode: "loud" is none of off, sampled, all)");
}

TEST(AccessLogOptionsCheck, SamplingOfTheMode) {
  EXPECT_EQ(sampling_of(options("off", 0.5)), 0.0);
  EXPECT_EQ(sampling_of(options("all", 0.5)), 1.0);
  EXPECT_EQ(sampling_of(options("sampled", 0.25)), 0.25);
  EXPECT_EQ(sampling_of(AccessLogOptions{}), 0.0);
}

}  // namespace
}  // namespace sockmesh::telemetry
