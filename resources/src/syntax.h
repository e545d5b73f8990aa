// Lexical rules of resource fields, shared by the YAML parser and the validator.
#pragma once

#include <array>
#include <compare>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "sockmesh/v1/resources.pb.h"

namespace sockmesh::resources::detail {

// Lowercase letters, digits and '-', starting and ending with a letter or digit, 1..63 chars.
bool is_dns1123_label(std::string_view s);

// Lowercase letters, digits and '-', 1..63 chars (node names).
bool is_node_name(std::string_view s);

enum class Family { kIpv4, kIpv6 };

// "IPv4", "IPv6".
std::string_view family_name(Family family);

// An address in binary form, so that one address written two ways ("fd00:96::a",
// "fd00:96:0::a") compares equal.
struct IpAddress {
  Family family;
  std::array<uint8_t, 16> bytes;  // network order; IPv4 in bytes[0..4), the rest zero
  auto operator<=>(const IpAddress&) const = default;
};

// A strict dotted quad (no leading zeros, each part 0..255) or an IPv6 address as inet_pton()
// reads it; nullopt otherwise.
std::optional<IpAddress> parse_address(std::string_view s);

// ::ffff:a.b.c.d. The kernel sees a connect to one as IPv4, so as a configured address it would
// be an IPv4 address in disguise. Returns the IPv4 form.
std::optional<std::string> ipv4_mapped(const IpAddress& address);

// Nothing when size is a prime in [SM_MAGLEV_MIN_SIZE, SM_MAGLEV_MAX_SIZE]; otherwise what is
// wrong, for spec.maglev.tableSize ("must be a prime between 13 and 65521, got <written>...").
std::optional<std::string> maglev_table_size_error(uint64_t size, std::string_view written);

std::optional<v1::LbPolicy> parse_lb_policy(std::string_view name);
std::optional<v1::Protocol> parse_protocol(std::string_view name);

inline constexpr std::string_view kDns1123Rule =
    "lowercase letters, digits and '-', starting and ending with a letter or digit, at most 63 "
    "characters";

}  // namespace sockmesh::resources::detail
