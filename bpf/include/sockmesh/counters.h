/* Global data-path counters: sm_counters is a PERCPU_ARRAY indexed by enum sm_counter; the agent
 * sums the CPUs. Names for display live in agent/telemetry and must follow this order. */
#ifndef SOCKMESH_COUNTERS_H
#define SOCKMESH_COUNTERS_H

enum sm_counter {
  SM_CNT_CONNECT_BALANCED = 0,    /* connect() to a VIP rewritten to a backend */
  SM_CNT_CONNECT_NO_BACKEND = 1,  /* connect() to a VIP with no usable backend: ECONNREFUSED */
  SM_CNT_CONNECT_PASSTHROUGH = 2, /* connect() to a destination that is not a VIP, untouched */
  SM_CNT_PEERNAME_RESTORED = 3,   /* getpeername() answered with the VIP instead of the backend */
  SM_CNT_ORIG_DST_LOST = 4,       /* balanced, but the VIP could not be remembered for getpeername() */
  SM_CNT_SENDMSG_BALANCED = 5,    /* unconnected UDP datagram to a VIP sent to a backend */
  SM_CNT_SENDMSG_NO_BACKEND = 6,  /* unconnected UDP datagram to a VIP with no usable backend */
  SM_CNT_RECVMSG_RESTORED = 7,    /* UDP reply from a backend reported as coming from the VIP */
  SM_CNT_REVERSE_LOST = 8,        /* UDP balanced, but the reverse entry for replies was not stored */
  /* Capture (docs/datapath.md, "Capture"). */
  SM_CNT_CONNECT_CAPTURED = 9,     /* TCP connect() redirected to the agent's outbound listener */
  SM_CNT_CAPTURE_NO_LISTENER = 10, /* to be captured, but no agent listener of its family */
  SM_CNT_CAPTURE_RECORD_LOST = 11, /* a capture record not stored (connect refused) or not moved */
  SM_CNT_GETSOCKOPT_ANSWERED = 12, /* the agent's getsockopt() answered from a capture record */
  SM_CNT_GETSOCKOPT_MISS = 13,     /* the agent's getsockopt() found no record: kernel's answer */
  /* Authorization (docs/datapath.md, "Authorization"). */
  SM_CNT_CONNECT_DENIED = 14, /* same-node TCP connect() denied by policy: ECONNREFUSED */
  /* Telemetry (docs/metrics.md). */
  SM_CNT_TRAFFIC_UNTRACKED = 15, /* a connection counted under no tuple: sm_traffic full, or its
                                    record is from before the agent's restart */
  SM_CNT_EVENTS_LOST = 16,       /* a connection event the ring buffer had no room for */
  /* Same-node fast path (docs/fastpath.md). */
  SM_CNT_FASTPATH_SOCKETS = 17,    /* sockets put into sm_fastpath */
  SM_CNT_FASTPATH_MSGS = 18,       /* messages redirected socket to socket */
  SM_CNT_FASTPATH_BYTES = 19,      /* bytes redirected socket to socket */
  SM_CNT_FASTPATH_NO_NETNS = 20,   /* a socket left out: its peer's address has no known netns */
  SM_CNT_FASTPATH_MAP_FULL = 21,   /* a socket left out: sm_fastpath full (or the key taken) */
  SM_CNT_FASTPATH_PEER_MISSING = 22, /* a direction on TCP: its first message found no peer */
  SM_CNT_FASTPATH_PEER_GONE = 23,  /* a message to TCP: the peer had closed */
  /* Resilience (docs/resilience.md). */
  SM_CNT_RS_OVERFLOW = 24,     /* connect refused: the service at max_connections */
  SM_CNT_RS_NO_BACKEND = 25,   /* connect refused: every backend ejected or at its limit */
  SM_CNT_RS_REROUTED = 26,     /* connect sent elsewhere: its first pick ejected or full */
  SM_CNT_RS_RATE_LIMITED = 27, /* connect refused by a rate limit */
  SM_CNT_RS_FAULT = 28,        /* connect failed by fault injection */
  SM_CNT_RS_FAILURES = 29,     /* failures counted against backends (refused, timed out, RTO storm) */
  SM_CNT_RS_EJECTIONS = 30,    /* backends ejected */
  SM_CNT_RS_EJECT_HELD = 31,   /* ejections held back by max_ejection_percent (or a concurrent one) */
  SM_CNT_RS_UNTRACKED = 32,    /* a connection not charged: state entry or socket storage missing */
  SM_CNT__MAX = 33,
};

#endif
