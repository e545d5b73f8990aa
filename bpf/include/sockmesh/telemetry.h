/* Traffic telemetry: layouts shared by bpf/ and the agent (the one definition of each), and the
 * plain-C decisions the programs make, unit-tested in user space
 * (test/bpf/telemetry/telemetry_logic_test.cpp) since sock_addr and sock_ops programs cannot be
 * run by BPF_PROG_TEST_RUN. docs/metrics.md names what the agent exports from them.
 *
 * sm_conn_store  SK_STORAGE     client socket      -> sm_conn            connect4/6, sock_ops
 * sm_traffic     PERCPU_HASH    sm_traffic_key     -> sm_traffic_value   connect4/6, sock_ops (sk_msg, M7)
 * sm_telemetry   ARRAY[1]       0                  -> sm_telemetry_config  agent writes
 * sm_events      RINGBUF (not pinned; shared by fd)  struct sm_conn_event  sock_ops, connect4/6
 *
 * A TCP connect() from the node's workload cgroup to a VIP or to a mesh workload's address gets a
 * record on the client's socket: which tuple it counts under, when it started, and how many of
 * its bytes were already added to the tuple's counters. sock_ops then counts the connection
 * opened (established) or failed (closed before that), adds its bytes once a second while it
 * lives (on the RTT callback, at most once a second) and the rest when it closes, with its
 * smoothed RTT and retransmits. Bytes that will bypass the TCP stack (the sockmap fast path, M7)
 * are counted by the sk_msg program into the same record's fastpath fields and flushed with the
 * others, so every path adds to one tuple: bytes_sent and bytes_received are totals over both
 * paths, fastpath_* the part that skipped the stack.
 *
 * The maps are pinned like the others, but an agent numbers workloads anew when it starts, so it
 * empties sm_traffic and moves sm_telemetry_config.epoch on: a record made under another epoch
 * names workloads by old numbers and is counted nowhere (SM_CNT_TRAFFIC_UNTRACKED), and the
 * counters restart from zero with the agent, which Prometheus reads as a process restart. */
#ifndef SOCKMESH_TELEMETRY_H
#define SOCKMESH_TELEMETRY_H

#include "types.h"

/* Distinct tuples counted at once; over it a connection is counted in SM_CNT_TRAFFIC_UNTRACKED. */
#define SM_MAX_TRAFFIC_TUPLES 65536
/* Default ring buffer size for connection events (a power of two, at least a page). */
#define SM_EVENTS_RING_BYTES (4u << 20)
/* Nanoseconds between two flushes of a live connection's bytes and RTT. */
#define SM_TELEMETRY_FLUSH_NS 1000000000ull

/* sm_telemetry_config.flags */
#define SM_TELEMETRY_EVENTS 0x1   /* connection events go to sm_events (sampled) */
#define SM_TELEMETRY_COUNTERS 0x2 /* connections are counted per tuple (off: no record at all) */

struct sm_telemetry_config {
  __u32 flags;           /* SM_TELEMETRY_* */
  __u32 sample_below;    /* a connection is logged when its random draw < sample_below;
                            0xffffffff logs all (also the draw 0xffffffff: see sm_tm_sampled) */
  __u32 epoch;           /* the agent's start number: records of another epoch are not counted */
  __u32 pad;
};

/* One counted tuple. A connect straight to a workload's address has a zero VIP; a VIP without a
 * usable backend a zero backend. Addresses as everywhere: network order, IPv4 in addr[0]. */
struct sm_traffic_key {
  __u32 vip[4];
  __u32 backend[4];
  __u16 vip_port;      /* network order */
  __u16 backend_port;  /* network order */
  __u8 family;         /* SM_AF_INET or SM_AF_INET6 of the backend (and VIP) */
  __u8 proto;          /* IPPROTO_TCP */
  __u16 pad;
  __u32 src_workload;  /* agent-assigned workload number, 0 = unknown */
  __u32 dst_workload;  /* 0 = the backend is no mesh workload */
};

