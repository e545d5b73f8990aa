#include "sockmesh/resources/load.h"

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <initializer_list>
#include <map>
#include <optional>
#include <set>
#include <span>
#include <sstream>
#include <variant>

#include "check.h"
#include "duration.h"
#include "resilience_check.h"
#include "syntax.h"

namespace sockmesh::resources {
namespace {

using detail::Kind;

constexpr std::string_view kApiVersion = "sockmesh/v1";
constexpr std::string_view kDefaultNamespace = "default";
constexpr std::string_view kDefaultServiceAccount = "default";
constexpr uint32_t kMaxPort = 65535;
constexpr uint32_t kMaxWeight = 10000;
constexpr uint32_t kDefaultWeight = 1;

struct LocatedError {
  int line;
  std::string text;
};

// Where the fields of one resource are in the file, and which fields already have a structural
// error (the validator's findings on those are only consequences of it).
struct ResourceLocation {
  int doc_line = 1;
  std::map<std::string, int> lines;
  std::vector<std::string> error_paths;

  int line_of(std::string path) const {
    while (true) {
      if (auto it = lines.find(path); it != lines.end()) return it->second;
      size_t cut = path.find_last_of(".[");
      if (cut == std::string::npos) return doc_line;
      path.resize(cut);
    }
  }

  bool has_error_at_or_above(const std::string &path) const {
    for (const std::string &p : error_paths) {
      if (path == p) return true;
      if (path.size() > p.size() && path.starts_with(p) &&
          (path[p.size()] == '.' || path[p.size()] == '[')) {
        return true;
      }
    }
    return false;
  }
};

std::string quoted(std::string_view s) {
  return "\"" + std::string(s) + "\"";
}

std::string child_path(const std::string &path, std::string_view key) {
  return path.empty() ? std::string(key) : path + "." + std::string(key);
}

std::string item_path(const std::string &path, size_t i) {
  return path + "[" + std::to_string(i) + "]";
}

bool present(const YAML::Node &n) {
  return n.IsDefined() && !n.IsNull();
}

std::string describe(const YAML::Node &n) {
  switch (n.Type()) {
    case YAML::NodeType::Map:
      return "a map";
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Scalar:
      return quoted(n.Scalar());
    case YAML::NodeType::Null:
      return "null";
    case YAML::NodeType::Undefined:
      break;
  }
  return "nothing";
}

// Where a UTF-8 text stops being UTF-8 (a byte that starts no character, a truncated or overlong
// sequence, a surrogate, beyond U+10FFFF), or npos. yaml-cpp hands such bytes on as they are, and
// the resources' strings are protobuf strings, which must be UTF-8: a snapshot holding one fails
// to parse where it is received (found by test/fuzz/translate_fuzz).
size_t invalid_utf8_at(std::string_view text) {
  for (size_t i = 0; i < text.size();) {
    const auto b = static_cast<unsigned char>(text[i]);
    size_t n = 0;
    uint32_t cp = 0;
    if (b < 0x80) {
      ++i;
      continue;
    } else if (b >= 0xc2 && b <= 0xdf) {
      n = 1, cp = b & 0x1f;
    } else if (b >= 0xe0 && b <= 0xef) {
      n = 2, cp = b & 0x0f;
    } else if (b >= 0xf0 && b <= 0xf4) {
      n = 3, cp = b & 0x07;
    } else {
      return i;
    }
    if (i + n >= text.size()) return i;
    for (size_t k = 1; k <= n; ++k) {
      const auto c = static_cast<unsigned char>(text[i + k]);
      if ((c & 0xc0) != 0x80) return i;
      cp = cp << 6 | (c & 0x3f);
    }
    if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10ffff ||
        (cp >= 0xd800 && cp <= 0xdfff))
      return i;
    i += n + 1;
  }
  return std::string_view::npos;
}

// `- fd00::` in a block list: YAML reads a map {"fd00:": null}.
bool looks_like_unquoted_colon_end(const YAML::Node &n) {
  if (!n.IsMap() || n.size() != 1) return false;
  const auto entry = *n.begin();
  return entry.first.IsScalar() && entry.first.Scalar().ends_with(':') && entry.second.IsNull();
}

std::optional<Kind> parse_kind(std::string_view s) {
  if (s == "Workload") return Kind::kWorkload;
  if (s == "Service") return Kind::kService;
  if (s == "Node") return Kind::kNode;
  if (s == "AuthorizationPolicy") return Kind::kAuthorizationPolicy;
  return std::nullopt;
}

constexpr std::string_view kKindChoices = "(one of Workload, Service, Node, AuthorizationPolicy)";

// Fields of Istio's AuthorizationPolicy that sockmesh's L4 authorization does not have: named as
// such rather than as unknown, so that a policy written for Istio says what to change.
constexpr std::string_view kIstioSpecOnly[] = {"provider", "targetRef", "targetRefs"};
constexpr std::string_view kIstioRuleOnly[] = {"when"};
constexpr std::string_view kIstioSourceOnly[] = {
    "notPrincipals", "requestPrincipals", "notRequestPrincipals", "notNamespaces",
    "ipBlocks",      "notIpBlocks",       "remoteIpBlocks",       "notRemoteIpBlocks"};
constexpr std::string_view kIstioOperationOnly[] = {"notPorts",   "hosts", "notHosts", "methods",
                                                    "notMethods", "paths", "notPaths"};
constexpr std::string_view kL4Only =
    "not supported: sockmesh's authorization is L4 (principals, namespaces and ports)";

// Reads one YAML document into one resource message, reporting every structural error
// (presence, types, unknown fields, enum spellings, integer syntax and range).
class DocumentReader {
 public:
  DocumentReader(std::string_view source, std::vector<LocatedError> &errors, std::string label,
                 ResourceLocation &loc)
      : source_(source), errors_(errors), label_(std::move(label)), loc_(loc) {}

