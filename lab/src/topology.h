// Building a lab's cgroups and network (DESIGN.md "The lab"; drawing in docs/lab.md).
#pragma once

#include "state.h"

namespace sockmesh::lab {

// Creates the cgroups, namespaces, links, addresses and routes of the plan. Throws std::runtime_error naming
// the failed step; the caller tears down what was made.
void build_topology(const LabState& state);

}  // namespace sockmesh::lab
