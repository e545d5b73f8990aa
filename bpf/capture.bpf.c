// SPDX-License-Identifier: GPL-2.0
/* Capture records, from the client's socket to the agent. connect4/6 (sock_lb.bpf.c) leave the
 * record of a captured connect on the client's socket, but the agent holds the other end of the
 * connection, a different socket. So:
 *
 * - sm_sockops (workload cgroup), TCP_CONNECT_CB: the client's port is now known; the record goes
 *   into sm_capture_flows under the connection's addresses and ports. The socket's state changes
 *   are switched on so that its close removes the entry if the agent never took it over.
 * - sm_sockops_agent (agent cgroup), PASSIVE_ESTABLISHED_CB: the agent's end of that connection is
 *   established; the record moves onto that socket (sm_capture_accepted), where it lives exactly
 *   as long as the agent's socket, whatever the client does meanwhile (a client that writes and
 *   closes at once is closed before the agent calls accept()).
 * - sm_getsockopt (agent cgroup): answers SO_ORIGINAL_DST, IP6T_SO_ORIGINAL_DST and
 *   SM_SO_CAPTURE_INFO from that record; every other getsockopt() keeps the kernel's answer.
 *
 * sock_ops programs run in softirq for most callbacks: nothing here looks at the current task. */
/* vmlinux.h must come first. */
// clang-format off
#include "vmlinux.h"
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "lib/agent_sockets.h"
#include "lib/fastpath.h"
#include "lib/maps.h"
#include "lib/resilience.h"
#include "lib/sock_ops_ends.h"
#include "lib/telemetry.h"
#include "sockmesh/capture.h"
// clang-format on

/* Set by the loader (sysconf(_SC_PAGESIZE)): a cgroup/getsockopt program sees at most one page
 * of the option value. */
const volatile __u32 sm_page_size = 4096;

#define SM_SOCKOPS_OK 1
#define SM_SOCKOPT_OK 1

/* The flow key from one end of the connection: on the client, the client is the local end; on
 * the agent, the remote end. */
static __always_inline void sm_ops_flow_key(const struct bpf_sock_ops *skops, int client_is_local,
                                            struct sm_flow_key *key) {
  struct sm_ops_ends e = {};
  sm_ops_ends_of(skops, &e);
  if (client_is_local)
    sm_capture_flow_key(key, e.family, e.local, e.local_port, e.remote, e.remote_port);
  else
    sm_capture_flow_key(key, e.family, e.remote, e.remote_port, e.local, e.local_port);
}

/* Client: the SYN is about to leave. Returns the callbacks the capture record needs. */
static __always_inline __u32 sm_ops_client_connect(struct bpf_sock_ops *skops) {
  struct bpf_sock *sk = skops->sk;
  if (!sk) return 0;
  struct sm_capture_info *info = bpf_sk_storage_get(&sm_capture_store, sk, 0, 0);
  if (!info) return 0; /* not captured: the common case, one lookup */
  struct sm_flow_key key = {};
  sm_ops_flow_key(skops, 1, &key);
  if (bpf_map_update_elem(&sm_capture_flows, &key, info, BPF_ANY) != 0) {
    sm_count(SM_CNT_CAPTURE_RECORD_LOST);
    return 0;
  }
  return BPF_SOCK_OPS_STATE_CB_FLAG;
}

/* Client: closed (after the agent took the record over, a no-op). */
static __always_inline void sm_ops_client_closed(struct bpf_sock_ops *skops) {
  struct sm_flow_key key = {};
  sm_ops_flow_key(skops, 1, &key);
  bpf_map_delete_elem(&sm_capture_flows, &key);
}

/* Workload sockets: capture records on their way to the agent, the telemetry of counted
 * connections (lib/telemetry.h), and the same-node fast path (lib/fastpath.h). The agent's own
 * sockets, when it runs inside the workload cgroup, are sm_sockops_agent's alone
 * (lib/agent_sockets.h). */
