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
  auto operator<=>(const IpAddress &) const = default;
};

// A strict dotted quad (no leading zeros, each part 0..255) or an IPv6 address as inet_pton()
// reads it; nullopt otherwise.
std::optional<IpAddress> parse_address(std::string_view s);

// ::ffff:a.b.c.d. The kernel sees a connect to one as IPv4, so as a configured address it would
// be an IPv4 address in disguise. Returns the IPv4 form.
std::optional<std::string> ipv4_mapped(const IpAddress &address);

// Nothing when size is a prime in [SM_MAGLEV_MIN_SIZE, SM_MAGLEV_MAX_SIZE]; otherwise what is
// wrong, for spec.maglev.tableSize ("must be a prime between 13 and 65521, got <written>...").
std::optional<std::string> maglev_table_size_error(uint64_t size, std::string_view written);

std::optional<v1::LbPolicy> parse_lb_policy(std::string_view name);
std::optional<v1::Protocol> parse_protocol(std::string_view name);
std::optional<v1::AuthorizationAction> parse_authorization_action(std::string_view name);

// DNS-1123 subdomain: dot-separated DNS-1123 labels, at most 253 characters.
bool is_dns1123_subdomain(std::string_view s);

// Kubernetes label syntax, for selectors: a key is an optional DNS-1123 subdomain prefix and '/',
// then a name of 1..63 letters, digits, '-', '_' or '.' starting and ending with a letter or digit;
// a value is empty or such a name.
bool is_label_key(std::string_view s);
bool is_label_value(std::string_view s);

// What is wrong with one label of a selector (is_label_key, is_label_value), or nothing.
std::optional<std::string> selector_label_error(std::string_view key, std::string_view value);

// What is wrong with a principal of an AuthorizationPolicy source, or nothing (docs/config.md,
// "AuthorizationPolicy").
std::optional<std::string> principal_error(std::string_view principal);
// What is wrong with a namespace of an AuthorizationPolicy source, or nothing.
std::optional<std::string> source_namespace_error(std::string_view ns);

// An error line as it leaves the library: every control character of the text it quotes (a YAML
// key or value may hold a newline, a NUL, an escape sequence) written as a C escape ("\n", "\t",
// "\r", "\x1b"), so that one error stays one line in meshctl's output, meshd's log and a NACK.
std::string one_line(std::string_view text);

// Bounds of an AuthorizationPolicy (docs/config.md).
inline constexpr int kMaxSelectorLabels = 32;
inline constexpr int kMaxPolicyRules = 64;
inline constexpr int kMaxRuleClauses = 16;   // from or to items of one rule
inline constexpr int kMaxClauseValues = 64;  // principals, namespaces or ports of one from or to

inline constexpr std::string_view kDns1123Rule =
    "lowercase letters, digits and '-', starting and ending with a letter or digit, at most 63 "
    "characters";
inline constexpr std::string_view kDns1123SubdomainRule =
    "dot-separated DNS-1123 labels, at most 253 characters";

}  // namespace sockmesh::resources::detail
