// The "Mesh" part of `meshctl status` (control-plane mode): the node's identity, its SVIDs, the
// tunnel's counters with refused peers and denied connections, and who is connected inbound.
#pragma once

#include <cstdint>
#include <ostream>

#include "sockmesh/cli/table.h"
#include "sockmesh/v1/admin.pb.h"

namespace sockmesh::cli {

void render_mesh(std::ostream &out, const v1::MeshStatus &mesh, std::int64_t now_unix_ms);

}  // namespace sockmesh::cli
