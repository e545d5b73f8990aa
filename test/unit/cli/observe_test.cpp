// `meshctl bpf maps`, `bpf dump` and `stats` end to end in-process, against a fake agent.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <sstream>
#include <stop_token>

#include "fake_admin.h"
#include "meshctl_harness.h"
#include "sockmesh/cli/meshctl.h"
#include "sockmesh/cli/observe_views.h"
#include "sockmesh/cli/output.h"

namespace sockmesh::cli {
namespace {

namespace fs = std::filesystem;
using testing::kNow;
using testing::MeshctlHarness;
using testing::Result;

void add_map(v1::ListMapsResponse &r, std::string name, std::string type, std::uint64_t entries,
             bool known, std::uint32_t max, std::uint64_t memory, std::string holds) {
  auto *m = r.add_maps();
  m->set_name(std::move(name));
  m->set_type(std::move(type));
  m->set_entries(entries);
  m->set_entries_known(known);
  m->set_max_entries(max);
  m->set_memory_bytes(memory);
  m->set_holds(std::move(holds));
  r.set_memory_bytes(r.memory_bytes() + memory);
}

v1::ListMapsResponse sample_maps() {
  v1::ListMapsResponse r;
  add_map(r, "sm_services", "hash", 2, true, 16384, 2560,
          "service VIP:port/proto → backend-set slot");
  add_map(r, "sm_counters", "percpu_array", 9, true, 15, 1024, "data-path counters, per CPU");
  add_map(r, "sm_conn_store", "sk_storage", 0, false, 0, 512,
          "per client socket: the connection's traffic record");
  add_map(r, "sm_events", "ringbuf", 0, false, 0, 4198400,
          "connection events for the access log (ring buffer)");
  add_map(r, "sock_lb.rodata", "array", 1, true, 1, 4096, "");
  return r;
}

v1::DumpMapResponse dump_of(const v1::BpfMap &map, std::uint64_t total,
                            const std::vector<std::pair<std::string, std::string>> &entries) {
  v1::DumpMapResponse d;
  *d.mutable_map() = map;
  for (const auto &[key, value] : entries) {
    auto *e = d.add_entries();
    e->set_key(key);
    e->set_value(value);
  }
  d.set_total(total);
  d.set_truncated(total > entries.size());
  return d;
}

std::map<std::string, v1::DumpMapResponse> sample_dumps() {
  const auto maps = sample_maps();
  std::map<std::string, v1::DumpMapResponse> dumps;
  dumps["sm_services"] =
      dump_of(maps.maps(0), 2,
              {{"10.96.0.10:80/tcp", "slot 3 (demo/web)"}, {"[fd00:96::1]:443/tcp", "slot 4"}});
  v1::BpfMap endpoints = maps.maps(0);
  endpoints.set_name("sm_endpoints");
  endpoints.set_entries(1500);
  dumps["sm_endpoints"] = dump_of(endpoints, 1500,
                                  {{"10.78.1.10", "demo/web (#4) on n2 (#2), remote"},
                                   {"10.78.1.11", "demo/client (#3) on n1 (#1), local"}});
  dumps["sm_conn_store"] =
      dump_of(maps.maps(2), 0,
              {{"",
                "sm_conn_store is socket-local storage: each entry lives on a socket and goes "
                "with it, and the kernel offers no way to list them from user space (bpftool "
                "cannot either)"}});
  dumps["sm_conn_store"].set_truncated(false);
  v1::BpfMap empty = maps.maps(0);
  empty.set_name("sm_policy");
  empty.set_entries(0);
  dumps["sm_policy"] = dump_of(empty, 0, {});
  return dumps;
}

struct PairCounters {
  std::uint64_t opened = 0, closed = 0, active = 0, failed = 0, no_backend = 0, sent = 0,
                received = 0, srtt_samples = 0, srtt_us_sum = 0;
};

void add_pair(v1::TrafficReport &r, std::string service, std::string vip, std::string backend,
              std::string source, std::string destination, const PairCounters &c) {
  auto *p = r.add_pairs();
  p->set_service(std::move(service));
  p->set_vip(std::move(vip));
  p->set_backend(std::move(backend));
  p->set_source_workload(std::move(source));
  p->set_destination_workload(std::move(destination));
  p->set_opened(c.opened);
  p->set_closed(c.closed);
  p->set_active(c.active);
  p->set_failed(c.failed);
  p->set_no_backend(c.no_backend);
  p->set_bytes_sent(c.sent);
  p->set_bytes_received(c.received);
  p->set_srtt_samples(c.srtt_samples);
  p->set_srtt_us_sum(c.srtt_us_sum);
}

v1::TrafficReport report_at(std::int64_t unix_ms) {
  v1::TrafficReport r;
  r.set_unix_ms(unix_ms);
  auto *log = r.mutable_access_log();
  log->set_mode("sampled");
  log->set_sampling(0.1);
  log->set_path("/var/log/sockmesh/access.log");
  log->set_events_lost(3);
  r.set_untracked(7);
  return r;
}

// Two reads 2 s apart (by the agent's clock).
v1::TrafficReport first_report() {
  auto r = report_at(kNow);
  add_pair(r, "demo/web", "10.96.0.10:80/tcp", "10.78.1.10:8080", "demo/client", "demo/web",
           {.opened = 10,
            .closed = 8,
            .active = 2,
            .failed = 1,
            .sent = 1000,
            .received = 5000,
            .srtt_samples = 10,
            .srtt_us_sum = 1500});
  add_pair(r, "demo/web", "10.96.0.10:80/tcp", "10.78.1.11:8080", "demo/client", "demo/web",
           {.opened = 4, .closed = 3, .active = 1, .sent = 100, .received = 100});
  add_pair(r, "shop/cart", "10.96.0.20:8080/tcp", "", "demo/client", "unknown", {.no_backend = 4});
  add_pair(r, "demo/web", "10.96.0.10:80/tcp", "10.78.1.10:8080", "unknown", "demo/web",
           {.opened = 1, .closed = 1, .sent = 10, .received = 10});
  return r;
}

v1::TrafficReport second_report() {
  auto r = report_at(kNow + 2000);
  add_pair(r, "demo/web", "10.96.0.10:80/tcp", "10.78.1.10:8080", "demo/client", "demo/web",
           {.opened = 20,
            .closed = 17,
            .active = 3,
            .failed = 2,
            .sent = 3048,
            .received = 13192,
            .srtt_samples = 14,
            .srtt_us_sum = 2300});
  add_pair(r, "demo/web", "10.96.0.10:80/tcp", "10.78.1.11:8080", "demo/client", "demo/web",
           {.opened = 6, .closed = 5, .active = 1, .sent = 1124, .received = 100});
  // New since the first read: counts from zero.
  add_pair(r, "", "", "10.78.2.10:9000", "demo/batch", "shop/db",
           {.opened = 1, .active = 1, .sent = 100, .received = 300});
  add_pair(r, "shop/cart", "10.96.0.20:8080/tcp", "", "demo/client", "unknown", {.no_backend = 10});
  add_pair(r, "demo/web", "10.96.0.10:80/tcp", "10.78.1.10:8080", "unknown", "demo/web",
           {.opened = 1, .closed = 1, .sent = 10, .received = 10});
  return r;
}

class ObserveTest : public MeshctlHarness {
 protected:
  void SetUp() override {
    MeshctlHarness::SetUp();
    fs::create_directories(env_.run_root / "n1");
    agent_ = std::make_unique<testing::FakeAdmin>(env_.run_root / "n1" / "admin.sock");
    agent_->status.set_node("n1");
    agent_->maps = sample_maps();
    agent_->dumps = sample_dumps();
    agent_->traffic = {first_report(), second_report()};
  }
  void TearDown() override {
    agent_.reset();
    MeshctlHarness::TearDown();
  }

