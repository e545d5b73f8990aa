/* Layout of the load-balancing maps, shared by bpf/ and the agent (the one definition of each).
 *
 * sm_services      HASH            sm_service_key -> sm_service_value   VIP:port/proto -> slot
 * sm_backend_sets  ARRAY_OF_MAPS   slot (u32)     -> inner ARRAY: [0] sm_backend_set,
 *                                                    [1..] the Maglev table, SM_MAGLEV_CHUNK bytes each
 *
 * Everything the kernel needs to choose a backend for a service (policy, backends, weights, Maglev
 * table) lives in the one inner map of its slot. A change builds a new inner map and swaps it into
 * the slot with one update. A connect() that already holds the old inner map finishes on it (the
 * kernel frees it only after an RCU grace period), so a racing connect sees the old service or the
 * new one, never a mix and never an empty one. */
#ifndef SOCKMESH_LB_MAPS_H
#define SOCKMESH_LB_MAPS_H

#include "types.h"

/* Upper bound on endpoints per service VIP; the config validator refuses more. A power of two. */
#define SM_MAX_BACKENDS 64
/* Upper bound on service VIP ports per node (entries of sm_services and slots of sm_backend_sets). */
#define SM_MAX_SERVICES 16384

/* Address families as the socket hooks report them. */
#define SM_AF_INET 2
#define SM_AF_INET6 10

/* Maglev table sizes (primes). */
#define SM_MAGLEV_DEFAULT_SIZE 4093
#define SM_MAGLEV_MIN_SIZE 13
#define SM_MAGLEV_MAX_SIZE 65521

enum sm_lb_policy {
  SM_LB_RANDOM = 0,      /* weighted random */
  SM_LB_ROUND_ROBIN = 1, /* weighted round-robin, one cursor per CPU and slot */
  SM_LB_MAGLEV = 2,      /* Maglev table indexed by a hash of the client's cgroup id */
  SM_LB_LEAST_CONN = 3,  /* the less loaded of two weighted-random picks (resilience.h) */
};

/* A service's resilience settings (docs/resilience.md), in its backend set so that they change
 * with its backends in one swap. All zero: connections are neither counted nor limited. */
struct sm_resilience {
  __u64 service;          /* the service's id (key of sm_service_states); 0: nothing tracked */
  __u64 base_ejection_ns; /* first ejection's length */
  __u64 max_ejection_ns;  /* cap on one ejection */
  __u64 rate_interval_ns; /* rate limit: 1e9 / connections per second; 0: no rate limit */
  __u64 rate_burst_ns;    /* how far ahead of now the bucket may run: (burst - 1) * interval */
  __u32 flags;            /* SM_RS_* (resilience.h) */
  __u32 max_connections;  /* per service; 0: no limit */
  __u32 max_backend_connections; /* per backend; 0: no limit */
  __u32 consecutive_failures;    /* failures in a row that eject; 0: outlier detection off */
  __u32 max_ejection_percent;
  __u32 fault_ppm;   /* connects failed by fault injection, per million; 0: none */
  __u32 fault_errno; /* the errno they fail with (positive) */
  __u32 pad;
};

/* An IPv4 address is in addr[0], the rest zero; all in network byte order. */
struct sm_service_key {
  __u32 addr[4];
  __u16 port;   /* network byte order */
  __u8 proto;   /* IPPROTO_TCP or IPPROTO_UDP */
  __u8 family;  /* SM_AF_INET or SM_AF_INET6 */
};

struct sm_service_value {
  __u32 set_slot; /* index into sm_backend_sets */
  __u32 flags;    /* reserved, 0 */
};

struct sm_backend {
  __u32 addr[4];    /* network byte order; IPv4 in addr[0] */
  __u16 port;       /* network byte order */
  __u8 family;      /* SM_AF_INET or SM_AF_INET6, the VIP's */
  __u8 pad;
  __u32 weight_cum; /* sum of the weights of this backend and every one before it */
};

/* Element 0 of an inner map of sm_backend_sets. */
struct sm_backend_set {
  __u32 count;        /* backends[0..count) are valid */
  __u32 total_weight; /* == backends[count-1].weight_cum; 0 means no usable backend */
  __u32 policy;       /* enum sm_lb_policy */
  __u32 maglev_size;  /* entries of the Maglev table (policy MAGLEV), else 0 */
  struct sm_resilience rs;
  struct sm_backend backends[SM_MAX_BACKENDS];
};

/* Elements 1.. of a Maglev service's inner map hold its table: entry i of the table is byte
 * i % SM_MAGLEV_CHUNK of element 1 + i / SM_MAGLEV_CHUNK, and is an index into backends[]. */
#define SM_MAGLEV_CHUNK (sizeof(struct sm_backend_set))
#define SM_INNER_MAX_ENTRIES (1 + (SM_MAGLEV_MAX_SIZE + SM_MAGLEV_CHUNK - 1) / SM_MAGLEV_CHUNK)

#endif
