#include "sockmesh/resources/validate.h"

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <utility>

#include "check.h"
#include "resilience_check.h"
#include "sockmesh/lb_maps.h"
#include "sockmesh/resources/names.h"
#include "syntax.h"

namespace sockmesh::resources {
namespace detail {
namespace {

constexpr uint32_t kMaxPort = 65535;
constexpr uint32_t kMaxWeight = 10000;

std::string quoted(std::string_view s) {
  return "\"" + std::string(s) + "\"";
}

std::string indexed(std::string_view path, int i) {
  return std::string(path) + "[" + std::to_string(i) + "]";
}

std::string range_error(uint32_t lo, uint32_t hi, uint32_t got) {
  return "must be between " + std::to_string(lo) + " and " + std::to_string(hi) + ", got " +
         std::to_string(got);
}

bool is_relative_clean_path(std::string_view s) {
  if (s.starts_with('/')) return false;
  size_t start = 0;
  while (start <= s.size()) {
    size_t slash = s.find('/', start);
    if (slash == std::string_view::npos) slash = s.size();
    if (s.substr(start, slash - start) == "..") return false;
    start = slash + 1;
  }
  return true;
}

v1::Protocol effective_protocol(v1::Protocol p) {
  return p == v1::PROTOCOL_UNSPECIFIED ? v1::PROTOCOL_TCP : p;
}

v1::LbPolicy effective_policy(v1::LbPolicy p) {
  return p == v1::LB_POLICY_UNSPECIFIED ? v1::LB_POLICY_RANDOM : p;
}

// address:port/protocol as written, the IPv6 address in brackets.
std::string vip_text(const v1::VirtualAddress &vip, Family family) {
  const std::string address = family == Family::kIpv6 ? "[" + vip.address() + "]" : vip.address();
  return address + ":" + std::to_string(vip.port()) + "/" +
         std::string(protocol_name(effective_protocol(vip.protocol())));
}

// The smallest prime >= n (n is small here: at most 100 × SM_MAX_BACKENDS).
uint32_t prime_at_least(uint32_t n) {
  for (;; ++n) {
    bool prime = n >= 2;
    for (uint32_t d = 2; prime && d * d <= n; ++d) prime = n % d != 0;
    if (prime) return n;
  }
}

// A table this many times the number of endpoints gives each endpoint its share to within
// about 1 % (docs/config.md).
constexpr uint32_t kMaglevEntriesPerEndpointForEvenShares = 100;

class Checker {
 public:
  Checker(const v1::Snapshot &snapshot, const WhereFn &where, Scope scope)
      : s_(snapshot), where_(where), scope_(scope) {}

  std::vector<Issue> run() {
    index_workloads();
    count_vips();
    for (int i = 0; i < s_.workloads_size(); ++i) check_workload(i);
    for (int i = 0; i < s_.services_size(); ++i) check_service(i);
    for (int i = 0; i < s_.nodes_size(); ++i) check_node(i);
    for (int i = 0; i < s_.authorization_policies_size(); ++i) check_authorization_policy(i);
    return std::move(issues_);
  }

 private:
  // The resource being checked: every report() is about it.
  struct Current {
    ResourceRef ref;
    const v1::ObjectMeta *meta;
  };

  void report(const std::string &path, const std::string &what) {
    issues_.push_back(
        {cur_.ref, path, resource_label(cur_.ref.kind, *cur_.meta) + ": " + path + ": " + what});
  }

  // Which address families a workload has, for the services' VIP family check.
  struct Families {
    bool ipv4 = false;
    bool ipv6 = false;
    bool all_valid = true;  // false: an address is malformed, so the families are not known
  };

  void index_workloads() {
    for (const auto &w : s_.workloads()) {
      Families f;
      for (const std::string &text : w.addresses()) {
        auto address = parse_address(text);
        if (!address || ipv4_mapped(*address)) {
          f.all_valid = false;
        } else {
          (address->family == Family::kIpv4 ? f.ipv4 : f.ipv6) = true;
        }
      }
      workload_families_.emplace(std::make_pair(w.metadata().namespace_(), w.metadata().name()), f);
    }
  }

  void count_vips() {
    for (const auto &svc : s_.services()) total_vips_ += size_t(svc.vips_size());
  }

  void check_metadata(Kind kind, int index, const v1::ObjectMeta &meta) {
    cur_ = {{kind, index}, &meta};
    check_label("metadata.name", meta.name());
    check_label("metadata.namespace", meta.namespace_());
    auto key = std::make_tuple(kind, meta.namespace_(), meta.name());
    auto [it, inserted] = first_defined_.emplace(key, index);
    if (!inserted) {
      report("metadata.name", "duplicate " + resource_label(kind, meta) + " (first defined at " +
                                  where_({kind, it->second}) + ")");
    }
  }

