/* Same-node L4 authorization at connect() (docs/datapath.md, "Authorization"): layouts of the
 * policy maps and the decision, plain C shared by the connect programs and the user-space unit
 * tests (test/bpf/capture/policy_logic_test.cpp), since BPF_PROG_TEST_RUN cannot run sock_addr
 * programs. No helpers, no maps: the programs look things up and these functions decide.
 *
 * sm_policy          HASH          sm_policy_key (src, dst, port) -> sm_policy_value   agent writes
 * sm_policy_denials  PERCPU_ARRAY  rule id                        -> denials (u64)     connect4/6
 *
 * A TCP connect from a workload of this node (its cgroup resolves through sm_workloads) to a
 * workload of this node (the chosen backend or the direct address is in sm_endpoints without
 * SM_EP_REMOTE) looks up {src, dst, port}, then {src, dst, 0} ("every other port"); no entry at
 * all allows. The agent compiles the entries from the AuthorizationPolicies
 * (agent/reconcile/policy_maps.h) and leaves out every entry equal to its fallback. */
#ifndef SOCKMESH_POLICY_H
#define SOCKMESH_POLICY_H

#include "capture_maps.h"
#include "types.h"

/* Entries the agent compiles at most; a larger compile is refused whole (the map keeps its last
 * content). The map has room for twice as many, so that a change can write its new entries
 * before it deletes the old ones. */
#define SM_MAX_POLICY_ENTRIES 65536
#define SM_POLICY_MAP_ENTRIES (2 * SM_MAX_POLICY_ENTRIES)

/* Slots of sm_policy_denials: rule ids 0 .. SM_MAX_POLICY_RULES - 1. */
#define SM_MAX_POLICY_RULES 4096
/* The rule id of Istio's default deny: ALLOW policies select the destination, none matched. */
#define SM_POLICY_RULE_DEFAULT_DENY 0

/* sm_policy_value.verdict. Anything but SM_POLICY_ALLOW denies (a zeroed value fails closed). */
#define SM_POLICY_DENY 0
#define SM_POLICY_ALLOW 1

/* Port of the entry that stands for every port without an entry of its own. */
#define SM_POLICY_ANY_PORT 0

struct sm_policy_key {
  __u32 src;  /* sm_workload.id of the connecting workload */
  __u32 dst;  /* sm_endpoint.workload_id of the destination */
  __u16 port; /* destination port, HOST order; SM_POLICY_ANY_PORT for every other port */
  __u16 pad;  /* 0 */
};

struct sm_policy_value {
  __u8 verdict; /* SM_POLICY_ALLOW or SM_POLICY_DENY */
  __u8 pad[3];  /* 0 */
  __u32 rule;   /* slot of sm_policy_denials counting this entry's denials (0 for allows) */
};

/* What a connect() becomes. */
enum sm_policy_outcome {
  SM_POLICY_NOT_APPLIED = 0, /* no decision here: not TCP, the destination is no workload of
                                this node, or the caller is no workload of this node */
  SM_POLICY_ALLOWED = 1,
  SM_POLICY_DENIED = 2,
};

/* Whether the kernel decides a connect from `src` (the caller's sm_workloads entry, 0 when its
 * cgroup has none) to `dst` (the destination's sm_endpoints entry, 0 for a miss). Cross-node
 * connections are decided by the destination node's agent, from the verified SVID. */
static inline int sm_policy_applies(const struct sm_endpoint *dst, const struct sm_workload *src) {
  return dst && !(dst->flags & SM_EP_REMOTE) && dst->workload_id != 0 && src && src->id != 0;
}

static inline void sm_policy_key_of(struct sm_policy_key *key, __u32 src, __u32 dst,
                                    __u16 port_host) {
  key->src = src;
  key->dst = dst;
  key->port = port_host;
  key->pad = 0;
}

/* The decision from the two lookups: `exact` the entry of the connect's port, `other` the
 * SM_POLICY_ANY_PORT entry (0 for a miss; looked up only when `exact` missed). On
 * SM_POLICY_DENIED, *rule is the slot of sm_policy_denials to count. */
static inline int sm_policy_decide(const struct sm_policy_value *exact,
                                   const struct sm_policy_value *other, __u32 *rule) {
  const struct sm_policy_value *entry = exact ? exact : other;
  if (!entry) return SM_POLICY_ALLOWED;
  if (entry->verdict == SM_POLICY_ALLOW) return SM_POLICY_ALLOWED;
  *rule = entry->rule;
  return SM_POLICY_DENIED;
}

#endif
