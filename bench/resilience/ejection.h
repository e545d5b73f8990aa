// The time-to-avoid part of resilience_bench (docs/benchmarks.md "resilience"): one fresh service
// of three backends per trial (the ejection state is per service), trials of every (threshold,
// pace) interleaved, each checked against the dead backend's state in the kernel.
#pragma once

#include <string>
#include <vector>

#include "dead_backend.h"
#include "kernel_maps.h"
#include "meshd_lab.h"
#include "sockmesh/lab/lab.h"

namespace sockmesh::bench {

struct EjectionOptions {
  std::vector<int> thresholds{5, 1};  // consecutiveFailures
  std::vector<int> paces_us{200, 0};  // 0: back to back
  int repeats = 10;
  int before = 200;  // connects before the kill
  int after = 200;   // connects after the threshold-th refusal
};

// Replaces meshd's services with the trials' and runs them from `pod`.
std::vector<TrialResult> run_ejection(lab::Lab &lab, Meshd &meshd, const KernelMaps &maps,
                                      const std::string &pod, const EjectionOptions &options);

}  // namespace sockmesh::bench