  // Checks the envelope; returns the spec map when the document has a usable one.
  std::optional<YAML::Node> read_envelope(const YAML::Node &doc, v1::ObjectMeta *meta) {
    fields(doc, "", {"apiVersion", "kind", "metadata", "spec"});
    if (auto v = scalar(doc, "apiVersion", "apiVersion", true); v && *v != kApiVersion) {
      fail(at("apiVersion"), "apiVersion",
           "must be " + quoted(kApiVersion) + ", got " + quoted(*v));
    }
    if (!present(lookup(doc, "kind", "kind"))) {
      fail(at("kind"), "kind", "required " + std::string(kKindChoices));
    } else if (auto v = scalar(doc, "kind", "kind", true); v && !parse_kind(*v)) {
      fail(at("kind"), "kind", "unknown kind " + quoted(*v) + " " + std::string(kKindChoices));
    }
    if (auto m = map_field(doc, "metadata", "metadata", true)) read_metadata(*m, meta);
    return map_field(doc, "spec", "spec", true);
  }

  void read_workload_spec(const YAML::Node &spec, v1::Workload *w) {
    fields(spec, "spec", {"serviceAccount", "node", "addresses", "cgroupPath", "captured"});
    w->set_service_account(scalar(spec, "serviceAccount", "spec.serviceAccount", false)
                               .value_or(std::string(kDefaultServiceAccount)));
    if (auto v = scalar(spec, "node", "spec.node", true)) w->set_node(*v);
    string_list(spec, "addresses", "spec.addresses", w->mutable_addresses());
    if (auto v = scalar(spec, "cgroupPath", "spec.cgroupPath", false)) w->set_cgroup_path(*v);
    w->set_captured(boolean(spec, "captured", "spec.captured").value_or(true));
  }

  void read_service_spec(const YAML::Node &spec, v1::Service *svc) {
    fields(spec, "spec",
           {"vips", "lbPolicy", "maglev", "endpoints", "subsets", "circuitBreaker",
            "outlierDetection", "rateLimit", "faultInjection", "upstreamConnect"});
    for_each_item(spec, "vips", "spec.vips", [&](const YAML::Node &item, const std::string &path) {
      read_vip(item, path, svc->add_vips());
    });
    svc->set_lb_policy(v1::LB_POLICY_RANDOM);
    if (auto v = scalar(spec, "lbPolicy", "spec.lbPolicy", false)) {
      if (auto policy = detail::parse_lb_policy(*v)) {
        svc->set_lb_policy(*policy);
      } else {
        fail(at("spec.lbPolicy"), "spec.lbPolicy",
             "unknown policy " + quoted(*v) +
                 " (one of RANDOM, ROUND_ROBIN, LEAST_CONNECTIONS, MAGLEV)");
        // Whether maglev settings are allowed depends on the policy the author meant.
        loc_.error_paths.push_back("spec.maglev");
      }
    }
    if (auto m = map_field(spec, "maglev", "spec.maglev", false)) {
      read_maglev(*m, svc->mutable_maglev());
    }
    for_each_item(spec, "endpoints", "spec.endpoints",
                  [&](const YAML::Node &item, const std::string &path) {
                    read_endpoint(item, path, svc->add_endpoints());
                  });
    for_each_item(spec, "subsets", "spec.subsets",
                  [&](const YAML::Node &item, const std::string &path) {
                    read_subset(item, path, svc->add_subsets());
                  });
    if (auto m = map_field(spec, "circuitBreaker", "spec.circuitBreaker", false)) {
      read_circuit_breaker(*m, svc->mutable_circuit_breaker());
    }
    if (auto m = map_field(spec, "outlierDetection", "spec.outlierDetection", false)) {
      read_outlier_detection(*m, svc->mutable_outlier_detection());
    }
    if (auto m = map_field(spec, "rateLimit", "spec.rateLimit", false)) {
      read_rate_limit(*m, svc->mutable_rate_limit());
    }
    if (auto m = map_field(spec, "faultInjection", "spec.faultInjection", false)) {
      read_fault_injection(*m, svc->mutable_fault_injection());
    }
    if (auto m = map_field(spec, "upstreamConnect", "spec.upstreamConnect", false)) {
      read_upstream_connect(*m, svc->mutable_upstream_connect());
    }
  }

  void read_node_spec(const YAML::Node &spec, v1::Node *node) {
    fields(spec, "spec", {"addresses"});
    string_list(spec, "addresses", "spec.addresses", node->mutable_addresses());
  }

  void read_authorization_policy_spec(const YAML::Node &spec, v1::AuthorizationPolicy *policy) {
    fields(spec, "spec", {"selector", "action", "rules"}, kIstioSpecOnly, kL4Only);
    if (auto m = map_field(spec, "selector", "spec.selector", false)) {
      fields(*m, "spec.selector", {"matchLabels"});
      labels(*m, "matchLabels", "spec.selector.matchLabels",
             policy->mutable_selector()->mutable_match_labels());
    }
    policy->set_action(v1::AUTHORIZATION_ACTION_ALLOW);
    if (auto v = scalar(spec, "action", "spec.action", false)) {
      if (auto action = detail::parse_authorization_action(*v)) {
        policy->set_action(*action);
      } else {
        const bool istio = *v == "CUSTOM" || *v == "AUDIT";
        fail(at("spec.action"), "spec.action",
             "unknown action " + quoted(*v) + " (one of ALLOW, DENY" +
                 (istio ? "; Istio's CUSTOM and AUDIT are not supported)" : ")"));
      }
    }
    for_each_item(spec, "rules", "spec.rules",
                  [&](const YAML::Node &item, const std::string &path) {
                    read_rule(item, path, policy->add_rules());
                  });
  }

