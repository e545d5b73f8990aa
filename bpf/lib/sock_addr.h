/* Reading and writing the destination of a cgroup sock_addr hook, for both families: the service
 * key it names, and the backend it is rewritten to. IPv4-mapped IPv6 destinations
 * (::ffff:a.b.c.d, used by dual-stack sockets) are balanced as IPv4. */
#ifndef SOCKMESH_BPF_SOCK_ADDR_H
#define SOCKMESH_BPF_SOCK_ADDR_H

#include "vmlinux.h"
#include <bpf/bpf_endian.h>

#include "lib/maps.h"

#define SM_IPPROTO_TCP 6
#define SM_IPPROTO_UDP 17
#define SM_SOCK_STREAM 1
#define SM_SOCK_DGRAM 2

/* The address the application gave, in the hook's own format (for restoring it later). */
static __always_inline void sm_read_orig(const struct bpf_sock_addr *ctx, int v6, struct sm_orig_dst *orig) {
  if (v6) {
    orig->addr[0] = ctx->user_ip6[0];
    orig->addr[1] = ctx->user_ip6[1];
    orig->addr[2] = ctx->user_ip6[2];
    orig->addr[3] = ctx->user_ip6[3];
    orig->family = SM_AF_INET6;
  } else {
    orig->addr[0] = ctx->user_ip4;
    orig->addr[1] = orig->addr[2] = orig->addr[3] = 0;
    orig->family = SM_AF_INET;
  }
  orig->port = ctx->user_port;
}

static __always_inline int sm_is_v4_mapped(const struct sm_orig_dst *orig) {
  return orig->family == SM_AF_INET6 && orig->addr[0] == 0 && orig->addr[1] == 0 &&
         orig->addr[2] == bpf_htonl(0xffff);
}

/* The service key an address names. */
static __always_inline void sm_key_of(const struct sm_orig_dst *orig, __u8 proto, struct sm_service_key *key) {
  if (sm_is_v4_mapped(orig)) {
    key->addr[0] = orig->addr[3];
    key->addr[1] = key->addr[2] = key->addr[3] = 0;
    key->family = SM_AF_INET;
  } else {
    key->addr[0] = orig->addr[0];
    key->addr[1] = orig->addr[1];
    key->addr[2] = orig->addr[2];
    key->addr[3] = orig->addr[3];
    key->family = (__u8)orig->family;
  }
  key->port = (__u16)orig->port;
  key->proto = proto;
}

/* Points the hook at `be`, in the format the application used (v4-mapped stays v4-mapped).
 * `v6` is a constant per program: the verifier refuses user_ip6 in a v4 hook even on a dead path. */
static __always_inline void sm_write_backend(struct bpf_sock_addr *ctx, int v6, const struct sm_orig_dst *orig,
                                             const struct sm_backend *be) {
  if (!v6) {
    ctx->user_ip4 = be->addr[0];
  } else if (sm_is_v4_mapped(orig)) {
    ctx->user_ip6[0] = 0;
    ctx->user_ip6[1] = 0;
    ctx->user_ip6[2] = bpf_htonl(0xffff);
    ctx->user_ip6[3] = be->addr[0];
  } else {
    ctx->user_ip6[0] = be->addr[0];
    ctx->user_ip6[1] = be->addr[1];
    ctx->user_ip6[2] = be->addr[2];
    ctx->user_ip6[3] = be->addr[3];
  }
  ctx->user_port = be->port;
}

/* Writes a remembered address back into the hook (getpeername, recvmsg). */
static __always_inline void sm_write_orig(struct bpf_sock_addr *ctx, int v6, const struct sm_orig_dst *orig) {
  if (!v6) {
    ctx->user_ip4 = orig->addr[0];
  } else {
    ctx->user_ip6[0] = orig->addr[0];
    ctx->user_ip6[1] = orig->addr[1];
    ctx->user_ip6[2] = orig->addr[2];
    ctx->user_ip6[3] = orig->addr[3];
  }
  ctx->user_port = orig->port;
}

/* Remembers what the application connected to, for getpeername(). */
static __always_inline void sm_remember_orig(struct bpf_sock_addr *ctx,
                                             const struct sm_orig_dst *orig) {
  struct sm_orig_dst *stored =
      bpf_sk_storage_get(&sm_orig_dst_store, ctx->sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
  if (stored)
    *stored = *orig;
  else
    sm_count(SM_CNT_ORIG_DST_LOST);
}

/* Key of sm_udp_reverse for the address the hook now holds (after rewrite, or a reply's source). */
static __always_inline void sm_reverse_key_of(struct bpf_sock_addr *ctx, int v6, struct sm_reverse_key *key) {
  struct sm_orig_dst here = {};
  sm_read_orig(ctx, v6, &here);
  key->cookie = bpf_get_socket_cookie(ctx);
  key->addr[0] = here.addr[0];
  key->addr[1] = here.addr[1];
  key->addr[2] = here.addr[2];
  key->addr[3] = here.addr[3];
  key->port = here.port;
  key->family = here.family;
}

#endif
