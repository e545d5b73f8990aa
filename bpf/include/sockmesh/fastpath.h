/* The same-node fast path (docs/fastpath.md): layouts shared by bpf/ and the agent, and the
 * plain-C decisions the programs make, unit-tested in user space
 * (test/bpf/fastpath/fastpath_logic_test.cpp) since sock_ops and sk_msg programs cannot be run by
 * BPF_PROG_TEST_RUN.
 *
 * sm_fastpath        SOCKHASH     sm_fp_key          -> socket          sock_ops inserts
 * sm_fastpath_socks  SK_STORAGE   fast-path socket   -> sm_fp_sock      sock_ops, sk_msg
 * sm_fastpath_conns  LRU_HASH     connecting end's key -> sm_fp_conn  sock_ops, sk_msg
 * sm_netns           HASH         sm_ip_key          -> netns cookie    agent writes
 *
 * A socket enters sm_fastpath only when it will be redirected: at ACTIVE_ESTABLISHED, a
 * workload's connection to a workload of this node (it passed authorization at connect()), a
 * captured workload's connection to the agent, and the agent's connection to a workload of this
 * node (delivering a tunnelled stream); at PASSIVE_ESTABLISHED, the accepting end of a connection
 * whose connecting end is in the map already (the connecting end is established first: its
 * ACK has not left yet). Cross-node connections never enter. The kernel removes a socket from the
 * map when it closes. The connecting end is also in sm_fastpath_conns until it closes, for the
 * accepting end to find, and to count what the accepting end sends it.
 *
 * The key is the socket's network namespace cookie with its addresses and ports: a 4-tuple alone
 * repeats across namespaces (127.0.0.1 in every pod), and a 4-tuple key then delivers data into
 * the wrong namespace. The peer's namespace comes from its address: the socket's own namespace
 * for a loopback address or its own address, else sm_netns, which the agent fills with every
 * address of this node's workloads and of the node itself. No entry there: no fast path.
 *
 * sk_msg redirects each message to the peer's ingress queue. A message that finds no peer is
 * passed to TCP (never dropped), and when it is the connection's first in that direction, the
 * whole direction stays on TCP: data that went through the stack may still be in flight, and a
 * later redirected message would overtake it. */
#ifndef SOCKMESH_FASTPATH_H
#define SOCKMESH_FASTPATH_H

#include "capture.h"

/* Sockets in sm_fastpath at once (two per same-node connection); over it, a connection stays on
 * TCP (SM_CNT_FASTPATH_INSERT_FAILED). */
#define SM_MAX_FASTPATH_SOCKETS 65536
/* Addresses in sm_netns: this node's workloads' and its own. */
#define SM_MAX_NETNS_ADDRESSES 16384

/* sm_agent_config.flags: the fast path is on (meshd --fast-path, and the kernel supports it), and
 * whether it carries the hops to and from the agent too (meshd --fast-path-agent-hops; off by
 * default: measured slower than TCP there, and the agent's TLS-bound reader lets an application's
 * bulk send run ahead unbounded — docs/fastpath.md). */
#define SM_AGENT_FASTPATH_ON 0x2
#define SM_AGENT_FASTPATH_AGENT_HOPS 0x4

/* Key of sm_fastpath: one end of a connection, as that end sees it. */
struct sm_fp_key {
  __u64 netns;    /* the socket's network namespace cookie (SO_NETNS_COOKIE) */
  __u32 local[4]; /* network order; IPv4 (also IPv4-mapped) in [0], rest 0 */
  __u32 remote[4];
  __u16 local_port;  /* network order */
  __u16 remote_port; /* network order */
  __u32 family;      /* SM_AF_INET or SM_AF_INET6 of the stored form */
};

/* sm_fp_sock.flags */
#define SM_FP_TCP_ONLY 0x1   /* this direction stays on TCP: its first message found no peer */
#define SM_FP_REDIRECTED 0x2 /* a message of this socket was redirected */
#define SM_FP_COUNT_OWN                                                                      \
  0x4                         /* the socket has a telemetry record: its redirected bytes are \
                                 its fastpath_sent */
#define SM_FP_COUNT_PEER 0x8  /* the peer has one: redirected bytes are its fastpath_received */
#define SM_FP_CONNECTING 0x10 /* the connecting end: in sm_fastpath_conns until it closes */

/* Value of sm_fastpath_conns. */
struct sm_fp_conn {
  __u64 received; /* bytes the accepting end redirected to it */
  __u32 flags;    /* SM_FP_COUNT_OWN when the connecting end has a telemetry record */
  __u32 pad;
};

/* The record of a socket in sm_fastpath. */
struct sm_fp_sock {
  struct sm_fp_key own;  /* its key in sm_fastpath */
  struct sm_fp_key peer; /* the other end's key in sm_fastpath */
  __u64 msgs;            /* messages redirected */
  __u64 bytes;           /* bytes redirected */
  __u32 flags;           /* SM_FP_* */
  __u32 pad;
};

/* Why a connection (or one direction of it) does not use the fast path although it could. */
enum sm_fp_insert {
  SM_FP_NOT_ELIGIBLE = 0, /* not a same-node hop the fast path carries */
  SM_FP_ELIGIBLE = 1,
};

