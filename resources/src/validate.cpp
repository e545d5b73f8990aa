#include "sockmesh/resources/validate.h"

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <tuple>
#include <utility>

#include "check.h"
#include "sockmesh/lb_maps.h"
#include "sockmesh/resources/names.h"
#include "syntax.h"

namespace sockmesh::resources {
namespace detail {
namespace {

constexpr uint32_t kMaxPort = 65535;
constexpr uint32_t kMaxWeight = 10000;
constexpr size_t kMaxSubdomainLength = 253;

std::string quoted(std::string_view s) { return "\"" + std::string(s) + "\""; }

std::string indexed(std::string_view path, int i) {
  return std::string(path) + "[" + std::to_string(i) + "]";
}

std::string range_error(uint32_t lo, uint32_t hi, uint32_t got) {
  return "must be between " + std::to_string(lo) + " and " + std::to_string(hi) + ", got " +
         std::to_string(got);
}

// DNS-1123 subdomain: dot-separated DNS-1123 labels, at most 253 characters (Kubernetes' rule
// for service account names).
bool is_dns1123_subdomain(std::string_view s) {
  if (s.empty() || s.size() > kMaxSubdomainLength) return false;
  size_t start = 0;
  while (true) {
    size_t dot = s.find('.', start);
    if (!is_dns1123_label(s.substr(start, dot - start))) return false;
    if (dot == std::string_view::npos) return true;
    start = dot + 1;
  }
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

class Checker {
 public:
  Checker(const v1::Snapshot& snapshot, const WhereFn& where) : s_(snapshot), where_(where) {}

  std::vector<Issue> run() {
    index_workloads();
    count_vips();
    for (int i = 0; i < s_.workloads_size(); ++i) check_workload(i);
    for (int i = 0; i < s_.services_size(); ++i) check_service(i);
    for (int i = 0; i < s_.nodes_size(); ++i) check_node(i);
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

  void index_workloads() {
    for (const auto &w : s_.workloads()) {
      workload_names_.insert({w.metadata().namespace_(), w.metadata().name()});
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

  // Returns whether the address may be used (a valid IPv4 address).
  bool check_address(const std::string &path, const std::string &address) {
    switch (classify_address(address)) {
      case AddressKind::kIpv4:
        return true;
      case AddressKind::kIpv6:
        report(path, quoted(address) + ": IPv6 addresses are not supported yet (M2)");
        return false;
      case AddressKind::kInvalid:
        report(path, quoted(address) + " is not an IPv4 address");
        return false;
    }
    return false;
  }

  void check_workload(int index) {
    const v1::Workload &w = s_.workloads(index);
    check_metadata(Kind::kWorkload, index, w.metadata());
    if (w.service_account().empty()) {
      report("spec.serviceAccount", "required");
    } else if (!is_dns1123_subdomain(w.service_account())) {
      report("spec.serviceAccount",
             quoted(w.service_account()) +
                 " is not a DNS-1123 subdomain (dot-separated DNS-1123 labels, at most 253 "
                 "characters)");
    }
    if (w.node().empty()) {
      report("spec.node", "required");
    } else if (!is_node_name(w.node())) {
      report("spec.node", quoted(w.node()) +
                              " is not a node name (lowercase letters, digits and '-', at most 63 "
                              "characters)");
    }
    if (w.addresses().empty()) report("spec.addresses", "at least one address is required");
    for (int i = 0; i < w.addresses_size(); ++i) {
      const std::string path = indexed("spec.addresses", i);
      const std::string &address = w.addresses(i);
      if (!check_address(path, address)) continue;
      auto [it, inserted] = workload_addresses_.emplace(address, std::make_pair(index, i));
      if (inserted) continue;
      auto [other, other_i] = it->second;
      if (other == index) {
        report(path, address + " is listed twice (also spec.addresses[" + std::to_string(other_i) +
                         "])");
      } else {
        report(path, address + " is already used by " +
                         resource_label(Kind::kWorkload, s_.workloads(other).metadata()));
      }
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
    check_endpoints(svc);
    check_subsets(svc);
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
      bool usable = check_address(path + ".address", vip.address());
      if (vip.port() < 1 || vip.port() > kMaxPort) {
        report(path + ".port", range_error(1, kMaxPort, vip.port()));
        usable = false;
      }
      const v1::Protocol protocol = effective_protocol(vip.protocol());
      if (protocol == v1::PROTOCOL_UDP) {
        report(path + ".protocol", "UDP services are not supported yet (M2); TCP is");
      } else if (protocol != v1::PROTOCOL_TCP) {
        report(path + ".protocol", "unknown protocol " + std::to_string(int(vip.protocol())));
        usable = false;
      }
      if (!usable) continue;
      const std::string key = vip.address() + ":" + std::to_string(vip.port()) + "/" +
                              std::string(protocol_name(protocol));
      auto [it, inserted] = vips_.emplace(key, std::make_pair(index, i));
      if (inserted) continue;
      auto [other, other_i] = it->second;
      if (other == index) {
        report(path, key + " is listed twice (also spec.vips[" + std::to_string(other_i) + "])");
      } else {
        report(path, key + " is already used by " +
                         resource_label(Kind::kService, s_.services(other).metadata()));
      }
    }
  }

  void check_policy(v1::LbPolicy policy) {
    if (policy == v1::LB_POLICY_UNSPECIFIED || policy == v1::LB_POLICY_RANDOM) return;
    const std::string_view name = lb_policy_name(policy);
    if (name == "UNKNOWN") {
      report("spec.lbPolicy", "unknown policy " + std::to_string(int(policy)));
    } else {
      report("spec.lbPolicy", std::string(name) + " is not supported yet; RANDOM is");
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
      } else if (!workload_names_.contains({ns, ep.workload()})) {
        report(path + ".workload",
               "unknown workload " + quoted(ep.workload()) + " in namespace " + quoted(ns));
      }
      if (ep.port() < 1 || ep.port() > kMaxPort) {
        report(path + ".port", range_error(1, kMaxPort, ep.port()));
      }
      if (ep.weight() > kMaxWeight) report(path + ".weight", range_error(0, kMaxWeight, ep.weight()));
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

  const v1::Snapshot &s_;
  const WhereFn &where_;
  Current cur_{};
  std::vector<Issue> issues_;
  std::set<std::pair<std::string, std::string>> workload_names_;
  std::map<std::tuple<Kind, std::string, std::string>, int> first_defined_;
  std::map<std::string, std::pair<int, int>> workload_addresses_;
  std::map<std::string, std::pair<int, int>> vips_;
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
  }
  return "resource";
}

std::string resource_label(Kind kind, const v1::ObjectMeta &metadata) {
  return std::string(kind_name(kind)) + " \"" + resource_id(metadata) + "\"";
}

std::vector<Issue> check_snapshot(const v1::Snapshot &snapshot, const WhereFn &where) {
  return Checker(snapshot, where).run();
}

}  // namespace detail

std::vector<std::string> validate(const v1::Snapshot &snapshot) {
  auto where = [](detail::ResourceRef ref) {
    static constexpr const char *kLists[] = {"workloads", "services", "nodes"};
    return std::string(kLists[int(ref.kind)]) + "[" + std::to_string(ref.index) + "]";
  };
  std::vector<std::string> errors;
  for (auto &issue : detail::check_snapshot(snapshot, where)) errors.push_back(std::move(issue.text));
  return errors;
}

}  // namespace sockmesh::resources
