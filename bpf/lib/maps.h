/* Every map of the data path (load balancing and capture), each with what it holds. Layouts:
 * include/sockmesh/. */
#ifndef SOCKMESH_BPF_MAPS_H
#define SOCKMESH_BPF_MAPS_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

#include "sockmesh/capture_maps.h"
#include "sockmesh/counters.h"
#include "sockmesh/fastpath.h"
#include "sockmesh/lb_maps.h"
#include "sockmesh/policy.h"
#include "sockmesh/resilience.h"
#include "sockmesh/telemetry.h"

/* VIP:port/proto -> slot of the service's backend set. Pinned: survives agent restarts. */
struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, SM_MAX_SERVICES);
  __type(key, struct sm_service_key);
  __type(value, struct sm_service_value);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __uint(pinning, LIBBPF_PIN_BY_NAME);
} sm_services SEC(".maps");

/* Template of the inner maps: element 0 the backend set, then the Maglev table's chunks; their
 * number varies per service (BPF_F_INNER_MAP). value_size rather than __type: clang-14 emits the
 * struct only as a forward declaration in this position. */
struct sm_backend_set_inner {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 1);
  __uint(map_flags, BPF_F_INNER_MAP);
  __uint(key_size, sizeof(__u32));
  __uint(value_size, sizeof(struct sm_backend_set));
};

/* slot -> inner map with the backend set (and Maglev table); swapped whole on every change. */
struct {
  __uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
  __uint(max_entries, SM_MAX_SERVICES);
  __type(key, __u32);
  __uint(pinning, LIBBPF_PIN_BY_NAME);
  __array(values, struct sm_backend_set_inner);
} sm_backend_sets SEC(".maps");

/* Per-socket memory of the VIP a balanced connect() asked for, answered by getpeername().
 * Pinned so that sockets opened before an agent restart keep their answer. */
struct sm_orig_dst {
  __u32 addr[4]; /* network byte order; IPv4 in addr[0] */
  __u32 port;    /* network byte order, low 16 bits (the layout of bpf_sock_addr.user_port) */
  __u32 family;  /* SM_AF_INET or SM_AF_INET6, as the application addressed it */
};

struct {
  __uint(type, BPF_MAP_TYPE_SK_STORAGE);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __type(key, int);
  __type(value, struct sm_orig_dst);
  __uint(pinning, LIBBPF_PIN_BY_NAME);
} sm_orig_dst_store SEC(".maps");

/* slot -> round-robin cursor, per CPU (no contention between CPUs; fairness per CPU). */
struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, SM_MAX_SERVICES);
  __type(key, __u32);
  __type(value, __u32);
  __uint(pinning, LIBBPF_PIN_BY_NAME);
} sm_rr_cursors SEC(".maps");

/* UDP reverse translation: (socket, backend) -> the VIP the socket sent to, so that recvmsg()
 * reports replies as coming from the VIP. LRU: entries of closed sockets age out. */
struct sm_reverse_key {
  __u64 cookie;  /* bpf_get_socket_cookie() */
  __u32 addr[4]; /* backend, network byte order */
  __u32 port;    /* backend port, network byte order in the low 16 bits */
  __u32 family;
};

struct {
  __uint(type, BPF_MAP_TYPE_LRU_HASH);
  __uint(max_entries, 65536);
  __type(key, struct sm_reverse_key);
  __type(value, struct sm_orig_dst);
  __uint(pinning, LIBBPF_PIN_BY_NAME);
} sm_udp_reverse SEC(".maps");

/* Capture (layouts and roles: include/sockmesh/capture_maps.h). Pinned: a restarted agent
 * finds its workloads, endpoints and listener in place, and connections captured before the
 * restart keep their records. */
struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, SM_MAX_WORKLOADS);
  __type(key, __u64);
  __type(value, struct sm_workload);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __uint(pinning, LIBBPF_PIN_BY_NAME);
} sm_workloads SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, SM_MAX_ENDPOINTS);
  __type(key, struct sm_ip_key);
  __type(value, struct sm_endpoint);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __uint(pinning, LIBBPF_PIN_BY_NAME);
} sm_endpoints SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct sm_agent_config);
  __uint(pinning, LIBBPF_PIN_BY_NAME);
} sm_agent SEC(".maps");

