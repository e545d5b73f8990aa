// SPDX-License-Identifier: GPL-2.0
/* Socket-level load balancing. A connect() (TCP, connected UDP) or an unconnected UDP sendmsg()
 * to a service VIP is rewritten to one of its backends before any packet is built, so no packet
 * ever carries the VIP; getpeername() and, for UDP, recvmsg() give the VIP back, so the
 * application sees what it asked for. Both families; IPv4-mapped IPv6 is balanced as IPv4.
 * A captured workload's TCP connect to a mesh workload on another node goes to the agent's
 * outbound listener instead (lib/capture.h); a workload's TCP connect to a workload of this node
 * is allowed or refused from the compiled authorization policies (lib/policy.h). The agent's own
 * sockets, when it runs inside the workload cgroup, are left alone (lib/agent_sockets.h). */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

#include "lib/agent_sockets.h"
#include "lib/capture.h"
#include "lib/lb.h"
#include "lib/maps.h"
#include "lib/policy.h"
#include "lib/resilience.h"
#include "lib/sock_addr.h"
#include "lib/telemetry.h"

/* Documented in docs/datapath.md: a VIP without a usable backend refuses, as kube-proxy's REJECT
 * rule does, so clients fail fast instead of timing out; so does a connect that policy denies. */
#define SM_ERR_REFUSED 111 /* ECONNREFUSED */

/* Cgroup sock_addr verdicts. */
#define SM_ALLOW 1
#define SM_REJECT 0

/* Set by meshd from its kernel probe before loading (agent/loader/features.h). A read-only global:
 * when false the verifier prunes the call, so the program loads on kernels without the helper
 * (before 5.18), where a refused connect() reports EPERM instead of ECONNREFUSED. */
const volatile bool sm_has_set_retval = true;

/* Fails the connect() or sendto() with `err` where the kernel lets us say so, else EPERM. */
static __always_inline int sm_refuse_with(__u32 err) {
  if (sm_has_set_retval)
    bpf_set_retval(-(int)err);
  return SM_REJECT;
}

/* Fails the connect() or sendto(): ECONNREFUSED where the kernel lets us say so, else EPERM. */
static __always_inline int sm_refuse(void) { return sm_refuse_with(SM_ERR_REFUSED); }

static __always_inline __u8 sm_proto_of(const struct bpf_sock_addr *ctx) {
  if (ctx->type == SM_SOCK_STREAM && ctx->protocol == SM_IPPROTO_TCP)
    return SM_IPPROTO_TCP;
  if (ctx->type == SM_SOCK_DGRAM && ctx->protocol == SM_IPPROTO_UDP)
    return SM_IPPROTO_UDP;
  return 0;
}

/* UDP replies from `be` to this socket are reported as coming from `orig`. */
static __always_inline void sm_remember_reverse(struct bpf_sock_addr *ctx, int v6,
                                                const struct sm_orig_dst *orig) {
  struct sm_reverse_key key = {};
  sm_reverse_key_of(ctx, v6, &key);
  if (bpf_map_update_elem(&sm_udp_reverse, &key, orig, BPF_ANY) != 0)
    sm_count(SM_CNT_REVERSE_LOST);
}

/* A TCP connect to a VIP (`be` chosen, or 0 when it has no usable backend) or straight to a
 * workload's address (`via_vip` 0): authorized, captured or left to go where it goes, and counted
 * under its tuple. `known` is the caller's workload when the caller looked it up already (`*wl`
 * then valid). Returns the hook's verdict; SM_ALLOW with *rewrite set when the hook must still
 * be pointed at `be`, and *captured set when it goes to the agent. */
