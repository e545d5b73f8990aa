// The map inspector on real kernel maps with the data path's layouts: counts, memory, pins, and
// the decoded dump. Needs root (BPF maps, bpffs).
#include "telemetry/map_inspector.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <map>
#include <stdexcept>
#include <vector>

#include "sockmesh/capture_maps.h"
#include "sockmesh/counters.h"
#include "sockmesh/lb_maps.h"
#include "sockmesh/telemetry.h"

namespace sockmesh::telemetry {
namespace {

namespace fs = std::filesystem;

std::uint32_t ip4(const char *text) {
  std::uint32_t a = 0;
  inet_pton(AF_INET, text, &a);
  return a;
}

std::uint32_t id_of(int fd) {
  bpf_map_info info{};
  std::uint32_t len = sizeof(info);
  EXPECT_EQ(bpf_obj_get_info_by_fd(fd, &info, &len), 0);
  return info.id;
}

class MapInspectorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root (BPF maps)";
    cpus_ = static_cast<unsigned>(libbpf_num_possible_cpus());
    pin_dir_ = fmt_pin_dir();
    fs::create_directories(pin_dir_);
    names_.service_by_vip["10.96.0.10:80/tcp"] = "demo/web";
    names_.service_by_slot[3] = "demo/web 10.96.0.10:80/tcp";
    names_.workloads[3] = {"demo/client", ""};
    names_.workloads[4] = {"demo/web", ""};
  }
  void TearDown() override {
    if (!pin_dir_.empty()) fs::remove_all(pin_dir_);
  }

  static std::string fmt_pin_dir() {
    return "/sys/fs/bpf/sockmesh-map-inspector-test-" + std::to_string(getpid());
  }

  // Creates a map, keeps its fd and lists it as Datapath::maps() would.
  int create(const char *name, bpf_map_type type, std::uint32_t key_size, std::uint32_t value_size,
             std::uint32_t max_entries, const bpf_map_create_opts *opts = nullptr) {
    const int fd = bpf_map_create(type, nullptr, key_size, value_size, max_entries, opts);
    EXPECT_GE(fd, 0) << name << ": " << std::strerror(errno);
    fds_.emplace_back(fd);
    infos_.push_back({.name = name,
                      .type = libbpf_bpf_map_type_str(type),
                      .id = fd >= 0 ? id_of(fd) : 0,
                      .max_entries = max_entries});
    return fd;
  }

  // An sk_storage map needs BTF for its key (int) and value.
  int create_sk_storage(const char *name, std::uint32_t value_size) {
    btf *types = btf__new_empty();
    const int int_id = btf__add_int(types, "int", 4, BTF_INT_SIGNED);
    const int byte_id = btf__add_int(types, "unsigned char", 1, 0);
    const int value_id = btf__add_array(types, int_id, byte_id, value_size);
    EXPECT_EQ(btf__load_into_kernel(types), 0) << std::strerror(errno);
    LIBBPF_OPTS(bpf_map_create_opts, opts, .btf_fd = static_cast<__u32>(btf__fd(types)),
                .btf_key_type_id = static_cast<__u32>(int_id),
                .btf_value_type_id = static_cast<__u32>(value_id), .map_flags = BPF_F_NO_PREALLOC);
    const int fd = create(name, BPF_MAP_TYPE_SK_STORAGE, 4, value_size, 0, &opts);
    btf__free(types);
    return fd;
  }

  // The same value on every CPU slot: cpu i holds (i + 1) * base.
  std::vector<std::uint64_t> per_cpu_u64(std::uint64_t base) const {
    std::vector<std::uint64_t> values(cpus_);
    for (unsigned i = 0; i < cpus_; ++i) values[i] = (i + 1) * base;
    return values;
  }
  std::uint64_t sum_of(std::uint64_t base) const { return base * cpus_ * (cpus_ + 1) / 2; }

  unsigned cpus_ = 1;
  std::string pin_dir_;
  Names names_;
  std::vector<UniqueFd> fds_;
  std::vector<loader::MapInfo> infos_;
};