/* The record of a captured connect, on the client's socket (written by connect4/6). */
struct {
  __uint(type, BPF_MAP_TYPE_SK_STORAGE);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __type(key, int);
  __type(value, struct sm_capture_info);
  __uint(pinning, LIBBPF_PIN_BY_NAME);
} sm_capture_store SEC(".maps");

/* The record in flight: from the client's SYN (sockops TCP_CONNECT_CB, when the client's port is
 * known) until the agent's end is established (PASSIVE_ESTABLISHED_CB moves it into
 * sm_capture_accepted) or the client closes. LRU: a full map drops the oldest handshake. */
struct {
  __uint(type, BPF_MAP_TYPE_LRU_HASH);
  __uint(max_entries, SM_MAX_CAPTURE_FLOWS);
  __type(key, struct sm_flow_key);
  __type(value, struct sm_capture_info);
  __uint(pinning, LIBBPF_PIN_BY_NAME);
} sm_capture_flows SEC(".maps");

/* The record on the agent's accepted socket, answered by cgroup/getsockopt for as long as that
 * socket lives, whatever the client does meanwhile. */
struct {
  __uint(type, BPF_MAP_TYPE_SK_STORAGE);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __type(key, int);
  __type(value, struct sm_capture_info);
  __uint(pinning, LIBBPF_PIN_BY_NAME);
} sm_capture_accepted SEC(".maps");

/* The agent's own cgroup when it runs inside the workload cgroup (include/sockmesh/capture_maps.h),
 * and its sockets, marked at creation. BPF_F_CLONE: a socket accepted on a marked listener is
 * marked too (the kernel copies the storage into the child), before any sock_ops callback of the
 * child runs. Pinned: a restarted agent finds its sockets marked. */
struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct sm_agent_cgroup);
  __uint(pinning, LIBBPF_PIN_BY_NAME);
} sm_agent_cgroup SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_SK_STORAGE);
  __uint(map_flags, BPF_F_NO_PREALLOC | BPF_F_CLONE);
  __type(key, int);
  __type(value, __u32);
  __uint(pinning, LIBBPF_PIN_BY_NAME);
} sm_agent_socks SEC(".maps");

/* Same-node authorization (layouts: include/sockmesh/policy.h). Pinned: a restarted agent finds
 * the decisions in place and the kernel keeps deciding while it is away. No prealloc: memory
 * follows the entries the agent compiled (most destinations have none). */
struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, SM_POLICY_MAP_ENTRIES);
  __type(key, struct sm_policy_key);
  __type(value, struct sm_policy_value);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __uint(pinning, LIBBPF_PIN_BY_NAME);
} sm_policy SEC(".maps");

/* rule id -> denials, per CPU (the agent sums the CPUs and names the rules). */
struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, SM_MAX_POLICY_RULES);
  __type(key, __u32);
  __type(value, __u64);
  __uint(pinning, LIBBPF_PIN_BY_NAME);
} sm_policy_denials SEC(".maps");

/* Traffic telemetry (layouts and roles: include/sockmesh/telemetry.h). */
struct {
  __uint(type, BPF_MAP_TYPE_SK_STORAGE);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __type(key, int);
  __type(value, struct sm_conn);
  __uint(pinning, LIBBPF_PIN_BY_NAME);
} sm_conn_store SEC(".maps");

/* No prealloc: memory follows the tuples in use. */
struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_HASH);
  __uint(max_entries, SM_MAX_TRAFFIC_TUPLES);
  __type(key, struct sm_traffic_key);
  __type(value, struct sm_traffic_value);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __uint(pinning, LIBBPF_PIN_BY_NAME);
} sm_traffic SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct sm_telemetry_config);
  __uint(pinning, LIBBPF_PIN_BY_NAME);
} sm_telemetry SEC(".maps");

/* Connection events for the access log. Not pinned: each agent sizes its own at load
 * (--access-log-ring-bytes) and hands it to both objects; programs of an earlier agent write into
 * theirs until their links are switched, and nobody reads it (those events are lost, not misread). */
