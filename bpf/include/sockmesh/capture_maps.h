/* Layout of the capture maps and of the capture record, shared by bpf/ and the agent (the one
 * definition of each). Capture sends a captured workload's TCP connections to mesh destinations
 * on other nodes to the local agent's outbound listener, and hands the agent what the connection
 * was for (docs/datapath.md, "Capture").
 *
 * sm_workloads        HASH         cgroup id (u64)      -> sm_workload       agent writes
 * sm_endpoints        HASH         sm_ip_key            -> sm_endpoint       agent writes
 * sm_agent            ARRAY[1]     0                    -> sm_agent_config   agent writes
 * sm_capture_store    SK_STORAGE   client socket        -> sm_capture_info   connect4/6
 * sm_capture_flows    LRU_HASH     sm_flow_key          -> sm_capture_info   sockops (both ends)
 * sm_capture_accepted SK_STORAGE   agent's socket       -> sm_capture_info   sockops (agent end)
 * sm_agent_cgroup     ARRAY[1]     0                    -> sm_agent_cgroup   loader writes
 * sm_agent_socks      SK_STORAGE   agent's socket       -> __u32 (1)         sock_create
 *
 * Byte order: addresses and ports in network order, as everywhere in the data path; an IPv4
 * address is in addr[0] with the rest zero; an IPv4-mapped IPv6 address (::ffff:a.b.c.d) is
 * always stored as IPv4. */
#ifndef SOCKMESH_CAPTURE_MAPS_H
#define SOCKMESH_CAPTURE_MAPS_H

#include "lb_maps.h"
#include "types.h"

/* Map sizes. sm_workloads holds this node's workloads; sm_endpoints every mesh workload's
 * addresses (both families, all nodes; no prealloc, so memory follows use); sm_capture_flows
 * only connections between the client's SYN and the agent's accept. */
#define SM_MAX_WORKLOADS 16384
#define SM_MAX_ENDPOINTS 262144
#define SM_MAX_CAPTURE_FLOWS 16384

/* Deepest cgroup level the connect hook walks up from the caller's cgroup looking for a
 * registered workload (a container's cgroup below its pod's). */
#define SM_MAX_CGROUP_LEVEL 16

/* getsockopt() options the agent's cgroup/getsockopt program answers on the agent's accepted
 * sockets. SO_ORIGINAL_DST (80 at SOL_IP, struct sockaddr_in) and IP6T_SO_ORIGINAL_DST (80 at
 * SOL_IPV6, struct sockaddr_in6) carry the original destination as iptables does; the sockmesh
 * option SM_SO_CAPTURE_INFO at SOL_IP carries the whole struct sm_capture_info. */
#define SM_SOL_IP 0
#define SM_SOL_IPV6 41
#define SM_SO_ORIGINAL_DST 80
#define SM_IP6T_SO_ORIGINAL_DST 80
#define SM_SO_CAPTURE_INFO 0x534d /* "SM" */

/* sm_workload.flags */
#define SM_WL_CAPTURED 0x1 /* its outbound TCP to remote mesh destinations goes via the agent */

/* sm_endpoint.flags */
#define SM_EP_REMOTE 0x1 /* the workload runs on another node */

/* sm_agent_config.flags */
#define SM_AGENT_CAPTURE_ON 0x1 /* the agent listens: capture may redirect to it */

/* Value of sm_workloads, keyed by the cgroup id (inode number of the workload's cgroup v2
 * directory; bpf_get_current_cgroup_id() in the connect hook). */
struct sm_workload {
  __u32 id;    /* agent-assigned workload number; 0 = unknown */
  __u32 flags; /* SM_WL_* */
};

/* Key of sm_endpoints: one address of a mesh workload. */
struct sm_ip_key {
  __u32 addr[4]; /* network order; IPv4 in addr[0], rest 0 */
  __u32 family;  /* SM_AF_INET or SM_AF_INET6 */
};

struct sm_endpoint {
  __u32 workload_id; /* agent-assigned number of the workload holding the address */
  __u32 node_id;     /* agent-assigned number of the node it runs on */
  __u32 flags;       /* SM_EP_* */
};

/* Element 0 of sm_agent_cgroup: the agent's own cgroup when it lies inside the workload cgroup
 * (a DaemonSet pod under kubepods, the programs attached at the cgroup v2 root), else all zero.
 * The workload programs run for the agent's sockets then too, and leave them alone: the sock_addr
 * programs when the calling task is in this cgroup or below it (the ancestor of its cgroup at
 * `level` is `id`), sock_ops and sock_release when the socket is marked in sm_agent_socks
 * (cgroup/sock_create marks the sockets such a task creates; an accepted socket inherits its
 * listener's mark). Written by the loader before it attaches the workload programs. */
struct sm_agent_cgroup {
  __u64 id;    /* cgroup id (inode of the cgroup v2 directory); 0 = the agent is not inside */
  __u32 level; /* its level below the cgroup v2 root (the root is 0) */
  __u32 pad;
};

/* Element 0 of sm_agent: where captured connections go. A port of 0 means no listener of that
 * family (connections of that family are not captured). */
struct sm_agent_config {
  __u32 flags;    /* SM_AGENT_* */
  __u32 addr4;    /* outbound listener, IPv4, network order */
  __u32 addr6[4]; /* outbound listener, IPv6, network order */
  __u16 port4;    /* network order; 0 = none */
  __u16 port6;    /* network order; 0 = none */
};

/* An address and port. */
struct sm_capture_addr {
  __u32 addr[4]; /* network order; IPv4 in addr[0], rest 0 */
  __u16 port;    /* network order */
  __u16 family;  /* SM_AF_INET or SM_AF_INET6 (IPv4-mapped IPv6 is reported as IPv4) */
};

/* The capture record: what a captured connection was for. Answer of SM_SO_CAPTURE_INFO. */
struct sm_capture_info {
  struct sm_capture_addr orig;    /* the destination the application connected to (VIP or pod) */
  struct sm_capture_addr backend; /* the endpoint chosen for it (== orig for a direct connect) */
  __u32 src_workload;             /* sm_workload.id of the connecting workload */
  __u32 dst_workload;             /* sm_endpoint.workload_id of the backend */
  __u32 dst_node;                 /* sm_endpoint.node_id of the backend */
  __u32 flags;                    /* reserved, 0 */
};

/* Key of sm_capture_flows: the connection from the client to the agent's listener, as both ends
 * see it (the client's local address is the agent socket's peer). */
struct sm_flow_key {
  __u32 client[4];   /* network order */
  __u32 agent[4];    /* network order */
  __u16 client_port; /* network order */
  __u16 agent_port;  /* network order */
  __u32 family;      /* SM_AF_INET or SM_AF_INET6 */
};

#endif
