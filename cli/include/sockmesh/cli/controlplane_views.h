// What the control-plane commands show, built from meshcp's messages (controlplane.proto): the
// desired state and which agents hold it. The node agent's views are in views.h.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "sockmesh/cli/table.h"
#include "sockmesh/v1/controlplane.pb.h"

namespace sockmesh::cli {

// What applying `sent` does to a state holding `current` (name -> resource): "created",
// "configured" (the body differs) or "unchanged". Versions are ignored: meshcp assigns them.
std::string apply_outcome(const v1::Resource &sent,
                          const std::map<std::string, v1::Resource> &current);

// The resources of a List answer by name, for apply_outcome and lookups.
std::map<std::string, v1::Resource> by_name(const v1::ListResponse &list);

// The resources sorted by name; version unchanged.
v1::ListResponse resources_in_order(const v1::ListResponse &list);

// "app=web,version=v1" sorted by key; "-" when there is none.
std::string format_labels(const google::protobuf::Map<std::string, std::string> &labels);

// NAMESPACE NAME NODE ADDRESSES SERVICE-ACCOUNT LABELS, one row per workload in the order given.
Table workloads_table(const v1::ListResponse &workloads);

// NAME ADDRESSES AGENT ACKED-VERSION, one row per node in the order given. AGENT is "connected",
// "disconnected" (meshcp knows the node's agent, which is not connected now) or "never".
Table nodes_table(const v1::ListResponse &nodes, const v1::ControlPlaneStatus &status);

// NAMESPACE NAME VIPS POLICY ENDPOINTS VERSION, one row per service in the order given: the
// desired services, as meshcp stores them. POLICY shows Maglev's table size, "MAGLEV(4093)".
Table desired_services_table(const v1::ListResponse &services);

// Whether an agent holds the current version of a resource: "ACKed", "behind (has V)",
// "behind (has none)", "not connected", or "NACKed: <reason>" when the agent's last NACK names it.
std::string agent_holds(const v1::AgentView &agent, const v1::Resource &resource);

// `meshctl describe service`: the service's spec (VIPs, policy, subsets, endpoints with their
// workloads' addresses), its version, and agent_holds for every agent meshcp knows.
std::string render_service(const v1::Resource &service, const v1::ListResponse &workloads,
                           const v1::ControlPlaneStatus &status);

// NODE WORKLOAD SPIFFE-ID SERIAL EXPIRES, one row per certificate meshcp's CA issued and that is
// still valid, sorted by node then workload (the node's own certificate shows WORKLOAD "(node)").
// EXPIRES is relative to now_unix_ms ("in 59m").
Table identities_table(const v1::ListIdentitiesResponse &identities, std::int64_t now_unix_ms);

// `meshctl node add`: the token, its expiry and the command that joins the node.
std::string render_node_added(const std::string &node, const v1::AddNodeResponse &added);

// `meshctl controlplane status`: state version, state directory, resource count, and NODE
// CONNECTED ACKED NACKED LAST-NACK per agent, sorted by node. now_unix_ms dates connections.
std::string render_controlplane_status(const v1::ControlPlaneStatus &status,
                                       std::int64_t now_unix_ms);

}  // namespace sockmesh::cli