 private:
  void read_rule(const YAML::Node &item, const std::string &path, v1::AuthorizationRule *rule) {
    if (!item.IsMap()) {
      fail(at(path), path, "must be a map, got " + describe(item));
      return;
    }
    fields(item, path, {"from", "to"}, kIstioRuleOnly, kL4Only);
    const std::string from_path = child_path(path, "from");
    not_empty_if_present(item, "from", from_path, "omit from to match any source");
    for_each_item(item, "from", from_path, [&](const YAML::Node &from, const std::string &p) {
      auto *out = rule->add_from();
      if (!from.IsMap()) return fail(at(p), p, "must be a map, got " + describe(from));
      fields(from, p, {"source"});
      const std::string source_path = child_path(p, "source");
      auto source = map_field(from, "source", source_path, true);
      if (!source) return;
      auto *s = out->mutable_source();
      const size_t errors = errors_.size();
      fields(*source, source_path, {"principals", "namespaces"}, kIstioSourceOnly, kL4Only);
      string_list(*source, "principals", child_path(source_path, "principals"),
                  s->mutable_principals());
      string_list(*source, "namespaces", child_path(source_path, "namespaces"),
                  s->mutable_namespaces());
      // A source left empty by its own errors is not also "empty".
      if (errors_.size() > errors && s->principals().empty() && s->namespaces().empty())
        loc_.error_paths.push_back(source_path);
    });
    const std::string to_path = child_path(path, "to");
    not_empty_if_present(item, "to", to_path, "omit to to match any port");
    for_each_item(item, "to", to_path, [&](const YAML::Node &to, const std::string &p) {
      auto *out = rule->add_to();
      if (!to.IsMap()) return fail(at(p), p, "must be a map, got " + describe(to));
      fields(to, p, {"operation"});
      const std::string operation_path = child_path(p, "operation");
      auto operation = map_field(to, "operation", operation_path, true);
      if (!operation) return;
      auto *o = out->mutable_operation();
      const size_t errors = errors_.size();
      fields(*operation, operation_path, {"ports"}, kIstioOperationOnly, kL4Only);
      const std::string ports_path = child_path(operation_path, "ports");
      for_each_item(*operation, "ports", ports_path,
                    [&](const YAML::Node &port, const std::string &pp) {
                      // A bad port keeps its place, so that later paths match the file.
                      o->add_ports(integer_item(port, pp, 1, kMaxPort).value_or(1));
                    });
      if (errors_.size() > errors && o->ports().empty()) loc_.error_paths.push_back(operation_path);
    });
  }

  // `from: []` would read as "any source" in the proto, the opposite of what it says.
  void not_empty_if_present(const YAML::Node &map, std::string_view key, const std::string &path,
                            std::string_view hint) {
    for (const auto &entry : map) {
      if (!entry.first.IsScalar() || entry.first.Scalar() != key) continue;
      if (entry.second.IsSequence() && entry.second.size() == 0)
        fail(line_of(entry.first), path, "must not be empty (" + std::string(hint) + ")");
      return;
    }
  }

  void read_metadata(const YAML::Node &m, v1::ObjectMeta *meta) {
    fields(m, "metadata", {"name", "namespace", "labels"});
    if (auto v = scalar(m, "name", "metadata.name", true)) meta->set_name(*v);
    meta->set_namespace_(scalar(m, "namespace", "metadata.namespace", false)
                             .value_or(std::string(kDefaultNamespace)));
    labels(m, "labels", "metadata.labels", meta->mutable_labels());
  }

  void read_vip(const YAML::Node &item, const std::string &path, v1::VirtualAddress *vip) {
    vip->set_protocol(v1::PROTOCOL_TCP);
    if (!item.IsMap()) {
      fail(at(path), path, "must be a map, got " + describe(item));
      return;
    }
    fields(item, path, {"address", "port", "protocol"});
    if (auto v = scalar(item, "address", child_path(path, "address"), true)) vip->set_address(*v);
    if (auto v = integer(item, "port", child_path(path, "port"), true, 1, kMaxPort)) {
      vip->set_port(*v);
    }
    const std::string protocol_path = child_path(path, "protocol");
    if (auto v = scalar(item, "protocol", protocol_path, false)) {
      if (auto protocol = detail::parse_protocol(*v)) {
        vip->set_protocol(*protocol);
      } else {
        fail(at(protocol_path), protocol_path,
             "unknown protocol " + quoted(*v) + " (one of TCP, UDP)");
      }
    }
  }

  // tableSize 0 means the default in the proto, so a 0 written here is refused here.
  void read_maglev(const YAML::Node &m, v1::MaglevConfig *maglev) {
    fields(m, "spec.maglev", {"tableSize"});
    const std::string path = "spec.maglev.tableSize";
    auto n = written_integer(m, "tableSize", path, false);
    if (!n) return;
    if (auto error = detail::maglev_table_size_error(n->fits ? n->value : UINT64_MAX, n->text)) {
      fail(at(path), path, *error);
      return;
    }
    maglev->set_table_size(n->value);
  }