/* Per CPU; the agent sums the CPUs (opened on one CPU, closed on another: the sum is right). */
struct sm_traffic_value {
  __u64 balanced;    /* connect() rewritten to this backend */
  __u64 captured;    /* connect() sent to the agent's outbound listener */
  __u64 no_backend;  /* connect() refused: no usable backend */
  __u64 denied;      /* connect() refused by policy */
  __u64 opened;      /* established */
  __u64 failed;      /* closed without having been established */
  __u64 closed;      /* established, then closed */
  __u64 reset;       /* of closed: from ESTABLISHED straight to CLOSE (reset, abort) */
  __u64 bytes_sent;  /* acknowledged by the peer, all paths */
  __u64 bytes_received;
  __u64 fastpath_bytes_sent;
  __u64 fastpath_bytes_received;
  __u64 retransmits;
  __u64 srtt_samples;
  __u64 srtt_us_sum;
};

/* sm_conn.flags */
#define SM_CONN_SAMPLED 0x1     /* its events go to the access log */
#define SM_CONN_ESTABLISHED 0x2 /* counted as opened */
#define SM_CONN_CAPTURED 0x4    /* sent through the agent */
#define SM_CONN_FIN_OUT 0x8     /* this end sent its FIN (FIN_WAIT1, LAST_ACK or CLOSING seen) */

/* The record on the client's socket. */
struct sm_conn {
  struct sm_traffic_key key;
  __u64 start_ns;        /* bpf_ktime_get_ns() at connect() */
  __u64 flushed_ns;      /* last flush of bytes into the tuple */
  __u64 sent_counted;    /* payload sent (and acknowledged) already added to the tuple */
  __u64 received_counted; /* payload received already added */
  __u64 fastpath_sent;   /* bytes the fast path carried (M7 adds; flushed like the others) */
  __u64 fastpath_received;
  __u64 fastpath_sent_counted;
  __u64 fastpath_received_counted;
  __u32 retrans_counted;
  __u32 flags;           /* SM_CONN_* */
  __u32 epoch;           /* sm_telemetry_config.epoch when the record was made */
  __u32 pad;
};

/* sm_conn_event.kind */
enum sm_event_kind {
  SM_EVENT_OPEN = 1,  /* established */
  SM_EVENT_CLOSE = 2, /* closed, or failed to connect (reason says which) */
};

/* sm_conn_event.reason (SM_EVENT_CLOSE) */
enum sm_close_reason {
  SM_CLOSE_NONE = 0,           /* an open event */
  SM_CLOSE_FIN = 1,            /* closed in order */
  SM_CLOSE_RESET = 2,          /* reset or aborted while established */
  SM_CLOSE_CONNECT_FAILED = 3, /* never established (refused, unreachable, timed out) */
  SM_CLOSE_NO_BACKEND = 4,     /* refused at connect(): the VIP has no usable backend */
  SM_CLOSE_DENIED = 5,         /* refused at connect() by authorization policy */
  SM_CLOSE_OVERFLOW = 6,       /* refused at connect(): circuit breaker (docs/resilience.md) */
  SM_CLOSE_RATE_LIMITED = 7,   /* refused at connect(): rate limit */
  SM_CLOSE_FAULT = 8,          /* failed at connect() by fault injection */
};

struct sm_conn_event {
  __u64 time_ns;       /* bpf_ktime_get_ns() */
  __u64 duration_ns;   /* close: since connect() */
  __u64 cookie;        /* socket cookie: joins an open and its close */
  __u64 bytes_sent;    /* close: totals of the connection, all paths */
  __u64 bytes_received;
  struct sm_traffic_key key;
  __u32 src_addr[4];   /* the client's address and port (network order) */
  __u16 src_port;
  __u8 kind;           /* enum sm_event_kind */
  __u8 reason;         /* enum sm_close_reason */
  __u32 srtt_us;       /* close: smoothed RTT */
  __u32 retransmits;   /* close */
  __u32 flags;         /* SM_CONN_* of the record */
};

