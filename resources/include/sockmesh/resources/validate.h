// Semantic and cross-resource checks of a snapshot, whatever its origin (YAML, control plane).
#pragma once

#include <string>
#include <vector>

#include "sockmesh/v1/resources.pb.h"

namespace sockmesh::resources {

// Every rule of docs/config.md that a parsed snapshot can break, one error line each
// (`<kind> "<namespace>/<name>": <field path>: <what is wrong>`), in snapshot order.
// Empty means the snapshot may be applied.
std::vector<std::string> validate(const sockmesh::v1::Snapshot &snapshot);

}  // namespace sockmesh::resources
