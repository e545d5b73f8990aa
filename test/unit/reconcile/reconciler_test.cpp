// Reconcile diffing against a fake kernel: unchanged services are not rewritten, changed ones
// switch in one write, writes of one apply go in one batch, and a restarted agent adopts what the
// maps hold.
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
  void write_slots(const std::vector<std::pair<uint32_t, const SlotImage *>> &writes) override {
    if (fail_writes) throw std::runtime_error("injected failure");
    std::string line = "write_slots";
    for (const auto &[slot, image] : writes) {
      line += " " + std::to_string(slot);
      sets[slot] = *image;
    }
    log.push_back(line);
  }
  void bind(const ServiceKey &key, uint32_t slot) override {
    log.push_back("bind " + format_key(key) + " " + std::to_string(slot));
    bound[key] = slot;
  }
  void unbind(const ServiceKey &key) override {
    log.push_back("unbind " + format_key(key));
    bound.erase(key);
  }
  void clear_slots(const std::vector<uint32_t> &slots) override {
    std::string line = "clear_slots";
    for (uint32_t slot : slots) {
      line += " " + std::to_string(slot);
      sets.erase(slot);
    }
    log.push_back(line);
  }

  std::map<ServiceKey, uint32_t> bound;
  std::map<uint32_t, SlotImage> sets;
  std::vector<std::string> log;
  bool fail_writes = false;
};

ServiceKey vip(uint8_t last, uint16_t port = 80) {
  return {parse_ip("10.96.0." + std::to_string(last)), port, IPPROTO_TCP};
}

DesiredService service(const std::string &name, std::vector<uint32_t> weights,
                       uint32_t policy = SM_LB_RANDOM) {
  DesiredService s{name, policy, policy == SM_LB_MAGLEV ? 13u : 0u, {}, {}};
  int host = 10;
  for (uint32_t w : weights)
    s.backends.push_back(
        {parse_ip("10.78.1." + std::to_string(host++)), 8080, w, name + "-be", ""});
  return s;
}

TEST(Reconciler, AddsEachServiceWithTheSetBeforeTheBinding) {
  FakeLbMaps maps;
  Reconciler reconciler(maps);
  auto stats = reconciler.apply({{vip(1), service("demo/a", {1, 1})}});
  EXPECT_EQ(stats.added, 1u);
  EXPECT_EQ(maps.log, (std::vector<std::string>{"write_slots 0", "bind 10.96.0.1:80/TCP 0"}));
  const auto &set = maps.sets.at(0).set;
  EXPECT_EQ(set.count, 2u);
  EXPECT_EQ(set.total_weight, 2u);
  EXPECT_EQ(set.backends[0].port, htons(8080));
  EXPECT_EQ(set.backends[0].family, SM_AF_INET);
  EXPECT_EQ(set.backends[1].addr[0], htonl((10u << 24) | (78u << 16) | (1u << 8) | 11));
}

TEST(Reconciler, AllWritesOfOneApplyGoInOneBatch) {
  FakeLbMaps maps;
  Reconciler reconciler(maps);
  reconciler.apply({{vip(1), service("demo/a", {1})},
                    {vip(2), service("demo/b", {1})},
                    {vip(3), service("demo/c", {1})}});
  EXPECT_EQ(maps.log[0], "write_slots 0 1 2");
  EXPECT_EQ(maps.log.size(), 4u);  // the batch, then three bindings
}

TEST(Reconciler, UnchangedServiceIsNotRewritten) {
  FakeLbMaps maps;
  Reconciler reconciler(maps);
  DesiredState desired{{vip(1), service("demo/a", {1, 1})},
                       {vip(2), service("demo/b", {3}, SM_LB_MAGLEV)}};
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
  EXPECT_EQ(maps.log, (std::vector<std::string>{"write_slots 1"}));
  EXPECT_EQ(stats.updated, 1u);
  EXPECT_EQ(stats.unchanged, 1u);
  EXPECT_EQ(maps.sets.at(1).set.total_weight, 7u);
}

TEST(Reconciler, PolicyChangeIsAChange) {
  FakeLbMaps maps;
  Reconciler reconciler(maps);
  reconciler.apply({{vip(1), service("demo/a", {1, 1})}});
  maps.log.clear();
  reconciler.apply({{vip(1), service("demo/a", {1, 1}, SM_LB_MAGLEV)}});
  EXPECT_EQ(maps.log, (std::vector<std::string>{"write_slots 0"}));
  EXPECT_EQ(maps.sets.at(0).set.policy, uint32_t(SM_LB_MAGLEV));
  EXPECT_EQ(maps.sets.at(0).maglev.size(), 13u);
}

