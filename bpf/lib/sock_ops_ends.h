/* A sock_ops socket's two ends as the kernel reports them, read once for every user (capture's
 * flow key, the fast path's key). */
#ifndef SOCKMESH_BPF_SOCK_OPS_ENDS_H
#define SOCKMESH_BPF_SOCK_OPS_ENDS_H

/* vmlinux.h must come first. */
// clang-format off
#include "vmlinux.h"
#include <bpf/bpf_endian.h>

#include "sockmesh/lb_maps.h"
// clang-format on

struct sm_ops_ends {
  __u32 family;   /* of the socket: an IPv6 socket carrying IPv4 has IPv4-mapped addresses */
  __u32 local[4]; /* network order; IPv4 in [0], rest 0 */
  __u32 remote[4];
  __u16 local_port;  /* network order */
  __u16 remote_port; /* network order */
};

static __always_inline void sm_ops_ends_of(const struct bpf_sock_ops *skops,
                                           struct sm_ops_ends *e) {
  /* Every field is read, unconditionally and at a constant offset: the verifier refuses a context
   * access through a pointer the compiler chose between two fields. */
  __u32 family = skops->family;
  __u32 local[4] = {skops->local_ip6[0], skops->local_ip6[1], skops->local_ip6[2],
                    skops->local_ip6[3]};
  __u32 remote[4] = {skops->remote_ip6[0], skops->remote_ip6[1], skops->remote_ip6[2],
                     skops->remote_ip6[3]};
  __u32 local4 = skops->local_ip4, remote4 = skops->remote_ip4;
  /* local_port is in host order; remote_port holds the network-order port in its upper 16 bits. */
  e->local_port = bpf_htons((__u16)skops->local_port);
  e->remote_port = (__u16)(skops->remote_port >> 16);
  e->family = family;
  if (family == SM_AF_INET) {
    local[0] = local4;
    local[1] = local[2] = local[3] = 0;
    remote[0] = remote4;
    remote[1] = remote[2] = remote[3] = 0;
  }
  e->local[0] = local[0];
  e->local[1] = local[1];
  e->local[2] = local[2];
  e->local[3] = local[3];
  e->remote[0] = remote[0];
  e->remote[1] = remote[1];
  e->remote[2] = remote[2];
  e->remote[3] = remote[3];
}

#endif