  void read_endpoint(const YAML::Node &item, const std::string &path, v1::Endpoint *ep) {
    ep->set_weight(kDefaultWeight);
    if (!item.IsMap()) {
      fail(at(path), path, "must be a map, got " + describe(item));
      return;
    }
    fields(item, path, {"workload", "port", "weight"});
    if (auto v = scalar(item, "workload", child_path(path, "workload"), true)) ep->set_workload(*v);
    if (auto v = integer(item, "port", child_path(path, "port"), true, 1, kMaxPort)) {
      ep->set_port(*v);
    }
    if (auto v = integer(item, "weight", child_path(path, "weight"), false, 0, kMaxWeight)) {
      ep->set_weight(*v);
    }
  }

  void read_subset(const YAML::Node &item, const std::string &path, v1::Subset *subset) {
    subset->set_weight(kDefaultWeight);
    if (!item.IsMap()) {
      fail(at(path), path, "must be a map, got " + describe(item));
      return;
    }
    fields(item, path, {"name", "labels", "weight"});
    if (auto v = scalar(item, "name", child_path(path, "name"), true)) subset->set_name(*v);
    if (!present(item["labels"])) {
      missing(child_path(path, "labels"));
    } else {
      labels(item, "labels", child_path(path, "labels"), subset->mutable_labels());
    }
    if (auto v = integer(item, "weight", child_path(path, "weight"), false, 0, kMaxWeight)) {
      subset->set_weight(*v);
    }
  }

  // Resilience settings (docs/config.md, "Resilience"). A field whose 0 means "the default" in the
  // proto refuses a written 0 here, as maglev.tableSize does: what is absent is not stored.
  void read_circuit_breaker(const YAML::Node &m, v1::CircuitBreaker *cb) {
    const std::string path = "spec.circuitBreaker";
    fields(m, path, {"maxConnections", "maxConnectionsPerBackend"});
    if (auto v = integer(m, "maxConnections", path + ".maxConnections", false, 0,
                         detail::kMaxCircuitBreakerConnections)) {
      cb->set_max_connections(*v);
    }
    if (auto v = integer(m, "maxConnectionsPerBackend", path + ".maxConnectionsPerBackend", false,
                         0, detail::kMaxCircuitBreakerConnections)) {
      cb->set_max_connections_per_backend(*v);
    }
  }

  void read_outlier_detection(const YAML::Node &m, v1::OutlierDetection *od) {
    const std::string path = "spec.outlierDetection";
    fields(m, path,
           {"consecutiveFailures", "baseEjectionTime", "maxEjectionTime", "maxEjectionPercent"});
    if (auto v = integer(m, "consecutiveFailures", path + ".consecutiveFailures", false,
                         detail::kMinConsecutiveFailures, detail::kMaxConsecutiveFailures)) {
      od->set_consecutive_failures(*v);
    }
    const size_t errors = errors_.size();
    if (auto v = duration(m, "baseEjectionTime", path + ".baseEjectionTime",
                          detail::kMinEjectionTimeMs, detail::kMaxEjectionTimeMs)) {
      od->set_base_ejection_time_ms(*v);
    }
    // Whether the maximum is below the base depends on the base the author meant.
    if (errors_.size() > errors) loc_.error_paths.push_back(path + ".maxEjectionTime");
    if (auto v = duration(m, "maxEjectionTime", path + ".maxEjectionTime",
                          detail::kMinEjectionTimeMs, detail::kMaxEjectionTimeMs)) {
      od->set_max_ejection_time_ms(*v);
    }
    if (auto v = integer(m, "maxEjectionPercent", path + ".maxEjectionPercent", false, 0,
                         detail::kMaxEjectionPercent)) {
      od->set_max_ejection_percent(*v);
    }
  }

  void read_rate_limit(const YAML::Node &m, v1::RateLimit *rl) {
    const std::string path = "spec.rateLimit";
    fields(m, path, {"connectionsPerSecond", "burst", "perSourceWorkload"});
    if (auto v = integer(m, "connectionsPerSecond", path + ".connectionsPerSecond", true,
                         detail::kMinRateLimit, detail::kMaxRateLimit)) {
      rl->set_connections_per_second(*v);
    }
    if (auto v = integer(m, "burst", path + ".burst", false, detail::kMinRateLimit,
                         detail::kMaxRateLimit)) {
      rl->set_burst(*v);
    }
    if (auto v = boolean(m, "perSourceWorkload", path + ".perSourceWorkload")) {
      rl->set_per_source_workload(*v);
    }
  }

  void read_fault_injection(const YAML::Node &m, v1::FaultInjection *fi) {
    const std::string path = "spec.faultInjection";
    fields(m, path, {"abort", "sources"});
    const std::string abort_path = path + ".abort";
    if (auto abort = map_field(m, "abort", abort_path, true)) {
      v1::FaultAbort *a = fi->mutable_abort();
      fields(*abort, abort_path, {"percent", "error"});
      if (auto v = percent(*abort, "percent", abort_path + ".percent")) a->set_percent(*v);
      if (auto v = scalar(*abort, "error", abort_path + ".error", false)) a->set_error(*v);
    }
    const std::string sources_path = path + ".sources";
    if (auto sources = map_field(m, "sources", sources_path, false)) {
      v1::FaultSources *s = fi->mutable_sources();
      fields(*sources, sources_path, {"namespaces", "matchLabels"});
      const std::string namespaces_path = sources_path + ".namespaces";
      not_empty_if_present(*sources, "namespaces", namespaces_path,
                           "omit namespaces to match every namespace");
      string_list(*sources, "namespaces", namespaces_path, s->mutable_namespaces());
      labels(*sources, "matchLabels", sources_path + ".matchLabels", s->mutable_match_labels());
    }
  }

