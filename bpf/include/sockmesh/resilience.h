/* Resilience at connect() (docs/resilience.md): circuit breaking, least-connections, outlier
 * ejection, connection rate limits and fault injection. Layouts shared by bpf/ and the agent, and
 * the decisions in plain C, so that the kernel's choices are unit-tested without a kernel and
 * with a clock the test sets (every decision takes `now` as an argument).
 *
 * sm_service_states  HASH  service id (u64)        -> sm_service_state   active, rate bucket, counts
 * sm_backend_states  HASH  sm_backend_key          -> sm_backend_state   active, failures, ejection
 * sm_rate_sources    LRU   sm_rate_source_key      -> __u64 bucket        per-source rate limits
 * sm_fault_sources   HASH  sm_rate_source_key      -> __u32 (1)           sources a fault applies to
 * sm_rs_conns        SK_STORAGE                    -> sm_rs_conn          what a connection was charged
 *
 * The settings travel in the service's backend set (struct sm_resilience in lb_maps.h), swapped
 * with its backends, so a connect sees one consistent service. The agent creates the state
 * entries before a set names them and removes them once nothing names them and nothing is
 * charged to them; the kernel only looks them up. */
#ifndef SOCKMESH_RESILIENCE_H
#define SOCKMESH_RESILIENCE_H

#include "lb_maps.h"
#include "types.h"

/* Entries of sm_backend_states: every service port's backends, twice over for changes. */
#define SM_RS_MAX_BACKEND_STATES 131072

/* sm_resilience.flags */
#define SM_RS_RATE_PER_SOURCE 0x1 /* one bucket per source workload (sm_rate_sources) */
#define SM_RS_FAULT_SCOPED 0x2    /* the fault applies only to sources in sm_fault_sources */

/* Failures the kernel sees on a connection, each counted at most once per connection. Not
 * settings: a SYN that went unanswered twice (about 3 s with Linux's 1 s initial RTO) is a
 * timed-out connect; three RTOs in a row on an established connection are an RTO storm. */
#define SM_RS_SYN_RTO_FAILURE 1   /* icsk_retransmits at the RTO callback, SYN_SENT */
#define SM_RS_DATA_RTO_FAILURE 2  /* icsk_retransmits at the RTO callback, established */

/* Key of sm_backend_states: a backend of one service (the same address in two services is two
 * backends: each service has its own limits and its own view of failures). */
struct sm_backend_key {
  __u64 service; /* the service's id (sm_resilience.service) */
  __u32 addr[4]; /* network byte order; IPv4 in addr[0] */
  __u16 port;    /* network byte order */
  __u8 family;   /* SM_AF_INET or SM_AF_INET6 */
  __u8 pad;
  __u32 pad2;
};

struct sm_backend_state {
  __s64 active;          /* connections charged to the backend now (atomic) */
  __u64 ejected_until;   /* CLOCK_MONOTONIC ns; ejected while now < ejected_until */
  __u64 connects;        /* connects charged to it, ever */
  __u64 failures;        /* failures counted against it, ever */
  __u64 overflows;       /* connects that found it at max_connections_per_backend */
  __u32 consecutive;     /* failures since its last success */
  __u32 ejections;       /* ejections in a row: the next lasts ejections + 1 times the base */
  __u32 ejections_total; /* ejections, ever */
  __u32 gen;             /* set by the agent when it creates the entry; a connection charged to
                            an earlier entry of the same key releases nothing here */
};

struct sm_service_state {
  __s64 active;       /* connections charged to the service now (atomic) */
  __u64 tat;          /* node-wide rate bucket: theoretical arrival time (GCRA), ns */
  __u64 overflows;    /* connects refused: max_connections reached */
  __u64 no_backend;   /* connects refused: every backend ejected or at its limit */
  __u64 rate_limited; /* connects refused by the rate limit */
  __u64 faults;       /* connects failed by fault injection */
  __u32 eject_lock;   /* 1 while a failure decides an ejection (one at a time per service) */
  __u32 gen;          /* as sm_backend_state.gen */
};

/* Key of sm_rate_sources and sm_fault_sources. */
struct sm_rate_source_key {
  __u64 service;
  __u32 workload; /* sm_workload.id of the source */
  __u32 pad;
};

/* sm_rs_conn.flags */
#define SM_RSC_BACKEND 0x1  /* one connection charged to the backend, not yet released */
#define SM_RSC_SERVICE 0x2  /* one connection charged to the service, not yet released */
#define SM_RSC_CAPTURED 0x4 /* the socket goes to the agent: the agent reports the outcome */
#define SM_RSC_FAILED 0x8   /* a failure was counted for this connection */

/* What a connection was charged to, on its socket: released on close (sock_ops) or when the
 * application lets the socket go (cgroup/sock_release), whichever comes first. */
struct sm_rs_conn {
  struct sm_backend_key backend;
  __u32 backend_gen;
  __u32 service_gen;
  __u32 flags; /* SM_RSC_* */
  __u32 slot;  /* the service's backend-set slot: a failure reads the current settings there */
};

