#include "report.h"

#include <fmt/format.h>

#include <algorithm>
#include <iterator>
#include <map>

#include "stats.h"

namespace sockmesh::bench {
namespace {

// The goal of the cost part: all-on / plain.
constexpr double kCostGoal = 1.10;

struct CostSummary : SampleSummary {
  std::string variant;
};

std::vector<CostSummary> summarize_cost(const CostResult &cost) {
  std::vector<CostSummary> out;
  for (const auto &v : cost_variants()) {
    std::vector<SampleStats> samples;
    for (const auto &sample : cost.samples)
      if (sample.variant == v.name) samples.push_back(sample.stats);
    CostSummary s;
    static_cast<SampleSummary &>(s) = summarize_samples(samples);
    s.variant = v.name;
    out.push_back(s);
  }
  return out;
}

// A ratio of two variants, taken within each round (the two samples ran next to each other).
struct Ratio {
  std::string name, goal;
  Spread p50, p99;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Ratio, name, goal, p50, p99)

std::vector<Ratio> ratios(const CostResult &cost) {
  std::map<std::pair<std::string, int>, SampleStats> by;
  for (const auto &s : cost.samples) by[{s.variant, s.round}] = s.stats;
  const std::vector<std::pair<std::string, std::string>> pairs = {
      {"all-on", "plain"}, {"tracked", "plain"}, {"all-on", "tracked"}};
  std::vector<Ratio> out;
  for (const auto &[a, b] : pairs) {
    std::vector<double> p50, p99;
    for (const auto &[key, stats] : by) {
      if (key.first != a) continue;
      auto other = by.find({b, key.second});
      if (other == by.end() || other->second.p50_us <= 0 || other->second.p99_us <= 0) continue;
      p50.push_back(stats.p50_us / other->second.p50_us);
      p99.push_back(stats.p99_us / other->second.p99_us);
    }
    out.push_back({a + " / " + b,
                   a == "all-on" && b == "plain" ? fmt::format("≤ {:.2f}", kCostGoal) : "",
                   spread(p50), spread(p99)});
  }
  return out;
}

// The trials of one (threshold, pace).
struct TrialSummary {
  int threshold = 0, pace_us = 0, trials = 0;
  Spread refused, connects_to_ejection, ejection_us, kernel_ejection_us, avoided_us, gap_us;
  long to_dead_after = 0, other_errors = 0, not_ejected = 0;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(TrialSummary, threshold, pace_us, trials, refused,
                                   connects_to_ejection, ejection_us, kernel_ejection_us,
                                   avoided_us, gap_us, to_dead_after, other_errors, not_ejected)

std::vector<TrialSummary> summarize_trials(const std::vector<TrialResult> &trials) {
  std::vector<std::pair<int, int>> keys;
  for (const auto &t : trials)
    if (std::find(keys.begin(), keys.end(), std::pair{t.threshold, t.pace_us}) == keys.end())
      keys.push_back({t.threshold, t.pace_us});
  std::vector<TrialSummary> out;
  for (auto [n, pace] : keys) {
    TrialSummary s;
    s.threshold = n;
    s.pace_us = pace;
    std::vector<double> refused, to_ejection, ejection, kernel, avoided, gap;
    for (const auto &t : trials) {
      if (t.threshold != n || t.pace_us != pace) continue;
      s.trials++;
      refused.push_back(double(t.refused));
      s.to_dead_after += t.to_dead_after;
      s.other_errors += t.other_errors;
      if (t.ejection_us < 0 || t.kernel_ejections == 0) {
        s.not_ejected++;
        continue;
      }
      to_ejection.push_back(double(t.connects_to_ejection));
      ejection.push_back(t.ejection_us);
      kernel.push_back(t.kernel_ejection_us);
      if (t.avoided_us >= 0) {
        avoided.push_back(t.avoided_us);
        gap.push_back(t.avoided_us - t.ejection_us);
      }
    }
    s.refused = spread(refused);
    s.connects_to_ejection = spread(to_ejection);
    s.ejection_us = spread(ejection);
    s.kernel_ejection_us = spread(kernel);
    s.avoided_us = spread(avoided);
    s.gap_us = spread(gap);
    out.push_back(s);
  }
  return out;
}

std::string cell(const Spread &s, int decimals = 1) {
  return fmt::format("{:.{}f} ({:.{}f}–{:.{}f})", s.median, decimals, s.min, decimals, s.max,
                     decimals);
}

int services_per_variant(const ResilienceResult &result) {
  return result.meta.value("services_per_variant", 0);
}

std::string pace_text(int pace_us) {
  return pace_us ? fmt::format("every {} µs", pace_us) : "back to back";
}

}  // namespace

nlohmann::json result_json(const ResilienceResult &result) {
  nlohmann::json out;
  out["meta"] = result.meta;
  for (const auto &v : cost_variants())
    out["cost"]["variants"].push_back(
        {{"name", v.name}, {"to_vip", v.block >= 0}, {"meaning", v.meaning}});
  out["cost"]["samples"] = result.cost.samples;
  out["cost"]["checks"] = result.cost.checks;
  for (const auto &s : summarize_cost(result.cost)) {
    nlohmann::json summary = static_cast<const SampleSummary &>(s);
    summary["variant"] = s.variant;
    out["cost"]["summary"].push_back(summary);
  }
  out["cost"]["ratios"] = ratios(result.cost);
  out["dead_backend"]["trials"] = result.trials;
  out["dead_backend"]["summary"] = summarize_trials(result.trials);
  return out;
}

std::string result_markdown(const ResilienceResult &result) {
  std::string out;
  auto sink = std::back_inserter(out);
  if (!result.cost.samples.empty()) {  // not with --parts dead-backend
    auto cost = summarize_cost(result.cost);
    int rounds = cost.empty() ? 0 : cost.front().rounds;
    fmt::format_to(sink,
                   "### connect()+close cost, µs (median over {} rounds; min–max across rounds)\n\n"
                   "| variant | p50 | p99 | p99.9 | mean | failed | listen overflows |\n"
                   "|---|---:|---:|---:|---:|---:|---:|\n",
                   rounds);
    for (const auto &s : cost)
      fmt::format_to(sink, "| {} | {} | {} | {:.1f} | {:.2f} | {} | {} |\n", s.variant, cell(s.p50),
                     cell(s.p99), s.p999.median, s.mean.median, s.failures, s.listen_overflows);

    out +=
        "\n### Ratios, taken within each round: median (min–max across rounds)\n\n"
        "| ratio | p50 | p99 | goal (p50) |\n|---|---:|---:|---|\n";
    for (const auto &r : ratios(result.cost))
      fmt::format_to(sink, "| {} | {} | {} | {} |\n", r.name, cell(r.p50, 3), cell(r.p99, 3),
                     r.goal);

    fmt::format_to(
        sink,
        "\n### Kernel path check (resilience state, over all rounds; {} connects a sample)\n\n"
        "| variant | connects charged to its backends | expected | refused by a limit | "
        "failures counted | services with the client's own rate bucket | path as intended |\n"
        "|---|---:|---:|---:|---:|---:|---|\n",
        result.connects_per_sample);
    for (const auto &c : result.cost.checks) {
      long expected = c.variant == "plain" ? 0 : long(rounds) * result.connects_per_sample;
      // all-on: every service's bucket is the client's own; the others have no rate limit at all.
      int buckets = c.variant == "all-on" ? services_per_variant(result) : 0;
      bool ok = c.charged == uint64_t(expected) && c.refused == 0 && c.failures == 0 &&
                c.source_buckets == buckets;
      fmt::format_to(sink, "| {} | {} | {} | {} | {} | {} | {} |\n", c.variant, c.charged, expected,
                     c.refused, c.failures, c.source_buckets, ok ? "yes" : "**NO**");
    }
  }
  if (result.trials.empty()) return out;  // --parts cost
  out +=
      "\n### Time to avoid a dead backend: median (min–max) over the trials; times in µs after the "
      "kill\n\n"
      "| consecutiveFailures | pace | trials | refused (goal = N) | connects to the ejection | "
      "kill → N-th refusal | kill → kernel ejection | kill → first connect elsewhere | "
      "N-th refusal → that connect | to the dead one after the N-th (goal 0) | other errors | not "
      "ejected |\n"
      "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n";
  for (const auto &s : summarize_trials(result.trials))
    fmt::format_to(sink, "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
                   s.threshold, pace_text(s.pace_us), s.trials, cell(s.refused, 0),
                   cell(s.connects_to_ejection, 0), cell(s.ejection_us, 0),
                   cell(s.kernel_ejection_us, 0), cell(s.avoided_us, 0), cell(s.gap_us, 0),
                   s.to_dead_after, s.other_errors, s.not_ejected);
  return out;
}

}  // namespace sockmesh::bench
