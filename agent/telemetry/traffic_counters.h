// The kernel's traffic telemetry from the agent's side (bpf/include/sockmesh/telemetry.h): the
// switch and epoch it writes, the per-tuple counters it reads (summed over CPUs), and the report
// that names them (admin GetTraffic, `meshctl stats`, the Prometheus endpoint).
#pragma once

#include <cstdint>
#include <vector>

#include "sockmesh/telemetry.h"
#include "sockmesh/v1/admin.pb.h"
#include "telemetry/names.h"

namespace sockmesh::telemetry {

// What the kernel records. Events need counters (they are emitted from the same record).
struct TelemetrySettings {
  bool counters = true;   // per-tuple counters (off: connect() leaves no record at all)
  bool events = false;    // connection events for the access log
  double sampling = 1.0;  // share of connections whose events are logged, (0, 1]
};

// The threshold a connection's random 32-bit draw must stay below to be logged (0xffffffff: all).
uint32_t sample_below(double sampling);

struct TrafficTuple {
  sm_traffic_key key{};
  sm_traffic_value value{};  // summed over CPUs
};

class TrafficCounters {
 public:
  // The fds stay owned by the caller (Datapath::traffic_fd(), telemetry_fd()).
  TrafficCounters(int traffic_fd, int telemetry_fd);

  // At the agent's start: empties sm_traffic (an earlier agent's workload numbers name nothing
  // now), moves the epoch on (records of open connections from before are counted nowhere) and
  // writes the settings. Throws std::runtime_error.
  void start(const TelemetrySettings &settings);
  uint32_t epoch() const { return epoch_; }

  // Every tuple, summed over CPUs. Throws std::runtime_error on a failed read.
  std::vector<TrafficTuple> read() const;

 private:
  int traffic_fd_;
  int telemetry_fd_;
  uint32_t epoch_ = 0;
};

// The tuples as the admin API reports them: named, busiest (bytes, then connections) first.
void fill_report(const std::vector<TrafficTuple> &tuples, const Names &names,
                 v1::TrafficReport *report);

}  // namespace sockmesh::telemetry
