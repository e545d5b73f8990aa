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

namespace sockmesh::admin {

v1::MeshStatus mesh_status(const identity::Rotator &identities, const proxy::NodeProxy &proxy,
                           const std::string &trust_domain);

}  // namespace sockmesh::admin