TEST(Reconciler, RemovalUnbindsBeforeClearingAndSlotsAreNotReusedAtOnce) {
  FakeLbMaps maps;
  Reconciler reconciler(maps);
  reconciler.apply({{vip(1), service("demo/a", {1})}});
  maps.log.clear();
  reconciler.apply({{vip(2), service("demo/b", {1})}});
  EXPECT_EQ(maps.log, (std::vector<std::string>{"unbind 10.96.0.1:80/TCP", "clear_slots 0",
                                                "write_slots 1", "bind 10.96.0.2:80/TCP 1"}));
}

// update(): the change alone — services not named are neither compared nor touched, a changed
// one is one write to its slot, an added one written then bound, a removed one unbound then
// cleared; the same end state as apply() of the whole.
TEST(Reconciler, UpdateTouchesOnlyTheChange) {
  FakeLbMaps maps;
  Reconciler reconciler(maps);
  reconciler.apply({{vip(1), service("demo/a", {1})},
                    {vip(2), service("demo/b", {1})},
                    {vip(3), service("demo/c", {1})}});
  maps.log.clear();
  auto stats = reconciler.update(
      {{vip(2), service("demo/b", {5})}, {vip(4), service("demo/d", {1})}}, {vip(3), vip(9)});
  EXPECT_EQ(maps.log, (std::vector<std::string>{"unbind 10.96.0.3:80/TCP", "clear_slots 2",
                                                "write_slots 1 3", "bind 10.96.0.4:80/TCP 3"}));
  EXPECT_EQ(stats.updated, 1u);
  EXPECT_EQ(stats.added, 1u);
  EXPECT_EQ(stats.removed, 1u);
  EXPECT_EQ(stats.unchanged, 0u);  // demo/a was not looked at
  EXPECT_EQ(reconciler.services(), 3u);
  EXPECT_EQ(maps.sets.at(1).set.total_weight, 5u);

  maps.log.clear();  // the same change again writes nothing
  stats = reconciler.update({{vip(2), service("demo/b", {5})}}, {});
  EXPECT_TRUE(maps.log.empty());
  EXPECT_EQ(stats.unchanged, 1u);
  maps.log.clear();  // and apply() of the whole now finds nothing to do
  stats = reconciler.apply({{vip(1), service("demo/a", {1})},
                            {vip(2), service("demo/b", {5})},
                            {vip(4), service("demo/d", {1})}});
  EXPECT_TRUE(maps.log.empty());
  EXPECT_EQ(stats.unchanged, 3u);
}

TEST(Reconciler, RestartedAgentAdoptsKernelStateAndRewritesNothing) {
  FakeLbMaps maps;
  DesiredState desired{{vip(1), service("demo/a", {1, 2})},
                       {vip(2), service("demo/b", {3}, SM_LB_MAGLEV)}};
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
                {vip(2), service("demo/b", {3}, SM_LB_MAGLEV)},
                {vip(3), service("demo/c", {1})}});
  EXPECT_EQ(second.slot_of(vip(3)), 2);
}

TEST(Reconciler, FailedWriteIsReportedAndRewrittenNextTime) {
  FakeLbMaps maps;
  Reconciler reconciler(maps);
  reconciler.apply({{vip(1), service("demo/a", {1})}});
  maps.fail_writes = true;
  EXPECT_THROW(
      reconciler.apply({{vip(1), service("demo/a", {2})}, {vip(2), service("demo/b", {1})}}),
      std::runtime_error);
  EXPECT_EQ(maps.bound.size(), 1u);
  EXPECT_EQ(reconciler.slot_of(vip(2)), -1);
  maps.fail_writes = false;
  maps.log.clear();
  // demo/a's slot may hold either image: it is written again even though the input repeats.
  auto stats =
      reconciler.apply({{vip(1), service("demo/a", {2})}, {vip(2), service("demo/b", {1})}});
  EXPECT_EQ(stats.added, 1u);
  EXPECT_EQ(stats.updated, 1u);
  EXPECT_EQ(maps.bound.size(), 2u);
}

TEST(Reconciler, TooManyBackendsIsRefusedBeforeAnyWrite) {
  FakeLbMaps maps;
  Reconciler reconciler(maps);
  EXPECT_THROW(reconciler.apply(
                   {{vip(1), service("demo/a", {1})},
                    {vip(2), service("demo/b", std::vector<uint32_t>(SM_MAX_BACKENDS + 1, 1))}}),
               std::invalid_argument);
  EXPECT_TRUE(maps.log.empty());
}

TEST(SlotImage, MaglevServiceCarriesATableOfItsSize) {
  auto image = to_slot_image(service("demo/a", {1, 1, 0}, SM_LB_MAGLEV));
  EXPECT_EQ(image.set.maglev_size, 13u);
  ASSERT_EQ(image.maglev.size(), 13u);
  for (uint8_t entry : image.maglev) EXPECT_LT(entry, 2);  // never the weight-0 backend
  auto none = to_slot_image(service("demo/b", {0}, SM_LB_MAGLEV));
  EXPECT_EQ(none.set.total_weight, 0u);  // the kernel refuses: no usable backend
}

}  // namespace
}  // namespace sockmesh::reconcile