static __always_inline int sm_connect_tcp(struct bpf_sock_addr *ctx, int v6,
                                          const struct sm_orig_dst *orig, int via_vip,
                                          const struct sm_backend *be, int *rewrite,
                                          const struct sm_workload *known_wl, int known,
                                          int *redirected) {
  struct sm_connect_dest dest = {};
  const struct sm_endpoint *ep = sm_connect_dest_of(orig, be, &dest);
  if (!via_vip && !ep) {
    sm_count(SM_CNT_CONNECT_PASSTHROUGH); /* no mesh destination: not ours to count */
    return SM_ALLOW;
  }
  const struct sm_telemetry_config *tm = sm_tm_config();
  /* The caller's workload, looked up once for policy, capture and telemetry, and only when one
   * of them needs it (the lookup walks the caller's cgroup ancestors). */
  const struct sm_workload *wl = known ? known_wl : ep || sm_tm_on(tm) ? sm_current_workload() : 0;
  if (via_vip && !be) {
    sm_count(SM_CNT_CONNECT_NO_BACKEND);
    sm_tm_refused(ctx, tm, &dest.asked, 1, 0, wl, 0, SM_CLOSE_NO_BACKEND);
    return sm_refuse();
  }
  if (sm_policy_connect(&dest, ep, wl) == SM_POLICY_DENIED) {
    sm_tm_refused(ctx, tm, &dest.asked, via_vip, &dest.dest, wl, ep, SM_CLOSE_DENIED);
    return sm_refuse();
  }
  int captured = sm_capture_connect(ctx, v6, orig, &dest, ep, wl);
  if (captured == SM_CAPTURE_LOST) return sm_refuse();
  sm_tm_connect(ctx, tm, &dest.asked, via_vip, &dest.dest, wl, ep,
                captured == SM_CAPTURE_REDIRECTED);
  if (captured == SM_CAPTURE_REDIRECTED) {
    if (via_vip) sm_count(SM_CNT_CONNECT_BALANCED);
    *redirected = 1;
    return SM_ALLOW;
  }
  if (!via_vip) sm_count(SM_CNT_CONNECT_PASSTHROUGH);
  *rewrite = via_vip;
  return SM_ALLOW;
}

/* Telemetry of a connect resilience refused: the tuple's event, with the reason. */
static __always_inline void sm_rs_refused_event(struct bpf_sock_addr *ctx, const struct sm_orig_dst *orig,
                                                const struct sm_workload *wl, int have_wl,
                                                __u8 reason) {
  const struct sm_telemetry_config *tm = sm_tm_config();
  if (!sm_tm_on(tm)) return;
  struct sm_connect_dest dest = {};
  sm_connect_dest_of(orig, 0, &dest);
  if (!have_wl) wl = sm_current_workload();
  sm_tm_refused(ctx, tm, &dest.asked, 1, 0, wl, 0, reason);
}

/* A TCP connect to a VIP. For a service with resilience (rs.service set): admission (fault
 * injection, rate limit), then a backend that is neither ejected nor full, charged to the
 * connection (lib/resilience.h); then, as for every service, authorization and capture. */
