// Lexical rules of resource fields, shared by the YAML parser and the validator.
#pragma once

#include <optional>
#include <string_view>

#include "sockmesh/v1/resources.pb.h"

namespace sockmesh::resources::detail {

// Lowercase letters, digits and '-', starting and ending with a letter or digit, 1..63 chars.
bool is_dns1123_label(std::string_view s);

// Lowercase letters, digits and '-', 1..63 chars (node names).
bool is_node_name(std::string_view s);

enum class AddressKind { kIpv4, kIpv6, kInvalid };
// Strict dotted quad (no leading zeros, each part 0..255) or an IPv6 address.
AddressKind classify_address(std::string_view s);

std::optional<v1::LbPolicy> parse_lb_policy(std::string_view name);
std::optional<v1::Protocol> parse_protocol(std::string_view name);

inline constexpr std::string_view kDns1123Rule =
    "lowercase letters, digits and '-', starting and ending with a letter or digit, at most 63 "
    "characters";

}  // namespace sockmesh::resources::detail