  void check_label(const std::string &path, const std::string &value) {
    if (value.empty()) {
      report(path, "required");
    } else if (!is_dns1123_label(value)) {
      report(path, quoted(value) + " is not a DNS-1123 label (" + std::string(kDns1123Rule) + ")");
    }
  }

  // The address, if it may be used.
  std::optional<IpAddress> check_address(const std::string &path, const std::string &text) {
    auto address = parse_address(text);
    if (!address) {
      report(path, quoted(text) + " is not an IPv4 or IPv6 address");
      return std::nullopt;
    }
    if (auto ipv4 = ipv4_mapped(*address)) {
      report(path, quoted(text) + " is an IPv4-mapped IPv6 address; write it as " + *ipv4);
      return std::nullopt;
    }
    return address;
  }

  void check_workload(int index) {
    const v1::Workload &w = s_.workloads(index);
    check_metadata(Kind::kWorkload, index, w.metadata());
    if (w.service_account().empty()) {
      report("spec.serviceAccount", "required");
    } else if (!is_dns1123_subdomain(w.service_account())) {
      report("spec.serviceAccount", quoted(w.service_account()) + " is not a DNS-1123 subdomain (" +
                                        std::string(kDns1123SubdomainRule) + ")");
    }
    if (w.node().empty()) {
      report("spec.node", "required");
    } else if (!is_node_name(w.node())) {
      report("spec.node", quoted(w.node()) +
                              " is not a node name (lowercase letters, digits and '-', at most 63 "
                              "characters)");
    }
    if (w.addresses().empty()) report("spec.addresses", "at least one address is required");
    std::map<IpAddress, int> own;
    std::set<Family> families;
    for (int i = 0; i < w.addresses_size(); ++i) {
      const std::string path = indexed("spec.addresses", i);
      const std::string &text = w.addresses(i);
      auto address = check_address(path, text);
      if (!address) continue;
      if (auto [it, inserted] = own.emplace(*address, i); !inserted) {
        report(path,
               text + " is listed twice (also spec.addresses[" + std::to_string(it->second) + "])");
        continue;
      }
      if (!families.insert(address->family).second) {
        const std::string family(family_name(address->family));
        report(path, "a workload has at most one IPv4 and one IPv6 address; " + quoted(text) +
                         " is its second " + family + " address");
        continue;
      }
      auto [it, inserted] = workload_addresses_.emplace(*address, std::make_pair(index, i));
      if (inserted) continue;
      auto [other, other_i] = it->second;
      const v1::Workload &other_w = s_.workloads(other);
      report(path, text + " is already used by " +
                       resource_label(Kind::kWorkload, other_w.metadata()) +
                       written_there(text, other_w.addresses(other_i)));
    }
    if (!is_relative_clean_path(w.cgroup_path())) {
      report("spec.cgroupPath",
             quoted(w.cgroup_path()) + " must be a relative path without \"..\" components");
    }
  }

  void check_service(int index) {
    const v1::Service &svc = s_.services(index);
    check_metadata(Kind::kService, index, svc.metadata());
    check_vips(index, svc);
    check_policy(svc.lb_policy());
    check_maglev(svc);
    check_endpoints(svc);
    check_subsets(svc);
    check_resilience(
        svc, [this](const std::string &path, const std::string &what) { report(path, what); });
    check_vip_families(svc);
  }

  // " (written <theirs> there)" when the same address is spelled differently elsewhere.
  static std::string written_there(const std::string &ours, const std::string &theirs) {
    return ours == theirs ? "" : " (written " + theirs + " there)";
  }

