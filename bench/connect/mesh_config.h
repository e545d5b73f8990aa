// meshd's config for a service plan (docs/config.md): one Workload per backend address and one
// Service per VIP (RANDOM unless the caller adds settings), all on one node.
#pragma once

#include <functional>
#include <string>

#include "service_plan.h"

namespace sockmesh::bench {

struct MeshConfigOptions {
  // Put before every workload and service name: two plans in one meshd (or one after the other)
  // name different services, so the kernel's per-service state of one never carries over.
  std::string prefix;
  uint16_t backend_port = kBackendPort;
  // More fields of service s's spec, in flow style after a ", " (`lbPolicy: …, circuitBreaker:
  // {…}`); empty: none.
  std::function<std::string(int service)> spec;
};

// YAML in flow style, one document per resource: 10,000 x 10 is ~12 MB this way.
std::string mesh_config_yaml(const ServicePlan &plan, const std::string &node,
                             const MeshConfigOptions &options = {});

}  // namespace sockmesh::bench
