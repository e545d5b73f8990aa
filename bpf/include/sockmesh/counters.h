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
  SM_CNT__MAX = 9,
};

#endif
