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

/* Weighted random choice. rnd is a uniform 32-bit random number; it is scaled into
 * [0, total_weight) by multiply-and-shift (no modulo bias beyond 2^-32 per unit of weight).
 * Returns the index of the first backend whose cumulative weight exceeds the scaled value, so a
 * backend of weight 0 is never chosen; returns -1 when the set has no usable backend. */
static inline int sm_select_weighted(const struct sm_backend_set *set, __u32 rnd) {
  __u32 count = set->count;
  __u32 total = set->total_weight;
  if (count == 0 || count > SM_MAX_BACKENDS || total == 0)
    return -1;
  __u32 target = (__u32)(((__u64)rnd * total) >> 32);
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

#endif
