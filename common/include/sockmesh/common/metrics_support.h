// What meshd's and meshcp's Prometheus endpoints share (docs/metrics.md): metric families built at
// scrape time, the process_* metrics from /proc/self, and prometheus-cpp's HTTP server started on
// --metrics-address with a one-line error. It includes prometheus-cpp's headers: include it only
// from the exporters (agent/telemetry/metrics_exporter.cpp, controlplane/metrics_exporter.cpp),
// which link sockmesh_metrics_support.
#pragma once

#include <prometheus/client_metric.h>
#include <prometheus/exposer.h>
#include <prometheus/metric_family.h>
#include <prometheus/metric_type.h>

#include <memory>
#include <string>
#include <vector>

namespace sockmesh::metrics {

using Labels = std::vector<prometheus::ClientMetric::Label>;
inline constexpr auto kCounter = prometheus::MetricType::Counter;
inline constexpr auto kGauge = prometheus::MetricType::Gauge;

// Families in the order they are added; samples set by the family's type.
class Families {
 public:
  prometheus::MetricFamily &add(std::string name, std::string help, prometheus::MetricType type);
  // A family with one sample and no labels.
  void single(std::string name, std::string help, prometheus::MetricType type, double value);
  static void sample(prometheus::MetricFamily &family, Labels labels, double value);
  std::vector<prometheus::MetricFamily> take() { return std::move(out_); }

 private:
  std::vector<prometheus::MetricFamily> out_;
};

// process_* from /proc/self, as the Prometheus client libraries name them.
void add_process_metrics(Families &f);

// "host:port" (host may be "[v6]"): the port, or throws std::runtime_error with the reason.
int parse_port(const std::string &address);

struct Endpoint {
  std::unique_ptr<prometheus::Exposer> exposer;
  int port = 0;  // the port bound: `port` given to start_exposer, or the kernel's pick for 0
};

// Serves HTTP on `address` (two threads), whose port parse_port gave. Throws std::runtime_error
// "cannot serve metrics on ADDRESS: WHY (choose another --metrics-address, or "off")" when the
// server does not start, WHY as the kernel says it when it can tell.
Endpoint start_exposer(const std::string &address, int port);

}  // namespace sockmesh::metrics
