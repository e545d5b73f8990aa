#include "sockmesh/resources/names.h"

namespace sockmesh::resources {

std::string resource_id(const v1::ObjectMeta& metadata) {
  return metadata.namespace_() + "/" + metadata.name();
}

std::string_view lb_policy_name(v1::LbPolicy policy) {
  switch (policy) {
    case v1::LB_POLICY_UNSPECIFIED:
      return "UNSPECIFIED";
    case v1::LB_POLICY_RANDOM:
      return "RANDOM";
    case v1::LB_POLICY_ROUND_ROBIN:
      return "ROUND_ROBIN";
    case v1::LB_POLICY_LEAST_CONNECTIONS:
      return "LEAST_CONNECTIONS";
    case v1::LB_POLICY_MAGLEV:
      return "MAGLEV";
    default:
      return "UNKNOWN";
  }
}

std::string_view protocol_name(v1::Protocol protocol) {
  switch (protocol) {
    case v1::PROTOCOL_UNSPECIFIED:
      return "UNSPECIFIED";
    case v1::PROTOCOL_TCP:
      return "TCP";
    case v1::PROTOCOL_UDP:
      return "UDP";
    default:
      return "UNKNOWN";
  }
}

std::string_view authorization_action_name(v1::AuthorizationAction action) {
  switch (action) {
    case v1::AUTHORIZATION_ACTION_UNSPECIFIED:
      return "UNSPECIFIED";
    case v1::AUTHORIZATION_ACTION_ALLOW:
      return "ALLOW";
    case v1::AUTHORIZATION_ACTION_DENY:
      return "DENY";
    default:
      return "UNKNOWN";
  }
}

}  // namespace sockmesh::resources
