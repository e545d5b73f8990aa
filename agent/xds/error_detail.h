// A NACK's ErrorDetail from one of the validator's error lines.
#pragma once

#include <string>

#include "sockmesh/v1/discovery.pb.h"

namespace sockmesh::xds {

// `service "demo/web": spec.vips[0].port: must be ...` (optionally behind `file:line: `) ->
// resource "service/demo/web", field "spec.vips[0].port", message the whole line. A line of
// another shape keeps only the message.
v1::ErrorDetail error_detail(const std::string &error);

}  // namespace sockmesh::xds