/* How the agent reports the outcome of a connect it made on a captured connection's behalf (to a
 * backend on another node, whose failures this node's kernel never sees): a setsockopt() at
 * SOL_IP with this option on any socket of the agent's cgroup; the agent's cgroup/setsockopt
 * program counts it as sock_ops counts a failure or success, and the kernel's setsockopt is
 * skipped. */
#define SM_SO_RS_REPORT 0x534e /* "SN" */
#define SM_RS_REPORT_FAILED 1
#define SM_RS_REPORT_SUCCEEDED 2

struct sm_rs_report {
  struct sm_backend_key backend;
  __u32 slot;    /* a backend-set slot of the service (one of its TCP VIP ports) */
  __u32 outcome; /* SM_RS_REPORT_* */
};

/* ---- Decisions ---- */

/* Why a backend cannot take a connect now. */
enum sm_rs_unusable {
  SM_RS_USABLE = 0,
  SM_RS_EJECTED = 1,
  SM_RS_FULL = 2,
};

static inline int sm_rs_ejected(const struct sm_backend_state *st, __u64 now) {
  return st->ejected_until != 0 && now < st->ejected_until;
}

/* Whether the backend may take one more connection (before charging it; the charge itself
 * re-checks the limit atomically). max_backend 0: no limit. */
static inline int sm_rs_backend_check(const struct sm_backend_state *st, __u32 max_backend,
                                      __u64 now) {
  if (sm_rs_ejected(st, now)) return SM_RS_EJECTED;
  if (max_backend != 0 && st->active >= (__s64)max_backend) return SM_RS_FULL;
  return SM_RS_USABLE;
}

/* Token bucket as GCRA: a connect at `now` is allowed when the bucket's theoretical arrival time
 * is at most `burst_ns` ahead of now; it then moves one interval further. `burst` connects pass
 * at once from a full bucket, then one per interval. Returns 1 and sets *next when allowed. */
static inline int sm_rs_gcra(__u64 tat, __u64 now, __u64 interval, __u64 burst_ns, __u64 *next) {
  __u64 start = tat > now ? tat : now;
  if (start - now > burst_ns) return 0;
  *next = start + interval;
  return 1;
}

/* Fault injection: `rnd` uniform in [0, 2^32); fails `ppm` of a million connects. */
static inline int sm_rs_fault_hit(__u32 ppm, __u32 rnd) {
  return (__u32)(((__u64)rnd * 1000000ULL) >> 32) < ppm;
}

/* How many of `count` backends may be ejected at once: percent of them, at least one when the
 * percent is above 0 (Envoy's rule, so a small service can eject its one bad backend). */
static inline __u32 sm_rs_max_ejected(__u32 percent, __u32 count) {
  if (percent == 0 || count == 0) return 0;
  __u32 allowed = (__u32)(((__u64)count * percent) / 100);
  return allowed ? allowed : 1;
}

/* Length of the ejection that follows `ejections` earlier ones in a row: base times their number
 * plus one, capped. */
static inline __u64 sm_rs_ejection_ns(__u64 base, __u64 max, __u32 ejections) {
  __u64 n = (__u64)ejections + 1;
  if (base == 0) return 0;
  if (n > max / base) return max;
  __u64 d = base * n;
  return d > max ? max : d;
}

/* A failure that reached the threshold: ejects the backend unless `ejected_now` of the service's
 * `count` backends are already out (max_ejection_percent). A backend that returned and stayed
 * out of trouble for max_ejection_ns since its last ejection ended starts again at the base time.
 * Returns 1 when it ejected (st updated), 0 when the percentage held it back. */
static inline int sm_rs_eject(struct sm_backend_state *st, __u64 now, const struct sm_resilience *rs,
                              __u32 ejected_now, __u32 count) {
  __u64 base = rs->base_ejection_ns, max = rs->max_ejection_ns;
  if (ejected_now >= sm_rs_max_ejected(rs->max_ejection_percent, count)) return 0;
  if (st->ejected_until != 0 && now > st->ejected_until && now - st->ejected_until > max)
    st->ejections = 0;
  st->ejected_until = now + sm_rs_ejection_ns(base, max, st->ejections);
  st->ejections++;
  st->ejections_total++;
  st->consecutive = 0;
  return 1;
}

/* Whether a failure that brought the backend's run of failures to `consecutive` should try to
 * eject it: outlier detection is on, the run reached the threshold, it is not out already. */
static inline int sm_rs_should_eject(const struct sm_backend_state *st, __u32 consecutive,
                                     __u32 threshold, __u64 now) {
  return threshold != 0 && consecutive >= threshold && !sm_rs_ejected(st, now);
}

/* Whether an RTO callback counts as a failure: `retransmits` is icsk_retransmits as the callback
 * reports it (0 at the first RTO). */
static inline int sm_rs_rto_failure(int connecting, __u32 retransmits) {
  return connecting ? retransmits >= SM_RS_SYN_RTO_FAILURE : retransmits >= SM_RS_DATA_RTO_FAILURE;
}

#endif
