#include "sockmesh/policy/authorize.h"

#include <algorithm>
#include <utility>

namespace sockmesh::policy {
namespace {

constexpr std::string_view kScheme = "spiffe://";
// Istio: a principal in the trust domain "cluster.local" stands for the mesh's own.
constexpr std::string_view kLocalAlias = "cluster.local";

// Istio's string match: exact, "*" (any non-empty value), "prefix*", "*suffix".
struct StringMatch {
  bool any = false;
  std::vector<std::string> exact;  // sorted
  std::vector<std::string> prefixes;
  std::vector<std::string> suffixes;

  void add(std::string pattern) {
    if (pattern == "*") {
      any = true;
    } else if (pattern.starts_with('*')) {
      suffixes.push_back(pattern.substr(1));
    } else if (pattern.ends_with('*')) {
      pattern.pop_back();
      prefixes.push_back(std::move(pattern));
    } else {
      exact.push_back(std::move(pattern));
    }
  }

  void finish() { std::sort(exact.begin(), exact.end()); }

  bool matches(std::string_view value) const noexcept {
    if (value.empty()) return false;
    if (any) return true;
    if (std::binary_search(exact.begin(), exact.end(), value, std::less<>())) return true;
    for (const auto &p : prefixes)
      if (value.starts_with(p)) return true;
    for (const auto &s : suffixes)
      if (value.ends_with(s)) return true;
    return false;
  }
};

struct From {
  bool has_principals = false;
  bool has_namespaces = false;
  StringMatch principals;
  StringMatch namespaces;

  bool matches(const Source &source) const noexcept {
    if (has_principals && !principals.matches(source.principal())) return false;
    if (has_namespaces && !namespaces.matches(source.namespace_())) return false;
    return true;
  }
};

struct Rule {
  std::vector<From> from;
  std::vector<std::vector<uint32_t>> to;  // each sorted

