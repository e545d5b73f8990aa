#include "reconcile/mesh_view.h"

namespace sockmesh::reconcile {

MeshView mesh_view_of(const std::map<std::string, v1::Resource> &resources) {
  MeshView view;
  // Resource names sort by kind: walk only the node/ and workload/ ranges.
  for (auto it = resources.lower_bound("node/"); it != resources.end() && it->first.starts_with("node/"); ++it) {
    const auto &node = it->second.node();
    view.nodes[node.metadata().name()].assign(node.addresses().begin(), node.addresses().end());
  }
  for (auto it = resources.lower_bound("authorizationpolicy/");
       it != resources.end() && it->first.starts_with("authorizationpolicy/"); ++it)
    view.policies.push_back(it->second.authorization_policy());
  for (auto it = resources.lower_bound("workload/"); it != resources.end() && it->first.starts_with("workload/");
       ++it) {
    const v1::Workload &w = it->second.workload();
    MeshWorkload m;
    m.ns = w.metadata().namespace_();
    m.name = w.metadata().name();
    m.service_account = w.service_account().empty() ? "default" : w.service_account();
    m.node = w.node();
    m.addresses.assign(w.addresses().begin(), w.addresses().end());
    m.cgroup_path = w.cgroup_path();
    m.captured = w.captured();
    m.labels.insert(w.metadata().labels().begin(), w.metadata().labels().end());
    for (const auto &address : m.addresses) view.workload_by_address[address] = m.id();
    view.workloads.emplace(m.id(), std::move(m));
  }
  return view;
}

bool touches_mesh_view(const std::vector<std::string> &changed, const std::vector<std::string> &removed) {
  for (const auto *names : {&changed, &removed})
    for (const auto &name : *names)
      if (!name.starts_with("service/")) return true;
  return false;
}

}  // namespace sockmesh::reconcile
