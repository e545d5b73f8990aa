#include "sockmesh/cli/fastpath_views.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <map>
#include <sstream>
#include <string_view>
#include <tuple>
#include <vector>

#include "sockmesh/cli/format.h"

namespace sockmesh::cli {
namespace {

// The kernel's fallback reasons in the order the data path meets them (docs/datapath.md).
constexpr std::array<std::string_view, 4> kFallbackOrder = {"no_netns", "map_full", "peer_missing",
                                                            "peer_gone"};

std::string cookie_text(std::uint64_t cookie) {
  return cookie == 0 ? "-" : std::to_string(cookie);
}

std::string plural(std::uint64_t n, std::string_view one, std::string_view many) {
  return fmt::format("{} {}", n, n == 1 ? one : many);
}

// "none", or "3 (no_netns 2, map_full 0, peer_missing 1, peer_gone 0)": the known reasons in the
// data path's order, then any other the agent reports, by name.
std::string fallbacks_text(const v1::FastPathReport &report) {
  const std::map<std::string, std::uint64_t> by_name(report.fallbacks().begin(),
                                                     report.fallbacks().end());
  std::uint64_t total = 0;
  for (const auto &[name, count] : by_name) total += count;
  if (total == 0) return "none";
  std::vector<std::string> parts;
  for (const auto reason : kFallbackOrder) {
    if (const auto it = by_name.find(std::string(reason)); it != by_name.end())
      parts.push_back(fmt::format("{} {}", it->first, it->second));
  }
  for (const auto &[name, count] : by_name) {
    if (std::find(kFallbackOrder.begin(), kFallbackOrder.end(), name) == kFallbackOrder.end())
      parts.push_back(fmt::format("{} {}", name, count));
  }
  return fmt::format("{} ({})", total, fmt::join(parts, ", "));
}

std::string or_dash(const std::string &text) {
  return text.empty() ? "-" : text;
}

}  // namespace

v1::FastPathReport fast_path_in_order(const v1::FastPathReport &report) {
  v1::FastPathReport sorted = report;
  std::stable_sort(sorted.mutable_workloads()->begin(), sorted.mutable_workloads()->end(),
                   [](const auto &a, const auto &b) { return a.workload() < b.workload(); });
  std::stable_sort(sorted.mutable_socket_list()->begin(), sorted.mutable_socket_list()->end(),
                   [](const auto &a, const auto &b) {
                     return std::make_tuple(std::cref(a.owner()), std::cref(a.local()),
                                            std::cref(a.remote()), a.cookie()) <
                            std::make_tuple(std::cref(b.owner()), std::cref(b.local()),
                                            std::cref(b.remote()), b.cookie());
                   });
  return sorted;
}

std::string fast_path_state(const v1::FastPathReport &report) {
  if (report.enabled())
    return report.agent_hops() ? "on, also the hops to and from the agent" : "on";
  std::string lacks;
  if (!report.supported()) {
    lacks = report.missing_features().empty()
                ? "the kernel lacks what it needs"
                : fmt::format("the kernel lacks: {}", fmt::join(report.missing_features(), ", "));
  }
  if (!report.switched_on()) {
    const std::string off = "switched off: meshd --fast-path off, or a --config agent";
    return lacks.empty() ? fmt::format("off ({})", off) : fmt::format("off ({}; {})", off, lacks);
  }
  if (!lacks.empty()) return fmt::format("unsupported ({})", lacks);
  return "off";  // switched on and supported, yet not enabled: the agent says no more
}

std::string workload_fast_path(const v1::FastPathReport &report, const v1::FastPathWorkload &w) {
  if (w.netns_cookie() == 0) return "no netns";
  if (!report.enabled()) return "off";
  return w.sockets() > 0 ? "active" : "idle";
}

Table fast_path_workloads_table(const v1::FastPathReport &report) {
  Table table({"WORKLOAD", "FAST PATH", "SOCKETS", "NETNS", "ADDRESSES", "REASON"});
  for (const auto &w : report.workloads()) {
    const std::string addresses =
        w.addresses().empty() ? "-" : fmt::format("{}", fmt::join(w.addresses(), ","));
    const std::string reason =
        w.netns_cookie() == 0
            ? (w.netns_unknown_reason().empty() ? "netns unknown" : w.netns_unknown_reason())
            : "-";
    table.add_row({w.workload(), workload_fast_path(report, w), std::to_string(w.sockets()),
                   cookie_text(w.netns_cookie()), addresses, reason});
  }
  return table;
}

Table fast_path_sockets_table(const v1::FastPathReport &report) {
  Table table({"OWNER", "LOCAL", "REMOTE", "NETNS", "COOKIE"});
  for (const auto &s : report.socket_list()) {
    table.add_row({or_dash(s.owner()), or_dash(s.local()), or_dash(s.remote()),
                   cookie_text(s.netns_cookie()), std::to_string(s.cookie())});
  }
  return table;
}

std::string render_fast_path(const v1::FastPathReport &report, bool sockets) {
  std::ostringstream out;
  out << field_line("Fast path", fast_path_state(report))
      << field_line("Sockets",
                    fmt::format("{} of {} in sm_fastpath ({} the agent's)", report.sockets(),
                                report.max_sockets(), report.node_sockets()))
      << field_line("Added", fmt::format("{} since the counters were made",
                                         plural(report.sockets_added(), "socket", "sockets")))
      << field_line(
             "Redirected",
             fmt::format("{}, {}", plural(report.redirected_messages(), "message", "messages"),
                         format_bytes(static_cast<double>(report.redirected_bytes()))))
      << field_line("Fallbacks", fallbacks_text(report))
      << field_line("Node netns", cookie_text(report.node_netns_cookie()))
      << field_line("Addresses", fmt::format("{} in sm_netns", report.addresses()));
  render_section(out, "Workloads", fast_path_workloads_table(report), "No workloads on this node.");
  if (!sockets) return out.str();
  render_section(out, "Sockets", fast_path_sockets_table(report), "No sockets in sm_fastpath.");
  const auto listed = static_cast<std::uint64_t>(report.socket_list_size());
  if (report.sockets() > listed) {
    out << fmt::format("... {} more not shown (the agent lists at most 1000)\n",
                       report.sockets() - listed);
  }
  return out.str();
}

}  // namespace sockmesh::cli
