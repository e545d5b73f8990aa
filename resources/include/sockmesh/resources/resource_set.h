// A snapshot as a set of named, versioned resources: the unit the discovery stream and meshcp's
// store work in (proto/sockmesh/v1/discovery.proto, Resource).
#pragma once

#include <map>
#include <string>

#include "sockmesh/v1/discovery.pb.h"
#include "sockmesh/v1/resources.pb.h"

namespace sockmesh::resources {

// "<kind>/<namespace>/<name>" for a resource body: "workload/demo/web-v1-a", "service/demo/web",
// "node/default/n1", "authorizationpolicy/demo/allow-client". Computed from the body; "" if the
// body is empty.
std::string resource_name(const v1::Resource &resource);

// Deterministic content version of a resource body: 16 hex digits of a 64-bit FNV-1a over its
// deterministic serialization. Equal bodies give equal versions, in any process.
std::string content_version(const v1::Resource &resource);

// Snapshot -> name -> resource with name, version and body set.
std::map<std::string, v1::Resource> to_resources(const v1::Snapshot &snapshot);

// Resources -> snapshot, each list sorted by resource name (deterministic). Resources with an
// empty body are skipped.
v1::Snapshot to_snapshot(const std::map<std::string, v1::Resource> &resources);

}  // namespace sockmesh::resources