  void check_vips(int index, const v1::Service &svc) {
    if (svc.vips().empty()) report("spec.vips", "at least one VIP is required");
    for (int i = 0; i < svc.vips_size(); ++i) {
      const v1::VirtualAddress &vip = svc.vips(i);
      const std::string path = indexed("spec.vips", i);
      ++vips_seen_;
      if (vips_seen_ == SM_MAX_SERVICES + 1) {
        report(path, "too many VIPs: at most " + std::to_string(SM_MAX_SERVICES) +
                         " in the mesh, got " + std::to_string(total_vips_));
      }
      const auto address = check_address(path + ".address", vip.address());
      bool usable = address.has_value();
      if (vip.port() < 1 || vip.port() > kMaxPort) {
        report(path + ".port", range_error(1, kMaxPort, vip.port()));
        usable = false;
      }
      const v1::Protocol protocol = effective_protocol(vip.protocol());
      if (protocol != v1::PROTOCOL_TCP && protocol != v1::PROTOCOL_UDP) {
        report(path + ".protocol", "unknown protocol " + std::to_string(int(vip.protocol())));
        usable = false;
      }
      if (!usable) continue;
      const std::string text = vip_text(vip, address->family);
      auto [it, inserted] =
          vips_.emplace(std::make_tuple(*address, vip.port(), protocol), std::make_pair(index, i));
      if (inserted) continue;
      auto [other, other_i] = it->second;
      const v1::Service &other_svc = s_.services(other);
      if (other == index) {
        report(path, text + " is listed twice (also spec.vips[" + std::to_string(other_i) + "])");
      } else {
        report(path, text + " is already used by " +
                         resource_label(Kind::kService, other_svc.metadata()) +
                         written_there(vip.address(), other_svc.vips(other_i).address()));
      }
    }
  }

  void check_policy(v1::LbPolicy policy) {
    switch (policy) {
      case v1::LB_POLICY_UNSPECIFIED:
      case v1::LB_POLICY_RANDOM:
      case v1::LB_POLICY_ROUND_ROBIN:
      case v1::LB_POLICY_LEAST_CONNECTIONS:
      case v1::LB_POLICY_MAGLEV:
        return;
      default:
        report("spec.lbPolicy", "unknown policy " + std::to_string(int(policy)));
    }
  }

  void check_maglev(const v1::Service &svc) {
    if (!svc.has_maglev()) return;
    const v1::LbPolicy policy = effective_policy(svc.lb_policy());
    if (policy != v1::LB_POLICY_MAGLEV) {
      report("spec.maglev", "only allowed with lbPolicy MAGLEV; this service's is " +
                                std::string(lb_policy_name(policy)));
      return;
    }
    const uint32_t size = svc.maglev().table_size();
    if (size == 0) return;  // the default, SM_MAGLEV_DEFAULT_SIZE
    const std::string path = "spec.maglev.tableSize";
    if (auto error = maglev_table_size_error(size, std::to_string(size))) {
      report(path, *error);
      return;
    }
    const auto endpoints = uint32_t(svc.endpoints_size());
    if (size < endpoints) {
      const uint32_t even = kMaglevEntriesPerEndpointForEvenShares * endpoints;
      report(path,
             "must be at least the number of endpoints (" + std::to_string(endpoints) + "), got " +
                 std::to_string(size) + "; for even shares use a prime of at least " +
                 std::to_string(kMaglevEntriesPerEndpointForEvenShares) + " × " +
                 std::to_string(endpoints) + ", e.g. " + std::to_string(prime_at_least(even)));
    }
  }

  // A VIP balances only to endpoint addresses of its own family.
  void check_vip_families(const v1::Service &svc) {
    if (svc.endpoints().empty()) return;
    Families any;
    for (const v1::Endpoint &ep : svc.endpoints()) {
      auto it = workload_families_.find({svc.metadata().namespace_(), ep.workload()});
      // An unknown or malformed workload is reported on its own; its families are not known.
      if (it == workload_families_.end() || !it->second.all_valid) return;
      any.ipv4 |= it->second.ipv4;
      any.ipv6 |= it->second.ipv6;
    }
    for (int i = 0; i < svc.vips_size(); ++i) {
      const v1::VirtualAddress &vip = svc.vips(i);
      auto address = parse_address(vip.address());
      if (!address || ipv4_mapped(*address)) continue;
      const bool served = address->family == Family::kIpv4 ? any.ipv4 : any.ipv6;
      if (served) continue;
      report(indexed("spec.vips", i) + ".address",
             "no endpoint's workload has an " + std::string(family_name(address->family)) +
                 " address, so " + quoted(vip.address()) + " could serve nothing");
    }
  }