  std::unique_ptr<testing::FakeAdmin> agent_;
};

TEST_F(ObserveTest, BpfMaps) {
  const auto r = run({"bpf", "maps"});
  EXPECT_EQ(r.err, "");
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.out,
            "NAME             TYPE           ENTRIES/MAX   FILL%    MEMORY    HOLDS\n"
            "sm_services      hash           2/16384       <0.1%    2.5 KiB   service "
            "VIP:port/proto → backend-set slot\n"
            "sm_counters      percpu_array   9/15          60.0%    1.0 KiB   data-path counters, "
            "per CPU\n"
            "sm_conn_store    sk_storage     -             -        512 B     per client socket: "
            "the connection's traffic record\n"
            "sm_events        ringbuf        -             -        4.0 MiB   connection events "
            "for the access log (ring buffer)\n"
            "sock_lb.rodata   array          1/1           100.0%   4.0 KiB   -\n"
            "Total: 5 maps, 4.0 MiB\n");
}

TEST_F(ObserveTest, BpfMapsWithoutMapsAndAsDocuments) {
  auto r = run({"bpf", "maps", "-o", "json"});
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.out, json_document(sample_maps(), DocumentLayout::single));
  r = run({"bpf", "maps", "-o", "yaml"});
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.out, yaml_document(sample_maps(), DocumentLayout::single));
  agent_->maps.Clear();
  r = run({"bpf", "maps"});
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.out, "No maps.\n");
}

