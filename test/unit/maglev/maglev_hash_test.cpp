// The kernel's choice of Maglev entry (bpf/include/sockmesh/maglev_hash.h), run in user space.
#include "sockmesh/maglev_hash.h"

#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <vector>

#include "maglev/maglev.h"
#include "sockmesh/lb_maps.h"

namespace {

TEST(MaglevPosition, IsPinned) {
  // splitmix64's published first output (seed 0), then values every node must agree on.
  EXPECT_EQ(sm_maglev_mix64(0x9e3779b97f4a7c15u), 0xe220a8397b1dcdafu);
  EXPECT_EQ(sm_maglev_position(0, 13), 0u);
  EXPECT_EQ(sm_maglev_position(1, 13), 10u);
  EXPECT_EQ(sm_maglev_position(4097, 4093), 1175u);
  EXPECT_EQ(sm_maglev_position(123456789, 65521), 4294u);
  EXPECT_EQ(sm_maglev_position(~0ull, 65521), 56578u);
}

TEST(MaglevPosition, ZeroSizeGivesZero) {
  EXPECT_EQ(sm_maglev_position(12345, 0), 0u);
}

TEST(MaglevPosition, StaysInRange) {
  for (uint32_t size : {1u, 2u, 13u, 4093u, 65521u, 4294967295u})
    for (uint64_t key = 0; key < 10000; key++) ASSERT_LT(sm_maglev_position(key, size), size);
}

TEST(MaglevPosition, AgentWrapperIsTheKernelFunction) {
  for (uint64_t key = 0; key < 1000; key++)
    EXPECT_EQ(sockmesh::maglev::position(key * 7777, 4093), sm_maglev_position(key * 7777, 4093));
}

struct Spread {
  double chi_square;
  double max_deviation_sigmas;
};

// 100 keys per entry, key = first + i * stride.
Spread spread(uint32_t size, uint64_t first, uint64_t stride) {
  const uint64_t per_entry = 100;
  std::vector<uint32_t> counts(size, 0);
  for (uint64_t i = 0; i < per_entry * size; i++)
    counts[sm_maglev_position(first + i * stride, size)]++;
  Spread s{0, 0};
  for (uint32_t c : counts) {
    double d = double(c) - per_entry;
    s.chi_square += d * d / per_entry;
    s.max_deviation_sigmas = std::max(s.max_deviation_sigmas, std::abs(d) / std::sqrt(per_entry));
  }
  return s;
}

TEST(MaglevPosition, CgroupIdsSpreadEvenly) {
  // Cgroup ids are inode numbers: mostly consecutive. Strides equal to the table size or a power
  // of two would put every key on one entry without the mixer.
  for (uint32_t size : {uint32_t(SM_MAGLEV_MIN_SIZE), uint32_t(SM_MAGLEV_DEFAULT_SIZE)}) {
    for (uint64_t stride : {uint64_t(1), uint64_t(size), uint64_t(1) << 12, uint64_t(1) << 32}) {
      Spread s = spread(size, 4096, stride);
      // Chi-square with size - 1 degrees of freedom: mean size - 1, sd sqrt(2 (size - 1)); the
      // bound is 6 sd above the mean. The largest of `size` deviations stays below 6 sigma.
      double df = size - 1;
      EXPECT_LT(s.chi_square, df + 6 * std::sqrt(2 * df))
          << "size=" << size << " stride=" << stride;
      EXPECT_LT(s.max_deviation_sigmas, 6.0) << "size=" << size << " stride=" << stride;
    }
  }
}

TEST(MaglevPosition, MixerAvalanches) {
  // Flipping any one input bit flips each output bit with probability ~1/2: over 2,000 keys per
  // input bit, the mean number of flipped output bits is 32 +- 0.5 (sd of the mean ~0.09).
  for (int bit = 0; bit < 64; bit++) {
    double flipped = 0;
    const int keys = 2000;
    for (uint64_t k = 0; k < keys; k++) {
      uint64_t key = 4096 + k;
      flipped += std::popcount(sm_maglev_mix64(key) ^ sm_maglev_mix64(key ^ (uint64_t(1) << bit)));
    }
    EXPECT_NEAR(flipped / keys, 32.0, 0.5) << "bit " << bit;
  }
}

TEST(MaglevPosition, ClientsFollowTheTableWeights) {
  // End to end: a 80/20 table and 100,000 consecutive cgroup ids split 80/20 within 5 sigma
  // (sigma = sqrt(0.16 / 100000) = 0.13%).
  std::vector<sockmesh::maglev::Backend> backends = {{"10.78.1.10:8080", 80},
                                                     {"10.78.2.10:8080", 20}};
  auto table = sockmesh::maglev::build_table(backends, SM_MAGLEV_DEFAULT_SIZE);
  const int clients = 100000;
  int first = 0;
  for (uint64_t id = 10000; id < 10000 + clients; id++)
    first += table[sm_maglev_position(id, SM_MAGLEV_DEFAULT_SIZE)] == 0;
  EXPECT_NEAR(double(first) / clients, 0.8, 5 * std::sqrt(0.16 / clients));
}

}  // namespace