  void read_upstream_connect(const YAML::Node &m, v1::UpstreamConnect *uc) {
    const std::string path = "spec.upstreamConnect";
    fields(m, path, {"timeout", "retries"});
    if (auto v = duration(m, "timeout", path + ".timeout", detail::kMinUpstreamConnectTimeoutMs,
                          detail::kMaxUpstreamConnectTimeoutMs)) {
      uc->set_timeout_ms(*v);
    }
    if (auto v = integer(m, "retries", path + ".retries", false, 0, detail::kMaxUpstreamRetries)) {
      uc->set_retries(*v);
    }
  }

  int line_of(const YAML::Node &n) const {
    if (!n.IsDefined()) return loc_.doc_line;
    const YAML::Mark mark = n.Mark();
    return mark.line >= 0 ? mark.line + 1 : loc_.doc_line;
  }

  void fail(int line, const std::string &path, const std::string &what) {
    errors_.push_back({line, std::string(source_) + ":" + std::to_string(line) + ": " + label_ +
                                 ": " + path + ": " + what});
    loc_.error_paths.push_back(path);
  }

  void note(const YAML::Node &n, const std::string &path) { loc_.lines[path] = line_of(n); }

  // The line of a field (its key's line), or of the nearest enclosing field that has one.
  int at(const std::string &path) const { return loc_.line_of(path); }

  // The value of map[key], noting the key's line for the field: a block map or list value
  // starts on the line after its key, but the key is where a reader looks.
  YAML::Node lookup(const YAML::Node &map, std::string_view key, const std::string &path) {
    for (const auto &entry : map) {
      const YAML::Node k = entry.first;
      if (k.IsScalar() && k.Scalar() == key) {
        note(k, path);
        return entry.second;
      }
    }
    return YAML::Node(YAML::NodeType::Undefined);
  }

  // Reports keys of a map that are not among the allowed ones, or repeated. A key among `known`
  // is reported with `why` instead of as unknown.
  void fields(const YAML::Node &map, const std::string &path,
              std::initializer_list<std::string_view> allowed,
              std::span<const std::string_view> known = {}, std::string_view why = {}) {
    std::set<std::string> seen;
    for (const auto &entry : map) {
      const YAML::Node key = entry.first;
      if (!key.IsScalar()) {
        fail(line_of(key), path.empty() ? "(top level)" : path,
             "keys must be strings, got " + describe(key));
        continue;
      }
      const std::string field = child_path(path, key.Scalar());
      if (std::find(known.begin(), known.end(), key.Scalar()) != known.end()) {
        fail(line_of(key), field, std::string(why));
      } else if (std::find(allowed.begin(), allowed.end(), key.Scalar()) == allowed.end()) {
        fail(line_of(key), field, "unknown field");
      } else if (!seen.insert(key.Scalar()).second) {
        fail(line_of(key), field, "duplicate field");
      }
    }
  }

  // A missing field is reported on the line of the map that should hold it.
  void missing(const std::string &path) { fail(at(path), path, "required"); }

  std::optional<std::string> scalar(const YAML::Node &map, std::string_view key,
                                    const std::string &path, bool required) {
    const YAML::Node n = lookup(map, key, path);
    if (!present(n)) {
      if (required) missing(path);
      return std::nullopt;
    }
    if (!n.IsScalar()) {
      fail(at(path), path, "must be a string, got " + describe(n));
      return std::nullopt;
    }
    return n.Scalar();
  }

  // A decimal integer as written; `value` is meaningful only when `fits` (not negative, at most
  // UINT32_MAX), so that range errors can quote any value as written.
  struct WrittenInteger {
    std::string text;
    bool fits;
    uint32_t value;
  };

  std::optional<WrittenInteger> written_integer(const YAML::Node &map, std::string_view key,
                                                const std::string &path, bool required) {
    const YAML::Node n = lookup(map, key, path);
    if (!present(n)) {
      if (required) missing(path);
      return std::nullopt;
    }
    return written_integer(n, path);
  }

  std::optional<WrittenInteger> written_integer(const YAML::Node &n, const std::string &path) {
    if (!n.IsScalar()) {
      fail(at(path), path, "must be an integer, got " + describe(n));
      return std::nullopt;
    }
    const std::string &text = n.Scalar();
    size_t digits_at = (!text.empty() && (text[0] == '-' || text[0] == '+')) ? 1 : 0;
    if (digits_at == text.size() || !std::all_of(text.begin() + digits_at, text.end(),
                                                 [](char c) { return c >= '0' && c <= '9'; })) {
      fail(at(path), path, "must be an integer, got " + quoted(text));
      return std::nullopt;
    }
    uint64_t value = 0;
    bool too_big = false;
    for (size_t i = digits_at; i < text.size() && !too_big; ++i) {
      value = value * 10 + uint64_t(text[i] - '0');
      too_big = value > UINT32_MAX;
    }
    const bool negative = text[0] == '-' && value != 0;
    return WrittenInteger{text, !negative && !too_big, uint32_t(value)};
  }

  std::optional<uint32_t> integer(const YAML::Node &map, std::string_view key,
                                  const std::string &path, bool required, uint32_t lo,
                                  uint32_t hi) {
    auto n = written_integer(map, key, path, required);
    if (!n) return std::nullopt;
    return in_range(*n, path, lo, hi);
  }

  // A list item (Istio writes ports quoted, "8080": read as the same integer).
  std::optional<uint32_t> integer_item(const YAML::Node &item, const std::string &path, uint32_t lo,
                                       uint32_t hi) {
    auto n = written_integer(item, path);
    if (!n) return std::nullopt;
    return in_range(*n, path, lo, hi);
  }

