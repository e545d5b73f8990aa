// Summaries over rounds: a value's median and its min–max across the rounds (docs/benchmarks.md:
// every figure is reported with its spread).
#pragma once

#include <nlohmann/json.hpp>
#include <vector>

#include "connect_loop.h"

namespace sockmesh::bench {

struct Spread {
  double median = 0, min = 0, max = 0;
};

// All zero for no values; the mean of the middle two for an even count.
Spread spread(std::vector<double> values);

// One variant's samples, one per round: the spreads of their percentiles and the sums of their
// failures and drops.
struct SampleSummary {
  int rounds = 0;
  Spread p50, p99, p999, mean;
  long failures = 0, listen_overflows = 0, conntrack_drops = 0;
};

SampleSummary summarize_samples(const std::vector<SampleStats> &samples);

NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Spread, median, min, max)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(SampleSummary, rounds, p50, p99, p999, mean, failures,
                                   listen_overflows, conntrack_drops)

}  // namespace sockmesh::bench
