// The connect-cost part of resilience_bench (docs/benchmarks.md "resilience"): services of every
// variant in one meshd, their rounds interleaved, each variant's kernel path checked before and
// after.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "connect_loop.h"
#include "kernel_maps.h"
#include "meshd_lab.h"
#include "service_plan.h"
#include "sockmesh/lab/lab.h"

namespace sockmesh::bench {

struct CostOptions {
  int services = 10, endpoints = 10;  // services per VIP variant, endpoints per service
  int connects = 20000, warmup = 1000, rounds = 10;  // per sample (timed, untimed), rounds
  uint64_t seed = 1;
};

struct CostVariant {
  std::string name;
  int block = -1;  // its services are [block * services, (block + 1) * services); -1: no VIP
  std::string meaning;
};

// direct, plain, tracked, all-on (the order of round 0; each round starts one further).
const std::vector<CostVariant> &cost_variants();

struct CostSample {
  std::string variant;
  int round = 0;
  SampleStats stats;
};

// What the kernel says each variant did, from the resilience state after the rounds.
struct CostCheck {
  std::string variant;
  uint64_t charged = 0;  // connects charged to its backends during the rounds (plain: must be 0)
  uint64_t refused = 0;  // its services' overflows + no_backend + rate_limited + faults (must be 0)
  uint64_t failures = 0;  // failures counted against its backends (must be 0)
  // Its services with a rate bucket of the client's own (all-on: every one, proving that the
  // kernel knew the client's workload and took the per-source path; others: none).
  int source_buckets = 0;
};

NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(CostSample, variant, round, stats)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(CostCheck, variant, charged, refused, failures, source_buckets)

struct CostResult {
  std::vector<CostSample> samples;
  std::vector<CostCheck> checks;
};

// Applies the services to meshd, turns the plain block into M2's path, makes the client pod `pod`
// a workload to the kernel, then runs the rounds. Throws when a check fails.
CostResult run_cost(lab::Lab &lab, Meshd &meshd, KernelMaps &maps, const std::string &pod,
                    const CostOptions &options);

// The all-on services' spec fields (docs/config.md "Resilience").
std::string all_on_spec();

}  // namespace sockmesh::bench
