#include "node_filter.h"

#include <set>
#include <utility>

namespace sockmesh::controlplane {

Resources resources_for_node(const Resources &all, const std::string &node) {
  std::set<std::string> endpoint_workloads;
  for (const auto &[name, resource] : all) {
    if (!resource.has_service()) continue;
    const auto &svc = resource.service();
    for (const auto &ep : svc.endpoints())
      endpoint_workloads.insert("workload/" + svc.metadata().namespace_() + "/" + ep.workload());
  }
  Resources out;
  for (const auto &[name, resource] : all) {
    bool wanted = false;
    switch (resource.body_case()) {
      case v1::Resource::kService:
        wanted = true;
        break;
      case v1::Resource::kWorkload:
        wanted = resource.workload().node() == node || endpoint_workloads.contains(name);
        break;
      case v1::Resource::kNode:
        wanted = resource.node().metadata().name() == node;
        break;
      case v1::Resource::BODY_NOT_SET:
        break;
    }
    if (wanted) out.emplace(name, resource);
  }
  return out;
}

}  // namespace sockmesh::controlplane
