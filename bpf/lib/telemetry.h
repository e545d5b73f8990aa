/* Traffic telemetry in the programs: the record a counted connect() leaves on the client's socket,
 * the per-tuple counters, and connection events. Layouts and the decisions: include/sockmesh/
 * telemetry.h. Costs on the connect() path: one array lookup when telemetry is off; else one
 * socket-storage creation and one per-CPU hash lookup (an insert for a new tuple). */
#ifndef SOCKMESH_BPF_TELEMETRY_H
#define SOCKMESH_BPF_TELEMETRY_H

/* vmlinux.h must come first. */
// clang-format off
#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>

#include "lib/maps.h"
#include "sockmesh/capture.h"
#include "sockmesh/telemetry.h"
// clang-format on

/* Set by the loader (a quarter of the ring buffer): below this much unread data, an event is
 * queued without waking the agent's reader, which reads every 100 ms anyway; above it, the reader
 * is woken at once. Waking the reader for every event cost a context switch per connection on a
 * busy node (docs/telemetry.md, "Cost"). */
const volatile __u32 sm_events_wakeup_bytes = 1u << 20;

static __always_inline const struct sm_telemetry_config *sm_tm_config(void) {
  __u32 zero = 0;
  return bpf_map_lookup_elem(&sm_telemetry, &zero);
}

static __always_inline int sm_tm_on(const struct sm_telemetry_config *cfg) {
  return cfg && (cfg->flags & SM_TELEMETRY_COUNTERS);
}

/* The tuple's per-CPU counters, made on first use; 0 (counted as untracked) when the map is
 * full. */
static __always_inline struct sm_traffic_value *sm_tm_value(const struct sm_traffic_key *key) {
  struct sm_traffic_value *v = bpf_map_lookup_elem(&sm_traffic, key);
  if (v) return v;
  struct sm_traffic_value zero = {};
  /* BPF_NOEXIST: a racing CPU that made it first keeps its entry; both then find it. */
  bpf_map_update_elem(&sm_traffic, key, &zero, BPF_NOEXIST);
  v = bpf_map_lookup_elem(&sm_traffic, key);
  if (!v) sm_count(SM_CNT_TRAFFIC_UNTRACKED);
  return v;
}

/* The tuple of a connect(): what the application asked for (`asked`; a VIP when `via_vip`), where
 * it goes (`dest`; zero for a VIP without backends), who asks, who answers. */
static __always_inline void sm_tm_key_of(struct sm_traffic_key *key,
                                         const struct sm_capture_addr *asked, int via_vip,
                                         const struct sm_capture_addr *dest,
                                         const struct sm_workload *src,
                                         const struct sm_endpoint *dst) {
  if (via_vip) {
    key->vip[0] = asked->addr[0];
    key->vip[1] = asked->addr[1];
    key->vip[2] = asked->addr[2];
    key->vip[3] = asked->addr[3];
    key->vip_port = asked->port;
  }
  if (dest) {
    key->backend[0] = dest->addr[0];
    key->backend[1] = dest->addr[1];
    key->backend[2] = dest->addr[2];
    key->backend[3] = dest->addr[3];
    key->backend_port = dest->port;
  }
  key->family = (__u8)asked->family;
  key->proto = 6; /* IPPROTO_TCP */
  key->src_workload = src ? src->id : 0;
  key->dst_workload = dst ? dst->workload_id : 0;
}

/* An event about a connection, when it is to be logged; a full ring buffer is counted. */
static __always_inline void sm_tm_emit(const struct sm_traffic_key *key, __u8 kind, __u8 reason,
                                       __u64 cookie, __u32 flags, __u64 now, __u64 start_ns,
                                       __u64 sent, __u64 received, __u32 srtt_us, __u32 retrans,
                                       const __u32 src_addr[4], __u16 src_port) {
  struct sm_conn_event *e = bpf_ringbuf_reserve(&sm_events, sizeof(*e), 0);
  if (!e) {
    sm_count(SM_CNT_EVENTS_LOST);
    return;
  }
  e->time_ns = now;
  e->duration_ns = start_ns && now > start_ns ? now - start_ns : 0;
  e->cookie = cookie;
  e->bytes_sent = sent;
  e->bytes_received = received;
  e->key = *key;
  e->src_addr[0] = src_addr[0];
  e->src_addr[1] = src_addr[1];
  e->src_addr[2] = src_addr[2];
  e->src_addr[3] = src_addr[3];
  e->src_port = src_port;
  e->kind = kind;
  e->reason = reason;
  e->srtt_us = srtt_us;
  e->retransmits = retrans;
  e->flags = flags;
  __u64 pending = bpf_ringbuf_query(&sm_events, BPF_RB_AVAIL_DATA);
  bpf_ringbuf_submit(e, pending >= sm_events_wakeup_bytes ? BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP);
}

/* `cfg` is sm_tm_config(), looked up once per connect(). */

/* connect() allowed to `dest`: the socket gets its record and the tuple a decision
 * (captured: through the agent; else balanced to a backend, or straight to a workload). */