TEST_F(ObserveTest, BpfDump) {
  const auto r = run({"bpf", "dump", "sm_services"});
  EXPECT_EQ(r.err, "");
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.out,
            "sm_services (hash): 2 entries\n"
            "KEY                    VALUE\n"
            "10.96.0.10:80/tcp      slot 3 (demo/web)\n"
            "[fd00:96::1]:443/tcp   slot 4\n");
  ASSERT_EQ(agent_->dump_requests.size(), 1u);
  EXPECT_EQ(agent_->dump_requests[0].name(), "sm_services");
  EXPECT_EQ(agent_->dump_requests[0].limit(), 0u);
}

TEST_F(ObserveTest, BpfDumpTruncated) {
  const auto r = run({"bpf", "dump", "sm_endpoints", "--limit", "2"});
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.out,
            "sm_endpoints (hash): 1500 entries\n"
            "KEY          VALUE\n"
            "10.78.1.10   demo/web (#4) on n2 (#2), remote\n"
            "10.78.1.11   demo/client (#3) on n1 (#1), local\n"
            "... 1498 more not shown (--limit N shows up to N)\n");
  ASSERT_EQ(agent_->dump_requests.size(), 1u);
  EXPECT_EQ(agent_->dump_requests[0].limit(), 2u);
}

TEST_F(ObserveTest, BpfDumpOfAMapThatCannotBeListed) {
  const auto r = run({"bpf", "dump", "sm_conn_store"});
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.out,
            "sm_conn_store (sk_storage): entries cannot be listed\n"
            "sm_conn_store is socket-local storage: each entry lives on a socket and goes with "
            "it, and the kernel offers no way to list them from user space (bpftool cannot "
            "either)\n");
}

TEST_F(ObserveTest, BpfDumpOfAnEmptyMap) {
  const auto r = run({"bpf", "dump", "sm_policy"});
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.out, "sm_policy (hash): 0 entries\n");
}

TEST_F(ObserveTest, BpfDumpOfAnUnknownMap) {
  const auto r = run({"bpf", "dump", "sm_nope"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err, "meshctl: no map sm_nope on this node; `meshctl bpf maps` lists them\n");
}

TEST_F(ObserveTest, BpfDumpUsage) {
  for (const std::vector<std::string> &args : std::vector<std::vector<std::string>>{
           {"bpf", "dump"}, {"bpf", "dump", "sm_services", "--limit", "-1"}, {"bpf"}}) {
    const auto r = run(args);
    EXPECT_EQ(r.code, 2) << r.err;
    EXPECT_EQ(r.out, "");
    EXPECT_TRUE(r.err.ends_with(" (see meshctl --help)\n")) << r.err;
  }
  EXPECT_EQ(run({"bpf"}).err,
            "meshctl: bpf: missing command, one of: maps, dump (see meshctl --help)\n");
}

TEST_F(ObserveTest, BpfDumpAsJson) {
  const auto r = run({"bpf", "dump", "sm_services", "-o", "json"});
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.out, json_document(sample_dumps()["sm_services"], DocumentLayout::single));
}

