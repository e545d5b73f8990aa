// The agent's numbers and keys, named: what the kernel's maps hold as numbers (workload and node
// numbers, policy rule ids, backend-set slots) and addresses (VIPs), as a user knows them. Built
// by the agent from its applied state; read by the traffic report and the map decoder.
#pragma once

#include <cstdint>
#include <map>
#include <string>

namespace sockmesh::telemetry {

struct WorkloadName {
  std::string id;         // "ns/name"
  std::string principal;  // SPIFFE ID; "" in file mode (no identities)
};

struct Names {
  std::map<std::string, std::string> service_by_vip;  // "10.96.0.10:80/tcp" -> "ns/name"
  std::map<uint32_t, std::string> service_by_slot;    // backend-set slot -> "ns/name 10.96.0.10:80/tcp"
  std::map<uint32_t, WorkloadName> workloads;         // workload number -> name
  std::map<uint64_t, uint32_t> workload_by_cgroup;    // cgroup id -> workload number
  std::map<uint32_t, std::string> nodes;              // node number -> node name
  std::map<uint32_t, std::string> policy_rules;       // sm_policy_denials slot -> rule text
};

}  // namespace sockmesh::telemetry