static __always_inline void sm_tm_connect(struct bpf_sock_addr *ctx,
                                          const struct sm_telemetry_config *cfg,
                                          const struct sm_capture_addr *asked, int via_vip,
                                          const struct sm_capture_addr *dest,
                                          const struct sm_workload *src,
                                          const struct sm_endpoint *dst, int captured) {
  if (!sm_tm_on(cfg)) return;
  struct sm_conn *c = bpf_sk_storage_get(&sm_conn_store, ctx->sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
  if (!c) {
    sm_count(SM_CNT_TRAFFIC_UNTRACKED);
    return;
  }
  /* A socket connects once, but a failed non-blocking connect() may be retried on it: start
   * over. */
  __builtin_memset(c, 0, sizeof(*c));
  sm_tm_key_of(&c->key, asked, via_vip, dest, src, dst);
  c->start_ns = bpf_ktime_get_ns();
  c->epoch = cfg->epoch;
  if (captured) c->flags |= SM_CONN_CAPTURED;
  if (sm_tm_sampled(cfg, bpf_get_prandom_u32())) c->flags |= SM_CONN_SAMPLED;
  struct sm_traffic_value *v = sm_tm_value(&c->key);
  if (!v) return;
  if (captured)
    v->captured += 1; /* per-CPU slot: no other writer */
  else
    v->balanced += 1;
}

/* connect() refused before any packet (no backend, or policy): counted, and logged when
 * sampled; there is no connection, so no record. */
static __always_inline void sm_tm_refused(struct bpf_sock_addr *ctx,
                                          const struct sm_telemetry_config *cfg,
                                          const struct sm_capture_addr *asked, int via_vip,
                                          const struct sm_capture_addr *dest,
                                          const struct sm_workload *src,
                                          const struct sm_endpoint *dst, __u8 reason) {
  if (!sm_tm_on(cfg)) return;
  struct sm_traffic_key key = {};
  sm_tm_key_of(&key, asked, via_vip, dest, src, dst);
  struct sm_traffic_value *v = sm_tm_value(&key);
  if (v) {
    /* Resilience's refusals are counted per service (sm_service_states), not per tuple. */
    if (reason == SM_CLOSE_NO_BACKEND)
      v->no_backend += 1;
    else if (reason == SM_CLOSE_DENIED)
      v->denied += 1;
  }
  if (sm_tm_sampled(cfg, bpf_get_prandom_u32())) {
    __u32 none[4] = {};
    __u64 now = bpf_ktime_get_ns();
    sm_tm_emit(&key, SM_EVENT_CLOSE, reason, bpf_get_socket_cookie(ctx), SM_CONN_SAMPLED, now, now,
               0, 0, 0, 0, none, 0);
  }
}

/* ---- sock_ops: the life of a counted connection (the client's socket) ---- */

static __always_inline struct sm_conn *sm_tm_record(struct bpf_sock_ops *skops) {
  struct bpf_sock *sk = skops->sk;
  if (!sk) return 0;
  return bpf_sk_storage_get(&sm_conn_store, sk, 0, 0);
}

/* The record's tuple counters; 0 when the record was made under another agent's epoch (its
 * workload numbers name nothing now: counted as untracked, once, at close). */
static __always_inline struct sm_traffic_value *sm_tm_value_of(const struct sm_conn *c) {
  const struct sm_telemetry_config *cfg = sm_tm_config();
  if (!cfg || c->epoch != cfg->epoch) return 0;
  return sm_tm_value(&c->key);
}

static __always_inline int sm_tm_current(const struct sm_conn *c) {
  const struct sm_telemetry_config *cfg = sm_tm_config();
  return cfg && c->epoch == cfg->epoch;
}

/* The client's own address and port (network order; IPv4-mapped as IPv4). Every field read at a
 * constant offset (the verifier's rule for sock_ops context). */
static __always_inline __u16 sm_tm_local(const struct bpf_sock_ops *skops, __u32 out[4]) {
  __u32 family = skops->family;
  __u32 addr[4] = {skops->local_ip6[0], skops->local_ip6[1], skops->local_ip6[2],
                   skops->local_ip6[3]};
  __u32 v4 = skops->local_ip4;
  __u32 port = skops->local_port; /* host order */
  if (family == SM_AF_INET) {
    addr[0] = v4;
    addr[1] = addr[2] = addr[3] = 0;
  }
  sm_capture_normalize(addr, family, out);
  return bpf_htons((__u16)port);
}

/* Whether the peer's FIN has arrived: the kernel marks the socket SOCK_DONE when it takes a FIN
 * (tcp_fin), and not for a reset. Read through the socket's BTF (CO-RE). */
struct sock___flags_in_sock {
  unsigned long sk_flags; /* kernels that keep sk_flags in struct sock itself */
} __attribute__((preserve_access_index));

static __always_inline int sm_tm_fin_in(struct bpf_sock_ops *skops) {
  struct bpf_sock *sk = skops->sk;
  if (!sk) return 0;
  struct tcp_sock *tp = bpf_skc_to_tcp_sock(sk);
  if (!tp) return 0;
  struct sock *s = &tp->inet_conn.icsk_inet.sk;
  unsigned long flags = 0;
  if (bpf_core_field_exists(s->__sk_common.skc_flags))
    flags = s->__sk_common.skc_flags;
  else
    flags = ((struct sock___flags_in_sock *)s)->sk_flags;
  return (flags >> SOCK_DONE) & 1;
}

/* The connection's payload totals now, both paths of the stack (the fast path adds its own). */
static __always_inline void sm_tm_payload(struct bpf_sock_ops *skops, const struct sm_conn *c,
                                          __u64 *sent, __u64 *received) {
  __u64 acked = skops->bytes_acked, in = skops->bytes_received;
  __u32 una = skops->snd_una, nxt = skops->snd_nxt;
  int fin_acked = (c->flags & SM_CONN_FIN_OUT) && una == nxt;
  *sent = sm_tm_payload_sent(acked, (c->flags & SM_CONN_ESTABLISHED) != 0, fin_acked);
  *received = sm_tm_payload_received(in, sm_tm_fin_in(skops));
}

/* ACTIVE_ESTABLISHED_CB */
static __always_inline void sm_tm_established(struct bpf_sock_ops *skops, struct sm_conn *c) {
  if (c->flags & SM_CONN_ESTABLISHED) return;
  __u64 now = bpf_ktime_get_ns();
  c->flags |= SM_CONN_ESTABLISHED;
  c->flushed_ns = now;
  if (!sm_tm_current(c)) return;
  struct sm_traffic_value *v = sm_tm_value(&c->key);
  if (v) v->opened += 1; /* per-CPU slot: no other writer */
  if (c->flags & SM_CONN_SAMPLED) {
    __u32 local[4] = {};
    __u16 port = sm_tm_local(skops, local);
    sm_tm_emit(&c->key, SM_EVENT_OPEN, SM_CLOSE_NONE, bpf_get_socket_cookie(skops), c->flags, now,
               c->start_ns, 0, 0, 0, 0, local, port);
  }
}

/* RTT_CB (every acknowledgement with an RTT sample): a live connection's bytes, retransmits and
 * smoothed RTT go to its tuple at most once a second, so long transfers show while they run. */
static __always_inline void sm_tm_rtt(struct bpf_sock_ops *skops, struct sm_conn *c) {
  if (!(c->flags & SM_CONN_ESTABLISHED)) return;
  __u64 now = bpf_ktime_get_ns();
  if (!sm_tm_flush_due(c, now)) return;
  c->flushed_ns = now;
  struct sm_traffic_value *v = sm_tm_value_of(c);
  if (!v) return;
  __u64 sent = 0, received = 0;
  sm_tm_payload(skops, c, &sent, &received);
  sm_tm_flush(c, v, sent, received, skops->total_retrans);
  v->srtt_samples += 1;
  v->srtt_us_sum += skops->srtt_us >> 3; /* the kernel keeps srtt << 3 */
}

/* STATE_CB to another state than CLOSE: remembers that this end sent its FIN. */
static __always_inline void sm_tm_state(struct sm_conn *c, __u32 new_state) {
  if (sm_tm_fin_out_state(new_state)) c->flags |= SM_CONN_FIN_OUT;
}

/* STATE_CB to CLOSE: the rest of the bytes, the connection's outcome, its close event. */
static __always_inline void sm_tm_closed(struct bpf_sock_ops *skops, struct sm_conn *c,
                                         __u32 old_state) {
  int established = (c->flags & SM_CONN_ESTABLISHED) != 0;
  __u64 acked = 0, received = 0; /* payload */
  sm_tm_payload(skops, c, &acked, &received);
  __u32 retrans = skops->total_retrans, srtt = skops->srtt_us >> 3;
  int reason = sm_tm_close_reason(old_state, established);
  if (!sm_tm_current(c)) {
    sm_count(SM_CNT_TRAFFIC_UNTRACKED);
  } else {
    struct sm_traffic_value *v = sm_tm_value(&c->key);
    if (v) {
      sm_tm_flush(c, v, acked, received, retrans);
      if (!established) {
        v->failed += 1;
      } else {
        v->closed += 1;
        if (reason == SM_CLOSE_RESET) v->reset += 1;
        v->srtt_samples += 1;
        v->srtt_us_sum += srtt;
      }
    }
    if (c->flags & SM_CONN_SAMPLED) {
      __u32 local[4] = {};
      __u16 port = sm_tm_local(skops, local);
      sm_tm_emit(&c->key, SM_EVENT_CLOSE, (__u8)reason, bpf_get_socket_cookie(skops), c->flags,
                 bpf_ktime_get_ns(), c->start_ns, acked + c->fastpath_sent,
                 received + c->fastpath_received, established ? srtt : 0, retrans, local, port);
    }
  }
  struct bpf_sock *sk = skops->sk;
  if (sk) bpf_sk_storage_delete(&sm_conn_store, sk); /* counted once */
}

#endif
