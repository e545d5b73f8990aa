// What one node's agent is sent. Since M5 that is everything: every Service, every Workload
// (captured connects to any pod on another node are tunnelled to its node), every Node (the
// tunnel's peers) and every AuthorizationPolicy.
#pragma once

#include <string>

#include "store.h"

namespace sockmesh::controlplane {

// The rule for one resource; `named` says whether some Service names it as an endpoint.
bool wanted_by_node(const v1::Resource &resource, bool named, const std::string &node);

Resources resources_for_node(const Resources &all, const std::string &node);

}  // namespace sockmesh::controlplane