  bool matches(const Source &source, uint32_t port) const noexcept {
    if (!from.empty() &&
        std::none_of(from.begin(), from.end(), [&](const From &f) { return f.matches(source); }))
      return false;
    if (!to.empty() && std::none_of(to.begin(), to.end(), [&](const auto &ports) {
          return std::binary_search(ports.begin(), ports.end(), port);
        }))
      return false;
    return true;
  }
};

// A principal pattern as the index matches it: without the scheme, "cluster.local" replaced by
// the mesh's trust domain.
std::string principal_pattern(std::string_view written, std::string_view trust_domain) {
  std::string_view p = written;
  if (p.starts_with(kScheme)) p.remove_prefix(kScheme.size());
  if (p.size() > kLocalAlias.size() && p.starts_with(kLocalAlias) && p[kLocalAlias.size()] == '/') {
    return std::string(trust_domain) + std::string(p.substr(kLocalAlias.size()));
  }
  return std::string(p);
}

std::string join(const std::vector<std::string> &items) {
  std::string out;
  for (const auto &item : items) out += (out.empty() ? "" : ", ") + item;
  return out;
}

}  // namespace

struct PolicyIndex::Compiled {
  std::string ns;
  std::string id;  // "ns/name"
  Action action = Action::kAllow;
  std::vector<std::pair<std::string, std::string>> selector;
  std::vector<Rule> rules;
};

std::string_view action_name(Action action) {
  return action == Action::kDeny ? "DENY" : "ALLOW";
}

Source Source::unauthenticated() {
  return Source();
}

std::optional<Source> Source::parse(std::string_view id) {
  if (id.starts_with(kScheme)) {
    id.remove_prefix(kScheme.size());
  } else if (id.find("://") != std::string_view::npos) {
    return std::nullopt;
  }
  const size_t slash = id.find('/');
  if (slash == 0 || slash == std::string_view::npos || slash + 1 == id.size() ||
      id.find('*') != std::string_view::npos)
    return std::nullopt;
  Source source;
  source.principal_ = std::string(id);
  // The first "/ns/<namespace>/" of the path, as Istio's namespace match reads it.
  if (const size_t at = id.find("/ns/", slash); at != std::string_view::npos) {
    const size_t begin = at + 4;
    const size_t end = id.find('/', begin);
    if (end != std::string_view::npos && end > begin) {
      source.ns_at_ = begin;
      source.ns_size_ = end - begin;
    }
  }
  return source;
}

Source Source::workload(std::string_view trust_domain, std::string_view ns,
                        std::string_view service_account) {
  Source source;
  source.principal_ =
      std::string(trust_domain) + "/ns/" + std::string(ns) + "/sa/" + std::string(service_account);
  source.ns_at_ = trust_domain.size() + 4;
  source.ns_size_ = ns.size();
  return source;
}

std::string_view Source::namespace_() const {
  return std::string_view(principal_).substr(ns_at_, ns_size_);
}

std::string Source::spiffe_id() const {
  return authenticated() ? std::string(kScheme) + principal_ : std::string();
}

std::string Source::describe() const {
  return authenticated() ? spiffe_id() : "an unauthenticated peer";
}

Destination Destination::of(const v1::Workload &workload) {
  Destination d;
  d.namespace_ = workload.metadata().namespace_();
  d.labels = Labels(workload.metadata().labels().begin(), workload.metadata().labels().end());
  d.name = workload.metadata().name();
  return d;
}

PolicyIndex::PolicyIndex() : PolicyIndex(kDefaultTrustDomain, kRootNamespace) {}
PolicyIndex::PolicyIndex(std::string_view trust_domain, std::string_view root_namespace)
    : trust_domain_(trust_domain), root_namespace_(root_namespace) {}
PolicyIndex::~PolicyIndex() = default;
PolicyIndex::PolicyIndex(const PolicyIndex &) = default;
PolicyIndex::PolicyIndex(PolicyIndex &&) noexcept = default;
PolicyIndex &PolicyIndex::operator=(const PolicyIndex &) = default;
PolicyIndex &PolicyIndex::operator=(PolicyIndex &&) noexcept = default;

void PolicyIndex::add(const v1::AuthorizationPolicy &policy) {
  Compiled c;
  c.ns = policy.metadata().namespace_();
  c.id = c.ns + "/" + policy.metadata().name();
  c.action = policy.action() == v1::AUTHORIZATION_ACTION_DENY ? Action::kDeny : Action::kAllow;
  for (const auto &[key, value] : policy.selector().match_labels())
    c.selector.emplace_back(key, value);
  for (const v1::AuthorizationRule &r : policy.rules()) {
    Rule rule;
    for (const v1::AuthorizationFrom &f : r.from()) {
      From from;
      from.has_principals = !f.source().principals().empty();
      from.has_namespaces = !f.source().namespaces().empty();
      for (const auto &p : f.source().principals())
        from.principals.add(principal_pattern(p, trust_domain_));
      for (const auto &n : f.source().namespaces()) from.namespaces.add(n);
      from.principals.finish();
      from.namespaces.finish();
      rule.from.push_back(std::move(from));
    }
    for (const v1::AuthorizationTo &t : r.to()) {
      std::vector<uint32_t> ports(t.operation().ports().begin(), t.operation().ports().end());
      std::sort(ports.begin(), ports.end());
      rule.to.push_back(std::move(ports));
    }
    c.rules.push_back(std::move(rule));
  }
  policies_.push_back(std::move(c));
}

void PolicyIndex::finish() {
  std::stable_sort(policies_.begin(), policies_.end(),
                   [](const Compiled &a, const Compiled &b) { return a.id < b.id; });
  for (uint32_t i = 0; i < policies_.size(); ++i) by_namespace_[policies_[i].ns].push_back(i);
}

bool PolicyIndex::selects(const Compiled &policy, const Labels &labels) const {
  return std::all_of(policy.selector.begin(), policy.selector.end(), [&](const auto &label) {
    const auto it = labels.find(label.first);
    return it != labels.end() && it->second == label.second;
  });
}

PolicyIndex::Selection PolicyIndex::select(std::string_view ns, const Labels &labels) const {
  static const std::vector<uint32_t> kNone;
  auto of = [&](std::string_view n) -> const std::vector<uint32_t> & {
    const auto it = by_namespace_.find(n);
    return it == by_namespace_.end() ? kNone : it->second;
  };
  const auto &own = of(ns);
  const auto &root = ns == root_namespace_ ? kNone : of(root_namespace_);
  std::vector<uint32_t> candidates;
  candidates.reserve(own.size() + root.size());
  std::merge(own.begin(), own.end(), root.begin(), root.end(), std::back_inserter(candidates));
  Selection selection;
  for (const uint32_t i : candidates) {
    if (!selects(policies_[i], labels)) continue;
    (policies_[i].action == Action::kDeny ? selection.deny : selection.allow).push_back(i);
  }
  return selection;
}

PolicyIndex::Verdict PolicyIndex::evaluate(const Selection &selection, const Source &source,
                                           uint32_t port) const noexcept {
  for (const uint32_t p : selection.deny) {
    const auto &rules = policies_[p].rules;
    for (size_t r = 0; r < rules.size(); ++r)
      if (rules[r].matches(source, port)) return {false, Basis::kDenyRule, int32_t(p), int32_t(r)};
  }
  if (selection.allow.empty()) return {true, Basis::kNoAllowPolicy, -1, -1};
  for (const uint32_t p : selection.allow) {
    const auto &rules = policies_[p].rules;
    for (size_t r = 0; r < rules.size(); ++r)
      if (rules[r].matches(source, port)) return {true, Basis::kAllowRule, int32_t(p), int32_t(r)};
  }
  return {false, Basis::kNoAllowRule, -1, -1};
}

Decision PolicyIndex::explain(const Verdict &verdict, const Selection &selection,
                              const Source &source, const Destination &destination,
                              uint32_t port) const {
  Decision d;
  d.allowed = verdict.allowed;
  d.basis = verdict.basis;
  d.rule = verdict.rule;
  const std::string where = destination.name.empty()
                                ? "the workload"
                                : "workload " + destination.namespace_ + "/" + destination.name;
  const std::string who = source.describe() + " on port " + std::to_string(port);
  auto ids = [&](const std::vector<uint32_t> &indexes) {
    std::vector<std::string> out;
    for (const uint32_t i : indexes) out.push_back(policies_[i].id);
    return out;
  };
  switch (verdict.basis) {
    case Basis::kDenyRule:
    case Basis::kAllowRule: {
      const Compiled &policy = policies_[uint32_t(verdict.policy)];
      d.action = policy.action;
      d.policy = policy.id;
      const std::string rule = "rules[" + std::to_string(verdict.rule) + "]";
      d.decided_by = std::string(action_name(policy.action)) + " " + policy.id + " " + rule;
      d.explanation = rule + " of " + std::string(action_name(policy.action)) + " policy " +
                      policy.id + " matches " + who;
      break;
    }
    case Basis::kNoAllowPolicy:
      d.action = Action::kAllow;
      d.decided_by = "default allow (no ALLOW policy selects the workload)";
      if (selection.deny.empty()) {
        d.explanation = "no policy selects " + where;
      } else {
        d.explanation = "no ALLOW policy selects " + where + " and no rule of its DENY " +
                        (selection.deny.size() == 1 ? "policy " : "policies ") +
                        join(ids(selection.deny)) + " matches " + who;
      }
      break;
    case Basis::kNoAllowRule:
      d.action = Action::kDeny;
      d.decided_by = "default deny (ALLOW policies select the workload but none matched)";
      if (selection.allow.size() == 1) {
        const Compiled &only = policies_[selection.allow.front()];
        d.explanation = only.rules.empty() ? "ALLOW policy " + only.id + " selects " + where +
                                                 " and has no rules: it allows nothing"
                                           : "ALLOW policy " + only.id + " selects " + where +
                                                 " but none of its rules matches " + who;
      } else {
        d.explanation = std::to_string(selection.allow.size()) + " ALLOW policies select " + where +
                        " (" + join(ids(selection.allow)) + ") but none of their rules matches " +
                        who;
      }
      break;
  }
  return d;
}

Decision PolicyIndex::decide(const Source &source, const Destination &destination,
                             uint32_t port) const {
  const Selection selection = select(destination);
  return explain(evaluate(selection, source, port), selection, source, destination, port);
}

std::vector<uint32_t> PolicyIndex::ports(const Selection &selection) const {
  std::vector<uint32_t> out;
  for (const auto *indexes : {&selection.deny, &selection.allow})
    for (const uint32_t p : *indexes)
      for (const Rule &rule : policies_[p].rules)
        for (const auto &ports : rule.to) out.insert(out.end(), ports.begin(), ports.end());
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

size_t PolicyIndex::size() const {
  return policies_.size();
}

const std::string &PolicyIndex::policy_id(uint32_t index) const {
  return policies_.at(index).id;
}

Action PolicyIndex::policy_action(uint32_t index) const {
  return policies_.at(index).action;
}

Decision authorize(const std::vector<v1::AuthorizationPolicy> &policies, const Source &source,
                   const Destination &destination, uint32_t port, std::string_view trust_domain) {
  return PolicyIndex::build(policies, trust_domain).decide(source, destination, port);
}

}  // namespace sockmesh::policy
