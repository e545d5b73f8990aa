#include "node_filter.h"

#include <set>
#include <utility>

namespace sockmesh::controlplane {

bool wanted_by_node(const v1::Resource &resource, bool named, const std::string &node) {
  switch (resource.body_case()) {
    case v1::Resource::kService:
      return true;
    case v1::Resource::kWorkload:
    case v1::Resource::kNode:
      // Since M5 every agent needs every workload (a captured connect to any pod IP on another
      // node goes through the tunnel, and the tunnel needs the pod's node) and every node (the
      // address of its agent). `named` and `node` are kept for rules that will narrow this again.
      (void)named;
      (void)node;
      return true;
    case v1::Resource::kAuthorizationPolicy:
      // Small, and every node needs those that select its workloads: all nodes get all of them.
      return true;
    case v1::Resource::BODY_NOT_SET:
      break;
  }
  return false;
}

Resources resources_for_node(const Resources &all, const std::string &node) {
  std::set<std::string> endpoint_workloads;
  for (const auto &[name, resource] : all) {
    if (!resource.has_service()) continue;
    const auto &svc = resource.service();
    for (const auto &ep : svc.endpoints())
      endpoint_workloads.insert("workload/" + svc.metadata().namespace_() + "/" + ep.workload());
  }
  Resources out;
  for (const auto &[name, resource] : all)
    if (wanted_by_node(resource, endpoint_workloads.contains(name), node))
      out.emplace(name, resource);
  return out;
}

}  // namespace sockmesh::controlplane