const v1::BpfMap &find(const v1::ListMapsResponse &list, const std::string &name) {
  for (const auto &m : list.maps()) {
    if (m.name() == name) return m;
  }
  throw std::runtime_error("no map " + name);
}

TEST_F(MapInspectorTest, ListsAndDumpsRealMaps) {
  // sm_services: two VIPs, pinned.
  LIBBPF_OPTS(bpf_map_create_opts, no_prealloc, .map_flags = BPF_F_NO_PREALLOC);
  const int services = create("sm_services", BPF_MAP_TYPE_HASH, sizeof(sm_service_key),
                              sizeof(sm_service_value), 16, &no_prealloc);
  for (std::uint32_t i = 0; i < 2; ++i) {
    sm_service_key k{};
    k.addr[0] = ip4(i == 0 ? "10.96.0.10" : "10.96.0.11");
    k.port = htons(80);
    k.proto = IPPROTO_TCP;
    k.family = SM_AF_INET;
    sm_service_value v{.set_slot = i == 0 ? 3u : 4u, .flags = 0};
    ASSERT_EQ(bpf_map_update_elem(services, &k, &v, BPF_ANY), 0);
  }
  ASSERT_EQ(bpf_obj_pin(services, (pin_dir_ + "/sm_services").c_str()), 0);

  // sm_backend_sets: slot 3 bound to an inner map with two backends.
  LIBBPF_OPTS(bpf_map_create_opts, inner_flags, .map_flags = BPF_F_INNER_MAP);
  UniqueFd inner(
      bpf_map_create(BPF_MAP_TYPE_ARRAY, nullptr, 4, sizeof(sm_backend_set), 1, &inner_flags));
  ASSERT_TRUE(inner.valid());
  sm_backend_set set{};
  set.count = 2;
  set.policy = SM_LB_ROUND_ROBIN;
  set.backends[0] = {.addr = {ip4("10.78.1.10"), 0, 0, 0},
                     .port = htons(8080),
                     .family = SM_AF_INET,
                     .pad = 0,
                     .weight_cum = 3};
  set.backends[1] = {.addr = {ip4("10.78.1.11"), 0, 0, 0},
                     .port = htons(8080),
                     .family = SM_AF_INET,
                     .pad = 0,
                     .weight_cum = 4};
  set.total_weight = 4;
  const std::uint32_t zero = 0;
  ASSERT_EQ(bpf_map_update_elem(inner.get(), &zero, &set, BPF_ANY), 0);
  LIBBPF_OPTS(bpf_map_create_opts, outer_opts, .inner_map_fd = static_cast<__u32>(inner.get()));
  const int sets = create("sm_backend_sets", BPF_MAP_TYPE_ARRAY_OF_MAPS, 4, 4, 8, &outer_opts);
  const std::uint32_t slot = 3;
  const int inner_fd = inner.get();
  ASSERT_EQ(bpf_map_update_elem(sets, &slot, &inner_fd, BPF_ANY), 0);
  const std::uint32_t inner_id = id_of(inner.get());

  // sm_counters: two counters counted on every CPU.
  const int counters = create("sm_counters", BPF_MAP_TYPE_PERCPU_ARRAY, 4, 8, SM_CNT__MAX);
  for (std::uint32_t k :
       {std::uint32_t{SM_CNT_CONNECT_BALANCED}, std::uint32_t{SM_CNT_CONNECT_DENIED}}) {
    auto values = per_cpu_u64(k + 1);
    ASSERT_EQ(bpf_map_update_elem(counters, &k, values.data(), BPF_ANY), 0);
  }

  // sm_traffic: one tuple, counted on every CPU.
  const int traffic = create("sm_traffic", BPF_MAP_TYPE_PERCPU_HASH, sizeof(sm_traffic_key),
                             sizeof(sm_traffic_value), 64);
  sm_traffic_key tk{};
  tk.vip[0] = ip4("10.96.0.10");
  tk.vip_port = htons(80);
  tk.backend[0] = ip4("10.78.1.10");
  tk.backend_port = htons(8080);
  tk.family = SM_AF_INET;
  tk.proto = IPPROTO_TCP;
  tk.src_workload = 3;
  tk.dst_workload = 4;
  std::vector<sm_traffic_value> tv(cpus_);
  for (auto &v : tv) {
    v.balanced = 1;
    v.opened = 1;
    v.bytes_sent = 100;
  }
  ASSERT_EQ(bpf_map_update_elem(traffic, &tk, tv.data(), BPF_ANY), 0);

  // Maps that cannot be listed, and one that is gone.
  create("sm_events", BPF_MAP_TYPE_RINGBUF, 0, 0, 4096 * 4);
  create_sk_storage("sm_conn_store", sizeof(sm_conn));
  infos_.push_back({.name = "sm_gone", .type = "hash", .id = 0, .max_entries = 8});

  const MapInspector inspector(infos_, pin_dir_);
  const auto list = inspector.list();
  ASSERT_EQ(list.maps_size(), 7);
  std::vector<std::string> order;
  for (const auto &m : list.maps()) order.push_back(m.name());
  EXPECT_EQ(order,
            (std::vector<std::string>{"sm_services", "sm_backend_sets", "sm_counters", "sm_traffic",
                                      "sm_events", "sm_conn_store", "sm_gone"}));

  const auto &s = find(list, "sm_services");
  EXPECT_EQ(s.type(), "hash");
  EXPECT_EQ(s.key_size(), sizeof(sm_service_key));
  EXPECT_EQ(s.value_size(), sizeof(sm_service_value));
  EXPECT_EQ(s.max_entries(), 16u);
  EXPECT_TRUE(s.entries_known());
  EXPECT_EQ(s.entries(), 2u);
  EXPECT_GT(s.memory_bytes(), 0u);
  EXPECT_EQ(s.pin(), pin_dir_ + "/sm_services");
  EXPECT_EQ(s.holds(), "service VIP:port/proto → backend-set slot");

  const auto &b = find(list, "sm_backend_sets");
  EXPECT_EQ(b.type(), "array_of_maps");
  EXPECT_EQ(b.entries(), 1u);
  EXPECT_TRUE(b.entries_known());
  EXPECT_EQ(b.pin(), "");
  // The outer map's memory and the bound inner map's.
  EXPECT_EQ(b.memory_bytes(), map_memlock(sets) + map_memlock(inner.get()));

  const auto &c = find(list, "sm_counters");
  EXPECT_EQ(c.type(), "percpu_array");
  EXPECT_EQ(c.entries(), 2u);  // the elements that are not zero
  EXPECT_EQ(c.max_entries(), static_cast<std::uint32_t>(SM_CNT__MAX));

  EXPECT_EQ(find(list, "sm_traffic").entries(), 1u);

  for (const char *name : {"sm_events", "sm_conn_store"}) {
    const auto &m = find(list, name);
    EXPECT_FALSE(m.entries_known()) << name;
    EXPECT_EQ(m.entries(), 0u) << name;
    EXPECT_EQ(m.max_entries(), 0u) << name;
    EXPECT_GT(m.memory_bytes(), 0u) << name;
  }
  EXPECT_EQ(find(list, "sm_events").type(), "ringbuf");
  EXPECT_EQ(find(list, "sm_conn_store").type(), "sk_storage");

  const auto &gone = find(list, "sm_gone");
  EXPECT_FALSE(gone.entries_known());
  EXPECT_EQ(gone.memory_bytes(), 0u);
  EXPECT_EQ(gone.max_entries(), 8u);

  std::uint64_t total = 0;
  for (const auto &m : list.maps()) total += m.memory_bytes();
  EXPECT_EQ(list.memory_bytes(), total);

  // Dumps.
  auto d = inspector.dump("sm_services", 0, names_);
  EXPECT_EQ(d.map().name(), "sm_services");
  EXPECT_EQ(d.total(), 2u);
  EXPECT_FALSE(d.truncated());
  std::map<std::string, std::string> entries;
  for (const auto &e : d.entries()) entries[e.key()] = e.value();
  EXPECT_EQ(entries, (std::map<std::string, std::string>{{"10.96.0.10:80/tcp", "slot 3 (demo/web)"},
                                                         {"10.96.0.11:80/tcp", "slot 4"}}));
  d = inspector.dump("sm_services", 1, names_);
  EXPECT_EQ(d.entries_size(), 1);
  EXPECT_EQ(d.total(), 2u);
  EXPECT_TRUE(d.truncated());

  d = inspector.dump("sm_backend_sets", 0, names_);
  ASSERT_EQ(d.entries_size(), 1);
  EXPECT_EQ(d.entries(0).key(), "slot 3 (demo/web 10.96.0.10:80/tcp)");
  EXPECT_EQ(d.entries(0).value(),
            "inner map " + std::to_string(inner_id) +
                ": ROUND_ROBIN, 2 backends: 10.78.1.10:8080 weight 3, 10.78.1.11:8080 weight 1");

  d = inspector.dump("sm_counters", 0, names_);
  ASSERT_EQ(d.entries_size(), 2);
  EXPECT_EQ(d.total(), 2u);
  EXPECT_EQ(d.entries(0).key(), "connect_balanced");
  EXPECT_EQ(d.entries(0).value(), std::to_string(sum_of(1)));
  EXPECT_EQ(d.entries(1).key(), "connect_denied");
  EXPECT_EQ(d.entries(1).value(), std::to_string(sum_of(SM_CNT_CONNECT_DENIED + 1)));

  d = inspector.dump("sm_traffic", 0, names_);
  ASSERT_EQ(d.entries_size(), 1);
  EXPECT_EQ(d.entries(0).key(),
            "demo/client → demo/web via demo/web 10.96.0.10:80/tcp backend 10.78.1.10:8080");
  EXPECT_EQ(d.entries(0).value(),
            "balanced=" + std::to_string(cpus_) + " opened=" + std::to_string(cpus_) +
                " active=" + std::to_string(cpus_) + " bytes_sent=" + std::to_string(100 * cpus_));

  for (const char *name : {"sm_events", "sm_conn_store"}) {
    d = inspector.dump(name, 0, names_);
    EXPECT_EQ(d.total(), 0u);
    EXPECT_FALSE(d.truncated());
    EXPECT_FALSE(d.map().entries_known());
    ASSERT_EQ(d.entries_size(), 1) << name;
    EXPECT_EQ(d.entries(0).key(), "");
    EXPECT_TRUE(d.entries(0).value().starts_with(std::string(name) + " is "))
        << d.entries(0).value();
  }

  try {
    inspector.dump("sm_nope", 0, names_);
    ADD_FAILURE() << "no exception";
  } catch (const std::out_of_range &e) {
    EXPECT_STREQ(e.what(), "no map sm_nope on this node; `meshctl bpf maps` lists them");
  }
  EXPECT_THROW(inspector.dump("sm_gone", 0, names_), std::runtime_error);
}

TEST_F(MapInspectorTest, LimitZeroListsAThousand) {
  const int fd =
      create("sm_endpoints", BPF_MAP_TYPE_HASH, sizeof(sm_ip_key), sizeof(sm_endpoint), 2048);
  for (std::uint32_t i = 0; i < 1500; ++i) {
    sm_ip_key k{};
    k.addr[0] = htonl(0x0a4e0000 + i);
    k.family = SM_AF_INET;
    sm_endpoint v{.workload_id = 4, .node_id = 1, .flags = 0};
    ASSERT_EQ(bpf_map_update_elem(fd, &k, &v, BPF_ANY), 0);
  }
  const MapInspector inspector(infos_, "");
  EXPECT_EQ(inspector.list().maps(0).entries(), 1500u);
  EXPECT_EQ(inspector.list().maps(0).pin(), "");
  const auto d = inspector.dump("sm_endpoints", 0, names_);
  EXPECT_EQ(d.entries_size(), 1000);
  EXPECT_EQ(d.total(), 1500u);
  EXPECT_TRUE(d.truncated());
  EXPECT_EQ(d.entries(0).value(), "demo/web (#4) on #1 (not known to the agent), local");
}

}  // namespace
}  // namespace sockmesh::telemetry