/* ---- decisions (no helpers, no maps) ---- */

/* Whether a connection with random draw `draw` is logged. */
static inline int sm_tm_sampled(const struct sm_telemetry_config *cfg, __u32 draw) {
  if (!cfg || !(cfg->flags & SM_TELEMETRY_EVENTS)) return 0;
  if (cfg->sample_below == 0xffffffffu) return 1;
  return draw < cfg->sample_below;
}

/* TCP states as sock_ops reports them (BPF_TCP_*). */
#define SM_TCP_ESTABLISHED 1
#define SM_TCP_SYN_SENT 2
#define SM_TCP_FIN_WAIT1 4
#define SM_TCP_CLOSE 7
#define SM_TCP_LAST_ACK 9
#define SM_TCP_CLOSING 11

/* Whether entering `state` means this end has sent its FIN. */
static inline int sm_tm_fin_out_state(__u32 state) {
  return state == SM_TCP_FIN_WAIT1 || state == SM_TCP_LAST_ACK || state == SM_TCP_CLOSING;
}

/* Payload bytes from TCP's sequence-space counters: bytes_acked counts the SYN once established
 * and this end's FIN once acknowledged (`fin_acked`: FIN sent and snd_una == snd_nxt);
 * bytes_received counts the peer's FIN once received (`fin_in`). */
static inline __u64 sm_tm_payload_sent(__u64 bytes_acked, int established, int fin_acked) {
  __u64 overhead = (established ? 1 : 0) + (fin_acked ? 1 : 0);
  return bytes_acked > overhead ? bytes_acked - overhead : 0;
}

static inline __u64 sm_tm_payload_received(__u64 bytes_received, int fin_in) {
  if (fin_in && bytes_received > 0) return bytes_received - 1;
  return bytes_received;
}

/* Why a connection reached CLOSE from `old_state`, given whether it was ever established. */
static inline int sm_tm_close_reason(__u32 old_state, int established) {
  if (!established) return SM_CLOSE_CONNECT_FAILED;
  if (old_state == SM_TCP_ESTABLISHED) return SM_CLOSE_RESET;
  return SM_CLOSE_FIN;
}

/* Whether a live connection's bytes are due to be flushed at `now`. */
static inline int sm_tm_flush_due(const struct sm_conn *c, __u64 now) {
  return now - c->flushed_ns >= SM_TELEMETRY_FLUSH_NS;
}

/* Adds what `c` has not yet counted, given the socket's payload totals now (sm_tm_payload_*),
 * to `v`; marks it counted. The totals never go down, but a value below what was counted must
 * not add 2^64: it adds nothing. */
static inline void sm_tm_flush(struct sm_conn *c, struct sm_traffic_value *v, __u64 sent,
                               __u64 bytes_received, __u32 total_retrans) {
  if (sent > c->sent_counted) {
    v->bytes_sent += sent - c->sent_counted;
    c->sent_counted = sent;
  }
  if (bytes_received > c->received_counted) {
    v->bytes_received += bytes_received - c->received_counted;
    c->received_counted = bytes_received;
  }
  if (c->fastpath_sent > c->fastpath_sent_counted) {
    __u64 d = c->fastpath_sent - c->fastpath_sent_counted;
    v->bytes_sent += d;
    v->fastpath_bytes_sent += d;
    c->fastpath_sent_counted = c->fastpath_sent;
  }
  if (c->fastpath_received > c->fastpath_received_counted) {
    __u64 d = c->fastpath_received - c->fastpath_received_counted;
    v->bytes_received += d;
    v->fastpath_bytes_received += d;
    c->fastpath_received_counted = c->fastpath_received;
  }
  if (total_retrans > c->retrans_counted) {
    v->retransmits += total_retrans - c->retrans_counted;
    c->retrans_counted = total_retrans;
  }
}

#endif
