// Same-node authorization in the kernel (docs/datapath.md, "Authorization"): the agent compiles
// the AuthorizationPolicies, for every pair of workloads of this node, into sm_policy (allow or
// deny per source, destination and port) and names the slots of sm_policy_denials, the kernel's
// per-rule denial counters (bpf/include/sockmesh/policy.h).
//
// compile_policy() is the compiled form of PolicyIndex::evaluate for (source identity,
// destination, port), without the kernel; PolicyMaps writes it, only what differs.
#pragma once

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "sockmesh/policy.h"
#include "sockmesh/policy/authorize.h"

namespace sockmesh::reconcile {

// A workload of this node as authorization sees it.
struct PolicyWorkload {
  uint32_t number = 0;              // the kernel's workload number (sm_workloads, sm_endpoints)
  policy::Source source;            // who it is when it connects (its SPIFFE ID)
  policy::Destination destination;  // namespace and labels, when it is connected to
};

struct PolicyEntry {
  sm_policy_key key;
  sm_policy_value value;
};

// The decided_by text of rule id 0 (PolicyIndex's default deny).
std::string default_deny_rule();

struct CompiledPolicy {
  std::vector<PolicyEntry> entries;  // sorted by (src, dst, port), unique
  // rule id -> PolicyIndex Decision::decided_by ("" for a free id); [0] is the default deny.
  std::vector<std::string> rules;
  // Ids that named another rule in the previous table: their counters must restart.
  std::vector<uint32_t> reassigned;
  size_t pairs = 0;  // (source, destination) pairs evaluated
};

// For every destination in `local` that some policy selects and every source in `local`: the
// verdict of port 0 (every port no rule names) and of each port the selecting policies' rules
// name, as PolicyIndex::evaluate gives them. Entries equal to their fallback are left out (the
// kernel looks up the port, then port 0, and allows on a miss): a deny of port 0, and a port
// whose verdict or deciding rule differs from port 0's. Allows carry rule 0; denies the id of
// their decided_by text, kept from `previous` (ids stay stable while the agent runs), a new text
// taking a free id, else the id of a text this compile no longer uses (listed in reassigned).
// Throws std::length_error when more than `max_entries` entries or SM_MAX_POLICY_RULES ids would
// be needed, and std::invalid_argument for a workload number 0 or given twice.
CompiledPolicy compile_policy(const policy::PolicyIndex &index,
                              const std::vector<PolicyWorkload> &local,
                              const std::vector<std::string> &previous = {},
                              size_t max_entries = SM_MAX_POLICY_ENTRIES);

struct PolicySyncStats {
  size_t entries = 0;    // entries the map holds now
  size_t written = 0;    // added or changed
  size_t removed = 0;    // deleted
  size_t unchanged = 0;  // already right
  size_t rules = 0;      // rule ids named
};

// Denials the kernel counted for one rule id, summed over the CPUs.
struct RuleDenials {
  uint32_t id = 0;
  std::string rule;  // decided_by, as `meshctl check` names it
  uint64_t count = 0;
};

class PolicyMaps {
 public:
  // The fds stay owned by the caller (Datapath::policy_fd(), policy_denials_fd()). Reads what
  // sm_policy holds; the rule ids of an earlier agent are not known, so the first sync restarts
  // the denial counters.
  PolicyMaps(int policy_fd, int denials_fd);

  // Compiles and syncs. A compile over the bounds throws std::length_error and leaves the map and
  // the rule table as they were (the last good content stays in force).
  PolicySyncStats apply(const policy::PolicyIndex &index, const std::vector<PolicyWorkload> &local);
  // Writes `compiled` (validated whole first: std::invalid_argument, nothing written): new and
  // changed entries first, then deletions, each entry one atomic update.
  PolicySyncStats sync(const CompiledPolicy &compiled);

  // Rules with at least one denial, by id.
  std::vector<RuleDenials> denials() const;
  // The kernel's entries (the mirror), sorted.
  std::vector<PolicyEntry> entries() const;
  std::vector<std::string> rules() const;

 private:
  void adopt();
  void zero_counter(uint32_t id);

  int policy_fd_;
  int denials_fd_;
  mutable std::mutex mu_;
  std::vector<PolicyEntry> entries_;  // sorted
  std::vector<std::string> rules_;    // empty until the first sync
  bool synced_ = false;
};

}  // namespace sockmesh::reconcile
