// What `meshctl fastpath` shows (docs/meshctl.md): the same-node fast path of one node agent, built
// from the admin API's GetFastPath answer (FastPathReport).
#pragma once

#include <string>

#include "sockmesh/cli/table.h"
#include "sockmesh/v1/admin.pb.h"

namespace sockmesh::cli {

// The report with its workloads sorted by name and its sockets by owner, local, remote, cookie;
// everything else as the agent sent it. Every output format shows this order.
v1::FastPathReport fast_path_in_order(const v1::FastPathReport &report);

// "on"; "off (switched off: meshd --fast-path off, or a --config agent)"; "unsupported (the kernel
// lacks: a, b)"; both reasons when both hold.
std::string fast_path_state(const v1::FastPathReport &report);

// What the fast path does for one workload: "no netns" while its network namespace is unknown,
// "off" while the node's fast path is not enabled, "active" with sockets in the map, else "idle".
std::string workload_fast_path(const v1::FastPathReport &report, const v1::FastPathWorkload &w);

// WORKLOAD FAST PATH SOCKETS NETNS ADDRESSES REASON, one row per workload in the order given.
Table fast_path_workloads_table(const v1::FastPathReport &report);

// OWNER LOCAL REMOTE NETNS COOKIE, one row per listed socket in the order given.
Table fast_path_sockets_table(const v1::FastPathReport &report);

// `meshctl fastpath`: the state and totals, then the workloads; with `sockets`, the sockets too.
std::string render_fast_path(const v1::FastPathReport &report, bool sockets);

}  // namespace sockmesh::cli
