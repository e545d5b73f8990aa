// The validator's findings in structured form, so that the YAML loader can place each one at the
// line it came from, and drop findings that only repeat a structural error on the same field.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "sockmesh/resources/validate.h"
#include "sockmesh/v1/resources.pb.h"

namespace sockmesh::resources::detail {

enum class Kind { kWorkload, kService, kNode, kAuthorizationPolicy };
inline constexpr int kKinds = 4;

// "workload", "service", "node", "authorizationpolicy": as errors and resource names name the
// kinds.
std::string_view kind_name(Kind kind);

// `service "demo/web"`.
std::string resource_label(Kind kind, const v1::ObjectMeta &metadata);

struct ResourceRef {
  Kind kind;
  int index;  // into the snapshot's list of that kind
};

struct Issue {
  ResourceRef resource;
  std::string path;  // YAML field path, e.g. spec.endpoints[1].weight
  std::string text;  // `<kind> "<ns>/<name>": <path>: <what is wrong>`
};

// Says where a resource was defined, for messages that point at another resource
// ("first defined at demo.yaml:3").
using WhereFn = std::function<std::string(ResourceRef)>;

std::vector<Issue> check_snapshot(const v1::Snapshot &snapshot, const WhereFn &where,
                                  Scope scope = Scope::kComplete);

}  // namespace sockmesh::resources::detail