static __always_inline int sm_connect_vip_tcp(struct bpf_sock_addr *ctx, int v6,
                                              const struct sm_orig_dst *orig, __u32 slot,
                                              void *inner, const struct sm_backend_set *set) {
  struct sm_rs_pick pick = {.index = -1};
  const struct sm_backend *be = 0;
  const struct sm_workload *wl = 0;
  int have_wl = 0;
  __u64 now = 0;
  struct sm_service_state *svc = 0;
  /* A service without a usable backend is refused below as it always was (connect_no_backend);
   * resilience only chooses among backends that exist. */
  if (set && set->rs.service != 0 && set->total_weight != 0) {
    __u64 service = set->rs.service;
    svc = bpf_map_lookup_elem(&sm_service_states, &service);
    if (!svc) sm_count(SM_CNT_RS_UNTRACKED); /* not written yet: balanced as without */
  }
  if (svc) {
    if (set->rs.flags & (SM_RS_RATE_PER_SOURCE | SM_RS_FAULT_SCOPED)) {
      wl = sm_current_workload();
      have_wl = 1;
    }
    int fault = 0;
    __u32 err = sm_rs_admit(&set->rs, svc, wl, &now, &fault);
    if (err) {
      sm_rs_refused_event(ctx, orig, wl, have_wl, fault ? SM_CLOSE_FAULT : SM_CLOSE_RATE_LIMITED);
      return sm_refuse_with(err);
    }
    int first = set->policy == SM_LB_LEAST_CONN ? -1 : sm_choose_index(inner, set, slot);
    sm_rs_choose(set, first, svc, &pick, &now);
    if (pick.refuse) {
      sm_rs_unpick(&pick);
      sm_rs_refused_event(ctx, orig, wl, have_wl,
                          pick.index < 0 ? SM_CLOSE_NO_BACKEND : SM_CLOSE_OVERFLOW);
      return sm_refuse_with(pick.refuse);
    }
    if (pick.index >= 0 && pick.index < SM_MAX_BACKENDS)
      be = &set->backends[(__u32)pick.index & SM_BACKEND_MASK];
  } else if (set) {
    int idx = sm_choose_index(inner, set, slot);
    if (idx >= 0 && idx < SM_MAX_BACKENDS) be = &set->backends[idx & SM_BACKEND_MASK];
  }

  int rewrite = 0, redirected = 0;
  int verdict = sm_connect_tcp(ctx, v6, orig, 1, be, &rewrite, wl, have_wl, &redirected);
  if (verdict != SM_ALLOW) {
    sm_rs_unpick(&pick);
    return verdict;
  }
  sm_rs_remember(ctx->sk, slot, &pick, redirected);
  if (!rewrite) return verdict;
  sm_remember_orig(ctx, orig);
  sm_write_backend(ctx, v6, orig, be);
  sm_count(SM_CNT_CONNECT_BALANCED);
  return SM_ALLOW;
}

static __always_inline int sm_connect(struct bpf_sock_addr *ctx, int v6) {
  __u8 proto = sm_proto_of(ctx);
  if (!proto)
    return SM_ALLOW;
  struct sm_orig_dst orig = {};
  struct sm_service_key key = {};
  const struct sm_backend *be = 0;
  sm_read_orig(ctx, v6, &orig);
  sm_key_of(&orig, proto, &key);

  if (proto == SM_IPPROTO_TCP) {
    __u32 slot = 0;
    void *inner = 0;
    const struct sm_backend_set *set = 0;
    int found = sm_lookup_set(&key, &slot, &inner, &set);
    if (found == SM_LB_NOT_A_SERVICE) {
      int rewrite = 0, redirected = 0;
      return sm_connect_tcp(ctx, v6, &orig, 0, 0, &rewrite, 0, 0, &redirected);
    }
    return sm_connect_vip_tcp(ctx, v6, &orig, slot, inner, found == SM_LB_CHOSEN ? set : 0);
  }

  int result = sm_balance(&key, &be);
  if (result == SM_LB_NOT_A_SERVICE) {
    sm_count(SM_CNT_CONNECT_PASSTHROUGH);
    return SM_ALLOW;
  }
  if (result != SM_LB_CHOSEN || !be) {
    sm_count(SM_CNT_CONNECT_NO_BACKEND);
    return sm_refuse();
  }

  sm_remember_orig(ctx, &orig);
  sm_write_backend(ctx, v6, &orig, be);
  if (proto == SM_IPPROTO_UDP)
    sm_remember_reverse(ctx, v6, &orig);
  sm_count(SM_CNT_CONNECT_BALANCED);
  return SM_ALLOW;
}

static __always_inline int sm_sendmsg(struct bpf_sock_addr *ctx, int v6) {
  if (sm_proto_of(ctx) != SM_IPPROTO_UDP)
    return SM_ALLOW;
  struct sm_orig_dst orig = {};
  struct sm_service_key key = {};
  const struct sm_backend *be = 0;
  sm_read_orig(ctx, v6, &orig);
  sm_key_of(&orig, SM_IPPROTO_UDP, &key);

  int result = sm_balance(&key, &be);
  if (result == SM_LB_NOT_A_SERVICE)
    return SM_ALLOW;
  if (result != SM_LB_CHOSEN || !be) {
    sm_count(SM_CNT_SENDMSG_NO_BACKEND);
    return sm_refuse();
  }
  sm_write_backend(ctx, v6, &orig, be);
  sm_remember_reverse(ctx, v6, &orig);
  sm_count(SM_CNT_SENDMSG_BALANCED);
  return SM_ALLOW;
}

