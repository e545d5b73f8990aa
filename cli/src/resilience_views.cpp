#include "sockmesh/cli/resilience_views.h"

#include <fmt/chrono.h>
#include <fmt/format.h>

#include <algorithm>
#include <ctime>
#include <sstream>
#include <tuple>
#include <vector>

#include "sockmesh/cli/format.h"
#include "sockmesh/cli/views.h"

namespace sockmesh::cli {
namespace {

// "500ms", "1.5s", "30s", "5m", "2m30s": ejection times are set in milliseconds, and a whole
// number of seconds reads best in meshctl's usual units.
std::string ms_text(std::uint64_t ms) {
  if (ms < 1000) return fmt::format("{}ms", ms);
  if (ms % 1000 != 0) return fmt::format("{:g}s", static_cast<double>(ms) / 1000.0);
  return format_duration(static_cast<std::int64_t>(ms));
}

std::string limit_text(std::uint32_t limit) {
  return limit == 0 ? "unlimited" : std::to_string(limit);
}

// "23.4s" under a minute (an ejection's end is watched closely), else "4m37s".
std::string remaining_text(std::int64_t ms) {
  if (ms < 60000) return fmt::format("{:.1f}s", static_cast<double>(ms < 0 ? 0 : ms) / 1000.0);
  return format_duration(ms);
}

std::string service_name(const v1::ServiceResilience &s) {
  return fmt::format("{}/{}", s.namespace_(), s.name());
}

}  // namespace

v1::ResilienceReport resilience_in_order(const v1::ResilienceReport &report) {
  v1::ResilienceReport sorted = report;
  std::stable_sort(sorted.mutable_services()->begin(), sorted.mutable_services()->end(),
                   [](const auto &a, const auto &b) {
                     return std::tie(a.namespace_(), a.name()) < std::tie(b.namespace_(), b.name());
                   });
  std::sort(sorted.mutable_untracked_services()->begin(),
            sorted.mutable_untracked_services()->end());
  return sorted;
}

std::string resilience_settings_text(const v1::ResilienceSettings &s) {
  std::vector<std::string> parts;
  parts.push_back(fmt::format("policy {}", lb_policy_name(s.lb_policy())));
  parts.push_back(fmt::format("maxConnections {}", limit_text(s.max_connections())));
  parts.push_back(fmt::format("perBackend {}", limit_text(s.max_connections_per_backend())));
  if (s.consecutive_failures() == 0) {
    parts.push_back("outlier off");
  } else {
    parts.push_back(fmt::format("outlier {} failures / {}..{} / {}%", s.consecutive_failures(),
                                ms_text(s.base_ejection_ms()), ms_text(s.max_ejection_ms()),
                                s.max_ejection_percent()));
  }
  if (s.rate_per_second() == 0) {
    parts.push_back("rate off");
  } else {
    parts.push_back(fmt::format("rate {}/s burst {}{}", s.rate_per_second(), s.rate_burst(),
                                s.rate_per_source() ? " per source" : ""));
  }
  if (s.fault_percent() == 0) {
    parts.push_back("fault off");
  } else {
    parts.push_back(fmt::format("fault {:g}% {}{}", s.fault_percent(), s.fault_error(),
                                s.fault_scoped() ? " (scoped)" : ""));
  }
  return fmt::format("{}", fmt::join(parts, ", "));
}

std::string ejected_until_text(const v1::BackendResilience &b) {
  if (!b.ejected()) return "-";
  const std::time_t t = static_cast<std::time_t>(b.ejected_until_unix_ms() / 1000);
  return fmt::format("{:%H:%M:%S}Z (in {}, #{})", fmt::gmtime(t),
                     remaining_text(b.ejection_remaining_ms()), b.ejections_in_a_row());
}

Table backend_resilience_table(const v1::ServiceResilience &service) {
  Table table({"BACKEND", "WORKLOAD", "WEIGHT", "ACTIVE", "CONNECTS", "FAILURES", "IN A ROW",
               "EJECTED UNTIL", "EJECTIONS", "OVERFLOWS"});
  for (const auto &b : service.backends()) {
    const std::string workload = b.workload().empty() ? "-" : b.workload();
    if (!b.tracked()) {
      table.add_row({b.address(), workload, std::to_string(b.weight()), "untracked", "-", "-", "-",
                     "-", "-", "-"});
      continue;
    }
    table.add_row({b.address(), workload, std::to_string(b.weight()),
                   std::to_string(b.active_connections()), std::to_string(b.connects()),
                   std::to_string(b.failures()), std::to_string(b.consecutive_failures()),
                   ejected_until_text(b), std::to_string(b.ejections_total()),
                   std::to_string(b.overflows())});
  }
  return table;
}

std::string render_service_resilience(const v1::ServiceResilience &service) {
  std::ostringstream out;
  out << field_line("Settings", resilience_settings_text(service.settings()));
  const auto &st = service.state();
  if (!st.tracked()) {
    out << field_line("Active", "untracked (the kernel holds no state for this service yet)");
  } else {
    out << field_line("Active", fmt::format("{} connection{}", st.active_connections(),
                                            st.active_connections() == 1 ? "" : "s"))
        << field_line("Refused",
                      fmt::format("overflow {}, no backend {}, rate limited {}, fault {}",
                                  st.overflows(), st.no_backend(), st.rate_limited(), st.faults()));
  }
  const Table table = backend_resilience_table(service);
  if (table.empty())
    out << "No backends.\n";
  else
    table.render(out);
  return out.str();
}

std::string render_resilience(const v1::ResilienceReport &report) {
  std::ostringstream out;
  out << field_line("Node", report.node().empty() ? "-" : report.node());
  if (report.services().empty() && report.untracked_services().empty()) {
    out << "\nNo services.\n";
    return out.str();
  }
  for (const auto &service : report.services()) {
    out << '\n'
        << field_line("Service",
                      fmt::format("{} (id {})", service_name(service), service.service_id()))
        << render_service_resilience(service);
  }
  if (!report.untracked_services().empty()) {
    out << '\n'
        << field_line("Untracked", fmt::format("{} (no TCP VIP: resilience decides TCP connects)",
                                               fmt::join(report.untracked_services(), ", ")));
  }
  return out.str();
}

}  // namespace sockmesh::cli
