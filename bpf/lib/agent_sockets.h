/* The agent's own sockets, when the agent runs inside the workload cgroup (a DaemonSet pod under
 * kubepods while the programs are attached at the cgroup v2 root): every workload program leaves
 * them alone, so that the agent's connections are never balanced, captured, authorized or counted
 * again. The agent-cgroup programs (capture.bpf.c: sm_sockops_agent, sm_getsockopt,
 * sm_setsockopt) act on them as always. Layout and roles: include/sockmesh/capture_maps.h. */
#ifndef SOCKMESH_BPF_AGENT_SOCKETS_H
#define SOCKMESH_BPF_AGENT_SOCKETS_H

/* vmlinux.h must come first. */
// clang-format off
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

#include "lib/maps.h"
// clang-format on

/* Whether the current task is the agent's: its cgroup is exactly the agent's (meshd starts no
 * process of its own below it). Task context only (sock_addr, sock_create). The id, not the
 * ancestor at a level: in a Kubernetes pod meshd sees its cgroup through its cgroup namespace,
 * where no absolute level can be read, while the id is the same in every view. An agent outside
 * the workload cgroup leaves the id 0: one array lookup, and the answer is no. */
static __always_inline int sm_agent_task(void) {
  __u32 zero = 0;
  const struct sm_agent_cgroup *agent = bpf_map_lookup_elem(&sm_agent_cgroup, &zero);
  if (!agent || agent->id == 0) return 0;
  return bpf_get_current_cgroup_id() == agent->id;
}

/* Whether `sk` is one of the agent's sockets (marked at creation, or accepted on a marked
 * listener). Any context: sock_ops callbacks run in softirq, where the current task is not the
 * socket's owner. */
static __always_inline int sm_agent_socket(struct bpf_sock *sk) {
  return sk && bpf_sk_storage_get(&sm_agent_socks, sk, 0, 0) != 0;
}

#endif
