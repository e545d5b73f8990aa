/* Layout of the load-balancing maps, shared by bpf/ and the agent (the one definition of each).
 *
 * sm_services      HASH            sm_service_key -> sm_service_value   VIP:port/proto -> set slot
 * sm_backend_sets  ARRAY_OF_MAPS   slot (u32)     -> inner ARRAY[1] of sm_backend_set
 *
 * A service's backends switch atomically: the agent builds a new inner map holding the whole
 * set and swaps it into the slot with one update. A connect() that already holds the old inner
 * map finishes on it (the kernel frees it only after an RCU grace period), so a racing connect
 * sees the old set or the new one, never a mix and never an empty one. */
#ifndef SOCKMESH_LB_MAPS_H
#define SOCKMESH_LB_MAPS_H

#include "types.h"

/* Upper bound on endpoints per service VIP; the config validator refuses more. */
#define SM_MAX_BACKENDS 64
/* Upper bound on service VIP ports per node (entries of sm_services and slots of sm_backend_sets). */
#define SM_MAX_SERVICES 16384

/* Key of sm_services. addr and port are in network byte order, as the socket hooks see them. */
struct sm_service_key {
  __u32 addr;
  __u16 port;
  __u8 proto; /* IPPROTO_TCP or IPPROTO_UDP */
  __u8 pad;
};

struct sm_service_value {
  __u32 set_slot; /* index into sm_backend_sets */
  __u32 flags;    /* reserved, 0 */
};

struct sm_backend {
  __u32 addr;       /* network byte order */
  __u16 port;       /* network byte order */
  __u16 pad;
  __u32 weight_cum; /* sum of the weights of this backend and every one before it */
};

/* Value of the single element of an inner map of sm_backend_sets. */
struct sm_backend_set {
  __u32 count;        /* backends[0..count) are valid */
  __u32 total_weight; /* == backends[count-1].weight_cum; 0 means no usable backend */
  struct sm_backend backends[SM_MAX_BACKENDS];
};

#endif
