/* Capture decisions and encodings: plain C shared by the BPF programs and the user-space unit
 * tests (test/bpf/capture/capture_logic_test.cpp), since BPF_PROG_TEST_RUN cannot run the
 * sock_addr, sock_ops and cgroup sockopt programs that use them. No helpers, no maps: the
 * programs look things up and these functions decide and encode. */
#ifndef SOCKMESH_CAPTURE_H
#define SOCKMESH_CAPTURE_H

#include "capture_maps.h"

/* What a connect() to a destination becomes. */
enum sm_capture_verdict {
  SM_CAPTURE_PASS_OFF = 0,         /* capture is off: no agent listener yet */
  SM_CAPTURE_PASS_NOT_MESH = 1,    /* the destination is no mesh workload */
  SM_CAPTURE_PASS_LOCAL = 2,       /* the destination runs on this node */
  SM_CAPTURE_PASS_SOURCE = 3,      /* the caller is no captured workload */
  SM_CAPTURE_PASS_NO_LISTENER = 4, /* the agent has no listener of the destination's family */
  SM_CAPTURE_REDIRECT = 5,         /* to the agent's listener */
};

/* addr[2] of an IPv4-mapped IPv6 address (::ffff:0:0/96), network order. */
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define SM_V4_MAPPED_WORD 0xffff0000u
#else
#define SM_V4_MAPPED_WORD 0x0000ffffu
#endif

static inline int sm_capture_is_v4_mapped(const __u32 addr[4], __u32 family) {
  return family == SM_AF_INET6 && addr[0] == 0 && addr[1] == 0 && addr[2] == SM_V4_MAPPED_WORD;
}

/* `addr` of `family` in the stored form: an IPv4-mapped IPv6 address becomes IPv4. Returns the
 * family of the stored form. */
static inline __u32 sm_capture_normalize(const __u32 in[4], __u32 family, __u32 out[4]) {
  if (sm_capture_is_v4_mapped(in, family)) {
    out[0] = in[3];
    out[1] = out[2] = out[3] = 0;
    return SM_AF_INET;
  }
  if (family == SM_AF_INET) {
    out[0] = in[0];
    out[1] = out[2] = out[3] = 0;
    return SM_AF_INET;
  }
  out[0] = in[0];
  out[1] = in[1];
  out[2] = in[2];
  out[3] = in[3];
  return family;
}

static inline void sm_capture_ip_key(const __u32 addr[4], __u32 family, struct sm_ip_key *key) {
  key->family = sm_capture_normalize(addr, family, key->addr);
}

static inline void sm_capture_addr_of(const __u32 addr[4], __u32 family, __u16 port_n,
                                      struct sm_capture_addr *out) {
  out->family = (__u16)sm_capture_normalize(addr, family, out->addr);
  out->port = port_n;
}

/* The decision, given what the lookups found (0 for a miss): the agent's config, the
 * destination's endpoint entry, the caller's workload entry, and the destination's family
 * (stored form). On SM_CAPTURE_REDIRECT, *listener is the agent's listener of that family. */
static inline int sm_capture_decide(const struct sm_agent_config *agent,
                                    const struct sm_endpoint *dst, const struct sm_workload *src,
                                    __u32 family, struct sm_capture_addr *listener) {
  if (!agent || !(agent->flags & SM_AGENT_CAPTURE_ON)) return SM_CAPTURE_PASS_OFF;
  if (!dst) return SM_CAPTURE_PASS_NOT_MESH;
  if (!(dst->flags & SM_EP_REMOTE)) return SM_CAPTURE_PASS_LOCAL;
  if (!src || !(src->flags & SM_WL_CAPTURED)) return SM_CAPTURE_PASS_SOURCE;
  if (family == SM_AF_INET) {
    if (agent->port4 == 0) return SM_CAPTURE_PASS_NO_LISTENER;
    listener->addr[0] = agent->addr4;
    listener->addr[1] = listener->addr[2] = listener->addr[3] = 0;
    listener->port = agent->port4;
    listener->family = SM_AF_INET;
    return SM_CAPTURE_REDIRECT;
  }
  if (family == SM_AF_INET6) {
    if (agent->port6 == 0) return SM_CAPTURE_PASS_NO_LISTENER;
    listener->addr[0] = agent->addr6[0];
    listener->addr[1] = agent->addr6[1];
    listener->addr[2] = agent->addr6[2];
    listener->addr[3] = agent->addr6[3];
    listener->port = agent->port6;
    listener->family = SM_AF_INET6;
    return SM_CAPTURE_REDIRECT;
  }
  return SM_CAPTURE_PASS_NO_LISTENER;
}

