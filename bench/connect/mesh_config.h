// meshd's config for a service plan (docs/config.md): one Workload per backend address and one
// RANDOM Service per VIP, all on one node.
#pragma once

#include <string>

#include "service_plan.h"

namespace sockmesh::bench {

// YAML in flow style, one document per resource: 10,000 x 10 is ~12 MB this way.
std::string mesh_config_yaml(const ServicePlan& plan, const std::string& node);

}  // namespace sockmesh::bench
