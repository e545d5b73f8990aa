// The Grafana dashboard (charts/sockmesh/dashboards/sockmesh.json): valid JSON with a datasource
// variable, and every metric its queries use is one docs/metrics.md documents.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include "metrics_scrape.h"

namespace sockmesh::telemetry {
namespace {

nlohmann::json dashboard() {
  std::ifstream in(DASHBOARD_JSON);
  if (!in) throw std::runtime_error(std::string("cannot read ") + DASHBOARD_JSON);
  return nlohmann::json::parse(in);  // throws on invalid JSON
}

void collect_exprs(const nlohmann::json &j, std::vector<std::string> &out) {
  if (j.is_object()) {
    for (const auto &[key, value] : j.items()) {
      if (key == "expr" && value.is_string()) out.push_back(value.get<std::string>());
      collect_exprs(value, out);
    }
  } else if (j.is_array()) {
    for (const auto &value : j) collect_exprs(value, out);
  }
}

// Metric names in a PromQL expression: our prefixes only (functions and labels have none).
std::set<std::string> metric_names(const std::string &expr) {
  static const std::regex name(R"(\b(sockmesh_[a-z0-9_]+|process_[a-z0-9_]+)\b)");
  std::set<std::string> out;
  for (auto it = std::sregex_iterator(expr.begin(), expr.end(), name); it != std::sregex_iterator();
       ++it)
    out.insert((*it)[1]);
  return out;
}

TEST(MetricsDashboard, ParsesAndHasADatasourceVariable) {
  nlohmann::json d;
  ASSERT_NO_THROW(d = dashboard());
  EXPECT_TRUE(d.contains("schemaVersion") && d["schemaVersion"].is_number_integer());
  EXPECT_TRUE(d.contains("title") && d["title"].is_string());
  EXPECT_TRUE(d.contains("uid") && d["uid"].is_string());
  ASSERT_TRUE(d.contains("panels") && d["panels"].is_array());
  EXPECT_GE(d["panels"].size(), 10u);
  bool datasource_var = false;
  for (const auto &v : d["templating"]["list"])
    datasource_var |= v.value("type", "") == "datasource" && v.value("name", "") == "datasource" &&
                      v.value("query", "") == "prometheus";
  EXPECT_TRUE(datasource_var) << "a templating variable {type: datasource, name: datasource}";
  std::set<int> ids;
  for (const auto &panel : d["panels"]) {
    ASSERT_TRUE(panel.contains("id") && panel.contains("type") && panel.contains("title"));
    EXPECT_TRUE(ids.insert(panel["id"].get<int>()).second) << "panel id reused: " << panel["id"];
    EXPECT_TRUE(panel.contains("gridPos")) << panel["title"];
    if (panel["type"] == "row") continue;
    EXPECT_EQ(panel["datasource"]["uid"], "${datasource}") << panel["title"];
    ASSERT_TRUE(panel.contains("targets") && !panel["targets"].empty()) << panel["title"];
  }
}

TEST(MetricsDashboard, UsesOnlyDocumentedMetrics) {
  const nlohmann::json d = dashboard();
  std::vector<std::string> exprs;
  collect_exprs(d, exprs);
  ASSERT_FALSE(exprs.empty());
  const std::string doc = sockmesh::testing::metrics_doc();
  std::set<std::string> used;
  for (const auto &expr : exprs) {
    const auto names = metric_names(expr);
    EXPECT_FALSE(names.empty()) << "no metric in: " << expr;
    used.insert(names.begin(), names.end());
  }
  for (std::string name : used) {
    // Histograms and summaries are documented by their family name.
    if (!sockmesh::testing::documented(doc, name))
      for (const std::string suffix : {"_bucket", "_sum", "_count"})
        if (name.size() > suffix.size() && name.ends_with(suffix) &&
            sockmesh::testing::documented(doc, name.substr(0, name.size() - suffix.size())))
          name = name.substr(0, name.size() - suffix.size());
    EXPECT_TRUE(sockmesh::testing::documented(doc, name)) << name << " is not in docs/metrics.md";
  }
  // The golden signals the dashboard exists for.
  for (const char *needed :
       {"sockmesh_tcp_connections_opened_total", "sockmesh_tcp_connections_failed_total",
        "sockmesh_tcp_sent_bytes_total", "sockmesh_tcp_received_bytes_total",
        "sockmesh_tcp_connections_active", "sockmesh_tcp_srtt_seconds_sum",
        "sockmesh_tcp_srtt_seconds_count", "sockmesh_tcp_retransmits_total",
        "sockmesh_policy_denials_total", "sockmesh_bpf_map_entries", "sockmesh_bpf_map_max_entries",
        "sockmesh_bpf_map_memory_bytes", "sockmesh_access_log_events_lost_total",
        "sockmesh_config_apply_duration_seconds_bucket", "process_resident_memory_bytes"})
    EXPECT_TRUE(used.contains(needed)) << "the dashboard does not show " << needed;
}

// Every query parses as PromQL: promtool checks them as recording rules, with Grafana's variables
// replaced by what they stand for.
TEST(MetricsDashboard, QueriesAreValidPromQL) {
  std::vector<std::string> exprs;
  collect_exprs(dashboard(), exprs);
  const std::string promtool = PROMTOOL_BIN;
  ASSERT_FALSE(promtool.empty()) << "promtool not found (Debian package prometheus)";
  const auto file = std::filesystem::temp_directory_path() /
                    ("sockmesh-dashboard-rules-" + std::to_string(getpid()) + ".yaml");
  {
    std::ofstream out(file);
    out << "groups:\n- name: dashboard\n  rules:\n";
    for (size_t i = 0; i < exprs.size(); ++i) {
      std::string e = exprs[i];
      for (const auto &[var, value] :
           {std::pair{std::string("$__rate_interval"), "5m"}, std::pair{std::string("$job"), ".*"},
            std::pair{std::string("$service"), ".*"}})
        for (size_t at; (at = e.find(var)) != std::string::npos;) e.replace(at, var.size(), value);
      out << "  - record: dashboard:expr" << i << "\n    expr: " << nlohmann::json(e).dump()
          << "\n";
    }
  }
  const std::string cmd = promtool + " check rules " + file.string() + " 2>&1";
  std::string output;
  int status = -1;
  if (FILE *p = popen(cmd.c_str(), "r")) {
    char buf[4096];
    for (size_t n; (n = fread(buf, 1, sizeof(buf), p)) > 0;) output.append(buf, n);
    status = pclose(p);
  }
  std::filesystem::remove(file);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << output;
}

}  // namespace
}  // namespace sockmesh::telemetry