SEC("sockops")
int sm_sockops(struct bpf_sock_ops *skops) {
  struct sm_conn *conn;
  struct sm_rs_conn *rs;
  struct bpf_sock *sk = skops->sk; /* once, at a constant offset */
  if (sm_agent_socket(sk)) return SM_SOCKOPS_OK;
  switch (skops->op) {
    case BPF_SOCK_OPS_TCP_CONNECT_CB: {
      __u32 flags = sm_ops_client_connect(skops);
      if (sm_tm_record(skops)) flags |= BPF_SOCK_OPS_STATE_CB_FLAG | BPF_SOCK_OPS_RTT_CB_FLAG;
      flags |= sm_rs_ops_connect(sk);
      if (flags) bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags | flags);
      break;
    }
    case BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB:
      conn = sm_tm_record(skops);
      if (conn) sm_tm_established(skops, conn);
      sm_fp_established(skops, SM_FP_ACTIVE, 0);
      rs = sm_rs_record(sk);
      if (rs) sm_rs_succeeded(rs);
      break;
    case BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB:
      sm_fp_established(skops, SM_FP_PASSIVE, 0);
      break;
    case BPF_SOCK_OPS_RTT_CB:
      conn = sm_tm_record(skops);
      if (conn) sm_tm_rtt(skops, conn);
      break;
    case BPF_SOCK_OPS_RTO_CB: {
      /* A connect timing out, or an RTO storm (docs/resilience.md). */
      __u32 retransmits = skops->args[0];
      rs = sm_rs_record(sk);
      if (rs && sm_rs_rto_failure(skops->state == BPF_TCP_SYN_SENT, retransmits)) sm_rs_failed(rs);
      break;
    }
    case BPF_SOCK_OPS_STATE_CB: {
      /* Both read once, at constant offsets (the verifier refuses a computed context offset). */
      __u32 old_state = skops->args[0], new_state = skops->args[1];
      rs = sm_rs_record(sk);
      if (rs && new_state == BPF_TCP_CLOSE) {
        /* Refused or timed out while connecting: the backend's failure. Closed by the
         * application while connecting (no error): nobody's. */
        if (old_state == BPF_TCP_SYN_SENT && sm_rs_sock_error(sk) != 0) sm_rs_failed(rs);
        sm_rs_release(rs);
      }
      conn = sm_tm_record(skops);
      if (new_state != BPF_TCP_CLOSE) {
        if (conn) sm_tm_state(conn, new_state);
        break;
      }
      sm_ops_client_closed(skops);
      sm_fp_closed(skops, conn);
      if (conn) sm_tm_closed(skops, conn, old_state);
      break;
    }
    default:
      break;
  }
  return SM_SOCKOPS_OK; /* reply untouched: TCP behaves as without the program */
}

/* Agent: one of its sockets is established from a SYN it received; the record of a captured
 * connection moves onto it. */