/* ---- decisions (no helpers, no maps) ---- */

static inline int sm_fp_on(const struct sm_agent_config *agent) {
  return agent && (agent->flags & SM_AGENT_FASTPATH_ON);
}

/* Whether the connecting end of a connection (ACTIVE_ESTABLISHED) enters the fast path, given the
 * agent's config, the remote address's sm_endpoints entry (0 when none), whether the socket is
 * the agent's own, and whether it carries a capture record (a captured workload's connection to
 * the agent's listener). */
static inline int sm_fp_active_eligible(const struct sm_agent_config *agent,
                                        const struct sm_endpoint *remote, int agent_socket,
                                        int captured) {
  if (!sm_fp_on(agent)) return SM_FP_NOT_ELIGIBLE;
  const int agent_hops = (agent->flags & SM_AGENT_FASTPATH_AGENT_HOPS) != 0;
  if (!agent_socket && captured) /* app -> agent */
    return agent_hops ? SM_FP_ELIGIBLE : SM_FP_NOT_ELIGIBLE;
  if (!remote || (remote->flags & SM_EP_REMOTE)) return SM_FP_NOT_ELIGIBLE;
  /* agent -> app (a tunnelled stream delivered), or app -> app on this node (authorized at
   * connect()) */
  if (agent_socket) return agent_hops ? SM_FP_ELIGIBLE : SM_FP_NOT_ELIGIBLE;
  return SM_FP_ELIGIBLE;
}

/* Whether `addr` (stored form) is a loopback address: 127.0.0.0/8 or ::1. */
static inline int sm_fp_is_loopback(const __u32 addr[4], __u32 family) {
  if (family == SM_AF_INET) return (((const __u8 *)addr)[0]) == 127;
  if (family != SM_AF_INET6) return 0;
  return addr[0] == 0 && addr[1] == 0 && addr[2] == 0 && ((const __u8 *)addr)[12] == 0 &&
         ((const __u8 *)addr)[13] == 0 && ((const __u8 *)addr)[14] == 0 &&
         ((const __u8 *)addr)[15] == 1;
}

/* Whether the peer lives in the socket's own namespace without asking sm_netns: a loopback
 * address, or the socket's own address. */
static inline int sm_fp_peer_is_own_netns(const struct sm_fp_key *own) {
  if (sm_fp_is_loopback(own->remote, own->family)) return 1;
  return own->remote[0] == own->local[0] && own->remote[1] == own->local[1] &&
         own->remote[2] == own->local[2] && own->remote[3] == own->local[3];
}

/* A socket's key from its addresses as the kernel reports them (`family` of the socket: an IPv6
 * socket carrying IPv4 has IPv4-mapped addresses, stored as IPv4, so that it meets an IPv4
 * peer). Ports in network order. */
static inline void sm_fp_key_of(struct sm_fp_key *key, __u64 netns, __u32 family,
                                const __u32 local[4], __u16 local_port_n, const __u32 remote[4],
                                __u16 remote_port_n) {
  key->netns = netns;
  key->family = sm_capture_normalize(local, family, key->local);
  sm_capture_normalize(remote, family, key->remote);
  key->local_port = local_port_n;
  key->remote_port = remote_port_n;
}

/* The peer's key: the same connection seen from the other end, in namespace `peer_netns`. */
static inline void sm_fp_peer_key(const struct sm_fp_key *own, __u64 peer_netns,
                                  struct sm_fp_key *peer) {
  peer->netns = peer_netns;
  peer->local[0] = own->remote[0];
  peer->local[1] = own->remote[1];
  peer->local[2] = own->remote[2];
  peer->local[3] = own->remote[3];
  peer->remote[0] = own->local[0];
  peer->remote[1] = own->local[1];
  peer->remote[2] = own->local[2];
  peer->remote[3] = own->local[3];
  peer->local_port = own->remote_port;
  peer->remote_port = own->local_port;
  peer->family = own->family;
}

/* What sk_msg does with a message of a socket whose record has `flags`, once it knows whether
 * the redirect found the peer. */
enum sm_fp_outcome {
  SM_FP_SENT = 0,      /* redirected to the peer */
  SM_FP_TCP = 1,       /* passed to TCP: the direction stays on TCP */
  SM_FP_MISSING = 2,   /* passed to TCP: the first message found no peer; the direction stays
                          on TCP from now on */
  SM_FP_PEER_GONE = 3, /* passed to TCP: the peer left the map (it closed) after earlier
                          messages were redirected */
};

/* Whether to try the redirect at all. */
static inline int sm_fp_try(__u32 flags) {
  return !(flags & SM_FP_TCP_ONLY);
}

/* The outcome of a tried redirect, and the record's flags after it. */
static inline int sm_fp_after(__u32 *flags, int found) {
  if (found) {
    *flags |= SM_FP_REDIRECTED;
    return SM_FP_SENT;
  }
  if (*flags & SM_FP_REDIRECTED) return SM_FP_PEER_GONE;
  *flags |= SM_FP_TCP_ONLY;
  return SM_FP_MISSING;
}

#endif