const char *const kFrame =
    "Node:        n1\n"
    "Time:        2024-05-01 12:00:02 UTC, rates over 2s\n"
    "Access log:  sampled, 10% of connections to /var/log/sockmesh/access.log, 3 events lost\n"
    "Untracked:   7 connections\n"
    "\n"
    "Services:\n"
    "SERVICE     CONN/S   ACTIVE   FAILED/S   SENT/S    RECV/S    AVG SRTT\n"
    "demo/web    6.0      4        0.5        1.5 KiB   4.0 KiB   200us\n"
    "(direct)    0.5      1        0.0        50 B      150 B     -\n"
    "shop/cart   0.0      0        3.0        0 B       0 B       -\n"
    "\n"
    "Workload pairs:\n"
    "SOURCE → DESTINATION (SERVICE)      CONN/S   ACTIVE   FAILED/S   SENT/S    RECV/S    AVG "
    "SRTT\n"
    "demo/client → demo/web (demo/web)   6.0      4        0.5        1.5 KiB   4.0 KiB   200us\n"
    "demo/batch → shop/db                0.5      1        0.0        50 B      150 B     -\n"
    "demo/client → unknown (shop/cart)   0.0      0        3.0        0 B       0 B       -\n"
    "unknown → demo/web (demo/web)       0.0      0        0.0        0 B       0 B       -\n";

TEST_F(ObserveTest, StatsOnce) {
  const auto r = run({"stats", "--once", "--interval", "0.05"});
  EXPECT_EQ(r.err, "");
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.out, kFrame);
  EXPECT_EQ(agent_->traffic_calls(), 2);
}

TEST_F(ObserveTest, StatsTop) {
  const auto r = run({"stats", "--once", "--interval", "0.05", "--top", "1"});
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.out,
            "Node:        n1\n"
            "Time:        2024-05-01 12:00:02 UTC, rates over 2s\n"
            "Access log:  sampled, 10% of connections to /var/log/sockmesh/access.log, 3 events "
            "lost\n"
            "Untracked:   7 connections\n"
            "\n"
            "Services:\n"
            "SERVICE    CONN/S   ACTIVE   FAILED/S   SENT/S    RECV/S    AVG SRTT\n"
            "demo/web   6.0      4        0.5        1.5 KiB   4.0 KiB   200us\n"
            "\n"
            "Workload pairs:\n"
            "SOURCE → DESTINATION (SERVICE)      CONN/S   ACTIVE   FAILED/S   SENT/S    RECV/S    "
            "AVG SRTT\n"
            "demo/client → demo/web (demo/web)   6.0      4        0.5        1.5 KiB   4.0 KiB   "
            "200us\n");
}

TEST_F(ObserveTest, StatsWithoutTraffic) {
  agent_->traffic = {report_at(kNow), report_at(kNow + 1000)};
  agent_->traffic[0].mutable_access_log()->set_mode("off");
  agent_->traffic[1].mutable_access_log()->set_mode("off");
  agent_->traffic[1].mutable_access_log()->set_events_lost(0);
  const auto r = run({"stats", "--once", "--interval", "0.01"});
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.out,
            "Node:        n1\n"
            "Time:        2024-05-01 12:00:01 UTC, rates over 1s\n"
            "Access log:  off, 0 events lost\n"
            "Untracked:   7 connections\n"
            "\n"
            "Services:\n"
            "No traffic.\n"
            "\n"
            "Workload pairs:\n"
            "No traffic.\n");
}

TEST_F(ObserveTest, StatsNeedsTheAgentsClockToMove) {
  agent_->traffic = {first_report()};
  const auto r = run({"stats", "--once", "--interval", "0.01"});
  EXPECT_EQ(r.code, 1);
  EXPECT_TRUE(r.err.starts_with("meshctl: the agent's traffic report did not move on")) << r.err;
}

