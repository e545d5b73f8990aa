/* Resilience in the programs (docs/resilience.md): the connect hook's admission (fault injection,
 * rate limit, max_connections) and backend choice that skips ejected and full backends, charging
 * the one it takes; sock_ops' view of how the connection went (failures, successes) and the
 * release of its charges. Layouts and decisions: include/sockmesh/resilience.h.
 *
 * Costs on the connect() path of a tracked service: a hash lookup of the service's state and one
 * of the chosen backend's (two for least-connections), two atomic adds, one socket-storage
 * creation; the clock is read only when a backend is ejected or a rate limit is set. */
#ifndef SOCKMESH_BPF_RESILIENCE_H
#define SOCKMESH_BPF_RESILIENCE_H

// clang-format off
#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>
// clang-format on

#include "lib/maps.h"
#include "sockmesh/lb_select.h"
#include "sockmesh/resilience.h"

/* The errno of a connect refused by a limit: as a VIP without backends (docs/resilience.md). */
#define SM_ERR_REFUSED_RS 111 /* ECONNREFUSED */

/* What the connect hook chose and charged. */
struct sm_rs_pick {
  struct sm_backend_key key;
  struct sm_backend_state *backend; /* charged when flags has SM_RSC_BACKEND */
  struct sm_service_state *svc;     /* charged when flags has SM_RSC_SERVICE */
  __u32 flags;
  __u32 refuse; /* errno to fail the connect with; 0: go on */
  int index;    /* into set->backends, -1 when none */
};

/* The clock, read at most once per connect. */
static __always_inline __u64 sm_rs_now(__u64 *now) {
  if (*now == 0) *now = bpf_ktime_get_ns();
  return *now;
}

static __always_inline void sm_rs_key_of(struct sm_backend_key *key, __u64 service,
                                         const struct sm_backend *be) {
  key->service = service;
  key->addr[0] = be->addr[0];
  key->addr[1] = be->addr[1];
  key->addr[2] = be->addr[2];
  key->addr[3] = be->addr[3];
  key->port = be->port;
  key->family = be->family;
  key->pad = 0;
  key->pad2 = 0;
}

/* Fault injection, then the rate limit (a connect the fault fails takes no token). Returns the
 * errno to fail with, 0 to go on, and *fault whether fault injection failed it. `wl` is the
 * source workload (0 when unknown). */
static __always_inline __u32 sm_rs_admit(const struct sm_resilience *rs, struct sm_service_state *svc,
                                         const struct sm_workload *wl, __u64 *now, int *fault) {
  struct sm_rate_source_key src = {.service = rs->service, .workload = wl ? wl->id : 0};
  if (rs->fault_ppm != 0) {
    int applies = 1;
    if (rs->flags & SM_RS_FAULT_SCOPED)
      applies = wl && wl->id != 0 && bpf_map_lookup_elem(&sm_fault_sources, &src) != 0;
    if (applies && sm_rs_fault_hit(rs->fault_ppm, bpf_get_prandom_u32())) {
      __sync_fetch_and_add(&svc->faults, 1);
      sm_count(SM_CNT_RS_FAULT);
      *fault = 1;
      return rs->fault_errno;
    }
  }
  if (rs->rate_interval_ns != 0) {
    __u64 *tat = &svc->tat;
    if ((rs->flags & SM_RS_RATE_PER_SOURCE) && wl && wl->id != 0) {
      tat = bpf_map_lookup_elem(&sm_rate_sources, &src);
      if (!tat) {
        __u64 fresh = 0;
        bpf_map_update_elem(&sm_rate_sources, &src, &fresh, BPF_NOEXIST);
        tat = bpf_map_lookup_elem(&sm_rate_sources, &src);
      }
    }
    if (tat) {
      __u64 t = sm_rs_now(now);
      int allowed = 0;
      /* Compare-and-swap: two CPUs taking the last token at once, one of them retries. A bucket
       * that changes under us three times in a row lets the connect through (never refuses on
       * contention alone). */
      for (int attempt = 0; attempt < 3; attempt++) {
        __u64 seen = *tat, next = 0;
        if (!sm_rs_gcra(seen, t, rs->rate_interval_ns, rs->rate_burst_ns, &next)) {
          allowed = 0;
          break;
        }
        allowed = 1;
        if (__sync_val_compare_and_swap(tat, seen, next) == seen) break;
      }
      if (!allowed) {
        __sync_fetch_and_add(&svc->rate_limited, 1);
        sm_count(SM_CNT_RS_RATE_LIMITED);
        return SM_ERR_REFUSED_RS;
      }
    }
  }
  return 0;
}

/* Tries to give the connect to backends[idx]: usable (weight above 0, not ejected, under its
 * limit) and charged. A backend without a state entry (the agent has not written it yet) is taken
 * uncharged. Returns SM_RS_USABLE when taken. */
