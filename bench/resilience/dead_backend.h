// The dead-backend trial (docs/benchmarks.md "resilience"): a client connects to a VIP of three
// backends at a fixed pace, one backend's listener is closed at a known time, and every connect
// after that is recorded — when it returned and which backend accepted it, or its error. Run inside
// a lab pod (client and listeners in one process); the analysis runs outside.
#pragma once

#include <netinet/in.h>

#include <cstdint>
#include <nlohmann/json.hpp>
#include <vector>

namespace sockmesh::bench {

struct TrialPlan {
  sockaddr_in vip{};
  std::vector<sockaddr_in> backends;  // each gets its own listener
  int dead = 0;                       // index into backends: the listener that is closed
  int pace_us = 200;                  // one connect every pace_us; 0: back to back
  int before = 200;                   // connects before the kill
  int after = 200;                    // connects after the `threshold`-th failure
  int threshold = 5;                  // the service's consecutiveFailures
  int max_after_kill = 20000;         // connects after the kill at the most (no ejection)
};

// One connect, its times relative to the kill (the listener's close() returning), µs.
struct ConnectRecord {
  double start_us = 0, end_us = 0;  // before socket(), after connect()
  int backend = -1;                 // the listener that accepted it; -1 when connect() failed
  int err = 0;                      // connect()'s errno
};

struct TrialRun {
  uint64_t kill_ns = 0;  // CLOCK_MONOTONIC (the kernel's bpf_ktime_get_ns clock) at the kill
  long before_ok = 0, before_failed = 0, before_to_dead = 0;
  std::vector<ConnectRecord> after_kill;
};

NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(ConnectRecord, start_us, end_us, backend, err)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(TrialRun, kill_ns, before_ok, before_failed, before_to_dead,
                                   after_kill)

// Runs the trial in the calling process. Throws when a listener cannot be made or an accepted
// connection cannot be matched to its connect.
TrialRun run_trial(const TrialPlan &plan);

// What one trial showed. Times in µs after the kill; -1 when it did not happen.
struct TrialResult {
  int threshold = 0, pace_us = 0, repeat = 0, dead = 0;
  long refused = 0;       // connects refused after the kill (each one reached the dead backend)
  long other_errors = 0;  // any other failed connect
  long connects_to_ejection =
      0;                    // connects after the kill up to and including the threshold-th refusal
  double ejection_us = -1;  // the threshold-th refused connect returned
  double kernel_ejection_us = -1;  // the kernel's ejection time (ejected_until - base) - kill
  double avoided_us =
      -1;  // the first connect after the threshold-th refusal that another backend accepted
  long to_dead_after = 0;  // refused connects after the threshold-th one (goal 0)
  uint64_t kernel_failures = 0, kernel_ejections = 0;  // the dead backend's state after the trial
  long before_ok = 0, before_failed = 0, before_to_dead = 0;
  std::vector<ConnectRecord> after_kill;  // every connect after the kill, for the JSON
};

NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(TrialResult, threshold, pace_us, repeat, dead, refused,
                                   other_errors, connects_to_ejection, ejection_us,
                                   kernel_ejection_us, avoided_us, to_dead_after, kernel_failures,
                                   kernel_ejections, before_ok, before_failed, before_to_dead,
                                   after_kill)

// `ejected_until_ns` from the dead backend's state, `base_ejection_ns` the service's; the kernel's
// counts are filled in by the caller.
TrialResult analyze_trial(const TrialPlan &plan, const TrialRun &run, uint64_t ejected_until_ns,
                          uint64_t base_ejection_ns);

}  // namespace sockmesh::bench
