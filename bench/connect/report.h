// Results of a connect benchmark run: the raw samples, what was measured per service count, and
// the summaries (medians over rounds, ratios to the no-mesh baseline) as JSON and as markdown.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "connect_loop.h"
#include "kernel_memory.h"

namespace sockmesh::bench {

// One way of connecting: from which pod, to a VIP or straight to a backend.
struct Variant {
  std::string name;
  std::string pod;
  bool to_vip = false;
  std::string meaning;
};

struct Sample {
  int services = 0;
  std::string variant;
  int round = 0;
  SampleStats stats;
};

// What one service count cost to set up, and the memory once it was set up.
struct ScaleResult {
  int services = 0;
  long meshd_apply_us = 0;    // meshd's duration_us for 0 -> N services
  long meshd_remove_us = 0;   // and for N -> 0
  long meshd_vips = 0;
  double iptables_load_s = 0; // iptables-restore --noflush of the N-service table, wall time
  long iptables_rules = 0;    // -A lines in the nat table after the load
  ProcessMemory meshd;
  NodeMapMemory maps;
};

struct BenchResult {
  nlohmann::json meta;  // command line, kernel, tool versions, parameters
  std::vector<Variant> variants;
  std::vector<ScaleResult> scales;
  std::vector<Sample> samples;
};

// Everything: meta, variants, per-N resources, raw samples and the summaries.
nlohmann::json result_json(const BenchResult& result);
// The tables docs/benchmarks.md quotes.
std::string result_markdown(const BenchResult& result);

}  // namespace sockmesh::bench