  void check_endpoints(const v1::Service &svc) {
    const std::string &ns = svc.metadata().namespace_();
    if (svc.endpoints_size() > SM_MAX_BACKENDS) {
      report("spec.endpoints", "at most " + std::to_string(SM_MAX_BACKENDS) +
                                   " endpoints per service, got " +
                                   std::to_string(svc.endpoints_size()));
    }
    std::map<std::pair<std::string, uint32_t>, int> seen;
    bool any_weight = false;
    for (int i = 0; i < svc.endpoints_size(); ++i) {
      const v1::Endpoint &ep = svc.endpoints(i);
      const std::string path = indexed("spec.endpoints", i);
      if (ep.workload().empty()) {
        report(path + ".workload", "required");
      } else if (scope_ == Scope::kComplete && !workload_families_.contains({ns, ep.workload()})) {
        report(path + ".workload",
               "unknown workload " + quoted(ep.workload()) + " in namespace " + quoted(ns));
      }
      if (ep.port() < 1 || ep.port() > kMaxPort) {
        report(path + ".port", range_error(1, kMaxPort, ep.port()));
      }
      if (ep.weight() > kMaxWeight)
        report(path + ".weight", range_error(0, kMaxWeight, ep.weight()));
      if (ep.weight() > 0) any_weight = true;
      auto [it, inserted] = seen.emplace(std::make_pair(ep.workload(), ep.port()), i);
      if (!inserted) {
        report(path, "duplicate of spec.endpoints[" + std::to_string(it->second) + "] (workload " +
                         quoted(ep.workload()) + ", port " + std::to_string(ep.port()) + ")");
      }
    }
    if (!svc.endpoints().empty() && !any_weight) {
      report("spec.endpoints", "every endpoint has weight 0; at least one must be positive");
    }
  }

  void check_subsets(const v1::Service &svc) {
    std::map<std::string, int> names;
    bool any_weight = false;
    for (int i = 0; i < svc.subsets_size(); ++i) {
      const v1::Subset &subset = svc.subsets(i);
      const std::string path = indexed("spec.subsets", i);
      check_label(path + ".name", subset.name());
      if (!subset.name().empty()) {
        auto [it, inserted] = names.emplace(subset.name(), i);
        if (!inserted) {
          report(path + ".name", "duplicate subset " + quoted(subset.name()) +
                                     " (also spec.subsets[" + std::to_string(it->second) + "])");
        }
      }
      if (subset.labels().empty()) report(path + ".labels", "at least one label is required");
      if (subset.weight() > kMaxWeight) {
        report(path + ".weight", range_error(0, kMaxWeight, subset.weight()));
      }
      if (subset.weight() > 0) any_weight = true;
    }
    if (!svc.subsets().empty() && !any_weight) {
      report("spec.subsets", "every subset has weight 0; at least one must be positive");
    }
  }

  void check_node(int index) {
    const v1::Node &node = s_.nodes(index);
    check_metadata(Kind::kNode, index, node.metadata());
    for (int i = 0; i < node.addresses_size(); ++i) {
      check_address(indexed("spec.addresses", i), node.addresses(i));
    }
  }

  void check_authorization_policy(int index) {
    const v1::AuthorizationPolicy &policy = s_.authorization_policies(index);
    check_metadata(Kind::kAuthorizationPolicy, index, policy.metadata());
    const auto &labels = policy.selector().match_labels();
    if (labels.size() > kMaxSelectorLabels) {
      report("spec.selector.matchLabels",
             at_most(kMaxSelectorLabels, "labels per selector", int(labels.size())));
    }
    // Map order is not defined: report in key order.
    std::map<std::string, std::string> sorted(labels.begin(), labels.end());
    for (const auto &[key, value] : sorted) {
      if (auto error = selector_label_error(key, value))
        report("spec.selector.matchLabels." + key, *error);
    }
    switch (policy.action()) {
      case v1::AUTHORIZATION_ACTION_UNSPECIFIED:
      case v1::AUTHORIZATION_ACTION_ALLOW:
      case v1::AUTHORIZATION_ACTION_DENY:
        break;
      default:
        report("spec.action", "unknown action " + std::to_string(int(policy.action())));
    }
    if (policy.rules_size() > kMaxPolicyRules)
      report("spec.rules", at_most(kMaxPolicyRules, "rules per policy", policy.rules_size()));
    for (int i = 0; i < policy.rules_size(); ++i) {
      const v1::AuthorizationRule &rule = policy.rules(i);
      const std::string path = indexed("spec.rules", i);
      if (rule.from_size() > kMaxRuleClauses)
        report(path + ".from", at_most(kMaxRuleClauses, "sources per rule", rule.from_size()));
      for (int j = 0; j < rule.from_size(); ++j)
        check_from(rule.from(j), indexed(path + ".from", j));
      if (rule.to_size() > kMaxRuleClauses)
        report(path + ".to", at_most(kMaxRuleClauses, "operations per rule", rule.to_size()));
      for (int j = 0; j < rule.to_size(); ++j) check_to(rule.to(j), indexed(path + ".to", j));
    }
  }

  static std::string at_most(int limit, std::string_view what, int got) {
    return "at most " + std::to_string(limit) + " " + std::string(what) + ", got " +
           std::to_string(got);
  }