  std::optional<uint32_t> in_range(const WrittenInteger &n, const std::string &path, uint32_t lo,
                                   uint32_t hi) {
    if (!n.fits || n.value < lo || n.value > hi) {
      fail(at(path), path,
           "must be between " + std::to_string(lo) + " and " + std::to_string(hi) + ", got " +
               n.text);
      return std::nullopt;
    }
    return n.value;
  }

  // A duration ("500ms", "2s", "1.5s", "5m", "1h") in whole milliseconds within [lo_ms, hi_ms]
  // (which fit a uint32).
  std::optional<uint32_t> duration(const YAML::Node &map, std::string_view key,
                                   const std::string &path, uint64_t lo_ms, uint64_t hi_ms) {
    const YAML::Node n = lookup(map, key, path);
    if (!present(n)) return std::nullopt;
    if (!n.IsScalar()) {
      fail(at(path), path, "must be a duration, got " + describe(n));
      return std::nullopt;
    }
    const auto parsed = detail::parse_duration_ms(n.Scalar());
    if (const auto *error = std::get_if<std::string>(&parsed)) {
      fail(at(path), path, *error);
      return std::nullopt;
    }
    const uint64_t ms = std::get<uint64_t>(parsed);
    if (ms < lo_ms || ms > hi_ms) {
      fail(at(path), path, detail::duration_range_error(lo_ms, hi_ms, n.Scalar()));
      return std::nullopt;
    }
    return uint32_t(ms);
  }

  // A required percentage written as a decimal number ("12.5", "100"); its range and decimals are
  // the validator's to check, on the value.
  std::optional<double> percent(const YAML::Node &map, std::string_view key,
                                const std::string &path) {
    const YAML::Node n = lookup(map, key, path);
    if (!present(n)) {
      missing(path);
      return std::nullopt;
    }
    if (!n.IsScalar()) {
      fail(at(path), path, "must be a number, got " + describe(n));
      return std::nullopt;
    }
    const std::string &text = n.Scalar();
    const size_t digits_at = text.starts_with('-') ? 1 : 0;
    const size_t dot = text.find('.');
    const auto digits = [&](size_t from, size_t to) {
      return from < to && std::all_of(text.begin() + long(from), text.begin() + long(to),
                                      [](char c) { return c >= '0' && c <= '9'; });
    };
    const bool decimal = dot == std::string::npos
                             ? digits(digits_at, text.size())
                             : digits(digits_at, dot) && digits(dot + 1, text.size());
    if (!decimal) {
      fail(at(path), path,
           "must be a number, got " + quoted(text) +
               (text.ends_with('%') ? " (write the percentage without '%')" : ""));
      return std::nullopt;
    }
    double value = 0;
    const auto result = std::from_chars(text.data(), text.data() + text.size(), value);
    if (result.ec != std::errc{}) {
      fail(at(path), path, detail::fault_percent_range_error(text));
      return std::nullopt;
    }
    return value;
  }

  std::optional<bool> boolean(const YAML::Node &map, std::string_view key,
                              const std::string &path) {
    const YAML::Node n = lookup(map, key, path);
    if (!present(n)) return std::nullopt;
    if (n.IsScalar() && n.Scalar() == "true") return true;
    if (n.IsScalar() && n.Scalar() == "false") return false;
    fail(at(path), path, "must be true or false, got " + describe(n));
    return std::nullopt;
  }

  std::optional<YAML::Node> map_field(const YAML::Node &map, std::string_view key,
                                      const std::string &path, bool required) {
    const YAML::Node n = lookup(map, key, path);
    if (!present(n)) {
      if (required) missing(path);
      return std::nullopt;
    }
    if (!n.IsMap()) {
      fail(at(path), path, "must be a map, got " + describe(n));
      return std::nullopt;
    }
    return n;
  }

  std::optional<YAML::Node> list_field(const YAML::Node &map, std::string_view key,
                                       const std::string &path) {
    const YAML::Node n = lookup(map, key, path);
    if (!present(n)) return std::nullopt;
    if (!n.IsSequence()) {
      fail(at(path), path, "must be a list, got " + describe(n));
      return std::nullopt;
    }
    return n;
  }

  // Calls read(item, path) for every item; bad items still take their index, so that the
  // validator's field paths match the file.
  template <typename Read>
  void for_each_item(const YAML::Node &map, std::string_view key, const std::string &path,
                     Read read) {
    auto list = list_field(map, key, path);
    if (!list) return;
    for (size_t i = 0; i < list->size(); ++i) {
      const YAML::Node item = (*list)[i];
      const std::string p = item_path(path, i);
      // A null item's mark points past it; the list's line is the closest reliable one.
      loc_.lines[p] = item.IsNull() ? at(path) : line_of(item);
      read(item, p);
    }
  }

  void string_list(const YAML::Node &map, std::string_view key, const std::string &path,
                   google::protobuf::RepeatedPtrField<std::string> *out) {
    for_each_item(map, key, path, [&](const YAML::Node &item, const std::string &p) {
      if (item.IsScalar()) {
        out->Add(std::string(item.Scalar()));
        return;
      }
      std::string what = "must be a string, got " + describe(item);
      if (looks_like_unquoted_colon_end(item)) {
        what += " (YAML reads an unquoted item ending in ':' as a map; quote it: \"" +
                item.begin()->first.Scalar() + ":\")";
      }
      fail(at(p), p, what);
      out->Add();
    });
  }

