#include "sockmesh/cli/policy_views.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <set>
#include <sstream>
#include <vector>

#include "sockmesh/cli/controlplane_views.h"
#include "sockmesh/cli/error.h"
#include "sockmesh/cli/format.h"
#include "sockmesh/cli/views.h"
#include "sockmesh/policy/authorize.h"
#include "sockmesh/resources/names.h"

namespace sockmesh::cli {
namespace {

constexpr std::string_view kUnauthenticated = "unauthenticated";
constexpr std::string_view kWorkloadPrefix = "workload/";
constexpr std::string_view kServicePrefix = "service/";

std::string action_of(const v1::AuthorizationPolicy &policy) {
  // Unspecified is ALLOW, as the evaluator reads it.
  return policy.action() == v1::AUTHORIZATION_ACTION_UNSPECIFIED
             ? "ALLOW"
             : std::string(resources::authorization_action_name(policy.action()));
}

std::string join(const std::vector<std::string> &items, std::string_view separator) {
  return items.empty() ? "-" : fmt::format("{}", fmt::join(items, separator));
}

// NAMESPACE/NAME with both parts non-empty and nothing more.
bool is_namespaced_name(std::string_view text) {
  const size_t slash = text.find('/');
  return slash != std::string_view::npos && slash > 0 && slash + 1 < text.size() &&
         text.find('/', slash + 1) == std::string_view::npos;
}

// A SRC naming a workload: "ns/name" or "workload/ns/name"; nullopt otherwise.
std::optional<std::string> source_workload(std::string_view source) {
  if (source.starts_with(kWorkloadPrefix) &&
      is_namespaced_name(source.substr(kWorkloadPrefix.size())))
    return std::string(source.substr(kWorkloadPrefix.size()));
  if (is_namespaced_name(source)) return std::string(source);
  return std::nullopt;
}

struct Target {
  std::string kind;  // "workload", "service", or "" when not given
  std::string id;    // "ns/name"
  std::string port_text;
};

std::optional<Target> parse_destination(std::string_view text) {
  const size_t colon = text.rfind(':');
  if (colon == std::string_view::npos) return std::nullopt;
  Target target{"", std::string(text.substr(0, colon)), std::string(text.substr(colon + 1))};
  for (std::string_view kind : {kWorkloadPrefix, kServicePrefix}) {
    if (std::string_view(target.id).starts_with(kind)) {
      target.kind = std::string(kind.substr(0, kind.size() - 1));
      target.id.erase(0, kind.size());
    }
  }
  if (!is_namespaced_name(target.id)) return std::nullopt;
  return target;
}

std::optional<uint32_t> parse_port(std::string_view text) {
  if (text.empty() || text.size() > 5 ||
      !std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return std::nullopt;
  const uint32_t port = uint32_t(std::stoul(std::string(text)));
  if (port < 1 || port > 65535) return std::nullopt;
  return port;
}

const v1::Resource *find(const v1::ListResponse &list, const std::string &name) {
  for (const auto &resource : list.resources())
    if (resource.name() == name) return &resource;
  return nullptr;
}

v1::AuthorizationDecision decision_of(const policy::Decision &d, const v1::Workload &workload,
                                      uint32_t port) {
  v1::AuthorizationDecision out;
  out.set_workload(workload.metadata().namespace_() + "/" + workload.metadata().name());
  out.set_port(port);
  out.set_allowed(d.allowed);
  out.set_action(d.action == policy::Action::kDeny ? v1::AUTHORIZATION_ACTION_DENY
                                                   : v1::AUTHORIZATION_ACTION_ALLOW);
  out.set_policy(d.policy);
  out.set_rule(d.rule);
  out.set_decided_by(d.decided_by);
  out.set_explanation(d.explanation);
  return out;
}

// The source of a check, described for humans: its SPIFFE ID or "an unauthenticated peer".
std::string describe_source(const v1::AuthorizationCheck &check) {
  return check.source().empty() ? "an unauthenticated peer" : check.source();
}

}  // namespace

std::string format_selector(const v1::AuthorizationPolicy &policy) {
  return format_labels(policy.selector().match_labels());
}

Table policies_table(const v1::ListResponse &policies) {
  Table table({"NAMESPACE", "NAME", "ACTION", "SELECTOR", "RULES"});
  for (const auto &resource : policies.resources()) {
    const auto &p = resource.authorization_policy();
    table.add_row({p.metadata().namespace_(), p.metadata().name(), action_of(p), format_selector(p),
                   std::to_string(p.rules_size())});
  }
  return table;
}

std::string render_workload(const v1::Resource &resource, const v1::ListResponse &services,
                            const v1::ListResponse &policies, std::string_view trust_domain) {
  const auto &w = resource.workload();
  const auto &ns = w.metadata().namespace_();
  std::ostringstream out;
  out << field_line("Workload", ns + "/" + w.metadata().name())
      << field_line("Version", resource.version().empty() ? "-" : resource.version())
      << field_line("Node", w.node())
      << field_line("Addresses", join({w.addresses().begin(), w.addresses().end()}, ", "))
      << field_line("SPIFFE ID",
                    policy::Source::workload(trust_domain, ns, w.service_account()).spiffe_id())
      << field_line("Labels", format_labels(w.metadata().labels()))
      << field_line("Captured", w.captured() ? "yes" : "no")
      << field_line("Cgroup", w.cgroup_path().empty() ? "-" : w.cgroup_path());

  Table named({"SERVICE", "VIPS", "PORT", "WEIGHT"});
  for (const auto &r : services.resources()) {
    const auto &s = r.service();
    if (s.metadata().namespace_() != ns) continue;
    std::vector<std::string> vips;
    for (const auto &vip : s.vips()) vips.push_back(format_vip(vip));
    for (const auto &endpoint : s.endpoints()) {
      if (endpoint.workload() != w.metadata().name()) continue;
      named.add_row({s.metadata().name(), join(vips, ","), std::to_string(endpoint.port()),
                     std::to_string(endpoint.weight())});
    }
  }
  render_section(out, "Services", named, "No service names it.");

  std::vector<v1::AuthorizationPolicy> bodies;
  for (const auto &r : policies.resources()) bodies.push_back(r.authorization_policy());
  const auto index = policy::PolicyIndex::build(bodies, trust_domain);
  const auto selection = index.select(policy::Destination::of(w));
  std::set<std::string> selecting;
  for (const auto *ids : {&selection.deny, &selection.allow})
    for (const uint32_t i : *ids) selecting.insert(index.policy_id(i));
  v1::ListResponse selected;
  for (const auto &r : policies.resources()) {
    const auto &m = r.authorization_policy().metadata();
    if (selecting.contains(m.namespace_() + "/" + m.name())) *selected.add_resources() = r;
  }
  render_section(out, "Policies", policies_table(selected),
                 "No policy selects it: every connection to it is allowed.");
  return out.str();
}

std::optional<std::string> check_usage_error(std::string_view source,
                                             std::string_view destination) {
  const bool source_ok = source == kUnauthenticated || source_workload(source) ||
                         (std::count(source.begin(), source.end(), '/') >= 2 &&
                          policy::Source::parse(source).has_value());
  if (!source_ok) {
    return fmt::format(
        "SRC must be NAMESPACE/NAME (a workload), a SPIFFE ID or \"unauthenticated\", got \"{}\"",
        source);
  }
  const auto target = parse_destination(destination);
  if (!target) {
    return fmt::format("DST must be [workload/|service/]NAMESPACE/NAME:PORT, got \"{}\"",
                       destination);
  }
  if (!parse_port(target->port_text))
    return fmt::format("PORT must be between 1 and 65535, got \"{}\"", target->port_text);
  return std::nullopt;
}

v1::AuthorizationCheck check_access(std::string_view source_text, std::string_view destination,
                                    std::string_view trust_domain,
                                    const v1::ListResponse &workloads,
                                    const v1::ListResponse &services,
                                    const v1::ListResponse &policies) {
  v1::AuthorizationCheck check;
  check.set_trust_domain(std::string(trust_domain));

  policy::Source source = policy::Source::unauthenticated();
  if (source_text == kUnauthenticated) {
    // As is.
  } else if (const auto id = source_workload(source_text)) {
    const auto *resource = find(workloads, "workload/" + *id);
    if (resource == nullptr)
      throw CliError(fmt::format("workload {} not in the control plane", *id));
    const auto &w = resource->workload();
    source = policy::Source::workload(trust_domain, w.metadata().namespace_(), w.service_account());
    check.set_source_workload(*id);
  } else {
    source = *policy::Source::parse(source_text);
  }
  check.set_source(source.spiffe_id());

  const Target target = *parse_destination(destination);
  const uint32_t port = *parse_port(target.port_text);
  check.set_port(port);
  const v1::Resource *workload =
      target.kind != "service" ? find(workloads, "workload/" + target.id) : nullptr;
  const v1::Resource *service =
      target.kind != "workload" ? find(services, "service/" + target.id) : nullptr;
  if (workload && service) {
    throw CliError(
        fmt::format("{0} is both a workload and a service: write workload/{0} or "
                    "service/{0}",
                    target.id));
  }
  if (!workload && !service) {
    const std::string what = target.kind.empty() ? "workload or service" : target.kind;
    throw CliError(fmt::format("no {} {} in the control plane", what, target.id));
  }

  std::vector<v1::AuthorizationPolicy> bodies;
  for (const auto &r : policies.resources()) bodies.push_back(r.authorization_policy());
  const auto index = policy::PolicyIndex::build(bodies, trust_domain);
  auto decide = [&](const v1::Workload &w, uint32_t at) {
    *check.add_decisions() =
        decision_of(index.decide(source, policy::Destination::of(w), at), w, at);
  };
  if (workload) {
    check.set_destination("workload/" + target.id);
    decide(workload->workload(), port);
  } else {
    check.set_destination("service/" + target.id);
    const auto &s = service->service();
    std::set<uint32_t> ports;
    for (const auto &vip : s.vips()) ports.insert(vip.port());
    if (!ports.contains(port)) {
      throw CliError(fmt::format("service {} has no VIP on port {} (its ports: {})", target.id,
                                 port, fmt::join(ports, ", ")));
    }
    if (s.endpoints().empty())
      throw CliError(fmt::format("service {} has no endpoints: nothing to check", target.id));
    for (const auto &endpoint : s.endpoints()) {
      const auto *w =
          find(workloads, "workload/" + s.metadata().namespace_() + "/" + endpoint.workload());
      if (w == nullptr) {
        throw CliError(fmt::format("workload {}/{} of service {} not in the control plane",
                                   s.metadata().namespace_(), endpoint.workload(), target.id));
      }
      decide(w->workload(), endpoint.port());
    }
  }
  check.set_allowed(std::all_of(check.decisions().begin(), check.decisions().end(),
                                [](const auto &d) { return d.allowed(); }));
  return check;
}

std::string render_check(const v1::AuthorizationCheck &check) {
  std::ostringstream out;
  const std::string verdict = check.allowed() ? "allowed" : "denied";
  if (check.destination().starts_with(kWorkloadPrefix) && check.decisions_size() == 1) {
    const auto &d = check.decisions(0);
    out << verdict << ": " << d.explanation() << '\n' << field_line("Decided by", d.decided_by());
    return out.str();
  }
  const std::string service(std::string_view(check.destination()).substr(kServicePrefix.size()));
  const int total = check.decisions_size();
  const int denied = int(std::count_if(check.decisions().begin(), check.decisions().end(),
                                       [](const auto &d) { return !d.allowed(); }));
  const std::string who = describe_source(check) + " on port " + std::to_string(check.port());
  if (total == 1) {
    out << verdict << ": the only endpoint of service " << service
        << (check.allowed() ? " allows " : " denies ") << who << '\n';
  } else if (check.allowed()) {
    out << verdict << ": all " << total << " endpoints of service " << service << " allow " << who
        << '\n';
  } else {
    out << verdict << ": " << denied << " of " << total << " endpoints of service " << service
        << " deny " << who << '\n';
  }
  Table table({"WORKLOAD", "PORT", "RESULT", "DECIDED BY"});
  for (const auto &d : check.decisions()) {
    const std::string name = d.workload().substr(d.workload().find('/') + 1);
    table.add_row(
        {name, std::to_string(d.port()), d.allowed() ? "allowed" : "denied", d.decided_by()});
  }
  render_section(out, "Endpoints", table, "No endpoints.");
  return out.str();
}

}  // namespace sockmesh::cli
