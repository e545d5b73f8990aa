/* Global data-path counters: sm_counters is a PERCPU_ARRAY indexed by enum sm_counter; the agent
 * sums the CPUs. Names for display live in the agent (agent/telemetry) and must follow this order. */
#ifndef SOCKMESH_COUNTERS_H
#define SOCKMESH_COUNTERS_H

enum sm_counter {
  SM_CNT_CONNECT_BALANCED = 0,   /* connect() to a VIP rewritten to a backend */
  SM_CNT_CONNECT_NO_BACKEND = 1, /* connect() to a VIP with no usable backend: failed, ECONNREFUSED */
  SM_CNT_CONNECT_PASSTHROUGH = 2,/* connect() to a non-VIP destination, left untouched */
  SM_CNT_PEERNAME_RESTORED = 3,  /* getpeername() answered with the VIP instead of the backend */
  SM_CNT_ORIG_DST_LOST = 4,      /* balanced, but the VIP could not be remembered for getpeername() */
  SM_CNT__MAX = 5,
};

#endif
