// The kernel's resilience decisions (bpf/include/sockmesh/resilience.h), run in user space with a
// clock the test sets: the token bucket, fault injection's share, ejection length and its growth,
// max_ejection_percent, and which RTOs are failures.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <random>

extern "C" {
#include "sockmesh/resilience.h"
}

namespace {

constexpr uint64_t kSecond = 1000000000ull;
constexpr uint64_t kMs = 1000000ull;

struct Bucket {
  __u64 tat = 0;
  __u64 interval, burst_ns;
  Bucket(uint64_t per_second, uint64_t burst)
      : interval(kSecond / per_second), burst_ns((burst - 1) * (kSecond / per_second)) {}
  bool take(uint64_t now) {
    __u64 next = 0;
    if (!sm_rs_gcra(tat, now, interval, burst_ns, &next)) return false;
    tat = next;
    return true;
  }
};

TEST(RateLimitTest, AFullBucketPassesItsBurstAtOnceThenOnePerInterval) {
  Bucket bucket(10, 5);  // 10/s, burst 5
  const uint64_t t0 = 1000 * kSecond;
  int passed = 0;
  for (int i = 0; i < 20; i++) passed += bucket.take(t0);
  EXPECT_EQ(passed, 5);
  // The next token comes one interval (100 ms) after the burst's first.
  EXPECT_FALSE(bucket.take(t0 + 99 * kMs));
  EXPECT_TRUE(bucket.take(t0 + 100 * kMs));
  EXPECT_FALSE(bucket.take(t0 + 100 * kMs));
}

TEST(RateLimitTest, TenSecondsOfHammeringPassRateTimesTimePlusBurst) {
  Bucket bucket(100, 20);
  const uint64_t t0 = 5 * kSecond;
  int passed = 0;
  for (uint64_t t = t0; t < t0 + 10 * kSecond; t += kMs / 4) passed += bucket.take(t);  // 4000/s
  // 20 at once, then one per 10 ms for 10 s (the last interval may or may not have started).
  EXPECT_GE(passed, 20 + 999);
  EXPECT_LE(passed, 20 + 1000);
}

TEST(RateLimitTest, AnIdleBucketRefillsOnlyToItsBurst) {
  Bucket bucket(2, 3);
  const uint64_t t0 = kSecond;
  EXPECT_TRUE(bucket.take(t0));
  int passed = 0;
  for (int i = 0; i < 10; i++) passed += bucket.take(t0 + 3600 * kSecond);
  EXPECT_EQ(passed, 3);
}

TEST(RateLimitTest, BurstOfOneIsAStrictInterval) {
  Bucket bucket(4, 1);
  EXPECT_TRUE(bucket.take(kSecond));
  EXPECT_FALSE(bucket.take(kSecond + 249 * kMs));
  EXPECT_TRUE(bucket.take(kSecond + 250 * kMs));
}

TEST(FaultTest, ShareOfAMillionUniformDrawsIsWithinFiveSigma) {
  std::mt19937 rng(42);
  for (uint32_t ppm : {1000u, 125000u, 500000u, 999999u}) {
    const int n = 1000000;
    int hits = 0;
    for (int i = 0; i < n; i++) hits += sm_rs_fault_hit(ppm, rng());
    const double p = ppm / 1e6, sigma = std::sqrt(n * p * (1 - p));
    EXPECT_NEAR(hits, n * p, 5 * sigma) << ppm;
  }
}

TEST(FaultTest, EdgesOfTheRange) {
  EXPECT_FALSE(sm_rs_fault_hit(0, 0));
  EXPECT_FALSE(sm_rs_fault_hit(0, UINT32_MAX));
  EXPECT_TRUE(sm_rs_fault_hit(1000000, 0));
  EXPECT_TRUE(sm_rs_fault_hit(1000000, UINT32_MAX));
  EXPECT_TRUE(sm_rs_fault_hit(1, 0));
  EXPECT_FALSE(sm_rs_fault_hit(1, 1u << 20));  // 1 ppm is the lowest 4295 of 2^32 draws
}

TEST(EjectionTest, MaxEjectedIsThePercentRoundedDownButAtLeastOne) {
  EXPECT_EQ(sm_rs_max_ejected(10, 3), 1u);   // 0.3 -> at least one
  EXPECT_EQ(sm_rs_max_ejected(50, 3), 1u);   // 1.5 -> 1
  EXPECT_EQ(sm_rs_max_ejected(67, 3), 2u);   // 2.01 -> 2
  EXPECT_EQ(sm_rs_max_ejected(100, 3), 3u);
  EXPECT_EQ(sm_rs_max_ejected(0, 3), 0u);    // 0: count, never eject
  EXPECT_EQ(sm_rs_max_ejected(10, 0), 0u);
  EXPECT_EQ(sm_rs_max_ejected(10, 64), 6u);
}

TEST(EjectionTest, LengthGrowsWithEjectionsInARowUpToTheCap) {
  const uint64_t base = 30 * kSecond, max = 300 * kSecond;
  EXPECT_EQ(sm_rs_ejection_ns(base, max, 0), 30 * kSecond);
  EXPECT_EQ(sm_rs_ejection_ns(base, max, 1), 60 * kSecond);
  EXPECT_EQ(sm_rs_ejection_ns(base, max, 8), 270 * kSecond);
  EXPECT_EQ(sm_rs_ejection_ns(base, max, 9), 300 * kSecond);
  EXPECT_EQ(sm_rs_ejection_ns(base, max, 1000000), 300 * kSecond);
  EXPECT_EQ(sm_rs_ejection_ns(base, max, UINT32_MAX), 300 * kSecond);  // no overflow
}

sm_resilience settings(uint32_t threshold, uint64_t base, uint64_t max, uint32_t percent) {
  sm_resilience rs{};
  rs.service = 7;
  rs.consecutive_failures = threshold;
  rs.base_ejection_ns = base;
  rs.max_ejection_ns = max;
  rs.max_ejection_percent = percent;
  return rs;
}

TEST(EjectionTest, ThresholdEjectsForTheBaseTimeAndTheBackendReturnsByItself) {
  const auto rs = settings(3, 2 * kSecond, 20 * kSecond, 50);
  sm_backend_state st{};
  const uint64_t t0 = 100 * kSecond;
  for (uint32_t failures = 1; failures < 3; failures++)
    EXPECT_FALSE(sm_rs_should_eject(&st, failures, rs.consecutive_failures, t0));
  ASSERT_TRUE(sm_rs_should_eject(&st, 3, rs.consecutive_failures, t0));
  ASSERT_TRUE(sm_rs_eject(&st, t0, &rs, 0, 3));
  EXPECT_EQ(st.ejected_until, t0 + 2 * kSecond);
  EXPECT_EQ(st.consecutive, 0u);
  EXPECT_EQ(st.ejections, 1u);
  EXPECT_EQ(sm_rs_backend_check(&st, 0, t0 + 2 * kSecond - 1), SM_RS_EJECTED);
  EXPECT_EQ(sm_rs_backend_check(&st, 0, t0 + 2 * kSecond), SM_RS_USABLE);
  // Already out: another failure does not extend it.
  EXPECT_FALSE(sm_rs_should_eject(&st, 3, rs.consecutive_failures, t0 + kSecond));
}

TEST(EjectionTest, RepeatedEjectionsLastLongerAndACalmBackendStartsOver) {
  const auto rs = settings(1, 2 * kSecond, 5 * kSecond, 100);
  sm_backend_state st{};
  uint64_t t = 10 * kSecond;
  ASSERT_TRUE(sm_rs_eject(&st, t, &rs, 0, 3));
  EXPECT_EQ(st.ejected_until - t, 2 * kSecond);
  t = st.ejected_until + kSecond;  // back, fails again soon
  ASSERT_TRUE(sm_rs_eject(&st, t, &rs, 0, 3));
  EXPECT_EQ(st.ejected_until - t, 4 * kSecond);
  t = st.ejected_until + kSecond;
  ASSERT_TRUE(sm_rs_eject(&st, t, &rs, 0, 3));
  EXPECT_EQ(st.ejected_until - t, 5 * kSecond);  // capped
  EXPECT_EQ(st.ejections_total, 3u);
  // Out of trouble for longer than the cap since it returned: the base again.
  t = st.ejected_until + 5 * kSecond + 1;
  ASSERT_TRUE(sm_rs_eject(&st, t, &rs, 0, 3));
  EXPECT_EQ(st.ejected_until - t, 2 * kSecond);
  EXPECT_EQ(st.ejections, 1u);
  EXPECT_EQ(st.ejections_total, 4u);
}

TEST(EjectionTest, MaxEjectionPercentHoldsBackTheSecondOfThree) {
  const auto rs = settings(5, 30 * kSecond, 300 * kSecond, 50);
  sm_backend_state a{}, b{};
  ASSERT_TRUE(sm_rs_eject(&a, kSecond, &rs, 0, 3));
  b.consecutive = 5;
  EXPECT_FALSE(sm_rs_eject(&b, kSecond, &rs, 1, 3));
  EXPECT_EQ(b.ejected_until, 0u);
  EXPECT_EQ(b.consecutive, 5u);  // kept: the next failure tries again
  EXPECT_EQ(sm_rs_backend_check(&b, 0, kSecond), SM_RS_USABLE);
  // With 67 % two of three may go.
  const auto wider = settings(5, 30 * kSecond, 300 * kSecond, 67);
  EXPECT_TRUE(sm_rs_eject(&b, kSecond, &wider, 1, 3));
}

TEST(EjectionTest, PercentZeroNeverEjects) {
  const auto rs = settings(1, kSecond, kSecond, 0);
  sm_backend_state st{};
  EXPECT_FALSE(sm_rs_eject(&st, kSecond, &rs, 0, 3));
}

TEST(EjectionTest, OutlierDetectionOffNeverTriesToEject) {
  sm_backend_state st{};
  EXPECT_FALSE(sm_rs_should_eject(&st, 1000, 0, kSecond));
}

TEST(LimitTest, FullAtMaxConnectionsPerBackend) {
  sm_backend_state st{};
  st.active = 2;
  EXPECT_EQ(sm_rs_backend_check(&st, 3, kSecond), SM_RS_USABLE);
  st.active = 3;
  EXPECT_EQ(sm_rs_backend_check(&st, 3, kSecond), SM_RS_FULL);
  EXPECT_EQ(sm_rs_backend_check(&st, 0, kSecond), SM_RS_USABLE);  // 0: no limit
  st.active = -1;  // a stale release: never below usable
  EXPECT_EQ(sm_rs_backend_check(&st, 1, kSecond), SM_RS_USABLE);
}

TEST(FailureTest, WhichRtosCount) {
  EXPECT_FALSE(sm_rs_rto_failure(1, 0));  // first SYN retransmission (1 s)
  EXPECT_TRUE(sm_rs_rto_failure(1, 1));   // second (3 s): a timed-out connect
  EXPECT_FALSE(sm_rs_rto_failure(0, 1));
  EXPECT_TRUE(sm_rs_rto_failure(0, 2));   // third RTO in a row: a storm
}

}  // namespace