  void labels(const YAML::Node &map, std::string_view key, const std::string &path,
              google::protobuf::Map<std::string, std::string> *out) {
    auto m = map_field(map, key, path, false);
    if (!m) return;
    for (const auto &entry : *m) {
      const YAML::Node k = entry.first;
      const YAML::Node v = entry.second;
      if (!k.IsScalar()) {
        fail(line_of(k), path, "keys must be strings, got " + describe(k));
        continue;
      }
      const std::string p = child_path(path, k.Scalar());
      note(k, p);
      if (out->contains(k.Scalar())) {
        fail(line_of(k), p, "duplicate label");
      } else if (v.IsNull()) {
        (*out)[k.Scalar()] = "";
      } else if (!v.IsScalar()) {
        fail(at(p), p, "must be a string, got " + describe(v));
      } else {
        (*out)[k.Scalar()] = v.Scalar();
      }
    }
  }

  std::string_view source_;
  std::vector<LocatedError> &errors_;
  std::string label_;
  ResourceLocation &loc_;
};

// yaml-cpp 0.7's LoadAll() loops forever, allocating until the process dies, when a document
// starts with a token no node can start with (e.g. a stray ','): the parser reports an empty
// document without consuming the token, again and again (fixed upstream by jbeder/yaml-cpp#1319,
// after Debian 12's 0.7). This walks the documents first and finds such a token.
class StuckDocumentProbe : public YAML::EventHandler {
 public:
  // Returns the mark of the token the parser cannot get past, if any.
  static std::optional<YAML::Mark> find(const std::string &text) {
    std::istringstream in(text);
    YAML::Parser parser(in);
    StuckDocumentProbe probe;
    std::optional<int> previous_null_pos;
    while (true) {
      probe.nodes_ = 0;
      probe.null_mark_.reset();
      if (!parser.HandleNextDocument(probe)) return std::nullopt;
      if (probe.nodes_ != 1 || !probe.null_mark_) {
        previous_null_pos.reset();
        continue;
      }
      if (previous_null_pos == probe.null_mark_->pos) return probe.null_mark_;
      previous_null_pos = probe.null_mark_->pos;
    }
  }

  void OnDocumentStart(const YAML::Mark &) override {}
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark &mark, YAML::anchor_t) override {
    ++nodes_;
    null_mark_ = mark;
  }
  void OnAlias(const YAML::Mark &, YAML::anchor_t) override { ++nodes_; }
  void OnScalar(const YAML::Mark &, const std::string &, YAML::anchor_t,
                const std::string &) override {
    ++nodes_;
  }
  void OnSequenceStart(const YAML::Mark &, const std::string &, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {
    ++nodes_;
  }
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark &, const std::string &, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {
    ++nodes_;
  }
  void OnMapEnd() override {}

 private:
  int nodes_ = 0;
  std::optional<YAML::Mark> null_mark_;
};

class FileLoader {
 public:
  FileLoader(std::string_view source, Scope scope) : source_(source), scope_(scope) {}

  LoadResult load(std::string_view text) {
    std::vector<YAML::Node> docs;
    try {
      const std::string input(text);
      // yaml-cpp reads UTF-16 and UTF-32 (a BOM, or a NUL in the first two bytes) and converts
      // them itself; anything else is UTF-8.
      const bool utf8 = !(input.size() >= 2 && (input[0] == '\0' || input[1] == '\0')) &&
                        !input.starts_with("\xfe\xff") && !input.starts_with("\xff\xfe");
      if (const size_t bad = utf8 ? invalid_utf8_at(input) : std::string::npos;
          bad != std::string::npos) {
        const size_t line_start = bad == 0 ? std::string::npos : input.rfind('\n', bad - 1);
        const size_t column = line_start == std::string::npos ? bad + 1 : bad - line_start;
        static constexpr char kHex[] = "0123456789abcdef";
        const auto byte = static_cast<unsigned char>(input[bad]);
        return error_only(int(std::count(input.begin(), input.begin() + long(bad), '\n')) + 1,
                          "malformed YAML: not UTF-8 (byte 0x" + std::string{kHex[byte >> 4]} +
                              kHex[byte & 0xf] + " at column " + std::to_string(column) + ")");
      }
      if (auto stuck = StuckDocumentProbe::find(input)) {
        const size_t pos = size_t(stuck->pos);
        const std::string token = pos < input.size() ? input.substr(pos, 1) : "end of input";
        return error_only(stuck->line + 1, "malformed YAML: unexpected " + quoted(token));
      }
      docs = YAML::LoadAll(input);
    } catch (const YAML::Exception &e) {
      const int line = e.mark.line >= 0 ? e.mark.line + 1 : 1;
      return error_only(line, "malformed YAML: " + e.msg);
    }
    for (size_t i = 0; i < docs.size(); ++i) read_document(docs[i], int(i) + 1);
    add_semantic_errors();
    std::stable_sort(errors_.begin(), errors_.end(),
                     [](const LocatedError &a, const LocatedError &b) { return a.line < b.line; });
    LoadResult result;
    for (auto &e : errors_) result.errors.push_back(std::move(e.text));
    if (result.errors.empty()) result.snapshot = std::move(snapshot_);
    return result;
  }

  LoadResult error_only(int line, const std::string &what) {
    LoadResult result;
    result.errors.push_back(std::string(source_) + ":" + std::to_string(line) + ": " + what);
    return result;
  }

 private:
  // The identity of a document, if it has a known kind and a name; read without reporting, so
  // that every error of the document can then be labeled with it.
  struct Identity {
    Kind kind;
    v1::ObjectMeta meta;
  };

