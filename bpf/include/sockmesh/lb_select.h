/* Backend selection: plain C shared by the BPF programs and the user-space unit tests, so the
 * decision the kernel makes is tested without a kernel. */
#ifndef SOCKMESH_LB_SELECT_H
#define SOCKMESH_LB_SELECT_H

#include "lb_maps.h"

/* Binary search over SM_MAX_BACKENDS needs ceil(log2(64)) + 1 steps; a constant bound for the
 * verifier. */
#define SM_SELECT_STEPS 7
/* Indices are masked with SM_BACKEND_MASK after their bounds check: the verifier then knows the
 * bound even where the compiler moves the check to another register. */
#define SM_BACKEND_MASK (SM_MAX_BACKENDS - 1)
#if (SM_MAX_BACKENDS & SM_BACKEND_MASK) != 0
#error "SM_MAX_BACKENDS must be a power of two"
#endif

/* Hides a value from the optimiser so that a following mask is kept: clang drops a mask it can
 * prove redundant, and the verifier, which tracks bounds per register, then rejects the access. */
#if defined(__bpf__)
#define SM_OPAQUE(x) asm volatile("" : "+r"(x))
#else
#define SM_OPAQUE(x) ((void)0)
#endif

/* The backend owning `target` in [0, total_weight): the first whose cumulative weight exceeds it,
 * so a backend of weight 0 is never chosen. -1 when the set has no usable backend. */
static inline int sm_select_at(const struct sm_backend_set *set, __u32 target) {
  __u32 count = set->count;
  if (count == 0 || count > SM_MAX_BACKENDS || set->total_weight == 0)
    return -1;
  __u32 lo = 0, hi = count - 1;
  for (int step = 0; step < SM_SELECT_STEPS; step++) {
    if (lo >= hi)
      break;
    __u32 mid = (lo + hi) / 2;
    SM_OPAQUE(mid);
    mid &= SM_BACKEND_MASK; /* lo, hi < SM_MAX_BACKENDS: changes nothing but the verifier's view */
    if (set->backends[mid].weight_cum > target)
      hi = mid;
    else
      lo = mid + 1;
  }
  if (lo >= SM_MAX_BACKENDS)
    return -1;
  SM_OPAQUE(lo);
  lo &= SM_BACKEND_MASK;
  if (set->backends[lo].weight_cum <= target)
    return -1;
  return (int)lo;
}

/* Weighted random choice. rnd is a uniform 32-bit random number, scaled into [0, total_weight)
 * by multiply-and-shift (no modulo bias beyond 2^-32 per unit of weight). */
static inline int sm_select_weighted(const struct sm_backend_set *set, __u32 rnd) {
  __u32 target = (__u32)(((__u64)rnd * set->total_weight) >> 32);
  return sm_select_at(set, target);
}

/* Weighted round-robin: the cursor walks the weight space, so over any total_weight consecutive
 * picks of one cursor each backend is chosen exactly `weight` times (in runs, not interleaved). */
static inline int sm_select_round_robin(const struct sm_backend_set *set, __u32 cursor) {
  if (set->total_weight == 0)
    return -1;
  return sm_select_at(set, cursor % set->total_weight);
}

/* A Maglev table entry is an index into backends[]; it is usable when it names a backend of
 * positive weight (the table builder never names others; this guards a corrupt table). */
static inline int sm_maglev_backend(const struct sm_backend_set *set, __u32 entry) {
  if (entry >= set->count || entry >= SM_MAX_BACKENDS)
    return -1;
  SM_OPAQUE(entry);
  entry &= SM_BACKEND_MASK;
  __u32 before = entry ? set->backends[(entry - 1) & SM_BACKEND_MASK].weight_cum : 0;
  if (set->backends[entry].weight_cum <= before)
    return -1;
  return (int)entry;
}

#endif
