// What the mesh's security half needs from the applied state: every workload with its node,
// addresses, identity and cgroup, every node's addresses, and the authorization policies. Rebuilt when a push changes
// workloads or nodes (not for changes of services alone, the common case).
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "sockmesh/v1/discovery.pb.h"

namespace sockmesh::reconcile {

struct MeshWorkload {
  std::string ns, name;
  std::string service_account;  // "default" when the resource leaves it empty
  std::string node;
  std::vector<std::string> addresses;
  std::string cgroup_path;  // relative to the node's workload cgroup
  bool captured = true;
  std::map<std::string, std::string> labels;
  std::string id() const { return ns + "/" + name; }
};

struct MeshView {
  std::map<std::string, MeshWorkload> workloads;          // "ns/name" -> workload
  std::map<std::string, std::string> workload_by_address;  // address text -> "ns/name"
  std::map<std::string, std::vector<std::string>> nodes;   // node name -> its addresses
  std::vector<v1::AuthorizationPolicy> policies;
};

MeshView mesh_view_of(const std::map<std::string, v1::Resource> &resources);

// Whether a push that changed or removed these resource names can change the mesh view.
bool touches_mesh_view(const std::vector<std::string> &changed, const std::vector<std::string> &removed);

}  // namespace sockmesh::reconcile