struct {
  __uint(type, BPF_MAP_TYPE_RINGBUF);
  __uint(max_entries, SM_EVENTS_RING_BYTES);
} sm_events SEC(".maps");

/* Same-node fast path (layouts and roles: include/sockmesh/fastpath.h). Pinned: a restarted agent
 * finds the sockets of live connections in place (the kernel removes each as it closes), and the
 * addresses' namespaces. The sk_msg program is attached to sm_fastpath itself. */
struct {
  __uint(type, BPF_MAP_TYPE_SOCKHASH);
  __uint(max_entries, SM_MAX_FASTPATH_SOCKETS);
  __type(key, struct sm_fp_key);
  __type(value, __u64); /* the socket cookie, as user space reads it */
  __uint(pinning, LIBBPF_PIN_BY_NAME);
} sm_fastpath SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_SK_STORAGE);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __type(key, int);
  __type(value, struct sm_fp_sock);
  __uint(pinning, LIBBPF_PIN_BY_NAME);
} sm_fastpath_socks SEC(".maps");

/* The connecting ends in sm_fastpath, from joining to closing: the accepting end joins only when
 * its peer is here (neither sock_ops nor sk_msg may look a socket up in sm_fastpath: that takes a
 * reference they have no helper to drop), and counts here what it redirects to it. LRU: an entry
 * whose close went unseen (an agent restart) ages out. */
struct {
  __uint(type, BPF_MAP_TYPE_LRU_HASH);
  __uint(max_entries, SM_MAX_FASTPATH_SOCKETS);
  __type(key, struct sm_fp_key);
  __type(value, struct sm_fp_conn);
  __uint(pinning, LIBBPF_PIN_BY_NAME);
} sm_fastpath_conns SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, SM_MAX_NETNS_ADDRESSES);
  __type(key, struct sm_ip_key);
  __type(value, __u64); /* network namespace cookie */
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __uint(pinning, LIBBPF_PIN_BY_NAME);
} sm_netns SEC(".maps");

/* Resilience (include/sockmesh/resilience.h). All pinned: counts of live connections outlive an
 * agent restart. Entries are created and removed by the agent. */
struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, SM_MAX_SERVICES);
  __type(key, __u64);
  __type(value, struct sm_service_state);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __uint(pinning, LIBBPF_PIN_BY_NAME);
} sm_service_states SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, SM_RS_MAX_BACKEND_STATES);
  __type(key, struct sm_backend_key);
  __type(value, struct sm_backend_state);
  __uint(map_flags, BPF_F_NO_PREALLOC); /* freed after an RCU grace period: a connect still
                                           holding a removed entry writes to valid memory */
  __uint(pinning, LIBBPF_PIN_BY_NAME);
} sm_backend_states SEC(".maps");

/* Per-source rate buckets: LRU, a source that stops connecting ages out. */
struct {
  __uint(type, BPF_MAP_TYPE_LRU_HASH);
  __uint(max_entries, 65536);
  __type(key, struct sm_rate_source_key);
  __type(value, __u64);
  __uint(pinning, LIBBPF_PIN_BY_NAME);
} sm_rate_sources SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 65536);
  __type(key, struct sm_rate_source_key);
  __type(value, __u32);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __uint(pinning, LIBBPF_PIN_BY_NAME);
} sm_fault_sources SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_SK_STORAGE);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __type(key, int);
  __type(value, struct sm_rs_conn);
  __uint(pinning, LIBBPF_PIN_BY_NAME);
} sm_rs_conns SEC(".maps");

/* enum sm_counter -> count, per CPU. */
struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, SM_CNT__MAX);
  __type(key, __u32);
  __type(value, __u64);
  __uint(pinning, LIBBPF_PIN_BY_NAME);
} sm_counters SEC(".maps");

static __always_inline void sm_count(enum sm_counter which) {
  __u32 key = which;
  __u64 *value = bpf_map_lookup_elem(&sm_counters, &key);
  if (value)
    *value += 1; /* per-CPU slot: no other writer */
}

static __always_inline void sm_count_add(enum sm_counter which, __u64 n) {
  __u32 key = which;
  __u64 *value = bpf_map_lookup_elem(&sm_counters, &key);
  if (value)
    *value += n; /* per-CPU slot: no other writer */
}

#endif