  static std::optional<Identity> identify(const YAML::Node &doc) {
    const YAML::Node kind = doc["kind"];
    const YAML::Node meta = doc["metadata"];
    if (!present(kind) || !kind.IsScalar() || !present(meta) || !meta.IsMap()) return std::nullopt;
    auto k = parse_kind(kind.Scalar());
    const YAML::Node name = meta["name"];
    if (!k || !present(name) || !name.IsScalar()) return std::nullopt;
    Identity id{*k, {}};
    id.meta.set_name(name.Scalar());
    const YAML::Node ns = meta["namespace"];
    id.meta.set_namespace_(present(ns) && ns.IsScalar() ? ns.Scalar()
                                                        : std::string(kDefaultNamespace));
    return id;
  }

  void read_document(const YAML::Node &doc, int number) {
    if (doc.IsNull()) return;
    const int doc_line = doc.Mark().line >= 0 ? doc.Mark().line + 1 : 1;
    const std::string doc_label = "document " + std::to_string(number);
    if (!doc.IsMap()) {
      errors_.push_back({doc_line, std::string(source_) + ":" + std::to_string(doc_line) + ": " +
                                       doc_label + ": must be a map, got " + describe(doc)});
      return;
    }
    const std::optional<Identity> id = identify(doc);
    ResourceLocation scratch_loc;
    ResourceLocation &loc = id ? locations_[int(id->kind)].emplace_back() : scratch_loc;
    loc.doc_line = doc_line;
    DocumentReader reader(source_, errors_,
                          id ? detail::resource_label(id->kind, id->meta) : doc_label, loc);
    if (!id) {
      // Unidentified: still report everything the envelope gets wrong; the spec cannot be
      // checked without a kind, and the resource is left out of the snapshot.
      v1::ObjectMeta scratch;
      auto spec = reader.read_envelope(doc, &scratch);
      const YAML::Node kind = doc["kind"];
      if (spec && present(kind) && kind.IsScalar()) {
        if (auto k = parse_kind(kind.Scalar())) read_spec(reader, *k, *spec, nullptr);
      }
      return;
    }
    v1::ObjectMeta *meta = add_resource(id->kind);
    auto spec = reader.read_envelope(doc, meta);
    if (spec) read_spec(reader, id->kind, *spec, &snapshot_);
  }

  v1::ObjectMeta *add_resource(Kind kind) {
    switch (kind) {
      case Kind::kWorkload:
        return snapshot_.add_workloads()->mutable_metadata();
      case Kind::kService:
        return snapshot_.add_services()->mutable_metadata();
      case Kind::kNode:
        return snapshot_.add_nodes()->mutable_metadata();
      case Kind::kAuthorizationPolicy:
        return snapshot_.add_authorization_policies()->mutable_metadata();
    }
    return nullptr;
  }

  // Reads the spec into the last resource of its kind in `into`, or into a scratch message.
  static void read_spec(DocumentReader &reader, Kind kind, const YAML::Node &spec,
                        v1::Snapshot *into) {
    v1::Snapshot scratch;
    v1::Snapshot &s = into ? *into : scratch;
    switch (kind) {
      case Kind::kWorkload:
        if (!into) s.add_workloads();
        reader.read_workload_spec(spec, s.mutable_workloads(s.workloads_size() - 1));
        return;
      case Kind::kService:
        if (!into) s.add_services();
        reader.read_service_spec(spec, s.mutable_services(s.services_size() - 1));
        return;
      case Kind::kNode:
        if (!into) s.add_nodes();
        reader.read_node_spec(spec, s.mutable_nodes(s.nodes_size() - 1));
        return;
      case Kind::kAuthorizationPolicy:
        if (!into) s.add_authorization_policies();
        reader.read_authorization_policy_spec(
            spec, s.mutable_authorization_policies(s.authorization_policies_size() - 1));
        return;
    }
  }

  void add_semantic_errors() {
    auto where = [this](detail::ResourceRef ref) {
      return std::string(source_) + ":" +
             std::to_string(locations_[int(ref.kind)][size_t(ref.index)].doc_line);
    };
    for (auto &issue : detail::check_snapshot(snapshot_, where, scope_)) {
      const ResourceLocation &loc =
          locations_[int(issue.resource.kind)][size_t(issue.resource.index)];
      if (loc.has_error_at_or_above(issue.path)) continue;
      const int line = loc.line_of(issue.path);
      errors_.push_back(
          {line, std::string(source_) + ":" + std::to_string(line) + ": " + issue.text});
    }
  }

  std::string_view source_;
  Scope scope_;
  v1::Snapshot snapshot_;
  std::vector<ResourceLocation> locations_[detail::kKinds];
  std::vector<LocatedError> errors_;
};

}  // namespace

LoadResult load_yaml_string(std::string_view text, std::string_view source_name, Scope scope) {
  FileLoader loader(source_name, scope);
  LoadResult result;
  try {
    result = loader.load(text);
  } catch (const std::exception &e) {
    result = loader.error_only(1, std::string("internal error: ") + e.what());
  }
  // Messages quote keys and values as written, and YAML can write a newline or a NUL into either
  // (found by test/fuzz/config_fuzz): one error must stay one line.
  for (std::string &error : result.errors) error = detail::one_line(error);
  return result;
}

LoadResult load_yaml_file(const std::string &path, Scope scope) {
  std::FILE *f = std::fopen(path.c_str(), "rb");
  if (!f) {
    LoadResult result;
    result.errors.push_back(detail::one_line(path + ": cannot read: " + std::strerror(errno)));
    return result;
  }
  std::string text;
  char buf[65536];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) text.append(buf, n);
  const bool failed = std::ferror(f);
  const int err = errno;
  std::fclose(f);
  if (failed) {
    LoadResult result;
    result.errors.push_back(detail::one_line(path + ": cannot read: " + std::strerror(err)));
    return result;
  }
  return load_yaml_string(text, path, scope);
}

}  // namespace sockmesh::resources
