/* Capture at connect(): a captured workload's TCP connect to a mesh workload on another node is
 * rewritten to the agent's outbound listener, and the socket keeps a record of what it was for
 * (sm_capture_store), which bpf/capture.bpf.c hands over to the agent's end of the connection.
 * The decision itself is plain C in include/sockmesh/capture.h. */
#ifndef SOCKMESH_BPF_CAPTURE_H
#define SOCKMESH_BPF_CAPTURE_H

/* vmlinux.h must come first. */
// clang-format off
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

#include "lib/maps.h"
#include "lib/sock_addr.h"
#include "sockmesh/capture.h"
// clang-format on

enum sm_capture_outcome {
  SM_CAPTURE_NOT_APPLIED = 0, /* the connect is not captured: carry on as without capture */
  SM_CAPTURE_REDIRECTED = 1,  /* rewritten to the agent's listener */
  SM_CAPTURE_LOST = 2,        /* captured, but no record could be stored: refuse the connect */
};

/* Set by the loader: the level of the node's workload cgroup (the cgroup v2 root is level 0).
 * Workloads are below it, so the walk up from a caller stops there: the cgroups above are never
 * workloads, and a caller in no workload (the common case outside the mesh) costs no lookups of
 * them. */
const volatile __u32 sm_workload_root_level = 0;

/* The caller's workload: the entry of its own cgroup, else of its deepest ancestor below the
 * workload cgroup that has one (a container's cgroup below the pod's cgroup the agent
 * registered). 0 when none has. */
static __always_inline const struct sm_workload *sm_current_workload(void) {
  __u64 self = bpf_get_current_cgroup_id();
  const struct sm_workload *wl = bpf_map_lookup_elem(&sm_workloads, &self);
  if (wl) return wl;
  for (int level = SM_MAX_CGROUP_LEVEL; level >= 1; level--) {
    if ((__u32)level <= sm_workload_root_level) break;
    __u64 id = bpf_get_current_ancestor_cgroup_id(level);
    if (id == 0 || id == self) /* deeper than the caller, or the caller itself */
      continue;
    wl = bpf_map_lookup_elem(&sm_workloads, &id);
    if (wl) return wl;
  }
  return 0;
}

/* Points the hook at the agent's listener, in the format the application used (an IPv4 listener
 * IPv4-mapped on an IPv6 socket). `v6` is a constant per program. */
static __always_inline void sm_write_listener(struct bpf_sock_addr *ctx, int v6,
                                              const struct sm_capture_addr *listener) {
  if (!v6) {
    ctx->user_ip4 = listener->addr[0];
  } else if (listener->family == SM_AF_INET) {
    ctx->user_ip6[0] = 0;
    ctx->user_ip6[1] = 0;
    ctx->user_ip6[2] = bpf_htonl(0xffff);
    ctx->user_ip6[3] = listener->addr[0];
  } else {
    ctx->user_ip6[0] = listener->addr[0];
    ctx->user_ip6[1] = listener->addr[1];
    ctx->user_ip6[2] = listener->addr[2];
    ctx->user_ip6[3] = listener->addr[3];
  }
  ctx->user_port = listener->port;
}

/* The destination of a TCP connect, in stored form (IPv4-mapped as IPv4): what the application
 * asked for (the VIP or the pod address) and where it goes (the chosen backend, or the address
 * itself for a direct connect). */
struct sm_connect_dest {
  struct sm_capture_addr asked;
  struct sm_capture_addr dest;
};

/* Fills `d` for a connect to `orig`, balanced to `be` when `orig` is a VIP (0 otherwise), and
 * returns the destination's sm_endpoints entry (0 when it is no mesh workload). One hash lookup,
 * shared by authorization (a workload of this node) and capture (a workload of another node). */
static __always_inline const struct sm_endpoint *sm_connect_dest_of(const struct sm_orig_dst *orig,
                                                                    const struct sm_backend *be,
                                                                    struct sm_connect_dest *d) {
  sm_capture_addr_of(orig->addr, orig->family, (__u16)orig->port, &d->asked);
  if (be)
    sm_capture_addr_of(be->addr, be->family, be->port, &d->dest);
  else
    d->dest = d->asked;
  struct sm_ip_key ip = {};
  sm_capture_ip_key(d->dest.addr, d->dest.family, &ip);
  return bpf_map_lookup_elem(&sm_endpoints, &ip);
}

/* A TCP connect to `orig` (what the application asked for) going to `d->dest`, whose endpoint
 * entry is `ep`, by the caller's workload `wl` (0 for none): captures it when the destination is a mesh workload on another node, capture is
 * on and the caller is a captured workload. A destination outside the mesh or on this node costs
 * nothing more here; capture off one array lookup. */
static __always_inline int sm_capture_connect(struct bpf_sock_addr *ctx, int v6,
                                              const struct sm_orig_dst *orig,
                                              const struct sm_connect_dest *d,
                                              const struct sm_endpoint *ep,
                                              const struct sm_workload *wl) {
  if (!ep || !(ep->flags & SM_EP_REMOTE)) return SM_CAPTURE_NOT_APPLIED;
  __u32 zero = 0;
  const struct sm_agent_config *agent = bpf_map_lookup_elem(&sm_agent, &zero);
  if (!agent || !(agent->flags & SM_AGENT_CAPTURE_ON)) return SM_CAPTURE_NOT_APPLIED;

  struct sm_capture_addr listener = {};
  int verdict = sm_capture_decide(agent, ep, wl, d->dest.family, &listener);
  if (verdict == SM_CAPTURE_PASS_NO_LISTENER) sm_count(SM_CNT_CAPTURE_NO_LISTENER);
  if (verdict != SM_CAPTURE_REDIRECT || !wl) return SM_CAPTURE_NOT_APPLIED;

  struct sm_capture_info *info =
      bpf_sk_storage_get(&sm_capture_store, ctx->sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
  if (!info) {
    sm_count(SM_CNT_CAPTURE_RECORD_LOST);
    return SM_CAPTURE_LOST;
  }
  sm_capture_fill(info, &d->asked, &d->dest, wl, ep);
  sm_remember_orig(ctx, orig);
  sm_write_listener(ctx, v6, &listener);
  sm_count(SM_CNT_CONNECT_CAPTURED);
  return SM_CAPTURE_REDIRECTED;
}

#endif
