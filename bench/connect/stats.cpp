#include "stats.h"

#include <algorithm>

namespace sockmesh::bench {

Spread spread(std::vector<double> values) {
  if (values.empty()) return {};
  std::sort(values.begin(), values.end());
  size_t n = values.size();
  double median = n % 2 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
  return {median, values.front(), values.back()};
}

SampleSummary summarize_samples(const std::vector<SampleStats> &samples) {
  SampleSummary out;
  std::vector<double> p50, p99, p999, mean;
  for (const auto &s : samples) {
    out.rounds++;
    p50.push_back(s.p50_us);
    p99.push_back(s.p99_us);
    p999.push_back(s.p999_us);
    mean.push_back(s.mean_us);
    out.failures += s.failures;
    out.listen_overflows += s.listen_overflows;
    out.conntrack_drops += s.conntrack_drops;
  }
  out.p50 = spread(p50);
  out.p99 = spread(p99);
  out.p999 = spread(p999);
  out.mean = spread(mean);
  return out;
}

}  // namespace sockmesh::bench