  void check_from(const v1::AuthorizationFrom &from, const std::string &path) {
    const std::string source = path + ".source";
    if (!from.has_source()) return report(source, "required");
    const v1::AuthorizationSource &s = from.source();
    if (s.principals().empty() && s.namespaces().empty()) {
      return report(source, "must list principals or namespaces (omit from to match any source)");
    }
    check_values(s.principals(), source + ".principals", "principals", principal_error);
    check_values(s.namespaces(), source + ".namespaces", "namespaces", source_namespace_error);
  }

  void check_values(const google::protobuf::RepeatedPtrField<std::string> &values,
                    const std::string &path, std::string_view what,
                    std::optional<std::string> (*error_of)(std::string_view)) {
    if (values.size() > kMaxClauseValues)
      report(path, at_most(kMaxClauseValues, std::string(what) + " per source", values.size()));
    for (int k = 0; k < values.size(); ++k)
      if (auto error = error_of(values.Get(k))) report(indexed(path, k), *error);
  }

  void check_to(const v1::AuthorizationTo &to, const std::string &path) {
    const std::string operation = path + ".operation";
    if (!to.has_operation()) return report(operation, "required");
    const auto &ports = to.operation().ports();
    if (ports.empty()) return report(operation, "must list ports (omit to to match any port)");
    if (ports.size() > kMaxClauseValues)
      report(operation + ".ports", at_most(kMaxClauseValues, "ports per operation", ports.size()));
    for (int k = 0; k < ports.size(); ++k) {
      if (ports.Get(k) < 1 || ports.Get(k) > kMaxPort)
        report(indexed(operation + ".ports", k), range_error(1, kMaxPort, ports.Get(k)));
    }
  }

  const v1::Snapshot &s_;
  const WhereFn &where_;
  const Scope scope_;
  Current cur_{};
  std::vector<Issue> issues_;
  std::map<std::pair<std::string, std::string>, Families> workload_families_;
  std::map<std::tuple<Kind, std::string, std::string>, int> first_defined_;
  std::map<IpAddress, std::pair<int, int>> workload_addresses_;
  std::map<std::tuple<IpAddress, uint32_t, v1::Protocol>, std::pair<int, int>> vips_;
  size_t total_vips_ = 0;
  size_t vips_seen_ = 0;
};

}  // namespace

std::string_view kind_name(Kind kind) {
  switch (kind) {
    case Kind::kWorkload:
      return "workload";
    case Kind::kService:
      return "service";
    case Kind::kNode:
      return "node";
    case Kind::kAuthorizationPolicy:
      return "authorizationpolicy";
  }
  return "resource";
}

std::string resource_label(Kind kind, const v1::ObjectMeta &metadata) {
  return std::string(kind_name(kind)) + " \"" + resource_id(metadata) + "\"";
}

std::vector<Issue> check_snapshot(const v1::Snapshot &snapshot, const WhereFn &where, Scope scope) {
  return Checker(snapshot, where, scope).run();
}

}  // namespace detail

std::vector<std::string> validate(const v1::Snapshot &snapshot, Scope scope) {
  auto where = [](detail::ResourceRef ref) {
    static constexpr const char *kLists[detail::kKinds] = {"workloads", "services", "nodes",
                                                           "authorization_policies"};
    return std::string(kLists[int(ref.kind)]) + "[" + std::to_string(ref.index) + "]";
  };
  std::vector<std::string> errors;
  // Names and values in the messages are the snapshot's own text: one line each, whatever it holds.
  for (auto &issue : detail::check_snapshot(snapshot, where, scope))
    errors.push_back(detail::one_line(issue.text));
  return errors;
}

using namespace detail;

std::string vip_identity(const v1::VirtualAddress &vip) {
  auto address = parse_address(vip.address());
  if (!address || ipv4_mapped(*address) || vip.port() < 1 || vip.port() > kMaxPort) return "";
  const v1::Protocol protocol = effective_protocol(vip.protocol());
  if (protocol != v1::PROTOCOL_TCP && protocol != v1::PROTOCOL_UDP) return "";
  std::string out(1, char(address->family == Family::kIpv4 ? 4 : 6));
  out.append(reinterpret_cast<const char *>(address->bytes.data()), address->bytes.size());
  out += ":" + std::to_string(vip.port()) + "/" + std::to_string(int(protocol));
  return out;
}

std::string vip_text(const v1::VirtualAddress &vip) {
  auto address = parse_address(vip.address());
  return address ? detail::vip_text(vip, address->family) : vip.address();
}

}  // namespace sockmesh::resources
