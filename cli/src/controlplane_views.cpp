#include "sockmesh/cli/controlplane_views.h"

#include <fmt/format.h>
#include <google/protobuf/util/message_differencer.h>

#include <algorithm>
#include <map>
#include <tuple>
#include <sstream>
#include <vector>

#include "sockmesh/cli/format.h"
#include "sockmesh/cli/views.h"

namespace sockmesh::cli {
namespace {

// What a Maglev service gets when spec.maglev.tableSize is 0 (resources.proto, MaglevConfig).
constexpr std::uint32_t kDefaultMaglevTableSize = 4093;

std::string or_dash(const std::string &text) {
  return text.empty() ? "-" : text;
}

std::string join_addresses(const google::protobuf::RepeatedPtrField<std::string> &addresses) {
  if (addresses.empty()) return "-";
  return fmt::format("{}", fmt::join(addresses, ","));
}

std::string join_vips(const v1::Service &service, std::string_view separator) {
  std::vector<std::string> vips;
  for (const auto &vip : service.vips()) vips.push_back(format_vip(vip));
  return vips.empty() ? "-" : fmt::format("{}", fmt::join(vips, separator));
}

std::string desired_policy(const v1::Service &service) {
  const std::string name = lb_policy_name(service.lb_policy());
  if (service.lb_policy() != v1::LB_POLICY_MAGLEV) return name;
  const auto size = service.maglev().table_size();
  return fmt::format("{}({})", name, size == 0 ? kDefaultMaglevTableSize : size);
}

const v1::AgentView *agent_of(const v1::ControlPlaneStatus &status, const std::string &node) {
  for (const auto &agent : status.agents()) {
    if (agent.node() == node) return &agent;
  }
  return nullptr;
}

std::vector<const v1::AgentView *> agents_in_order(const v1::ControlPlaneStatus &status) {
  std::vector<const v1::AgentView *> agents;
  for (const auto &agent : status.agents()) agents.push_back(&agent);
  std::sort(agents.begin(), agents.end(),
            [](const auto *a, const auto *b) { return a->node() < b->node(); });
  return agents;
}

// The first subset whose labels the workload carries all of; "-" when none does.
std::string subset_of(const v1::Service &service, const v1::Workload *workload) {
  if (workload == nullptr) return "-";
  const auto &labels = workload->metadata().labels();
  for (const auto &subset : service.subsets()) {
    const bool selected =
        std::all_of(subset.labels().begin(), subset.labels().end(), [&](const auto &label) {
          const auto it = labels.find(label.first);
          return it != labels.end() && it->second == label.second;
        });
    if (selected) return subset.name();
  }
  return "-";
}

Table subsets_table(const v1::Service &service) {
  Table table({"NAME", "LABELS", "WEIGHT"});
  for (const auto &subset : service.subsets()) {
    table.add_row({subset.name(), format_labels(subset.labels()), std::to_string(subset.weight())});
  }
  return table;
}

Table service_endpoints_table(const v1::Service &service, const v1::ListResponse &workloads) {
  std::map<std::string, const v1::Workload *> by_workload_name;
  for (const auto &resource : workloads.resources()) {
    const auto &meta = resource.workload().metadata();
    if (resource.has_workload() && meta.namespace_() == service.metadata().namespace_())
      by_workload_name[meta.name()] = &resource.workload();
  }
  Table table({"WORKLOAD", "ADDRESSES", "PORT", "WEIGHT", "SUBSET"});
  for (const auto &endpoint : service.endpoints()) {
    const auto it = by_workload_name.find(endpoint.workload());
    const v1::Workload *workload = it == by_workload_name.end() ? nullptr : it->second;
    table.add_row({endpoint.workload(), workload ? join_addresses(workload->addresses()) : "-",
                   std::to_string(endpoint.port()), std::to_string(endpoint.weight()),
                   service.subsets().empty() ? "-" : subset_of(service, workload)});
  }
  return table;
}

}  // namespace

std::string apply_outcome(const v1::Resource &sent,
                          const std::map<std::string, v1::Resource> &current) {
  const auto it = current.find(sent.name());
  if (it == current.end()) return "created";
  v1::Resource stored = it->second;
  stored.clear_version();
  v1::Resource body = sent;
  body.clear_version();
  return google::protobuf::util::MessageDifferencer::Equals(stored, body) ? "unchanged"
                                                                          : "configured";
}

std::map<std::string, v1::Resource> by_name(const v1::ListResponse &list) {
  std::map<std::string, v1::Resource> resources;
  for (const auto &resource : list.resources()) resources[resource.name()] = resource;
  return resources;
}

v1::ListResponse resources_in_order(const v1::ListResponse &list) {
  v1::ListResponse sorted = list;
  std::sort(sorted.mutable_resources()->begin(), sorted.mutable_resources()->end(),
            [](const auto &a, const auto &b) { return a.name() < b.name(); });
  return sorted;
}

std::string format_labels(const google::protobuf::Map<std::string, std::string> &labels) {
  if (labels.empty()) return "-";
  std::vector<std::string> pairs;
  for (const auto &[key, value] : labels) pairs.push_back(fmt::format("{}={}", key, value));
  std::sort(pairs.begin(), pairs.end());
  return fmt::format("{}", fmt::join(pairs, ","));
}

Table workloads_table(const v1::ListResponse &workloads) {
  Table table({"NAMESPACE", "NAME", "NODE", "ADDRESSES", "SERVICE-ACCOUNT", "LABELS"});
  for (const auto &resource : workloads.resources()) {
    const auto &w = resource.workload();
    table.add_row({w.metadata().namespace_(), w.metadata().name(), w.node(),
                   join_addresses(w.addresses()), w.service_account(),
                   format_labels(w.metadata().labels())});
  }
  return table;
}

Table nodes_table(const v1::ListResponse &nodes, const v1::ControlPlaneStatus &status) {
  Table table({"NAME", "ADDRESSES", "AGENT", "ACKED-VERSION"});
  for (const auto &resource : nodes.resources()) {
    const auto &node = resource.node();
    const auto *agent = agent_of(status, node.metadata().name());
    const std::string state = agent == nullptr     ? "never"
                              : agent->connected() ? "connected"
                                                   : "disconnected";
    table.add_row({node.metadata().name(), join_addresses(node.addresses()), state,
                   agent == nullptr ? "-" : or_dash(agent->acked_version())});
  }
  return table;
}

Table desired_services_table(const v1::ListResponse &services) {
  Table table({"NAMESPACE", "NAME", "VIPS", "POLICY", "ENDPOINTS", "VERSION"});
  for (const auto &resource : services.resources()) {
    const auto &s = resource.service();
    table.add_row({s.metadata().namespace_(), s.metadata().name(), join_vips(s, ","),
                   desired_policy(s), std::to_string(s.endpoints_size()),
                   or_dash(resource.version())});
  }
  return table;
}

std::string agent_holds(const v1::AgentView &agent, const v1::Resource &resource) {
  if (!agent.connected()) return "not connected";
  if (!agent.nacked_version().empty() && agent.last_nack().resource() == resource.name())
    return fmt::format("NACKed: {}", agent.last_nack().message());
  const auto it = agent.resource_versions().find(resource.name());
  if (it == agent.resource_versions().end()) return "behind (has none)";
  if (it->second == resource.version()) return "ACKed";
  return fmt::format("behind (has {})", it->second);
}

std::string render_service(const v1::Resource &resource, const v1::ListResponse &workloads,
                           const v1::ControlPlaneStatus &status) {
  const auto &service = resource.service();
  std::ostringstream out;
  out << field_line("Service", fmt::format("{}/{}", service.metadata().namespace_(),
                                           service.metadata().name()))
      << field_line("Version", or_dash(resource.version()))
      << field_line("Labels", format_labels(service.metadata().labels()))
      << field_line("VIPs", join_vips(service, ", "))
      << field_line("Policy", desired_policy(service));
  render_section(out, "Subsets", subsets_table(service),
                 "No subsets: endpoints share the traffic by weight.");
  render_section(out, "Endpoints", service_endpoints_table(service, workloads), "No endpoints.");
  Table agents({"NODE", "THIS VERSION"});
  for (const auto *agent : agents_in_order(status))
    agents.add_row({agent->node(), agent_holds(*agent, resource)});
  render_section(out, "Agents", agents, "No agents.");
  if (!status.identity_refusals().empty()) {
    Table refusals({"REASON", "COUNT"});
    std::map<std::string, std::uint64_t> sorted(status.identity_refusals().begin(),
                                                status.identity_refusals().end());
    for (const auto &[reason, count] : sorted) refusals.add_row({reason, std::to_string(count)});
    render_section(out, "Identity requests refused", refusals, "");
  }
  return out.str();
}

Table identities_table(const v1::ListIdentitiesResponse &identities, std::int64_t now_unix_ms) {
  std::vector<const v1::IssuedCertificate *> rows;
  for (const auto &c : identities.certificates()) rows.push_back(&c);
  std::sort(rows.begin(), rows.end(), [](const auto *a, const auto *b) {
    return std::tie(a->node(), a->workload()) < std::tie(b->node(), b->workload());
  });
  Table table({"NODE", "WORKLOAD", "SPIFFE-ID", "SERIAL", "EXPIRES"});
  for (const auto *c : rows) {
    table.add_row({c->node(), c->workload().empty() ? "(node)" : c->workload(), c->spiffe_id(),
                   c->serial().substr(0, 16),
                   "in " + format_duration(c->not_after_unix() * 1000 - now_unix_ms)});
  }
  return table;
}

std::string render_node_added(const std::string &node, const v1::AddNodeResponse &added) {
  return fmt::format(
      "Node \"{}\" may join the mesh (trust domain {}) until {}, once, with:\n\n"
      "  meshd --node {} --controlplane ADDRESS --join-token {} --ca-cert-hash {}\n\n"
      "ADDRESS is meshcp's agent address (--listen). The token is shown only now; meshcp keeps its "
      "hash.\n",
      node, added.trust_domain(), format_utc(added.expires_unix() * 1000), node, added.token(),
      added.ca_cert_hash());
}

std::string render_controlplane_status(const v1::ControlPlaneStatus &status,
                                       std::int64_t now_unix_ms) {
  std::ostringstream out;
  out << field_line("Version", or_dash(status.version()))
      << field_line("State dir", or_dash(status.state_dir()))
      << field_line("Resources", std::to_string(status.resources()));
  Table agents({"NODE", "CONNECTED", "ACKED", "NACKED", "LAST-NACK"});
  for (const auto *agent : agents_in_order(status)) {
    std::string connected = "no";
    if (agent->connected()) {
      connected =
          agent->connected_unix_ms() == 0
              ? "yes"
              : fmt::format("yes ({})", format_duration(now_unix_ms - agent->connected_unix_ms()));
    }
    agents.add_row({agent->node(), connected, or_dash(agent->acked_version()),
                    or_dash(agent->nacked_version()), or_dash(agent->last_nack().message())});
  }
  render_section(out, "Agents", agents, "No agents.");
  return out.str();
}

}  // namespace sockmesh::cli
