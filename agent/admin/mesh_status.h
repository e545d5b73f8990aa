// The mesh section of the agent's status (admin.proto MeshStatus): the node's identity, the SVIDs
// it holds, and both ends of the tunnel with their refusals and denials.
#pragma once

#include "sockmesh/v1/admin.pb.h"

namespace sockmesh::identity {
class Rotator;
}
namespace sockmesh::proxy {
class NodeProxy;
}
namespace sockmesh::reconcile {
class PolicyMaps;
}

namespace sockmesh::admin {

// `policy` (may be null): the kernel's same-node denials per rule.
v1::MeshStatus mesh_status(const identity::Rotator &identities, const proxy::NodeProxy &proxy,
                           const std::string &trust_domain,
                           const reconcile::PolicyMaps *policy = nullptr);

}  // namespace sockmesh::admin