TEST_F(ObserveTest, StatsAsJsonIsOneReport) {
  auto r = run({"stats", "-o", "json"});
  EXPECT_EQ(r.err, "");
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.out, json_document(first_report(), DocumentLayout::single));
  EXPECT_EQ(agent_->traffic_calls(), 1);
  EXPECT_NE(r.out.find("\"sourceWorkload\": \"demo/client\""), std::string::npos) << r.out;
}

TEST_F(ObserveTest, LiveStatsRedrawUntilInterrupted) {
  // A third read 2 s after the second, with nothing new: the second frame shows zero rates.
  auto third = second_report();
  third.set_unix_ms(kNow + 4000);
  agent_->traffic.push_back(third);
  const auto r = run_interrupted_after({"stats", "--interval", "0.05"}, 2);
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.err, "");
  const std::string text = r.out;
  const std::string clear = "\x1b[H\x1b[2J";
  ASSERT_TRUE(text.starts_with(clear + kFrame)) << text;
  const std::string second = text.substr(clear.size() + std::string(kFrame).size());
  ASSERT_TRUE(second.starts_with(clear)) << second;
  EXPECT_NE(second.find("Time:        2024-05-01 12:00:04 UTC, rates over 2s\n"), std::string::npos)
      << second;
  EXPECT_NE(second.find("\ndemo/web    0.0      4        0.0        0 B "), std::string::npos)
      << second;
  EXPECT_EQ(agent_->traffic_calls(), 3);
}

TEST_F(ObserveTest, StatsUsageAndHelp) {
  for (const std::vector<std::string> &args : std::vector<std::vector<std::string>>{
           {"stats", "--interval", "0"}, {"stats", "--top", "0"}, {"stats", "-o", "xml"}}) {
    const auto r = run(args);
    EXPECT_EQ(r.code, 2) << r.err;
    EXPECT_TRUE(r.err.ends_with(" (see meshctl --help)\n")) << r.err;
  }
  auto r = run({"stats", "--help"});
  EXPECT_EQ(r.code, 0);
  for (const char *word : {"--interval SECONDS=2", "--top N", "=10", "--once", "-o,--output"})
    EXPECT_NE(r.out.find(word), std::string::npos) << word << " missing from:\n" << r.out;
  r = run({"bpf", "dump", "--help"});
  EXPECT_EQ(r.code, 0);
  for (const char *word : {"MAP", "--limit N", "-o,--output"})
    EXPECT_NE(r.out.find(word), std::string::npos) << word << " missing from:\n" << r.out;
  r = run({"--help"});
  for (const char *word : {"stats", "bpf"})
    EXPECT_NE(r.out.find(word), std::string::npos) << word << " missing from:\n" << r.out;
}

// The rates themselves, without a command line.
TEST(TrafficStats, RatesFromTwoReports) {
  const auto stats = traffic_stats(first_report(), second_report());
  EXPECT_DOUBLE_EQ(stats.seconds, 2.0);
  ASSERT_EQ(stats.services.size(), 3u);
  const auto &web = stats.services[0];
  EXPECT_EQ(web.name, "demo/web");
  EXPECT_DOUBLE_EQ(web.connections, 6.0);
  EXPECT_EQ(web.active, 4u);
  EXPECT_DOUBLE_EQ(web.failed, 0.5);
  EXPECT_DOUBLE_EQ(web.sent, 1536.0);
  EXPECT_DOUBLE_EQ(web.received, 4096.0);
  ASSERT_TRUE(web.srtt_us.has_value());
  EXPECT_DOUBLE_EQ(*web.srtt_us, 200.0);
  EXPECT_EQ(stats.services[2].name, "shop/cart");
  EXPECT_DOUBLE_EQ(stats.services[2].failed, 3.0);
  // A counter lower than before: the agent restarted, it counts from zero.
  auto restarted = second_report();
  restarted.set_unix_ms(kNow + 4000);
  restarted.mutable_pairs(0)->set_opened(4);
  const auto after_restart = traffic_stats(second_report(), restarted);
  EXPECT_DOUBLE_EQ(after_restart.services[0].connections, 2.0);  // (4 + 0) / 2 s
}

}  // namespace
}  // namespace sockmesh::cli
