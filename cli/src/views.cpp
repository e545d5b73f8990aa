#include "sockmesh/cli/mesh_view.h"
#include "sockmesh/cli/views.h"

#include <fmt/format.h>

#include <algorithm>
#include <functional>
#include <sstream>
#include <tuple>
#include <vector>

#include "sockmesh/cli/error.h"
#include "sockmesh/cli/format.h"

namespace sockmesh::cli {
namespace {

void key_value(std::ostream &out, std::string_view label, std::string_view value) {
  out << field_line(label, value);
}

std::string since(std::int64_t unix_ms, std::int64_t now_unix_ms) {
  return fmt::format("{}, {} ago", format_utc(unix_ms), format_duration(now_unix_ms - unix_ms));
}

void render_agent(std::ostream &out, const v1::AgentStatus &s, std::int64_t now_unix_ms) {
  key_value(out, "Node", s.node());
  key_value(out, "Version", s.version());
  key_value(out, "PID", std::to_string(s.pid()));
  key_value(out, "Uptime",
            s.started_unix_ms() == 0
                ? "-"
                : fmt::format("{} (since {})", format_duration(now_unix_ms - s.started_unix_ms()),
                              format_utc(s.started_unix_ms())));
  key_value(out, "Cgroup", s.cgroup());
  key_value(out, "Pin dir", s.pin_dir());
}

// Control-plane mode only: the discovery stream and the last push the agent refused.
void render_stream(std::ostream &out, const v1::ConfigStatus &c, std::int64_t now_unix_ms) {
  if (!c.stream_state().empty()) {
    std::string stream = c.stream_state();
    if (!c.system_version().empty()) stream += fmt::format(", at version {}", c.system_version());
    if (c.last_ack_unix_ms() != 0)
      stream += fmt::format(" (last ACK {})", since(c.last_ack_unix_ms(), now_unix_ms));
    key_value(out, "Stream", stream);
  }
  if (!c.last_nack().empty()) key_value(out, "Last NACK", c.last_nack());
}

void render_config(std::ostream &out, const v1::ConfigStatus &c, std::int64_t now_unix_ms) {
  key_value(out, "Config", c.source().empty() ? "-" : c.source());
  key_value(out, "Generation",
            c.applied_unix_ms() == 0 ? fmt::format("{} (nothing applied yet)", c.generation())
                                     : fmt::format("{} (applied {})", c.generation(),
                                                   since(c.applied_unix_ms(), now_unix_ms)));
  key_value(out, "Resources",
            fmt::format("{} services, {} workloads", c.services(), c.workloads()));
  render_stream(out, c, now_unix_ms);
  if (c.last_error().empty()) return;
  // A rejected config is the one thing an operator must not miss: it gets its own marked block.
  const std::string when = c.last_error_unix_ms() == 0
                               ? ""
                               : fmt::format(" at {}", since(c.last_error_unix_ms(), now_unix_ms));
  key_value(out, "Last error", fmt::format("REJECTED{}; the previous config keeps serving:", when));
  std::istringstream lines(c.last_error());
  for (std::string line; std::getline(lines, line);) out << fmt::format("{:<12} {}\n", "", line);
}

Table programs_table(const v1::AgentStatus &s) {
  // STATE: attached or DETACHED as the kernel says now; "kept" when the agent kept the program an
  // earlier agent attached (docs/datapath.md, "Restarts and uninstall").
  Table table({"NAME", "ATTACH", "PROG ID", "LINK ID", "STATE"});
  for (const auto &p : s.programs()) {
    const std::string state =
        std::string(p.attached() ? "attached" : "DETACHED") + (p.kept() ? ", kept" : "");
    table.add_row(
        {p.name(), p.attach_type(), std::to_string(p.id()), std::to_string(p.link_id()), state});
  }
  return table;
}

Table maps_table(const v1::AgentStatus &s) {
  Table table({"NAME", "TYPE", "ENTRIES", "MAX"});
  for (const auto &m : s.maps()) {
    table.add_row(
        {m.name(), m.type(), std::to_string(m.entries()), std::to_string(m.max_entries())});
  }
  return table;
}

Table features_table(const v1::AgentStatus &s) {
  Table table({"NAME", "PRESENT", "NEEDED", "SINCE"});
  for (const auto &f : s.features()) {
    std::string present = f.present() ? "yes" : "no";
    if (!f.present() && !f.without().empty()) present += " (" + f.without() + ")";
    table.add_row({f.name(), present, f.required() ? "required" : "optional", "Linux " + f.since()});
  }
  return table;
}

Table counters_table(const v1::AgentStatus &s) {
  Table table({"NAME", "VALUE"});
  for (const auto &c : s.counters()) table.add_row({c.name(), std::to_string(c.value())});
  return table;
}

std::string join_vips(const v1::ServiceView &service) {
  std::vector<std::string> vips;
  for (const auto &vip : service.vips()) vips.push_back(format_vip(vip));
  return vips.empty() ? "-" : fmt::format("{}", fmt::join(vips, ","));
}

}  // namespace

std::string lb_policy_name(v1::LbPolicy policy) {
  if (policy == v1::LB_POLICY_UNSPECIFIED) policy = v1::LB_POLICY_RANDOM;
  const std::string &name = v1::LbPolicy_Name(policy);
  if (name.empty()) return fmt::format("UNKNOWN({})", static_cast<int>(policy));
  constexpr std::string_view kPrefix = "LB_POLICY_";
  return name.starts_with(kPrefix) ? name.substr(kPrefix.size()) : name;
}

std::string format_vip(const v1::VirtualAddress &vip) {
  std::string protocol;
  switch (vip.protocol()) {
    case v1::PROTOCOL_UNSPECIFIED:
    case v1::PROTOCOL_TCP:
      protocol = "TCP";
      break;
    case v1::PROTOCOL_UDP:
      protocol = "UDP";
      break;
    default:
      protocol = fmt::format("PROTOCOL({})", static_cast<int>(vip.protocol()));
      break;
  }
  return fmt::format("{}/{}", format_host_port(vip.address(), vip.port()), protocol);
}

std::string render_status(const v1::AgentStatus &status, std::int64_t now_unix_ms) {
  std::ostringstream out;
  render_agent(out, status, now_unix_ms);
  out << '\n';
  render_config(out, status.config(), now_unix_ms);
  render_section(out, "Programs", programs_table(status), "No programs.");
  render_section(out, "Maps", maps_table(status), "No maps.");
  render_section(out, "Kernel features", features_table(status), "Not reported.");
  render_section(out, "Counters", counters_table(status), "No counters.");
  if (status.has_mesh()) render_mesh(out, status.mesh(), now_unix_ms);
  return out.str();
}

std::string service_policy(const v1::ServiceView &service) {
  const std::string name = lb_policy_name(service.lb_policy());
  if (service.maglev_table_size() == 0) return name;
  return fmt::format("{}({})", name, service.maglev_table_size());
}

v1::ListServicesResponse services_in_order(const v1::ListServicesResponse &services) {
  v1::ListServicesResponse sorted = services;
  std::sort(sorted.mutable_services()->begin(), sorted.mutable_services()->end(),
            [](const auto &a, const auto &b) {
              return std::tie(a.namespace_(), a.name()) < std::tie(b.namespace_(), b.name());
            });
  return sorted;
}

Table services_table(const v1::ListServicesResponse &services) {
  Table table({"NAMESPACE", "NAME", "VIPS", "POLICY", "ENDPOINTS"});
  for (const auto &s : services.services()) {
    table.add_row({s.namespace_(), s.name(), join_vips(s), service_policy(s),
                   fmt::format("{}/{}", s.usable_endpoints(), s.endpoints())});
  }
  return table;
}

ServiceFilter ServiceFilter::parse(std::string_view text) {
  const auto slash = text.find('/');
  if (slash == std::string_view::npos) {
    if (text.empty()) throw CliError("service filter is empty: give NAMESPACE/NAME or NAME");
    return {.ns = std::nullopt, .name = std::string(text)};
  }
  const auto ns = text.substr(0, slash), name = text.substr(slash + 1);
  if (ns.empty() || name.empty() || name.find('/') != std::string_view::npos) {
    throw CliError(fmt::format("service filter \"{}\": give NAMESPACE/NAME or NAME", text));
  }
  return {.ns = std::string(ns), .name = std::string(name)};
}

bool ServiceFilter::matches(std::string_view service_ns, std::string_view service_name) const {
  return service_name == name && (!ns || *ns == service_ns);
}

std::string ServiceFilter::describe() const {
  if (ns) return fmt::format("service \"{}/{}\"", *ns, name);
  return fmt::format("service \"{}\" (any namespace)", name);
}

v1::ListEndpointsResponse endpoints_in_order(const v1::ListEndpointsResponse &endpoints,
                                             const std::optional<ServiceFilter> &filter) {
  v1::ListEndpointsResponse selected;
  for (const auto &e : endpoints.endpoints()) {
    if (!filter || filter->matches(e.service_namespace(), e.service_name()))
      *selected.add_endpoints() = e;
  }
  const auto key = [](const v1::EndpointView &e) {
    return std::make_tuple(std::cref(e.service_namespace()), std::cref(e.service_name()),
                           std::cref(e.workload()), std::cref(e.address()), e.port());
  };
  std::sort(selected.mutable_endpoints()->begin(), selected.mutable_endpoints()->end(),
            [&](const auto &a, const auto &b) { return key(a) < key(b); });
  return selected;
}

Table endpoints_table(const v1::ListEndpointsResponse &endpoints) {
  Table table({"SERVICE", "ENDPOINT", "ADDRESS", "SUBSET", "WEIGHT", "SHARE"});
  for (const auto &e : endpoints.endpoints()) {
    table.add_row({fmt::format("{}/{}", e.service_namespace(), e.service_name()), e.workload(),
                   format_host_port(e.address(), e.port()), e.subset().empty() ? "-" : e.subset(),
                   std::to_string(e.kernel_weight()), fmt::format("{:.1f}%", e.share_percent())});
  }
  return table;
}

}  // namespace sockmesh::cli
