/* Same-node authorization at connect(): a workload of this node connecting over TCP to a
 * workload of this node is allowed or denied from sm_policy, which the agent compiles from the
 * AuthorizationPolicies. The decision itself is plain C in include/sockmesh/policy.h. */
#ifndef SOCKMESH_BPF_POLICY_H
#define SOCKMESH_BPF_POLICY_H

/* vmlinux.h must come first. */
// clang-format off
#include "vmlinux.h"
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "lib/capture.h"
#include "lib/maps.h"
#include "sockmesh/policy.h"
// clang-format on

/* The decision for a TCP connect going to `d->dest`, whose sm_endpoints entry is `ep` (0 when it
 * is no mesh workload), asked by the caller's workload `wl` (sm_current_workload(), 0 for none).
 * Destinations outside the mesh or on other nodes cost nothing here; a local destination one or
 * two sm_policy lookups. A
 * denial is counted (connect_denied, and the deciding rule's slot of sm_policy_denials). */
static __always_inline int sm_policy_connect(const struct sm_connect_dest *d,
                                             const struct sm_endpoint *ep,
                                             const struct sm_workload *wl) {
  if (!ep || (ep->flags & SM_EP_REMOTE)) return SM_POLICY_NOT_APPLIED;
  if (!sm_policy_applies(ep, wl)) return SM_POLICY_NOT_APPLIED;
  struct sm_policy_key key = {};
  sm_policy_key_of(&key, wl->id, ep->workload_id, bpf_ntohs(d->dest.port));
  const struct sm_policy_value *exact = bpf_map_lookup_elem(&sm_policy, &key);
  const struct sm_policy_value *other = 0;
  if (!exact) {
    key.port = SM_POLICY_ANY_PORT;
    other = bpf_map_lookup_elem(&sm_policy, &key);
  }
  __u32 rule = 0;
  int outcome = sm_policy_decide(exact, other, &rule);
  if (outcome != SM_POLICY_DENIED) return outcome;
  sm_count(SM_CNT_CONNECT_DENIED);
  __u64 *denials = bpf_map_lookup_elem(&sm_policy_denials, &rule);
  if (denials) *denials += 1; /* per-CPU slot: no other writer */
  return outcome;
}

#endif
