#include "reconcile/policy_maps.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <stdexcept>
#include <tuple>
#include <utility>

namespace sockmesh::reconcile {
namespace {

[[noreturn]] void fail(const std::string &what, int err) {
  throw std::runtime_error(what + ": " + std::strerror(err));
}

auto tie(const sm_policy_key &k) {
  return std::make_tuple(k.src, k.dst, k.port);
}

bool less_key(const sm_policy_key &a, const sm_policy_key &b) {
  return tie(a) < tie(b);
}

bool same_value(const sm_policy_value &a, const sm_policy_value &b) {
  return a.verdict == b.verdict && a.rule == b.rule;
}

std::string text_of(const sm_policy_key &k) {
  return "(src " + std::to_string(k.src) + ", dst " + std::to_string(k.dst) + ", port " +
         std::to_string(k.port) + ")";
}

PolicyEntry entry_of(uint32_t src, uint32_t dst, uint16_t port, bool allow, uint32_t rule) {
  PolicyEntry e{};
  e.key.src = src;
  e.key.dst = dst;
  e.key.port = port;
  e.value.verdict = allow ? SM_POLICY_ALLOW : SM_POLICY_DENY;
  e.value.rule = allow ? 0 : rule;
  return e;
}

}  // namespace

std::string default_deny_rule() {
  static const std::string text = [] {
    policy::PolicyIndex none;
    const policy::PolicyIndex::Verdict verdict{false, policy::Basis::kNoAllowRule, -1, -1};
    return none.explain(verdict, {}, policy::Source::unauthenticated(), policy::Destination{}, 0)
        .decided_by;
  }();
  return text;
}

CompiledPolicy compile_policy(const policy::PolicyIndex &index,
                              const std::vector<PolicyWorkload> &local,
                              const std::vector<std::string> &previous, size_t max_entries) {
  {
    std::vector<uint32_t> numbers;
    for (const auto &w : local) {
      if (w.number == 0) throw std::invalid_argument("workload number 0 in the policy compile");
      numbers.push_back(w.number);
    }
    std::sort(numbers.begin(), numbers.end());
    if (auto dup = std::adjacent_find(numbers.begin(), numbers.end()); dup != numbers.end())
      throw std::invalid_argument("workload number " + std::to_string(*dup) + " given twice");
  }

  // Deciding rules by text: the denials to name. Denies first collect their text; ids after.
  std::map<std::pair<int32_t, int32_t>, std::string> text_of_rule;  // (policy, rule) -> text
  struct Pending {
    PolicyEntry entry;
    const std::string *rule;  // decided_by of a deny
  };
  std::vector<Pending> pending;
  CompiledPolicy out;

  auto rule_text = [&](const policy::PolicyIndex::Verdict &v,
                       const policy::PolicyIndex::Selection &sel, const PolicyWorkload &src,
                       const PolicyWorkload &dst, uint32_t port) -> const std::string * {
    auto [it, added] = text_of_rule.try_emplace({v.policy, v.rule});
    if (added) it->second = index.explain(v, sel, src.source, dst.destination, port).decided_by;
    return &it->second;
  };
  auto same = [](const policy::PolicyIndex::Verdict &a, const policy::PolicyIndex::Verdict &b) {
    return a.allowed == b.allowed && (a.allowed || (a.policy == b.policy && a.rule == b.rule));
  };

  for (const auto &dst : local) {
    const auto selection = index.select(dst.destination);
    if (selection.deny.empty() && selection.allow.empty()) continue;  // no entry: allowed
    const auto ports = index.ports(selection);
    for (const auto &src : local) {
      out.pairs++;
      const auto other = index.evaluate(selection, src.source, SM_POLICY_ANY_PORT);
      auto add = [&](uint32_t port, const policy::PolicyIndex::Verdict &v) {
        if (pending.size() >= max_entries)
          throw std::length_error("the authorization policies compile to more than " +
                                  std::to_string(max_entries) +
                                  " kernel entries for this node's workloads");
        pending.push_back({entry_of(src.number, dst.number, uint16_t(port), v.allowed, 0),
                           v.allowed ? nullptr : rule_text(v, selection, src, dst, port)});
      };
      if (!other.allowed) add(SM_POLICY_ANY_PORT, other);
      for (const uint32_t port : ports) {
        const auto v = index.evaluate(selection, src.source, port);
        if (!same(v, other)) add(port, v);
      }
    }
  }

  // Rule ids: kept from the previous table; new texts take a free id, else one this compile no
  // longer uses.
  const std::string deny_default = default_deny_rule();
  std::map<std::string, uint32_t> referenced;  // text -> id (0 until assigned)
  for (const auto &p : pending)
    if (p.rule && *p.rule != deny_default) referenced.emplace(*p.rule, 0);
  out.rules = previous;
  if (out.rules.empty()) out.rules.push_back(deny_default);
  out.rules[SM_POLICY_RULE_DEFAULT_DENY] = deny_default;
  std::map<std::string, uint32_t> id_of;
  for (uint32_t id = 1; id < out.rules.size(); id++)
    if (!out.rules[id].empty()) id_of.emplace(out.rules[id], id);
  std::vector<uint32_t> spare;  // ids of texts not referenced now, reusable after free ones
  for (const auto &[text, id] : id_of)
    if (!referenced.count(text)) spare.push_back(id);
  std::sort(spare.begin(), spare.end());
  size_t next_spare = 0;
  uint32_t next_free = 1;
  for (auto &[text, id] : referenced) {
    if (auto known = id_of.find(text); known != id_of.end()) {
      id = known->second;
      continue;
    }
    while (next_free < out.rules.size() && !out.rules[next_free].empty()) next_free++;
    if (next_free < SM_MAX_POLICY_RULES) {
      if (next_free == out.rules.size()) out.rules.emplace_back();
      id = next_free;
    } else if (next_spare < spare.size()) {
      id = spare[next_spare++];
      out.reassigned.push_back(id);
    } else {
      throw std::length_error("the authorization policies deny by more than " +
                              std::to_string(SM_MAX_POLICY_RULES - 1) +
                              " rules on this node (the kernel counts at most that many)");
    }
    out.rules[id] = text;
  }

  out.entries.reserve(pending.size());
  for (auto &p : pending) {
    if (p.rule)
      p.entry.value.rule =
          *p.rule == deny_default ? SM_POLICY_RULE_DEFAULT_DENY : referenced.at(*p.rule);
    out.entries.push_back(p.entry);
  }
  std::sort(out.entries.begin(), out.entries.end(),
            [](const PolicyEntry &a, const PolicyEntry &b) { return less_key(a.key, b.key); });
  std::sort(out.reassigned.begin(), out.reassigned.end());
  return out;
}

PolicyMaps::PolicyMaps(int policy_fd, int denials_fd)
    : policy_fd_(policy_fd), denials_fd_(denials_fd) {
  adopt();
}

void PolicyMaps::adopt() {
  entries_.clear();
  sm_policy_key key{}, next{};
  const void *prev = nullptr;
  while (bpf_map_get_next_key(policy_fd_, prev, &next) == 0) {
    key = next;
    prev = &key;
    sm_policy_value value{};
    if (bpf_map_lookup_elem(policy_fd_, &key, &value) != 0) continue;  // deleted meanwhile
    entries_.push_back({key, value});
  }
  std::sort(entries_.begin(), entries_.end(),
            [](const PolicyEntry &a, const PolicyEntry &b) { return less_key(a.key, b.key); });
}

void PolicyMaps::zero_counter(uint32_t id) {
  const int cpus = libbpf_num_possible_cpus();
  if (cpus <= 0) throw std::runtime_error("cannot count possible CPUs");
  std::vector<uint64_t> zeros(size_t(cpus), 0);
  if (bpf_map_update_elem(denials_fd_, &id, zeros.data(), BPF_ANY) != 0)
    fail("reset the denial counter of rule " + std::to_string(id), errno);
}

PolicySyncStats PolicyMaps::apply(const policy::PolicyIndex &index,
                                  const std::vector<PolicyWorkload> &local) {
  std::vector<std::string> previous;
  {
    std::lock_guard lock(mu_);
    previous = rules_;
  }
  return sync(compile_policy(index, local, previous));
}

PolicySyncStats PolicyMaps::sync(const CompiledPolicy &compiled) {
  const auto &desired = compiled.entries;
  if (desired.size() > SM_MAX_POLICY_ENTRIES)
    throw std::invalid_argument(std::to_string(desired.size()) +
                                " policy entries; the kernel map takes " +
                                std::to_string(SM_MAX_POLICY_ENTRIES));
  if (compiled.rules.empty() || compiled.rules.size() > SM_MAX_POLICY_RULES)
    throw std::invalid_argument(std::to_string(compiled.rules.size()) +
                                " rule ids; the kernel counts 1 to " +
                                std::to_string(SM_MAX_POLICY_RULES));
  for (size_t i = 0; i < desired.size(); i++) {
    const auto &e = desired[i];
    if (e.key.src == 0 || e.key.dst == 0 || e.key.pad != 0)
      throw std::invalid_argument("policy entry " + text_of(e.key) + ": workload number 0");
    if (i > 0 && !less_key(desired[i - 1].key, e.key))
      throw std::invalid_argument("policy entry " + text_of(e.key) + ": unsorted or given twice");
    if (e.value.verdict != SM_POLICY_ALLOW && e.value.verdict != SM_POLICY_DENY)
      throw std::invalid_argument("policy entry " + text_of(e.key) + ": verdict " +
                                  std::to_string(e.value.verdict));
    if (e.value.verdict == SM_POLICY_DENY &&
        (e.value.rule >= compiled.rules.size() || compiled.rules[e.value.rule].empty()))
      throw std::invalid_argument("policy entry " + text_of(e.key) + ": unnamed rule id " +
                                  std::to_string(e.value.rule));
  }

  std::lock_guard lock(mu_);
  // Counters first: a slot that names another rule now (or, at the first sync, that an earlier
  // agent named) restarts before any entry counts into it.
  if (!synced_) {
    for (uint32_t id = 0; id < SM_MAX_POLICY_RULES; id++) zero_counter(id);
  } else {
    for (const uint32_t id : compiled.reassigned) zero_counter(id);
  }
  PolicySyncStats stats;
  std::vector<const PolicyEntry *> gone;
  try {
    size_t i = 0, j = 0;
    auto write = [&](const PolicyEntry &e) {
      if (bpf_map_update_elem(policy_fd_, &e.key, &e.value, BPF_ANY) != 0)
        fail("write policy entry " + text_of(e.key), errno);
      stats.written++;
    };
    while (i < entries_.size() || j < desired.size()) {
      if (j == desired.size() ||
          (i < entries_.size() && less_key(entries_[i].key, desired[j].key))) {
        gone.push_back(&entries_[i++]);
      } else if (i == entries_.size() || less_key(desired[j].key, entries_[i].key)) {
        write(desired[j++]);
      } else {
        if (same_value(entries_[i].value, desired[j].value))
          stats.unchanged++;
        else
          write(desired[j]);
        i++;
        j++;
      }
    }
    for (const PolicyEntry *e : gone) {
      if (bpf_map_delete_elem(policy_fd_, &e->key) != 0 && errno != ENOENT)
        fail("remove policy entry " + text_of(e->key), errno);
      stats.removed++;
    }
  } catch (...) {
    adopt();  // the mirror follows what the kernel holds after a partial write
    throw;
  }
  entries_ = desired;
  rules_ = compiled.rules;
  synced_ = true;
  stats.entries = entries_.size();
  stats.rules = rules_.size();
  return stats;
}

std::vector<RuleDenials> PolicyMaps::denials() const {
  std::lock_guard lock(mu_);
  std::vector<RuleDenials> out;
  const int cpus = libbpf_num_possible_cpus();
  if (cpus <= 0) throw std::runtime_error("cannot count possible CPUs");
  std::vector<uint64_t> per_cpu(size_t(cpus), 0);
  for (uint32_t id = 0; id < rules_.size(); id++) {
    if (rules_[id].empty()) continue;
    if (bpf_map_lookup_elem(denials_fd_, &id, per_cpu.data()) != 0)
      fail("read the denial counter of rule " + std::to_string(id), errno);
    uint64_t sum = 0;
    for (const uint64_t n : per_cpu) sum += n;
    if (sum > 0) out.push_back({id, rules_[id], sum});
  }
  return out;
}

std::vector<PolicyEntry> PolicyMaps::entries() const {
  std::lock_guard lock(mu_);
  return entries_;
}

std::vector<std::string> PolicyMaps::rules() const {
  std::lock_guard lock(mu_);
  return rules_;
}

}  // namespace sockmesh::reconcile