static __always_inline int sm_rs_take(const struct sm_backend_set *set, int idx,
                                      struct sm_rs_pick *pick, __u64 *now) {
  if (idx < 0 || idx >= SM_MAX_BACKENDS || (__u32)idx >= set->count) return SM_RS_FULL;
  __u32 i = (__u32)idx & SM_BACKEND_MASK;
  __u32 before = i ? set->backends[(i - 1) & SM_BACKEND_MASK].weight_cum : 0;
  const struct sm_backend *be = &set->backends[i];
  if (be->weight_cum <= before) return SM_RS_FULL; /* weight 0: never chosen */
  struct sm_backend_key key = {};
  sm_rs_key_of(&key, set->rs.service, be);
  struct sm_backend_state *st = bpf_map_lookup_elem(&sm_backend_states, &key);
  if (!st) {
    sm_count(SM_CNT_RS_UNTRACKED);
    pick->key = key;
    pick->backend = 0;
    pick->index = idx;
    return SM_RS_USABLE;
  }
  /* The decision of resilience.h (unit-tested) on what the state shows now; the clock only when
   * the backend was ever ejected. The charge below re-checks the limit atomically. */
  __u32 max = set->rs.max_backend_connections;
  int why = sm_rs_backend_check(st, max, st->ejected_until != 0 ? sm_rs_now(now) : 0);
  if (why == SM_RS_FULL) __sync_fetch_and_add(&st->overflows, 1);
  if (why != SM_RS_USABLE) return why;
  __s64 before_charge = __sync_fetch_and_add(&st->active, 1);
  if (max != 0 && before_charge >= (__s64)max) {
    __sync_fetch_and_add(&st->active, -1);
    __sync_fetch_and_add(&st->overflows, 1);
    return SM_RS_FULL;
  }
  __sync_fetch_and_add(&st->connects, 1);
  pick->key = key;
  pick->backend = st;
  pick->flags |= SM_RSC_BACKEND;
  pick->index = idx;
  return SM_RS_USABLE;
}

static __always_inline __s64 sm_rs_active_of(const struct sm_backend_set *set, int idx) {
  if (idx < 0 || idx >= SM_MAX_BACKENDS) return 0;
  struct sm_backend_key key = {};
  sm_rs_key_of(&key, set->rs.service, &set->backends[(__u32)idx & SM_BACKEND_MASK]);
  const struct sm_backend_state *st = bpf_map_lookup_elem(&sm_backend_states, &key);
  return st ? st->active : 0;
}

/* The scan after the first picks failed: from a random backend on, the first that takes the
 * connect. Run through bpf_loop: a plain loop of 64 map lookups with their branches costs the
 * verifier far more than one callback. */
struct sm_rs_scan {
  const struct sm_backend_set *set;
  struct sm_rs_pick *pick;
  __u64 *now;
  __u32 start;
  __u32 count;
  int found;
};

static long sm_rs_scan_one(__u32 i, void *data) {
  struct sm_rs_scan *scan = data;
  if (i >= scan->count) return 1;
  int idx = (int)((scan->start + i) % scan->count);
  if (sm_rs_take(scan->set, idx, scan->pick, scan->now) == SM_RS_USABLE) {
    scan->found = 1;
    return 1;
  }
  return 0;
}

/* Chooses and charges a backend of a tracked service: the policy's pick (least-connections: the
 * less loaded of two weighted-random picks), then up to two more weighted-random picks, then a
 * scan. Sets pick->refuse when the service is at its limit or no backend can take the connect. */
static __always_inline void sm_rs_choose(const struct sm_backend_set *set, int first,
                                         struct sm_service_state *svc, struct sm_rs_pick *pick,
                                         __u64 *now) {
  pick->index = -1;
  if (set->policy == SM_LB_LEAST_CONN) {
    int a = sm_select_weighted(set, bpf_get_prandom_u32());
    int b = sm_select_weighted(set, bpf_get_prandom_u32());
    first = a;
    if (a >= 0 && b >= 0 && a != b && sm_rs_active_of(set, b) < sm_rs_active_of(set, a)) first = b;
  }
  int taken = sm_rs_take(set, first, pick, now) == SM_RS_USABLE;
  if (!taken) {
    for (int retry = 0; retry < 2 && !taken; retry++)
      taken = sm_rs_take(set, sm_select_weighted(set, bpf_get_prandom_u32()), pick, now) ==
              SM_RS_USABLE;
    if (!taken) {
      struct sm_rs_scan scan = {.set = set, .pick = pick, .now = now,
                                .count = set->count < SM_MAX_BACKENDS ? set->count : SM_MAX_BACKENDS};
      scan.start = scan.count ? bpf_get_prandom_u32() % scan.count : 0;
      bpf_loop(SM_MAX_BACKENDS, sm_rs_scan_one, &scan, 0);
      taken = scan.found;
    }
    if (taken) sm_count(SM_CNT_RS_REROUTED);
  }
  if (!taken) {
    __sync_fetch_and_add(&svc->no_backend, 1);
    sm_count(SM_CNT_RS_NO_BACKEND);
    pick->refuse = SM_ERR_REFUSED_RS;
    return;
  }
  /* The service's limit last: a connect refused above must not hold a service charge. */
  __u32 max = set->rs.max_connections;
  __s64 before_charge = __sync_fetch_and_add(&svc->active, 1);
  pick->svc = svc;
  pick->flags |= SM_RSC_SERVICE;
  if (max != 0 && before_charge >= (__s64)max) {
    __sync_fetch_and_add(&svc->overflows, 1);
    sm_count(SM_CNT_RS_OVERFLOW);
    pick->refuse = SM_ERR_REFUSED_RS;
  }
}

