// The access log: connection events from the kernel's ring buffer (sm_events,
// bpf/include/sockmesh/telemetry.h) written as JSON lines, one per event, with the agent's names
// (docs/metrics.md, "Access log"). Events the kernel could not queue are counted there
// (events_lost) and reported here as lines of their own, never dropped silently.
#pragma once

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "sockmesh/telemetry.h"
#include "sockmesh/v1/admin.pb.h"
#include "telemetry/names.h"

struct ring_buffer;

namespace sockmesh::telemetry {

struct AccessLogOptions {
  std::string mode = "off";  // "off", "sampled" or "all"
  double sampling = 0.01;    // mode "sampled": share of connections logged, (0, 1)
  std::string path = "-";    // file to append to; "-" for standard output
};

// Throws std::invalid_argument naming the option for a mode that is none of the three or a
// sampling outside (0, 1).
void check_access_log_options(const AccessLogOptions &options);
// The share of connections the kernel logs for these options (0 for off, 1 for all).
double sampling_of(const AccessLogOptions &options);

// One event as a JSON line (no newline). `unix_offset_ns` turns the kernel's monotonic clock
// into Unix time.
std::string event_json(const sm_conn_event &event, const Names &names, int64_t unix_offset_ns);

class AccessLog {
 public:
  // Opens the log (std::runtime_error when it cannot) and starts reading the ring buffer on a
  // thread of its own. counters_fd: sm_counters, for the kernel's count of lost events.
  AccessLog(const AccessLogOptions &options, int events_fd, int counters_fd, uint64_t ring_bytes);
  // Stops after writing what the ring buffer holds.
  ~AccessLog();
  AccessLog(const AccessLog &) = delete;
  AccessLog &operator=(const AccessLog &) = delete;

  void set_names(std::shared_ptr<const Names> names);
  v1::AccessLogStatus status() const;

 private:
  static int on_event(void *self, void *data, size_t size);
  void run();
  void write_batch_end();
  uint64_t kernel_lost() const;

  AccessLogOptions options_;
  int counters_fd_;
  uint64_t ring_bytes_;
  ::ring_buffer *ring_ = nullptr;
  std::FILE *out_ = nullptr;
  bool own_out_ = false;
  std::thread thread_;
  std::atomic<bool> stop_{false};

  mutable std::mutex names_mu_;
  std::shared_ptr<const Names> names_;
  std::shared_ptr<const Names> batch_names_;  // the reader thread's copy during a batch
  int64_t batch_offset_ns_ = 0;

  uint64_t lost_base_ = 0;  // the kernel's count when this log started
  std::atomic<uint64_t> events_read_{0};
  std::atomic<uint64_t> lines_written_{0};
  std::atomic<uint64_t> events_lost_{0};
  std::atomic<uint64_t> write_errors_{0};
};

}  // namespace sockmesh::telemetry
