// The kernel's backend choice (bpf/include/sockmesh/lb_select.h), run in user space.
#include "sockmesh/lb_select.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

namespace {

sm_backend_set make_set(const std::vector<uint32_t> &weights) {
  sm_backend_set set;
  std::memset(&set, 0, sizeof(set));
  uint32_t cum = 0;
  for (uint32_t w : weights) {
    cum += w;
    set.backends[set.count].addr[0] = set.count + 1;
    set.backends[set.count].weight_cum = cum;
    set.count++;
  }
  set.total_weight = cum;
  return set;
}

// Picks for `steps` random numbers spread evenly over the whole 32-bit range.
std::vector<uint64_t> picks_over_grid(const sm_backend_set &set, uint64_t steps) {
  std::vector<uint64_t> picks(set.count, 0);
  for (uint64_t i = 0; i < steps; i++) {
    int idx = sm_select_weighted(&set, uint32_t((i << 32) / steps));
    EXPECT_GE(idx, 0);
    EXPECT_LT(idx, int(set.count));
    if (idx >= 0) picks[idx]++;
  }
  return picks;
}

TEST(WeightedSelection, GridOfRandomNumbersSplitsExactlyByWeight) {
  auto set = make_set({80, 20});
  auto picks = picks_over_grid(set, 1 << 20);
  // Over an even grid the split is exact up to one step per backend boundary.
  EXPECT_NEAR(double(picks[0]) / (1 << 20), 0.8, 2.0 / (1 << 20));
  EXPECT_NEAR(double(picks[1]) / (1 << 20), 0.2, 2.0 / (1 << 20));
}

TEST(WeightedSelection, SixtyFourEqualBackendsShareEvenly) {
  std::vector<uint32_t> weights(SM_MAX_BACKENDS, 1);
  auto set = make_set(weights);
  auto picks = picks_over_grid(set, 1 << 16);
  for (int i = 0; i < SM_MAX_BACKENDS; i++) EXPECT_EQ(picks[i], (1u << 16) / SM_MAX_BACKENDS) << i;
}

TEST(WeightedSelection, SeededRandomSplitWithinFiveSigma) {
  auto set = make_set({40, 40, 20});
  std::mt19937 rng(12345);
  const int n = 100000;
  std::vector<int> picks(3, 0);
  for (int i = 0; i < n; i++) picks[sm_select_weighted(&set, rng())]++;
  const double expected[] = {0.4, 0.4, 0.2};
  for (int i = 0; i < 3; i++) {
    double sigma = std::sqrt(expected[i] * (1 - expected[i]) / n);
    EXPECT_NEAR(double(picks[i]) / n, expected[i], 5 * sigma) << i;
  }
}

TEST(WeightedSelection, ZeroWeightBackendIsNeverChosen) {
  auto set = make_set({0, 5, 0, 5, 0});
  auto picks = picks_over_grid(set, 1 << 16);
  EXPECT_EQ(picks[0], 0u);
  EXPECT_EQ(picks[2], 0u);
  EXPECT_EQ(picks[4], 0u);
  EXPECT_EQ(picks[1], 1u << 15);
  EXPECT_EQ(picks[3], 1u << 15);
}

TEST(WeightedSelection, ExtremesOfTheRandomRange) {
  auto set = make_set({1, 1, 1});
  EXPECT_EQ(sm_select_weighted(&set, 0), 0);
  EXPECT_EQ(sm_select_weighted(&set, UINT32_MAX), 2);
  auto heavy = make_set({UINT32_MAX - 1, 1});
  EXPECT_EQ(sm_select_weighted(&heavy, UINT32_MAX), 1);
}

TEST(WeightedSelection, NoUsableBackend) {
  auto empty = make_set({});
  EXPECT_EQ(sm_select_weighted(&empty, 42), -1);
  auto zero = make_set({0, 0});
  EXPECT_EQ(sm_select_weighted(&zero, 42), -1);
}

TEST(WeightedSelection, CorruptSetsAreRefusedNotOverread) {
  auto set = make_set({1, 1});
  set.count = SM_MAX_BACKENDS + 1;
  EXPECT_EQ(sm_select_weighted(&set, 7), -1);
  auto inconsistent = make_set({1, 1});
  inconsistent.total_weight = 10;  // larger than the last cumulative weight
  EXPECT_EQ(sm_select_weighted(&inconsistent, UINT32_MAX), -1);
}

TEST(RoundRobin, EachCursorSequenceHitsBackendsExactlyByWeight) {
  auto set = make_set({2, 1, 3});
  std::vector<int> picks(3, 0);
  for (uint32_t cursor = 0; cursor < 6 * 1000; cursor++) picks[sm_select_round_robin(&set, cursor)]++;
  EXPECT_EQ(picks, (std::vector<int>{2000, 1000, 3000}));
  // The cursor wraps at 2^32 without skipping a backend forever.
  EXPECT_GE(sm_select_round_robin(&set, UINT32_MAX), 0);
  auto zero = make_set({0});
  EXPECT_EQ(sm_select_round_robin(&zero, 5), -1);
}

TEST(Maglev, TableEntryMustNameAUsableBackend) {
  auto set = make_set({1, 0, 1});
  EXPECT_EQ(sm_maglev_backend(&set, 0), 0);
  EXPECT_EQ(sm_maglev_backend(&set, 1), -1);  // weight 0
  EXPECT_EQ(sm_maglev_backend(&set, 2), 2);
  EXPECT_EQ(sm_maglev_backend(&set, 3), -1);  // beyond count
  EXPECT_EQ(sm_maglev_backend(&set, 255), -1);
}

}  // namespace
