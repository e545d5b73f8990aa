// SPDX-License-Identifier: GPL-2.0
/* Socket-level load balancing: a connect() to a service VIP is rewritten to one of its backends
 * before the SYN is built, so no packet ever carries the VIP; getpeername() gives the VIP back so
 * the application sees what it asked for. */
#include "vmlinux.h"
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "lib/maps.h"
#include "sockmesh/lb_select.h"

#define SM_SOCK_STREAM 1
#define SM_IPPROTO_TCP 6
/* Documented in docs/datapath.md: a VIP without a usable backend refuses, as kube-proxy's REJECT
 * rule does, so clients fail fast instead of timing out. */
#define SM_ERR_NO_BACKEND 111 /* ECONNREFUSED */

/* Cgroup sock_addr verdicts. */
#define SM_ALLOW 1
#define SM_REJECT 0

static __always_inline const struct sm_backend_set *sm_lookup_set(const struct sm_service_value *svc) {
  __u32 slot = svc->set_slot;
  __u32 zero = 0;
  void *inner = bpf_map_lookup_elem(&sm_backend_sets, &slot);
  if (!inner)
    return 0;
  return bpf_map_lookup_elem(inner, &zero);
}

SEC("cgroup/connect4")
int sm_connect4(struct bpf_sock_addr *ctx) {
  if (ctx->type != SM_SOCK_STREAM || ctx->protocol != SM_IPPROTO_TCP)
    return SM_ALLOW;

  struct sm_service_key key = {
      .addr = ctx->user_ip4,
      .port = (__u16)ctx->user_port,
      .proto = SM_IPPROTO_TCP,
  };
  const struct sm_service_value *svc = bpf_map_lookup_elem(&sm_services, &key);
  if (!svc) {
    sm_count(SM_CNT_CONNECT_PASSTHROUGH);
    return SM_ALLOW;
  }

  const struct sm_backend_set *set = sm_lookup_set(svc);
  int idx = set ? sm_select_weighted(set, bpf_get_prandom_u32()) : -1;
  if (idx < 0 || idx >= SM_MAX_BACKENDS) {
    sm_count(SM_CNT_CONNECT_NO_BACKEND);
    bpf_set_retval(-SM_ERR_NO_BACKEND);
    return SM_REJECT;
  }
  const struct sm_backend *be = &set->backends[idx & SM_BACKEND_MASK];

  struct sm_orig_dst *orig =
      bpf_sk_storage_get(&sm_orig_dst_store, ctx->sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
  if (orig) {
    orig->addr = ctx->user_ip4;
    orig->port = ctx->user_port;
  } else {
    sm_count(SM_CNT_ORIG_DST_LOST);
  }

  ctx->user_ip4 = be->addr;
  ctx->user_port = be->port;
  sm_count(SM_CNT_CONNECT_BALANCED);
  return SM_ALLOW;
}

SEC("cgroup/getpeername4")
int sm_getpeername4(struct bpf_sock_addr *ctx) {
  if (ctx->type != SM_SOCK_STREAM)
    return SM_ALLOW;
  struct sm_orig_dst *orig = bpf_sk_storage_get(&sm_orig_dst_store, ctx->sk, 0, 0);
  if (!orig)
    return SM_ALLOW;
  ctx->user_ip4 = orig->addr;
  ctx->user_port = orig->port;
  sm_count(SM_CNT_PEERNAME_RESTORED);
  return SM_ALLOW;
}

char LICENSE[] SEC("license") = "GPL";