/* Undoes a pick's charges (a connect refused after its backend was chosen). */
static __always_inline void sm_rs_unpick(struct sm_rs_pick *pick) {
  if ((pick->flags & SM_RSC_BACKEND) && pick->backend) {
    __sync_fetch_and_add(&pick->backend->active, -1);
    __sync_fetch_and_add(&pick->backend->connects, -1);
  }
  if ((pick->flags & SM_RSC_SERVICE) && pick->svc) __sync_fetch_and_add(&pick->svc->active, -1);
  pick->flags &= ~(SM_RSC_BACKEND | SM_RSC_SERVICE);
}

static __always_inline void sm_rs_release(struct sm_rs_conn *rec);

/* Leaves the charges on the socket, for sock_ops or sock_release to give back. A socket that
 * cannot hold them gives them back at once. */
static __always_inline void sm_rs_remember(struct bpf_sock *sk, __u32 slot, struct sm_rs_pick *pick,
                                           int captured) {
  if (!(pick->flags & (SM_RSC_BACKEND | SM_RSC_SERVICE))) return;
  struct sm_rs_conn *rec = bpf_sk_storage_get(&sm_rs_conns, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
  if (!rec) {
    sm_count(SM_CNT_RS_UNTRACKED);
    sm_rs_unpick(pick);
    return;
  }
  sm_rs_release(rec); /* a socket connecting again after a failed connect */
  rec->backend = pick->key;
  rec->backend_gen = pick->backend ? pick->backend->gen : 0;
  rec->service_gen = pick->svc ? pick->svc->gen : 0;
  rec->slot = slot;
  rec->flags = pick->flags | (captured ? SM_RSC_CAPTURED : 0);
}

/* Gives a connection's charges back, once, whoever calls first. */
static __always_inline void sm_rs_release(struct sm_rs_conn *rec) {
  __u32 had = __sync_fetch_and_and(&rec->flags, ~(__u32)(SM_RSC_BACKEND | SM_RSC_SERVICE));
  if (had & SM_RSC_BACKEND) {
    struct sm_backend_state *st = bpf_map_lookup_elem(&sm_backend_states, &rec->backend);
    if (st && st->gen == rec->backend_gen) __sync_fetch_and_add(&st->active, -1);
  }
  if (had & SM_RSC_SERVICE) {
    __u64 service = rec->backend.service;
    struct sm_service_state *svc = bpf_map_lookup_elem(&sm_service_states, &service);
    if (svc && svc->gen == rec->service_gen) __sync_fetch_and_add(&svc->active, -1);
  }
}

/* The service's current settings, by the VIP slot's backend set; 0 when the slot now holds
 * another service or none. */
struct sm_rs_count {
  const struct sm_backend_set *set;
  __u64 now;
  __u32 count;
  __u32 ejected;
};

static long sm_rs_count_one(__u32 i, void *data) {
  struct sm_rs_count *c = data;
  if (i >= c->count || i >= SM_MAX_BACKENDS) return 1;
  struct sm_backend_key key = {};
  sm_rs_key_of(&key, c->set->rs.service, &c->set->backends[i & SM_BACKEND_MASK]);
  const struct sm_backend_state *st = bpf_map_lookup_elem(&sm_backend_states, &key);
  if (st && sm_rs_ejected(st, c->now)) c->ejected++;
  return 0;
}

/* A failure of a backend: counted, and once the run reaches the threshold the backend is ejected
 * (docs/resilience.md). The settings are read from the service's current backend set through
 * `slot`, the VIP port the connection was balanced by. */
static __always_inline void sm_rs_backend_failed(struct sm_backend_state *st,
                                                 const struct sm_backend_key *backend, __u32 slot) {
  __sync_fetch_and_add(&st->failures, 1);
  sm_count(SM_CNT_RS_FAILURES);
  __u32 consecutive = __sync_add_and_fetch(&st->consecutive, 1);

  __u32 zero = 0;
  void *inner = bpf_map_lookup_elem(&sm_backend_sets, &slot);
  if (!inner) return;
  const struct sm_backend_set *set = bpf_map_lookup_elem(inner, &zero);
  if (!set || set->rs.service != backend->service) return;
  __u64 now = bpf_ktime_get_ns();
  if (!sm_rs_should_eject(st, consecutive, set->rs.consecutive_failures, now)) return;
  __u64 service = backend->service;
  struct sm_service_state *svc = bpf_map_lookup_elem(&sm_service_states, &service);
  if (!svc) return;
  /* One ejection decision at a time per service, so that two failures on two CPUs cannot both
   * pass the percentage; the loser leaves it to the next failure. */
  if (__sync_val_compare_and_swap(&svc->eject_lock, 0, 1) != 0) {
    sm_count(SM_CNT_RS_EJECT_HELD);
    return;
  }
  struct sm_rs_count c = {.set = set, .now = now,
                          .count = set->count < SM_MAX_BACKENDS ? set->count : SM_MAX_BACKENDS};
  bpf_loop(SM_MAX_BACKENDS, sm_rs_count_one, &c, 0);
  if (sm_rs_eject(st, now, &set->rs, c.ejected, c.count))
    sm_count(SM_CNT_RS_EJECTIONS);
  else
    sm_count(SM_CNT_RS_EJECT_HELD);
  asm volatile("" ::: "memory"); /* the state's writes before the unlock */
  svc->eject_lock = 0;
}

/* A failure seen on the connection's own socket (sock_ops), at most one per connection. */
static __always_inline void sm_rs_failed(struct sm_rs_conn *rec) {
  if (rec->flags & SM_RSC_CAPTURED) return; /* the agent's connect, reported by the agent */
  __u32 had = __sync_fetch_and_or(&rec->flags, SM_RSC_FAILED);
  if (had & SM_RSC_FAILED) return;
  struct sm_backend_state *st = bpf_map_lookup_elem(&sm_backend_states, &rec->backend);
  if (!st || st->gen != rec->backend_gen) return;
  sm_rs_backend_failed(st, &rec->backend, rec->slot);
}

/* The agent's report of a connect it made (SM_SO_RS_REPORT). */
static __always_inline void sm_rs_reported(const struct sm_rs_report *report) {
  struct sm_backend_key key = report->backend;
  struct sm_backend_state *st = bpf_map_lookup_elem(&sm_backend_states, &key);
  if (!st) return;
  if (report->outcome == SM_RS_REPORT_FAILED)
    sm_rs_backend_failed(st, &key, report->slot);
  else if (report->outcome == SM_RS_REPORT_SUCCEEDED && st->consecutive != 0)
    st->consecutive = 0;
}

/* The socket's error (sk_err) as sock_ops sees it: set when a connect was refused or timed out,
 * 0 when the application closed a socket that was still connecting. */
static __always_inline int sm_rs_sock_error(struct bpf_sock *sk) {
  if (!sk) return 0;
  struct tcp_sock *tp = bpf_skc_to_tcp_sock(sk);
  if (!tp) return 0;
  return BPF_CORE_READ(tp, inet_conn.icsk_inet.sk.sk_err);
}

/* sock_ops' part, for a socket that carries a charge record (else nothing happens). Returns the
 * callbacks to switch on at TCP_CONNECT_CB. `sk` is skops->sk, read once by the caller at a
 * constant offset (the verifier refuses a context pointer the compiler has moved). */
static __always_inline __u32 sm_rs_ops_connect(struct bpf_sock *sk) {
  if (!sk) return 0;
  struct sm_rs_conn *rec = bpf_sk_storage_get(&sm_rs_conns, sk, 0, 0);
  if (!rec) return 0;
  if (rec->flags & SM_RSC_CAPTURED) return BPF_SOCK_OPS_STATE_CB_FLAG;
  return BPF_SOCK_OPS_STATE_CB_FLAG | BPF_SOCK_OPS_RTO_CB_FLAG;
}

static __always_inline struct sm_rs_conn *sm_rs_record(struct bpf_sock *sk) {
  return sk ? bpf_sk_storage_get(&sm_rs_conns, sk, 0, 0) : 0;
}

/* The connection reached its backend: the backend's run of failures ends. */
static __always_inline void sm_rs_succeeded(const struct sm_rs_conn *rec) {
  if (rec->flags & SM_RSC_CAPTURED) return;
  struct sm_backend_state *st = bpf_map_lookup_elem(&sm_backend_states, &rec->backend);
  if (st && st->gen == rec->backend_gen && st->consecutive != 0) st->consecutive = 0;
}

#endif
