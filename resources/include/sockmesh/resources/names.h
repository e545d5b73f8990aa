// Display names of resources and of their enum values, as written in YAML and printed by meshctl.
#pragma once

#include <string>
#include <string_view>

#include "sockmesh/v1/resources.pb.h"

namespace sockmesh::resources {

// "namespace/name".
std::string resource_id(const v1::ObjectMeta& metadata);

// "RANDOM", "ROUND_ROBIN", "LEAST_CONNECTIONS", "MAGLEV"; "UNSPECIFIED" or "UNKNOWN" otherwise.
std::string_view lb_policy_name(v1::LbPolicy policy);

// "TCP", "UDP"; "UNSPECIFIED" or "UNKNOWN" otherwise.
std::string_view protocol_name(v1::Protocol protocol);

// "ALLOW", "DENY"; "UNSPECIFIED" or "UNKNOWN" otherwise.
std::string_view authorization_action_name(v1::AuthorizationAction action);

}  // namespace sockmesh::resources
