/* The same-node fast path in sock_ops: which sockets enter sm_fastpath (layouts, rules and the
 * decisions: include/sockmesh/fastpath.h); bpf/fastpath.bpf.c redirects their messages. */
#ifndef SOCKMESH_BPF_FASTPATH_H
#define SOCKMESH_BPF_FASTPATH_H

/* vmlinux.h must come first. */
// clang-format off
#include "vmlinux.h"
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "lib/maps.h"
#include "lib/sock_ops_ends.h"
#include "sockmesh/fastpath.h"
// clang-format on

#define SM_FP_ACTIVE 1
#define SM_FP_PASSIVE 0

/* Set by the loader from its probe: false on a kernel without what the fast path needs, so that
 * the verifier never sees the code (docs/kernels.md). */
const volatile bool sm_fastpath_supported = true;

static __always_inline const struct sm_agent_config *sm_fp_agent(void) {
  __u32 zero = 0;
  return bpf_map_lookup_elem(&sm_agent, &zero);
}

/* The socket's key. */
static __always_inline void sm_fp_own_key(struct bpf_sock_ops *skops, struct sm_fp_key *key) {
  struct sm_ops_ends e = {};
  sm_ops_ends_of(skops, &e);
  sm_fp_key_of(key, bpf_get_netns_cookie(skops), e.family, e.local, e.local_port, e.remote,
               e.remote_port);
}

/* The peer's namespace: ours for a loopback or our own address, else the agent's word; 0 when
 * unknown. */
static __always_inline __u64 sm_fp_peer_netns(const struct sm_fp_key *own) {
  if (sm_fp_peer_is_own_netns(own)) return own->netns;
  struct sm_ip_key ip = {};
  ip.addr[0] = own->remote[0];
  ip.addr[1] = own->remote[1];
  ip.addr[2] = own->remote[2];
  ip.addr[3] = own->remote[3];
  ip.family = own->family;
  const __u64 *netns = bpf_map_lookup_elem(&sm_netns, &ip);
  return netns ? *netns : 0;
}

/* Whether the connecting end of `key` joined sm_fastpath, and whether it carries a telemetry
 * record. */
static __always_inline int sm_fp_joined(const struct sm_fp_key *key, int *counted) {
  const struct sm_fp_conn *conn = bpf_map_lookup_elem(&sm_fastpath_conns, key);
  if (!conn) return 0;
  *counted = (conn->flags & SM_FP_COUNT_OWN) != 0;
  return 1;
}

/* ACTIVE_ESTABLISHED_CB or PASSIVE_ESTABLISHED_CB (`active`) of a socket of a workload or of the
 * agent (`agent_socket`): puts it into sm_fastpath when it is a same-node hop the fast path
 * carries. A connecting end that joins has its state callbacks switched on (sm_fp_closed). */
static __always_inline void sm_fp_established(struct bpf_sock_ops *skops, int active,
                                              int agent_socket) {
  if (!sm_fastpath_supported) return;
  const struct sm_agent_config *agent = sm_fp_agent();
  if (!sm_fp_on(agent)) return;
  struct bpf_sock *sk = skops->sk;
  if (!sk) return;

  struct sm_fp_key own = {};
  sm_fp_own_key(skops, &own);
  if (active) {
    struct sm_ip_key ip = {};
    ip.addr[0] = own.remote[0];
    ip.addr[1] = own.remote[1];
    ip.addr[2] = own.remote[2];
    ip.addr[3] = own.remote[3];
    ip.family = own.family;
    const struct sm_endpoint *remote = bpf_map_lookup_elem(&sm_endpoints, &ip);
    int captured = !agent_socket && bpf_sk_storage_get(&sm_capture_store, sk, 0, 0) != 0;
    if (sm_fp_active_eligible(agent, remote, agent_socket, captured) != SM_FP_ELIGIBLE) return;
  }
  __u64 peer_netns = sm_fp_peer_netns(&own);
  if (!peer_netns) {
    if (active) sm_count(SM_CNT_FASTPATH_NO_NETNS);
    return;
  }
  struct sm_fp_sock record = {};
  record.own = own;
  sm_fp_peer_key(&own, peer_netns, &record.peer);
  int peer_counted = 0;
  /* The accepting end joins only a connecting end that joined. */
  if (!active && !sm_fp_joined(&record.peer, &peer_counted)) return;
  if (peer_counted) record.flags |= SM_FP_COUNT_PEER;
  if (bpf_sk_storage_get(&sm_conn_store, sk, 0, 0)) record.flags |= SM_FP_COUNT_OWN;
  if (active) record.flags |= SM_FP_CONNECTING;

  struct sm_fp_sock *kept =
      bpf_sk_storage_get(&sm_fastpath_socks, sk, &record, BPF_SK_STORAGE_GET_F_CREATE);
  if (!kept) {
    sm_count(SM_CNT_FASTPATH_MAP_FULL);
    return;
  }
  *kept = record; /* a socket connects once, but its storage may be left from a failed try */
  if (bpf_sock_hash_update(skops, &sm_fastpath, &own, BPF_NOEXIST) != 0) {
    bpf_sk_storage_delete(&sm_fastpath_socks, sk);
    sm_count(SM_CNT_FASTPATH_MAP_FULL);
    return;
  }
  if (active) {
    struct sm_fp_conn conn = {};
    conn.flags = record.flags & SM_FP_COUNT_OWN;
    bpf_map_update_elem(&sm_fastpath_conns, &own, &conn, BPF_ANY);
    bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags | BPF_SOCK_OPS_STATE_CB_FLAG);
  }
  sm_count(SM_CNT_FASTPATH_SOCKETS);
}

/* STATE_CB to CLOSE: a connecting end leaves sm_fastpath_conns, handing what the accepting end
 * sent it to its telemetry record `c` (0 when none) before that is flushed. (The kernel takes
 * the socket out of sm_fastpath itself.) */
static __always_inline void sm_fp_closed(struct bpf_sock_ops *skops, struct sm_conn *c) {
  if (!sm_fastpath_supported) return;
  struct bpf_sock *sk = skops->sk;
  if (!sk) return;
  struct sm_fp_sock *fp = bpf_sk_storage_get(&sm_fastpath_socks, sk, 0, 0);
  if (!fp || !(fp->flags & SM_FP_CONNECTING)) return;
  const struct sm_fp_conn *conn = bpf_map_lookup_elem(&sm_fastpath_conns, &fp->own);
  if (conn && c && conn->received > c->fastpath_received) c->fastpath_received = conn->received;
  bpf_map_delete_elem(&sm_fastpath_conns, &fp->own);
}

#endif