static __always_inline int sm_recvmsg(struct bpf_sock_addr *ctx, int v6) {
  struct sm_reverse_key key = {};
  sm_reverse_key_of(ctx, v6, &key);
  const struct sm_orig_dst *orig = bpf_map_lookup_elem(&sm_udp_reverse, &key);
  if (!orig)
    return SM_ALLOW;
  sm_write_orig(ctx, v6, orig);
  sm_count(SM_CNT_RECVMSG_RESTORED);
  return SM_ALLOW;
}

static __always_inline int sm_getpeername(struct bpf_sock_addr *ctx, int v6) {
  struct sm_orig_dst *orig = bpf_sk_storage_get(&sm_orig_dst_store, ctx->sk, 0, 0);
  if (!orig)
    return SM_ALLOW;
  sm_write_orig(ctx, v6, orig);
  sm_count(SM_CNT_PEERNAME_RESTORED);
  return SM_ALLOW;
}

/* Each sock_addr program first lets the agent's own calls through untouched (lib/agent_sockets.h):
 * the agent's connections go where it sends them. */
SEC("cgroup/connect4")
int sm_connect4(struct bpf_sock_addr *ctx) {
  return sm_agent_task() ? SM_ALLOW : sm_connect(ctx, 0);
}

SEC("cgroup/connect6")
int sm_connect6(struct bpf_sock_addr *ctx) {
  return sm_agent_task() ? SM_ALLOW : sm_connect(ctx, 1);
}

SEC("cgroup/sendmsg4")
int sm_sendmsg4(struct bpf_sock_addr *ctx) {
  return sm_agent_task() ? SM_ALLOW : sm_sendmsg(ctx, 0);
}

SEC("cgroup/sendmsg6")
int sm_sendmsg6(struct bpf_sock_addr *ctx) {
  return sm_agent_task() ? SM_ALLOW : sm_sendmsg(ctx, 1);
}

SEC("cgroup/recvmsg4")
int sm_recvmsg4(struct bpf_sock_addr *ctx) {
  return sm_agent_task() ? SM_ALLOW : sm_recvmsg(ctx, 0);
}

SEC("cgroup/recvmsg6")
int sm_recvmsg6(struct bpf_sock_addr *ctx) {
  return sm_agent_task() ? SM_ALLOW : sm_recvmsg(ctx, 1);
}

/* A socket is created: when its creator is the agent (running inside the workload cgroup), it is
 * marked as the agent's, for the programs that run without the agent's task at hand (sock_ops in
 * softirq, sock_release). Never refuses a socket. */
SEC("cgroup/sock_create")
int sm_sock_create(struct bpf_sock *sk) {
  if (sm_agent_task()) {
    __u32 *mark = bpf_sk_storage_get(&sm_agent_socks, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
    if (mark) *mark = 1;
  }
  return 1;
}

/* The application let its socket go: a connection's charges not yet given back by sock_ops (its
 * connect failed before TCP started, or it closed before TCP reached CLOSE) are given back now.
 * The agent's sockets carry no charge of the workload programs; one of the agent's own is not
 * touched (looked at only when a record exists: the common case costs one lookup). */
SEC("cgroup/sock_release")
int sm_sock_release(struct bpf_sock *sk) {
  struct sm_rs_conn *rec = bpf_sk_storage_get(&sm_rs_conns, sk, 0, 0);
  if (rec && !sm_agent_socket(sk)) sm_rs_release(rec);
  return 1;
}

SEC("cgroup/getpeername4")
int sm_getpeername4(struct bpf_sock_addr *ctx) {
  return sm_agent_task() ? SM_ALLOW : sm_getpeername(ctx, 0);
}

SEC("cgroup/getpeername6")
int sm_getpeername6(struct bpf_sock_addr *ctx) {
  return sm_agent_task() ? SM_ALLOW : sm_getpeername(ctx, 1);
}

char LICENSE[] SEC("license") = "GPL";
