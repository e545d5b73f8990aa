// The map decoder: entries of every data-path map, as the kernel's bytes, into the exact text of
// `meshctl bpf dump`.
#include "telemetry/map_decode.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>

#include <cstring>
#include <vector>

#include "sockmesh/capture_maps.h"
#include "sockmesh/counters.h"
#include "sockmesh/lb_maps.h"
#include "sockmesh/policy.h"
#include "sockmesh/telemetry.h"

namespace sockmesh::telemetry {
namespace {

using Bytes = std::vector<std::uint8_t>;

template <typename T>
Bytes bytes_of(const T &value) {
  Bytes out(sizeof(T));
  std::memcpy(out.data(), &value, sizeof(T));
  return out;
}

// Per-CPU copies as bpf_map_lookup_elem returns them: each padded to 8 bytes.
template <typename T>
Bytes per_cpu(const std::vector<T> &values) {
  const std::size_t stride = (sizeof(T) + 7) / 8 * 8;
  Bytes out(stride * values.size());
  for (std::size_t i = 0; i < values.size(); ++i)
    std::memcpy(out.data() + i * stride, &values[i], sizeof(T));
  return out;
}

void set_ip(std::uint32_t addr[4], const char *text) {
  std::memset(addr, 0, 16);
  if (inet_pton(AF_INET, text, addr) != 1) {
    ASSERT_EQ(inet_pton(AF_INET6, text, addr), 1) << text;
  }
}

Names sample_names() {
  Names n;
  n.service_by_vip["10.96.0.10:80/tcp"] = "demo/web";
  n.service_by_vip["10.96.0.53:53/udp"] = "demo/dns";
  n.service_by_slot[3] = "demo/web 10.96.0.10:80/tcp";
  n.workloads[3] = {"demo/client", "spiffe://cluster.local/ns/demo/sa/client"};
  n.workloads[4] = {"demo/web", "spiffe://cluster.local/ns/demo/sa/web"};
  n.workload_by_cgroup[4242] = 3;
  n.nodes[1] = "n1";
  n.nodes[2] = "n2";
  n.policy_rules[0] = "default deny";
  n.policy_rules[7] = "DENY demo/deny-legacy rules[1]";
  return n;
}

EntryText decode(std::string_view map, const Bytes &key, const Bytes &value, unsigned cpus = 0,
                 const Bytes &inner = {}) {
  return decode_entry(map, RawEntry{.key = key, .value = value, .cpus = cpus, .inner = inner},
                      sample_names());
}

sm_service_key service_key(const char *ip, std::uint16_t port, std::uint8_t proto,
                           std::uint8_t family) {
  sm_service_key k{};
  set_ip(k.addr, ip);
  k.port = htons(port);
  k.proto = proto;
  k.family = family;
  return k;
}

TEST(MapDecode, Services) {
  sm_service_value v{.set_slot = 3, .flags = 0};
  auto e = decode("sm_services", bytes_of(service_key("10.96.0.10", 80, IPPROTO_TCP, SM_AF_INET)),
                  bytes_of(v));
  EXPECT_EQ(e.key, "10.96.0.10:80/tcp");
  EXPECT_EQ(e.value, "slot 3 (demo/web)");
  v = {.set_slot = 9, .flags = 2};
  e = decode("sm_services", bytes_of(service_key("fd00:96::1", 443, IPPROTO_UDP, SM_AF_INET6)),
             bytes_of(v));
  EXPECT_EQ(e.key, "[fd00:96::1]:443/udp");
  EXPECT_EQ(e.value, "slot 9, flags 0x2");
}

sm_backend_set backend_set(std::uint32_t policy, std::uint32_t maglev_size,
                           const std::vector<std::pair<const char *, std::uint32_t>> &backends) {
  sm_backend_set set{};
  set.policy = policy;
  set.maglev_size = maglev_size;
  std::uint32_t cum = 0;
  for (const auto &[ip, weight] : backends) {
    sm_backend &b = set.backends[set.count++];
    set_ip(b.addr, ip);
    b.port = htons(8080);
    b.family = std::strchr(ip, ':') ? SM_AF_INET6 : SM_AF_INET;
    cum += weight;
    b.weight_cum = cum;
  }
  set.total_weight = cum;
  return set;
}

TEST(MapDecode, BackendSets) {
  const std::uint32_t slot = 3, inner_id = 57;
  auto set = backend_set(SM_LB_ROUND_ROBIN, 0, {{"10.78.1.10", 60}, {"10.78.1.11", 40}});
  auto e = decode("sm_backend_sets", bytes_of(slot), bytes_of(inner_id), 0, bytes_of(set));
  EXPECT_EQ(e.key, "slot 3 (demo/web 10.96.0.10:80/tcp)");
  EXPECT_EQ(e.value,
            "inner map 57: ROUND_ROBIN, 2 backends: 10.78.1.10:8080 weight 60, 10.78.1.11:8080 "
            "weight 40");

  set = backend_set(SM_LB_MAGLEV, 4093, {{"fd00:78::a", 1}});
  e = decode("sm_backend_sets", bytes_of(std::uint32_t{8}), bytes_of(inner_id), 0, bytes_of(set));
  EXPECT_EQ(e.key, "slot 8");
  EXPECT_EQ(e.value, "inner map 57: MAGLEV(4093), 1 backend: [fd00:78::a]:8080 weight 1");

  set = backend_set(SM_LB_RANDOM, 0, {{"10.78.1.10", 0}});
  e = decode("sm_backend_sets", bytes_of(slot), bytes_of(inner_id), 0, bytes_of(set));
  EXPECT_EQ(e.value, "inner map 57: RANDOM, 1 backend (none usable): 10.78.1.10:8080 weight 0");

  set = backend_set(SM_LB_RANDOM, 0, {});
  e = decode("sm_backend_sets", bytes_of(slot), bytes_of(inner_id), 0, bytes_of(set));
  EXPECT_EQ(e.value, "inner map 57: RANDOM, no backends");

  e = decode("sm_backend_sets", bytes_of(slot), bytes_of(inner_id));
  EXPECT_EQ(e.value, "inner map 57 (not readable)");
}

TEST(MapDecode, RoundRobinCursorsArePerCpu) {
  auto e =
      decode("sm_rr_cursors", bytes_of(std::uint32_t{3}), per_cpu<std::uint32_t>({5, 0, 7}), 3);
  EXPECT_EQ(e.key, "slot 3 (demo/web 10.96.0.10:80/tcp)");
  EXPECT_EQ(e.value, "cpu0 5, cpu2 7");
}

TEST(MapDecode, UdpReverse) {
  struct {
    std::uint64_t cookie;
    std::uint32_t addr[4];
    std::uint32_t port;
    std::uint32_t family;
  } key{};
  key.cookie = 12345;
  set_ip(key.addr, "10.78.1.10");
  key.port = htons(5353);
  key.family = SM_AF_INET;
  struct {
    std::uint32_t addr[4];
    std::uint32_t port;
    std::uint32_t family;
  } value{};
  set_ip(value.addr, "10.96.0.53");
  value.port = htons(53);
  value.family = SM_AF_INET;
  auto e = decode("sm_udp_reverse", bytes_of(key), bytes_of(value));
  EXPECT_EQ(e.key, "socket 12345, backend 10.78.1.10:5353");
  EXPECT_EQ(e.value, "VIP 10.96.0.53:53 (demo/dns)");
}

TEST(MapDecode, Workloads) {
  auto e = decode("sm_workloads", bytes_of(std::uint64_t{4242}),
                  bytes_of(sm_workload{.id = 3, .flags = SM_WL_CAPTURED}));
  EXPECT_EQ(e.key, "cgroup 4242");
  EXPECT_EQ(e.value, "demo/client (#3) captured");
  e = decode("sm_workloads", bytes_of(std::uint64_t{99}),
             bytes_of(sm_workload{.id = 12, .flags = 0}));
  EXPECT_EQ(e.value, "#12 (not known to the agent) not captured");
}

TEST(MapDecode, Endpoints) {
  sm_ip_key key{};
  set_ip(key.addr, "10.78.2.10");
  key.family = SM_AF_INET;
  auto e = decode("sm_endpoints", bytes_of(key),
                  bytes_of(sm_endpoint{.workload_id = 4, .node_id = 2, .flags = SM_EP_REMOTE}));
  EXPECT_EQ(e.key, "10.78.2.10");
  EXPECT_EQ(e.value, "demo/web (#4) on n2 (#2), remote");
  set_ip(key.addr, "fd00:78::1:a");
  key.family = SM_AF_INET6;
  e = decode("sm_endpoints", bytes_of(key),
             bytes_of(sm_endpoint{.workload_id = 3, .node_id = 1, .flags = 0}));
  EXPECT_EQ(e.key, "fd00:78::1:a");
  EXPECT_EQ(e.value, "demo/client (#3) on n1 (#1), local");
}

TEST(MapDecode, AgentConfig) {
  sm_agent_config c{};
  c.flags = SM_AGENT_CAPTURE_ON;
  c.addr4 = htonl(INADDR_LOOPBACK);
  std::memset(c.addr6, 0, sizeof(c.addr6));
  c.addr6[3] = htonl(1);
  c.port4 = htons(15001);
  c.port6 = 0;
  auto e = decode("sm_agent", bytes_of(std::uint32_t{0}), bytes_of(c));
  EXPECT_EQ(e.key, "0");
  EXPECT_EQ(e.value, "capture on, IPv4 listener 127.0.0.1:15001, IPv6 listener none");
  c.flags = 0;
  c.port6 = htons(15001);
  e = decode("sm_agent", bytes_of(std::uint32_t{0}), bytes_of(c));
  EXPECT_EQ(e.value, "capture off, IPv4 listener 127.0.0.1:15001, IPv6 listener [::1]:15001");
}

TEST(MapDecode, CaptureFlows) {
  sm_flow_key k{};
  set_ip(k.client, "10.78.1.10");
  set_ip(k.agent, "127.0.0.1");
  k.client_port = htons(43210);
  k.agent_port = htons(15001);
  k.family = SM_AF_INET;
  sm_capture_info info{};
  set_ip(info.orig.addr, "10.96.0.10");
  info.orig.port = htons(80);
  info.orig.family = SM_AF_INET;
  set_ip(info.backend.addr, "10.78.2.10");
  info.backend.port = htons(8080);
  info.backend.family = SM_AF_INET;
  info.src_workload = 3;
  info.dst_workload = 4;
  info.dst_node = 2;
  auto e = decode("sm_capture_flows", bytes_of(k), bytes_of(info));
  EXPECT_EQ(e.key, "client 10.78.1.10:43210 → agent 127.0.0.1:15001");
  EXPECT_EQ(e.value,
            "demo/client (#3) → demo/web (#4) on n2 (#2): to 10.96.0.10:80, backend "
            "10.78.2.10:8080");
}

TEST(MapDecode, Policy) {
  auto e = decode("sm_policy", bytes_of(sm_policy_key{.src = 3, .dst = 4, .port = 8080, .pad = 0}),
                  bytes_of(sm_policy_value{.verdict = SM_POLICY_DENY, .pad = {}, .rule = 7}));
  EXPECT_EQ(e.key, "demo/client (#3) → demo/web (#4) port 8080");
  EXPECT_EQ(e.value, "DENY, counted in rule 7 (DENY demo/deny-legacy rules[1])");
  e = decode("sm_policy", bytes_of(sm_policy_key{.src = 3, .dst = 4, .port = 0, .pad = 0}),
             bytes_of(sm_policy_value{.verdict = SM_POLICY_ALLOW, .pad = {}, .rule = 0}));
  EXPECT_EQ(e.key, "demo/client (#3) → demo/web (#4) port *");
  EXPECT_EQ(e.value, "ALLOW");
}

TEST(MapDecode, PerCpuCountersAreSummed) {
  auto e = decode("sm_policy_denials", bytes_of(std::uint32_t{7}),
                  per_cpu<std::uint64_t>({2, 0, 10}), 3);
  EXPECT_EQ(e.key, "rule 7 (DENY demo/deny-legacy rules[1])");
  EXPECT_EQ(e.value, "12");
  e = decode("sm_policy_denials", bytes_of(std::uint32_t{0}), per_cpu<std::uint64_t>({1, 1}), 2);
  EXPECT_EQ(e.key, "rule 0 (default deny)");
  EXPECT_EQ(e.value, "2");
  e = decode("sm_counters", bytes_of(std::uint32_t{SM_CNT_CONNECT_BALANCED}),
             per_cpu<std::uint64_t>({1000, 200}), 2);
  EXPECT_EQ(e.key, "connect_balanced");
  EXPECT_EQ(e.value, "1200");
  e = decode("sm_counters", bytes_of(std::uint32_t{1000}), per_cpu<std::uint64_t>({1}), 1);
  EXPECT_EQ(e.key, "counter 1000");
}

sm_traffic_key traffic_key(const char *vip, std::uint16_t vip_port, const char *backend,
                           std::uint16_t backend_port, std::uint32_t src, std::uint32_t dst) {
  sm_traffic_key k{};
  if (vip) set_ip(k.vip, vip);
  if (backend) set_ip(k.backend, backend);
  k.vip_port = htons(vip_port);
  k.backend_port = htons(backend_port);
  k.family = SM_AF_INET;
  k.proto = IPPROTO_TCP;
  k.src_workload = src;
  k.dst_workload = dst;
  return k;
}

TEST(MapDecode, Traffic) {
  sm_traffic_value a{}, b{};
  a.balanced = 3;
  a.opened = 3;
  a.closed = 1;
  a.bytes_sent = 1000;
  a.srtt_samples = 2;
  a.srtt_us_sum = 300;
  b.balanced = 1;
  b.opened = 1;
  b.closed = 1;
  b.reset = 1;
  b.bytes_received = 4096;
  b.fastpath_bytes_received = 4000;
  b.retransmits = 2;
  b.srtt_samples = 1;
  b.srtt_us_sum = 150;
  auto e = decode("sm_traffic", bytes_of(traffic_key("10.96.0.10", 80, "10.78.1.10", 8080, 3, 4)),
                  per_cpu<sm_traffic_value>({a, b}), 2);
  EXPECT_EQ(e.key, "demo/client → demo/web via demo/web 10.96.0.10:80/tcp backend 10.78.1.10:8080");
  EXPECT_EQ(e.value,
            "balanced=4 opened=4 closed=2 active=2 reset=1 bytes_sent=1000 bytes_received=4096 "
            "fastpath_bytes_received=4000 retransmits=2 srtt_avg_us=150");

  // A connect straight to a workload's address (no VIP), from a process in no workload.
  e = decode("sm_traffic", bytes_of(traffic_key(nullptr, 0, "10.78.1.10", 8080, 0, 4)),
             per_cpu<sm_traffic_value>({sm_traffic_value{}}), 1);
  EXPECT_EQ(e.key, "unknown → demo/web backend 10.78.1.10:8080");
  EXPECT_EQ(e.value, "all zero");

  // A VIP without a usable backend, unknown to the agent.
  sm_traffic_value refused{};
  refused.no_backend = 5;
  e = decode("sm_traffic", bytes_of(traffic_key("10.96.0.99", 80, nullptr, 0, 3, 0)),
             per_cpu<sm_traffic_value>({refused}), 1);
  EXPECT_EQ(e.key, "demo/client → unknown via 10.96.0.99:80/tcp backend none");
  EXPECT_EQ(e.value, "no_backend=5");
}

TEST(MapDecode, TelemetryConfig) {
  sm_telemetry_config c{
      .flags = SM_TELEMETRY_EVENTS, .sample_below = 0xffffffffu, .epoch = 3, .pad = 0};
  auto e = decode("sm_telemetry", bytes_of(std::uint32_t{0}), bytes_of(c));
  EXPECT_EQ(e.key, "0");
  EXPECT_EQ(e.value, "events on, all connections, epoch 3");
  c.sample_below = 0x40000000u;
  EXPECT_EQ(decode("sm_telemetry", bytes_of(std::uint32_t{0}), bytes_of(c)).value,
            "events on, sampling 25% of connections, epoch 3");
  c.flags = 0;
  EXPECT_EQ(decode("sm_telemetry", bytes_of(std::uint32_t{0}), bytes_of(c)).value,
            "events off, epoch 3");
}

TEST(MapDecode, UnknownMapsAndMismatchedSizesAreHex) {
  auto e = decode("sock_lb.rodata", bytes_of(std::uint32_t{0}), Bytes{1, 0, 0xab});
  EXPECT_EQ(e.key, "00 00 00 00");
  EXPECT_EQ(e.value, "01 00 ab");
  // A layout the agent does not expect: never guessed.
  e = decode("sm_services", Bytes{1, 2, 3}, Bytes{4});
  EXPECT_EQ(e.key, "01 02 03");
  EXPECT_EQ(e.value, "04");
  // Per-CPU values of an unknown map: one copy per CPU.
  e = decode("other", bytes_of(std::uint32_t{1}), per_cpu<std::uint64_t>({1, 2}), 2);
  EXPECT_EQ(e.value, "cpu0: 01 00 00 00 00 00 00 00 | cpu1: 02 00 00 00 00 00 00 00");
}

TEST(MapDecode, HoldsAndReasons) {
  EXPECT_EQ(map_holds("sm_services"), "service VIP:port/proto → backend-set slot");
  EXPECT_EQ(map_holds("sm_traffic"),
            "(VIP, backend, source, destination) → traffic counters, per CPU");
  EXPECT_EQ(map_holds("sock_lb.rodata"), "the programs' read-only settings");
  EXPECT_EQ(map_holds("nope"), "");
  EXPECT_EQ(not_listable_reason("sm_conn_store", "sk_storage", 0),
            "sm_conn_store is socket-local storage: each entry lives on a socket and goes with "
            "it, and the kernel offers no way to list them from user space (bpftool cannot "
            "either)");
  EXPECT_EQ(not_listable_reason("sm_events", "ringbuf", 4194304),
            "sm_events is a ring buffer of 4194304 bytes: its records are events that the agent "
            "consumes as they come, not entries to list");
  EXPECT_EQ(not_listable_reason("sm_services", "hash", 16), "");
}

TEST(MapDecode, Addresses) {
  std::uint32_t a[4];
  set_ip(a, "10.0.0.1");
  EXPECT_EQ(address_text(a, SM_AF_INET), "10.0.0.1");
  EXPECT_EQ(endpoint_text(a, htons(80), SM_AF_INET), "10.0.0.1:80");
  EXPECT_EQ(address_text(a, 7), "family 7");
  set_ip(a, "fd00::1");
  EXPECT_EQ(vip_text(a, htons(53), IPPROTO_UDP, SM_AF_INET6), "[fd00::1]:53/udp");
  EXPECT_EQ(vip_text(a, htons(53), 132, SM_AF_INET6), "[fd00::1]:53/proto 132");
  Names names = sample_names();
  EXPECT_EQ(workload_text(0, names), "unknown");
  EXPECT_EQ(workload_text(3, names), "demo/client (#3)");
}

}  // namespace
}  // namespace sockmesh::telemetry
