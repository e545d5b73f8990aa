// Reconcile diffing against a fake kernel: unchanged services are not rewritten, changed ones
// switch in one write, and a restarted agent adopts what the maps hold.
#include "reconcile/reconciler.h"

#include <gtest/gtest.h>
#include <netinet/in.h>

#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace sockmesh::reconcile {
namespace {

class FakeLbMaps : public LbMaps {
 public:
  std::vector<KernelService> read_all() override {
    std::vector<KernelService> out;
    for (const auto &[key, slot] : bound) out.push_back({key, slot, sets.at(slot)});
    return out;
  }
  void write_set(uint32_t slot, const sm_backend_set &set) override {
    if (fail_writes) throw std::runtime_error("injected failure");
    log.push_back("write_set " + std::to_string(slot));
    sets[slot] = set;
  }
  void bind(const ServiceKey &key, uint32_t slot) override {
    log.push_back("bind " + format_key(key) + " " + std::to_string(slot));
    bound[key] = slot;
  }
  void unbind(const ServiceKey &key) override {
    log.push_back("unbind " + format_key(key));
    bound.erase(key);
  }
  void clear_slot(uint32_t slot) override {
    log.push_back("clear_slot " + std::to_string(slot));
    sets.erase(slot);
  }

  std::map<ServiceKey, uint32_t> bound;
  std::map<uint32_t, sm_backend_set> sets;
  std::vector<std::string> log;
  bool fail_writes = false;
};

ServiceKey vip(uint8_t last, uint16_t port = 80) {
  return {(10u << 24) | (96u << 16) | last, port, IPPROTO_TCP};
}

DesiredService service(const std::string &name, std::vector<uint32_t> weights) {
  DesiredService s{name, {}};
  uint32_t host = 10;
  for (uint32_t w : weights)
    s.backends.push_back(
        {(10u << 24) | (78u << 16) | (1u << 8) | host++, 8080, w, name + "-be", ""});
  return s;
}

TEST(Reconciler, AddsEachServiceWithTheSetBeforeTheBinding) {
  FakeLbMaps maps;
  Reconciler reconciler(maps);
  auto stats = reconciler.apply({{vip(1), service("demo/a", {1, 1})}});
  EXPECT_EQ(stats.added, 1u);
  EXPECT_EQ(maps.log, (std::vector<std::string>{"write_set 0", "bind 10.96.0.1:80/TCP 0"}));
  EXPECT_EQ(maps.sets.at(0).count, 2u);
  EXPECT_EQ(maps.sets.at(0).total_weight, 2u);
  EXPECT_EQ(maps.sets.at(0).backends[0].port, htons(8080));
}

TEST(Reconciler, UnchangedServiceIsNotRewritten) {
  FakeLbMaps maps;
  Reconciler reconciler(maps);
  DesiredState desired{{vip(1), service("demo/a", {1, 1})}, {vip(2), service("demo/b", {3})}};
  reconciler.apply(desired);
  maps.log.clear();
  auto stats = reconciler.apply(desired);
  EXPECT_TRUE(maps.log.empty());
  EXPECT_EQ(stats.unchanged, 2u);
  EXPECT_EQ(stats.added + stats.updated + stats.removed, 0u);
}

TEST(Reconciler, ChangedServiceSwitchesInOneWriteToItsSlot) {
  FakeLbMaps maps;
  Reconciler reconciler(maps);
  reconciler.apply({{vip(1), service("demo/a", {1, 1})}, {vip(2), service("demo/b", {3})}});
  maps.log.clear();
  auto stats =
      reconciler.apply({{vip(1), service("demo/a", {1, 1})}, {vip(2), service("demo/b", {3, 4})}});
  EXPECT_EQ(maps.log, (std::vector<std::string>{"write_set 1"}));
  EXPECT_EQ(stats.updated, 1u);
  EXPECT_EQ(stats.unchanged, 1u);
  EXPECT_EQ(maps.sets.at(1).total_weight, 7u);
}

TEST(Reconciler, RemovalUnbindsBeforeClearingAndSlotsAreNotReusedAtOnce) {
  FakeLbMaps maps;
  Reconciler reconciler(maps);
  reconciler.apply({{vip(1), service("demo/a", {1})}});
  maps.log.clear();
  reconciler.apply({{vip(2), service("demo/b", {1})}});
  EXPECT_EQ(maps.log, (std::vector<std::string>{"unbind 10.96.0.1:80/TCP", "clear_slot 0",
                                                "write_set 1", "bind 10.96.0.2:80/TCP 1"}));
}

TEST(Reconciler, RestartedAgentAdoptsKernelStateAndRewritesNothing) {
  FakeLbMaps maps;
  DesiredState desired{{vip(1), service("demo/a", {1, 2})}, {vip(2), service("demo/b", {3})}};
  {
    Reconciler first(maps);
    first.apply(desired);
  }
  maps.log.clear();
  Reconciler second(maps);
  EXPECT_EQ(second.services(), 2u);
  auto stats = second.apply(desired);
  EXPECT_TRUE(maps.log.empty());
  EXPECT_EQ(stats.unchanged, 2u);
  // A new service does not take a slot the adopted ones hold.
  second.apply({{vip(1), service("demo/a", {1, 2})},
                {vip(2), service("demo/b", {3})},
                {vip(3), service("demo/c", {1})}});
  EXPECT_EQ(second.slot_of(vip(3)), 2);
}

TEST(Reconciler, FailedWriteIsReportedAndRetriedNextTime) {
  FakeLbMaps maps;
  Reconciler reconciler(maps);
  maps.fail_writes = true;
  EXPECT_THROW(reconciler.apply({{vip(1), service("demo/a", {1})}}), std::runtime_error);
  EXPECT_TRUE(maps.bound.empty());
  EXPECT_EQ(reconciler.slot_of(vip(1)), -1);
  maps.fail_writes = false;
  auto stats = reconciler.apply({{vip(1), service("demo/a", {1})}});
  EXPECT_EQ(stats.added, 1u);
  EXPECT_EQ(maps.bound.size(), 1u);
}

TEST(Reconciler, TooManyBackendsIsRefusedBeforeAnyWrite) {
  FakeLbMaps maps;
  Reconciler reconciler(maps);
  EXPECT_THROW(reconciler.apply(
                   {{vip(1), service("demo/a", std::vector<uint32_t>(SM_MAX_BACKENDS + 1, 1))}}),
               std::invalid_argument);
  EXPECT_TRUE(maps.log.empty());
}

}  // namespace
}  // namespace sockmesh::reconcile