/* The record of a redirected connect. orig and backend in stored form. */
static inline void sm_capture_fill(struct sm_capture_info *info, const struct sm_capture_addr *orig,
                                   const struct sm_capture_addr *backend,
                                   const struct sm_workload *src, const struct sm_endpoint *dst) {
  info->orig = *orig;
  info->backend = *backend;
  info->src_workload = src->id;
  info->dst_workload = dst->workload_id;
  info->dst_node = dst->node_id;
  info->flags = 0;
}

/* Key of sm_capture_flows from one end's view: `client` is the client's address and port, `agent`
 * the listener's, both of `family` as the socket reports them (an IPv6 socket carrying IPv4 has
 * both addresses IPv4-mapped). */
static inline void sm_capture_flow_key(struct sm_flow_key *key, __u32 family, const __u32 client[4],
                                       __u16 client_port_n, const __u32 agent[4],
                                       __u16 agent_port_n) {
  __u32 f = sm_capture_normalize(client, family, key->client);
  sm_capture_normalize(agent, family, key->agent);
  key->client_port = client_port_n;
  key->agent_port = agent_port_n;
  key->family = f;
}

/* Which answer a getsockopt() asks for. */
enum sm_sockopt_kind {
  SM_SOCKOPT_OTHER = 0,     /* not ours: the kernel's answer stands */
  SM_SOCKOPT_ORIG_DST4 = 1, /* SOL_IP, SO_ORIGINAL_DST: struct sockaddr_in */
  SM_SOCKOPT_ORIG_DST6 = 2, /* SOL_IPV6, IP6T_SO_ORIGINAL_DST: struct sockaddr_in6 */
  SM_SOCKOPT_INFO = 3,      /* SOL_IP, SM_SO_CAPTURE_INFO: struct sm_capture_info */
};

static inline int sm_capture_sockopt_kind(int level, int optname) {
  if (level == SM_SOL_IP && optname == SM_SO_ORIGINAL_DST) return SM_SOCKOPT_ORIG_DST4;
  if (level == SM_SOL_IPV6 && optname == SM_IP6T_SO_ORIGINAL_DST) return SM_SOCKOPT_ORIG_DST6;
  if (level == SM_SOL_IP && optname == SM_SO_CAPTURE_INFO) return SM_SOCKOPT_INFO;
  return SM_SOCKOPT_OTHER;
}

/* struct sockaddr_in and struct sockaddr_in6, byte for byte (the BPF side has no libc). */
struct sm_sockaddr_in {
  __u16 family;
  __u16 port; /* network order */
  __u32 addr; /* network order */
  __u8 zero[8];
};

struct sm_sockaddr_in6 {
  __u16 family;
  __u16 port; /* network order */
  __u32 flowinfo;
  __u32 addr[4]; /* network order */
  __u32 scope_id;
};

/* The SO_ORIGINAL_DST answer: the original destination when it is IPv4, as iptables gives it.
 * Returns 0, or -1 when the record's destination is IPv6 (iptables finds no IPv4 entry). */
static inline int sm_capture_sockaddr_in(const struct sm_capture_info *info,
                                         struct sm_sockaddr_in *out) {
  if (info->orig.family != SM_AF_INET) return -1;
  __builtin_memset(out, 0, sizeof(*out));
  out->family = SM_AF_INET;
  out->port = info->orig.port;
  out->addr = info->orig.addr[0];
  return 0;
}

/* The IP6T_SO_ORIGINAL_DST answer, when the original destination is IPv6. */
static inline int sm_capture_sockaddr_in6(const struct sm_capture_info *info,
                                          struct sm_sockaddr_in6 *out) {
  if (info->orig.family != SM_AF_INET6) return -1;
  __builtin_memset(out, 0, sizeof(*out));
  out->family = SM_AF_INET6;
  out->port = info->orig.port;
  out->addr[0] = info->orig.addr[0];
  out->addr[1] = info->orig.addr[1];
  out->addr[2] = info->orig.addr[2];
  out->addr[3] = info->orig.addr[3];
  return 0;
}

/* The optlen a cgroup/getsockopt program leaves for an option it does not answer, so that the
 * caller gets exactly what the kernel answered: 0 tells the kernel to copy nothing back. That is
 * needed when the kernel's value is larger than a page (the program sees only the first page, and
 * any other optlen fails the call with EFAULT on kernels before 6.5), and harmless when the
 * kernel's call failed (kernels since 5.18 then copy nothing back anyway; older ones copied the
 * program's buffer, which then holds zeros, not the caller's bytes). Otherwise the kernel's value
 * and length are in the buffer and stay there for later programs in the chain to see. */
static inline int sm_capture_passthrough_optlen(int retval, int optlen, __u32 page_size) {
  if (retval != 0 || optlen < 0 || (__u32)optlen > page_size) return 0;
  return optlen;
}

#endif
