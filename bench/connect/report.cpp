#include "report.h"

#include <fmt/format.h>

#include <algorithm>
#include <iterator>
#include <map>

#include "stats.h"

namespace sockmesh::bench {
namespace {

constexpr const char *kBaseline = "no-mesh";

// One (service count, variant) over its rounds.
struct Summary : SampleSummary {
  int services = 0;
  std::string variant;
  // Median over rounds divided by the no-mesh median at the same service count.
  double p50_ratio = 0, p99_ratio = 0, mean_ratio = 0;
};

std::vector<Summary> summarize(const BenchResult &result) {
  std::vector<Summary> out;
  for (const auto &scale : result.scales) {
    for (const auto &variant : result.variants) {
      std::vector<SampleStats> samples;
      for (const auto &sample : result.samples)
        if (sample.services == scale.services && sample.variant == variant.name)
          samples.push_back(sample.stats);
      Summary s;
      static_cast<SampleSummary &>(s) = summarize_samples(samples);
      s.services = scale.services;
      s.variant = variant.name;
      out.push_back(s);
    }
  }
  for (auto &s : out) {
    auto base = std::find_if(out.begin(), out.end(), [&](const Summary &b) {
      return b.services == s.services && b.variant == kBaseline;
    });
    if (base == out.end()) continue;
    if (base->p50.median > 0) s.p50_ratio = s.p50.median / base->p50.median;
    if (base->p99.median > 0) s.p99_ratio = s.p99.median / base->p99.median;
    if (base->mean.median > 0) s.mean_ratio = s.mean.median / base->mean.median;
  }
  return out;
}

const Summary *find(const std::vector<Summary> &all, int services, const std::string &variant) {
  for (const auto &s : all)
    if (s.services == services && s.variant == variant) return &s;
  return nullptr;
}

// Largest over smallest service count, per variant: the scaling goal (sockmesh ≤ 1.05).
struct Scaling {
  std::string variant;
  int from = 0, to = 0;
  double p50 = 0, p99 = 0, mean = 0;
};

std::vector<Scaling> scaling(const BenchResult &result, const std::vector<Summary> &all) {
  std::vector<Scaling> out;
  if (result.scales.size() < 2) return out;
  int from = result.scales.front().services, to = result.scales.front().services;
  for (const auto &scale : result.scales) {
    from = std::min(from, scale.services);
    to = std::max(to, scale.services);
  }
  for (const auto &variant : result.variants) {
    const Summary *a = find(all, from, variant.name);
    const Summary *b = find(all, to, variant.name);
    if (!a || !b || a->p50.median <= 0 || a->p99.median <= 0 || a->mean.median <= 0) continue;
    out.push_back({variant.name, from, to, b->p50.median / a->p50.median,
                   b->p99.median / a->p99.median, b->mean.median / a->mean.median});
  }
  return out;
}

std::string mib(uint64_t bytes) {
  return fmt::format("{:.1f}", double(bytes) / (1024.0 * 1024.0));
}

}  // namespace

nlohmann::json result_json(const BenchResult &result) {
  nlohmann::json out;
  out["meta"] = result.meta;
  for (const auto &v : result.variants)
    out["variants"].push_back(
        {{"name", v.name}, {"pod", v.pod}, {"to_vip", v.to_vip}, {"meaning", v.meaning}});
  for (const auto &s : result.scales)
    out["scales"].push_back({{"services", s.services},
                             {"meshd_apply_us", s.meshd_apply_us},
                             {"meshd_remove_us", s.meshd_remove_us},
                             {"meshd_vips", s.meshd_vips},
                             {"iptables_load_s", s.iptables_load_s},
                             {"iptables_rules", s.iptables_rules},
                             {"meshd_memory", s.meshd},
                             {"bpf_maps", s.maps}});
  for (const auto &s : result.samples)
    out["samples"].push_back(
        {{"services", s.services}, {"variant", s.variant}, {"round", s.round}, {"stats", s.stats}});
  auto spread_json = [](const Spread &s) {
    return nlohmann::json{{"median", s.median}, {"min", s.min}, {"max", s.max}};
  };
  auto summaries = summarize(result);
  for (const auto &s : summaries)
    out["summary"].push_back({{"services", s.services},
                              {"variant", s.variant},
                              {"rounds", s.rounds},
                              {"p50_us", spread_json(s.p50)},
                              {"p99_us", spread_json(s.p99)},
                              {"p999_us", spread_json(s.p999)},
                              {"mean_us", spread_json(s.mean)},
                              {"p50_vs_no_mesh", s.p50_ratio},
                              {"p99_vs_no_mesh", s.p99_ratio},
                              {"mean_vs_no_mesh", s.mean_ratio},
                              {"failures", s.failures},
                              {"listen_overflows", s.listen_overflows},
                              {"conntrack_drops", s.conntrack_drops}});
  for (const auto &s : scaling(result, summaries))
    out["scaling"].push_back({{"variant", s.variant},
                              {"from_services", s.from},
                              {"to_services", s.to},
                              {"p50", s.p50},
                              {"p99", s.p99},
                              {"mean", s.mean}});
  return out;
}

std::string result_markdown(const BenchResult &result) {
  auto summaries = summarize(result);
  std::string out;
  auto sink = std::back_inserter(out);
  int rounds = summaries.empty() ? 0 : summaries.front().rounds;
  fmt::format_to(
      sink,
      "### connect() latency, µs (median over {} rounds; min–max across rounds)\n\n"
      "| services | variant | p50 | p99 | p99.9 | mean | p50 / no mesh | p99 / no mesh | "
      "failed | listen overflows | conntrack drops |\n"
      "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
      rounds);
  for (const auto &s : summaries)
    fmt::format_to(
        sink,
        "| {} | {} | {:.1f} ({:.1f}–{:.1f}) | {:.1f} ({:.1f}–{:.1f}) | {:.1f} | {:.2f} | "
        "{:.2f} | {:.2f} | {} | {} | {} |\n",
        s.services, s.variant, s.p50.median, s.p50.min, s.p50.max, s.p99.median, s.p99.min,
        s.p99.max, s.p999.median, s.mean.median, s.p50_ratio, s.p99_ratio, s.failures,
        s.listen_overflows, s.conntrack_drops);

  auto scales = scaling(result, summaries);
  if (!scales.empty()) {
    fmt::format_to(sink,
                   "\n### Scaling: {} services over {} (goal for sockmesh: p50 ≤ 1.05)\n\n"
                   "| variant | p50 | p99 | mean |\n|---|---:|---:|---:|\n",
                   scales.front().to, scales.front().from);
    for (const auto &s : scales)
      fmt::format_to(sink, "| {} | {:.3f} | {:.3f} | {:.3f} |\n", s.variant, s.p50, s.p99, s.mean);
  }

  out +=
      "\n### Setup cost and memory per service count\n\n"
      "| services | meshd apply 0→N ms | meshd remove N→0 ms | iptables-restore ms | iptables "
      "rules | "
      "meshd RSS MiB (peak) | BPF maps MiB |\n|---:|---:|---:|---:|---:|---:|---:|\n";
  for (const auto &s : result.scales)
    fmt::format_to(sink, "| {} | {:.1f} | {:.1f} | {:.1f} | {} | {:.1f} ({:.1f}) | {} |\n",
                   s.services, s.meshd_apply_us / 1000.0, s.meshd_remove_us / 1000.0,
                   s.iptables_load_s * 1000.0, s.iptables_rules, s.meshd.rss_kib / 1024.0,
                   s.meshd.hwm_kib / 1024.0, mib(s.maps.total_bytes));

  if (!result.scales.empty()) {
    const auto &largest = *std::max_element(
        result.scales.begin(), result.scales.end(),
        [](const ScaleResult &a, const ScaleResult &b) { return a.services < b.services; });
    fmt::format_to(sink,
                   "\n### BPF map memory at {} services (memlock, bytes)\n\n"
                   "| map | type | max entries | maps | bytes |\n|---|---|---:|---:|---:|\n",
                   largest.services);
    for (const auto &m : largest.maps.maps)
      fmt::format_to(sink, "| {} | {} | {} | {} | {} |\n", m.name, m.type, m.max_entries, m.maps,
                     m.bytes);
    fmt::format_to(sink, "| **total** | | | | **{}** ({} MiB) |\n", largest.maps.total_bytes,
                   mib(largest.maps.total_bytes));
  }
  return out;
}

}  // namespace sockmesh::bench
