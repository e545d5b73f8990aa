// Loading resources from their YAML form (docs/config.md) into a validated snapshot.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "sockmesh/resources/validate.h"
#include "sockmesh/v1/resources.pb.h"

namespace sockmesh::resources {

struct LoadResult {
  sockmesh::v1::Snapshot snapshot;  // valid only when errors is empty
  std::vector<std::string> errors;  // one line each, fully formatted, in file order
  bool ok() const { return errors.empty(); }
};

// Parses a multi-document YAML text and validates it (structure and semantics, via validate()).
// source_name prefixes every error ("<source>:<line>: ..."). Never throws. A partial text
// (Scope::kPartial) may name workloads it does not define; see Scope.
LoadResult load_yaml_string(std::string_view text, std::string_view source_name,
                            Scope scope = Scope::kComplete);

// Same for a file; an unreadable file gives one error naming the path and the reason.
LoadResult load_yaml_file(const std::string &path, Scope scope = Scope::kComplete);

}  // namespace sockmesh::resources