static __always_inline void sm_ops_agent_accepted(struct bpf_sock_ops *skops) {
  struct sm_flow_key key = {};
  sm_ops_flow_key(skops, 0, &key);
  struct sm_capture_info *record = bpf_map_lookup_elem(&sm_capture_flows, &key);
  if (!record) return; /* not a captured connection */
  struct bpf_sock *sk = skops->sk;
  if (!sk) return;
  struct sm_capture_info *kept =
      bpf_sk_storage_get(&sm_capture_accepted, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
  if (!kept) {
    /* The entry stays: getsockopt finds it there while the client lives. */
    sm_count(SM_CNT_CAPTURE_RECORD_LOST);
    return;
  }
  *kept = *record;
  bpf_map_delete_elem(&sm_capture_flows, &key);
}

/* Agent sockets: capture records taken over, and the fast path of the agent's same-node hops
 * (a captured workload's connection to it, its own connection delivering a tunnelled stream). */
SEC("sockops")
int sm_sockops_agent(struct bpf_sock_ops *skops) {
  switch (skops->op) {
    case BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB:
      sm_ops_agent_accepted(skops);
      sm_fp_established(skops, SM_FP_PASSIVE, 1);
      break;
    case BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB:
      sm_fp_established(skops, SM_FP_ACTIVE, 1);
      break;
    case BPF_SOCK_OPS_STATE_CB:
      if (skops->args[1] == BPF_TCP_CLOSE) sm_fp_closed(skops, 0);
      break;
    default:
      break;
  }
  return SM_SOCKOPS_OK;
}

/* The record of the agent's socket: its own, or, when it could not be moved there, the one in
 * flight under the connection's key (the client is the socket's peer). */
static __always_inline const struct sm_capture_info *sm_record_of(struct bpf_sock *sk) {
  const struct sm_capture_info *info = bpf_sk_storage_get(&sm_capture_accepted, sk, 0, 0);
  if (info) return info;
  __u32 family = sk->family;
  if (family != SM_AF_INET && family != SM_AF_INET6) return 0;
  /* As in sm_ops_ends_of (lib/sock_ops_ends.h): every field read at a constant offset. */
  __u32 local[4] = {sk->src_ip6[0], sk->src_ip6[1], sk->src_ip6[2], sk->src_ip6[3]};
  __u32 remote[4] = {sk->dst_ip6[0], sk->dst_ip6[1], sk->dst_ip6[2], sk->dst_ip6[3]};
  __u32 local4 = sk->src_ip4, remote4 = sk->dst_ip4;
  __u16 local_port = bpf_htons((__u16)sk->src_port), remote_port = sk->dst_port;
  if (family == SM_AF_INET) {
    local[0] = local4;
    remote[0] = remote4;
  }
  struct sm_flow_key key = {};
  /* src_port is in host order, dst_port in network order. */
  sm_capture_flow_key(&key, family, remote, remote_port, local, local_port);
  return bpf_map_lookup_elem(&sm_capture_flows, &key);
}

/* Leaves the kernel's answer to the caller (sm_capture_passthrough_optlen). */
static __always_inline int sm_kernel_answer(struct bpf_sockopt *ctx) {
  int optlen = sm_capture_passthrough_optlen(ctx->retval, ctx->optlen, sm_page_size);
  if (optlen != ctx->optlen) ctx->optlen = optlen;
  return SM_SOCKOPT_OK;
}

static __always_inline int sm_miss(struct bpf_sockopt *ctx) {
  sm_count(SM_CNT_GETSOCKOPT_MISS);
  return sm_kernel_answer(ctx);
}

/* Writes `len` bytes of `answer` as the option's value, when the caller's buffer holds them. */
static __always_inline int sm_answer(struct bpf_sockopt *ctx, const void *answer, __u32 len) {
  __u8 *optval = ctx->optval;
  __u8 *optval_end = ctx->optval_end;
  if (optval + len > optval_end) return sm_miss(ctx);
  __builtin_memcpy(optval, answer, len);
  ctx->optlen = len;
  ctx->retval = 0;
  sm_count(SM_CNT_GETSOCKOPT_ANSWERED);
  return SM_SOCKOPT_OK;
}

SEC("cgroup/getsockopt")
int sm_getsockopt(struct bpf_sockopt *ctx) {
  int kind = sm_capture_sockopt_kind(ctx->level, ctx->optname);
  if (kind == SM_SOCKOPT_OTHER) return sm_kernel_answer(ctx);
  struct bpf_sock *sk = ctx->sk;
  if (!sk) return sm_kernel_answer(ctx);
  const struct sm_capture_info *info = sm_record_of(sk);
  if (!info) return sm_miss(ctx);

  if (kind == SM_SOCKOPT_ORIG_DST4) {
    struct sm_sockaddr_in sin;
    if (sm_capture_sockaddr_in(info, &sin) != 0) return sm_miss(ctx);
    return sm_answer(ctx, &sin, sizeof(sin));
  }
  if (kind == SM_SOCKOPT_ORIG_DST6) {
    struct sm_sockaddr_in6 sin6;
    if (sm_capture_sockaddr_in6(info, &sin6) != 0) return sm_miss(ctx);
    return sm_answer(ctx, &sin6, sizeof(sin6));
  }
  struct sm_capture_info copy = *info;
  return sm_answer(ctx, &copy, sizeof(copy));
}

/* The agent's reports of connects it made for captured connections (SM_SO_RS_REPORT,
 * include/sockmesh/resilience.h): counted like sock_ops' own, and the kernel's setsockopt()
 * skipped. Every other option is left to the kernel. */
SEC("cgroup/setsockopt")
int sm_setsockopt(struct bpf_sockopt *ctx) {
  if (ctx->level != SM_SOL_IP || ctx->optname != SM_SO_RS_REPORT) return SM_SOCKOPT_OK;
  const struct sm_rs_report *in = ctx->optval;
  if ((const void *)(in + 1) > ctx->optval_end) return 0; /* too short: EPERM */
  struct sm_rs_report report = *in;
  sm_rs_reported(&report);
  ctx->optlen = -1; /* handled here: the kernel's setsockopt() is not called */
  return SM_SOCKOPT_OK;
}

char LICENSE[] SEC("license") = "GPL";
