/* Service lookup and backend choice by the service's policy. */
#ifndef SOCKMESH_BPF_LB_H
#define SOCKMESH_BPF_LB_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

#include "lib/maps.h"
#include "sockmesh/lb_select.h"
#include "sockmesh/maglev_hash.h"

enum sm_lb_result {
  SM_LB_NOT_A_SERVICE = 0,
  SM_LB_NO_BACKEND = 1,
  SM_LB_CHOSEN = 2,
};

static __always_inline int sm_choose_index(void *inner, const struct sm_backend_set *set, __u32 slot) {
  switch (set->policy) {
    case SM_LB_ROUND_ROBIN: {
      __u32 *cursor = bpf_map_lookup_elem(&sm_rr_cursors, &slot);
      if (!cursor)
        return -1;
      __u32 at = (*cursor)++; /* per-CPU: no other writer */
      return sm_select_round_robin(set, at);
    }
    case SM_LB_MAGLEV: {
      /* The client workload's cgroup: at connect() the source address is often not yet known,
       * and a workload keeps its cgroup for life. */
      __u32 pos = sm_maglev_position(bpf_get_current_cgroup_id(), set->maglev_size);
      __u32 chunk_key = 1 + pos / SM_MAGLEV_CHUNK;
      __u32 offset = pos % SM_MAGLEV_CHUNK;
      const __u8 *chunk = bpf_map_lookup_elem(inner, &chunk_key);
      SM_OPAQUE(offset); /* keep the bounds check below: the verifier needs it */
      if (!chunk || offset >= SM_MAGLEV_CHUNK)
        return -1;
      return sm_maglev_backend(set, chunk[offset]);
    }
    default:
      return sm_select_weighted(set, bpf_get_prandom_u32());
  }
}

/* Looks `key` up: for a service, its slot, inner map and backend set (SM_LB_CHOSEN here means
 * the set was found, SM_LB_NO_BACKEND that it was not). */
static __always_inline int sm_lookup_set(const struct sm_service_key *key, __u32 *slot_out,
                                         void **inner_out, const struct sm_backend_set **set_out) {
  const struct sm_service_value *svc = bpf_map_lookup_elem(&sm_services, key);
  if (!svc)
    return SM_LB_NOT_A_SERVICE;
  __u32 slot = svc->set_slot;
  __u32 zero = 0;
  *slot_out = slot;
  void *inner = bpf_map_lookup_elem(&sm_backend_sets, &slot);
  if (!inner)
    return SM_LB_NO_BACKEND;
  const struct sm_backend_set *set = bpf_map_lookup_elem(inner, &zero);
  if (!set)
    return SM_LB_NO_BACKEND;
  *inner_out = inner;
  *set_out = set;
  return SM_LB_CHOSEN;
}

/* Looks `key` up and, for a service, chooses a backend into *out. */
static __always_inline int sm_balance(const struct sm_service_key *key, const struct sm_backend **out) {
  __u32 slot = 0;
  void *inner = 0;
  const struct sm_backend_set *set = 0;
  int found = sm_lookup_set(key, &slot, &inner, &set);
  if (found != SM_LB_CHOSEN || !set)
    return found;
  int idx = sm_choose_index(inner, set, slot);
  if (idx < 0 || idx >= SM_MAX_BACKENDS)
    return SM_LB_NO_BACKEND;
  *out = &set->backends[idx & SM_BACKEND_MASK];
  return SM_LB_CHOSEN;
}

#endif
