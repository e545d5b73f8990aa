// meshd's Prometheus endpoint (docs/metrics.md): `/metrics` on --metrics-address, text exposition.
// Everything but the config-apply histogram is computed at scrape time from the same messages the
// admin API serves (AdminState::status(), traffic(), maps(), fast_path(), resilience()): meshctl
// and Prometheus read one source of truth. prometheus-cpp and gRPC stay out of this header
// (pimpl): cheap to include.
#pragma once

#include <memory>
#include <string>

namespace sockmesh::admin {
class AdminState;
}

namespace sockmesh::telemetry {

struct MetricsOptions {
  // "host:port" to listen on; port 0 picks a free port (see MetricsServer::port()).
  std::string address = "0.0.0.0:15020";
  // Hold the kernel's BPF run-time statistics on (bpf_enable_stats(BPF_STATS_RUN_TIME)) while the
  // server lives, so that sockmesh_bpf_program_run* count. Costs two clock reads per program run.
  bool bpf_run_stats = false;
};

class MetricsServer {
 public:
  // Starts serving. Throws std::runtime_error with a one-line message when the address is
  // malformed or cannot be bound, or when bpf_run_stats is set and the kernel refuses it.
  // `state` must outlive the server; it is called from the server's threads at every scrape.
  MetricsServer(const MetricsOptions &opts, admin::AdminState &state);
  ~MetricsServer();
  MetricsServer(const MetricsServer &) = delete;
  MetricsServer &operator=(const MetricsServer &) = delete;

  // Records one config apply's latency (sockmesh_config_apply_duration_seconds). Thread-safe.
  void observe_apply(double seconds);
  // The port actually bound (the one given, or the one the kernel picked for port 0).
  int port() const;
  // True while the server holds the kernel's BPF run-time statistics on.
  bool bpf_stats_held() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace sockmesh::telemetry
