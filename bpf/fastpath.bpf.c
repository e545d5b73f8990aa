// SPDX-License-Identifier: GPL-2.0
/* The same-node fast path: every message sent on a socket in sm_fastpath goes straight into the
 * peer socket's receive queue, skipping TCP/IP, veth, netfilter and tc (include/sockmesh/
 * fastpath.h has the rules; bpf/lib/fastpath.h puts the sockets into the map). Attached to
 * sm_fastpath itself (BPF_SK_MSG_VERDICT), so it runs only for those sockets. A message is never
 * dropped: without a peer it goes to TCP.
 *
 * Its bytes count for the connection's telemetry record (bpf/lib/telemetry.h), which is on the
 * connecting end: as sent when that end sends, as received (through sm_fastpath_conns) when the
 * accepting end sends. */
/* vmlinux.h must come first. */
// clang-format off
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

#include "lib/maps.h"
#include "sockmesh/fastpath.h"
#include "sockmesh/telemetry.h"
// clang-format on

/* The record's tuple gets its fast-path bytes at most once a second while the connection lives
 * (sock_ops flushes the rest when it closes; a fast-path connection has no RTT callbacks). */
static __always_inline void sm_fp_flush(struct sm_conn *c, const struct sm_fp_key *own) {
  __u64 now = bpf_ktime_get_ns();
  if (!(c->flags & SM_CONN_ESTABLISHED) || !sm_tm_flush_due(c, now)) return;
  c->flushed_ns = now;
  /* What the accepting end sent this end, as it counted it in sm_fastpath_conns. */
  const struct sm_fp_conn *conn = bpf_map_lookup_elem(&sm_fastpath_conns, own);
  if (conn && conn->received > c->fastpath_received) c->fastpath_received = conn->received;
  __u32 zero = 0;
  const struct sm_telemetry_config *cfg = bpf_map_lookup_elem(&sm_telemetry, &zero);
  if (!cfg || c->epoch != cfg->epoch) return;
  struct sm_traffic_value *v = bpf_map_lookup_elem(&sm_traffic, &c->key);
  if (!v) return; /* made at connect(): gone only when the agent restarted */
  /* Only the fast-path part: TCP's own counters are read in sock_ops. */
  sm_tm_flush(c, v, c->sent_counted, c->received_counted, c->retrans_counted);
}

SEC("sk_msg")
int sm_fastpath_msg(struct sk_msg_md *msg) {
  struct bpf_sock *sk = msg->sk;
  if (!sk) return SK_PASS;
  struct sm_fp_sock *fp = bpf_sk_storage_get(&sm_fastpath_socks, sk, 0, 0);
  if (!fp || !sm_fp_try(fp->flags)) return SK_PASS;
  __u32 size = msg->size;
  __u32 flags = fp->flags;
  int found = bpf_msg_redirect_hash(msg, &sm_fastpath, &fp->peer, BPF_F_INGRESS) == SK_PASS;
  int outcome = sm_fp_after(&flags, found);
  fp->flags = flags;
  if (outcome == SM_FP_MISSING) {
    sm_count(SM_CNT_FASTPATH_PEER_MISSING);
    return SK_PASS;
  }
  if (outcome == SM_FP_PEER_GONE) {
    sm_count(SM_CNT_FASTPATH_PEER_GONE);
    return SK_PASS;
  }
  fp->msgs += 1;
  fp->bytes += size;
  sm_count(SM_CNT_FASTPATH_MSGS);
  sm_count_add(SM_CNT_FASTPATH_BYTES, size);
  if (flags & SM_FP_COUNT_OWN) {
    struct sm_conn *c = bpf_sk_storage_get(&sm_conn_store, sk, 0, 0);
    if (c) {
      c->fastpath_sent += size;
      sm_fp_flush(c, &fp->own);
    }
  }
  if (flags & SM_FP_COUNT_PEER) {
    /* The connecting end reads it when it flushes (sk_msg) and when it closes (sock_ops). */
    struct sm_fp_conn *conn = bpf_map_lookup_elem(&sm_fastpath_conns, &fp->peer);
    if (conn) __sync_fetch_and_add(&conn->received, size);
  }
  return SK_PASS;
}

char LICENSE[] SEC("license") = "GPL";
