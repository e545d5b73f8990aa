// Results of a resilience_bench run: the raw samples and trials, the summaries (medians over rounds
// and trials with their min–max, the per-round cost ratios) as JSON and as the markdown tables
// docs/benchmarks.md quotes.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cost.h"
#include "dead_backend.h"

namespace sockmesh::bench {

struct ResilienceResult {
  nlohmann::json meta;  // command line, kernel, parameters
  CostResult cost;
  long connects_per_sample = 0;  // warm-up + timed: what a tracked variant charges per sample
  std::vector<TrialResult> trials;
};

nlohmann::json result_json(const ResilienceResult &result);
std::string result_markdown(const ResilienceResult &result);

}  // namespace sockmesh::bench
