#include "syntax.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "sockmesh/lb_maps.h"
#include "sockmesh/resources/names.h"

namespace sockmesh::resources::detail {
namespace {

constexpr size_t kMaxLabelLength = 63;

constexpr size_t kMaxSubdomainLength = 253;
constexpr size_t kMaxTrustDomainLength = 255;
constexpr std::string_view kSpiffeScheme = "spiffe://";

bool is_lower_alnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

bool is_alnum(char c) {
  return is_lower_alnum(c) || (c >= 'A' && c <= 'Z');
}

std::string quoted(std::string_view s) {
  return "\"" + std::string(s) + "\"";
}

// Istio's string match: exact, "*" (any), "prefix*" or "*suffix". `written` is the value as given,
// `pattern` the part that is matched (a principal without its scheme).
std::optional<std::string> wildcard_error(std::string_view written, std::string_view pattern) {
  const size_t stars = size_t(std::count(pattern.begin(), pattern.end(), '*'));
  if (stars == 0 || pattern == "*") return std::nullopt;
  if (stars == 1 && (pattern.front() == '*' || pattern.back() == '*')) return std::nullopt;
  return quoted(written) +
         ": '*' may only stand alone (any), or at the start or the end (a suffix or prefix match)";
}

bool is_ipv4(std::string_view s, uint8_t out[4]) {
  int parts = 0;
  size_t i = 0;
  while (true) {
    size_t start = i;
    unsigned value = 0;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9' && i - start < 3) {
      value = value * 10 + unsigned(s[i] - '0');
      ++i;
    }
    size_t digits = i - start;
    // A leading zero would read as octal to inet_aton(); refuse the ambiguity.
    if (digits == 0 || value > 255 || (digits > 1 && s[start] == '0')) return false;
    out[parts] = uint8_t(value);
    ++parts;
    if (parts == 4) return i == s.size();
    if (i >= s.size() || s[i] != '.') return false;
    ++i;
  }
}

bool is_ipv6(std::string_view s, uint8_t out[16]) {
  if (s.find(':') == std::string_view::npos) return false;
  in6_addr addr;
  if (inet_pton(AF_INET6, std::string(s).c_str(), &addr) != 1) return false;
  std::memcpy(out, &addr, 16);
  return true;
}

bool is_prime(uint64_t n) {
  if (n < 2) return false;
  for (uint64_t d = 2; d * d <= n; ++d) {
    if (n % d == 0) return false;
  }
  return true;
}

}  // namespace

bool is_dns1123_label(std::string_view s) {
  if (s.empty() || s.size() > kMaxLabelLength) return false;
  if (!is_lower_alnum(s.front()) || !is_lower_alnum(s.back())) return false;
  for (char c : s) {
    if (!is_lower_alnum(c) && c != '-') return false;
  }
  return true;
}

bool is_dns1123_subdomain(std::string_view s) {
  if (s.empty() || s.size() > kMaxSubdomainLength) return false;
  size_t start = 0;
  while (true) {
    size_t dot = s.find('.', start);
    if (!is_dns1123_label(s.substr(start, dot - start))) return false;
    if (dot == std::string_view::npos) return true;
    start = dot + 1;
  }
}

bool is_label_key(std::string_view s) {
  const size_t slash = s.rfind('/');
  if (slash != std::string_view::npos) {
    if (!is_dns1123_subdomain(s.substr(0, slash))) return false;
    s.remove_prefix(slash + 1);
  }
  return !s.empty() && is_label_value(s);
}

bool is_label_value(std::string_view s) {
  if (s.empty()) return true;
  if (s.size() > kMaxLabelLength || !is_alnum(s.front()) || !is_alnum(s.back())) return false;
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return is_alnum(c) || c == '-' || c == '_' || c == '.'; });
}

std::optional<std::string> selector_label_error(std::string_view key, std::string_view value) {
  if (!is_label_key(key)) {
    return quoted(key) +
           " is not a label key (an optional DNS-1123 subdomain and '/', then at most 63 letters, "
           "digits, '-', '_' or '.', starting and ending with a letter or digit)";
  }
  if (!is_label_value(value)) {
    return quoted(value) +
           " is not a label value (empty, or at most 63 letters, digits, '-', '_' or '.', "
           "starting and ending with a letter or digit)";
  }
  return std::nullopt;
}

std::optional<std::string> principal_error(std::string_view principal) {
  if (principal.empty()) return "must not be empty";
  std::string_view id = principal;
  if (id.starts_with(kSpiffeScheme)) {
    id.remove_prefix(kSpiffeScheme.size());
  } else if (id.find("://") != std::string_view::npos) {
    return quoted(principal) + " is not a SPIFFE ID: the scheme, when given, must be spiffe://";
  }
  if (id.empty()) return quoted(principal) + " names no SPIFFE ID after spiffe://";
  if (auto error = wildcard_error(principal, id)) return error;
  for (char c : id) {
    if (!is_lower_alnum(c) && c != '.' && c != '-' && c != '_' && c != '/' && c != '*') {
      return quoted(principal) + " has a character a SPIFFE ID of the mesh cannot have (" +
             quoted(std::string(1, c)) + "): use lowercase letters, digits, '.', '-', '_' and '/'";
    }
  }
  if (id.find('*') != std::string_view::npos) {
    if (id.find("//") != std::string_view::npos)
      return quoted(principal) + " has an empty path segment (\"//\")";
    return std::nullopt;
  }
  // Exact: a workload's SPIFFE ID, <trust-domain>/ns/<namespace>/sa/<service-account>.
  const std::string shape =
      quoted(principal) +
      " is not a workload SPIFFE ID (<trust-domain>/ns/<namespace>/sa/<service-account>, "
      "spiffe:// optional); a leading or trailing '*' matches others";
  std::vector<std::string_view> parts;
  for (size_t start = 0;;) {
    const size_t slash = id.find('/', start);
    parts.push_back(id.substr(start, slash - start));
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }
  if (parts.size() != 5 || parts[0].empty() || parts[1] != "ns" || parts[3] != "sa") return shape;
  if (parts[0].size() > kMaxTrustDomainLength)
    return quoted(principal) + ": the trust domain is longer than 255 characters";
  if (!is_dns1123_label(parts[2]))
    return quoted(principal) + ": the namespace " + quoted(parts[2]) +
           " is not a DNS-1123 label (" + std::string(kDns1123Rule) + ")";
  if (!is_dns1123_subdomain(parts[4]))
    return quoted(principal) + ": the service account " + quoted(parts[4]) +
           " is not a DNS-1123 subdomain (" + std::string(kDns1123SubdomainRule) + ")";
  return std::nullopt;
}

std::optional<std::string> source_namespace_error(std::string_view ns) {
  if (ns.empty()) return "must not be empty";
  if (auto error = wildcard_error(ns, ns)) return error;
  if (ns.find('*') == std::string_view::npos) {
    if (is_dns1123_label(ns)) return std::nullopt;
    return quoted(ns) + " is not a DNS-1123 label (" + std::string(kDns1123Rule) + ")";
  }
  for (char c : ns) {
    if (!is_lower_alnum(c) && c != '-' && c != '*')
      return quoted(ns) +
             " cannot match a namespace: use lowercase letters, digits and '-' "
             "around the '*'";
  }
  return std::nullopt;
}

bool is_node_name(std::string_view s) {
  if (s.empty() || s.size() > kMaxLabelLength) return false;
  for (char c : s) {
    if (!is_lower_alnum(c) && c != '-') return false;
  }
  return true;
}

std::string_view family_name(Family family) {
  return family == Family::kIpv4 ? "IPv4" : "IPv6";
}

std::optional<IpAddress> parse_address(std::string_view s) {
  IpAddress a{Family::kIpv4, {}};
  if (is_ipv4(s, a.bytes.data())) return a;
  a.family = Family::kIpv6;
  if (is_ipv6(s, a.bytes.data())) return a;
  return std::nullopt;
}

std::optional<std::string> ipv4_mapped(const IpAddress &address) {
  static constexpr uint8_t kPrefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (address.family != Family::kIpv6 ||
      std::memcmp(address.bytes.data(), kPrefix, sizeof kPrefix) != 0) {
    return std::nullopt;
  }
  std::string text;
  for (size_t i = 12; i < 16; ++i) {
    if (i > 12) text += '.';
    text += std::to_string(address.bytes[i]);
  }
  return text;
}

std::optional<std::string> maglev_table_size_error(uint64_t size, std::string_view written) {
  if (size >= SM_MAGLEV_MIN_SIZE && size <= SM_MAGLEV_MAX_SIZE && is_prime(size)) {
    return std::nullopt;
  }
  std::string what = "must be a prime between " + std::to_string(SM_MAGLEV_MIN_SIZE) + " and " +
                     std::to_string(SM_MAGLEV_MAX_SIZE) + ", got " + std::string(written);
  if (size > SM_MAGLEV_MIN_SIZE && size < SM_MAGLEV_MAX_SIZE) {
    uint64_t below = size - 1;
    while (!is_prime(below)) --below;
    uint64_t above = size + 1;
    while (!is_prime(above)) ++above;
    what +=
        " (the nearest primes are " + std::to_string(below) + " and " + std::to_string(above) + ")";
  }
  return what;
}

std::optional<v1::LbPolicy> parse_lb_policy(std::string_view name) {
  for (v1::LbPolicy p : {v1::LB_POLICY_RANDOM, v1::LB_POLICY_ROUND_ROBIN,
                         v1::LB_POLICY_LEAST_CONNECTIONS, v1::LB_POLICY_MAGLEV}) {
    if (lb_policy_name(p) == name) return p;
  }
  return std::nullopt;
}

std::optional<v1::AuthorizationAction> parse_authorization_action(std::string_view name) {
  for (v1::AuthorizationAction a :
       {v1::AUTHORIZATION_ACTION_ALLOW, v1::AUTHORIZATION_ACTION_DENY}) {
    if (authorization_action_name(a) == name) return a;
  }
  return std::nullopt;
}

std::optional<v1::Protocol> parse_protocol(std::string_view name) {
  for (v1::Protocol p : {v1::PROTOCOL_TCP, v1::PROTOCOL_UDP}) {
    if (protocol_name(p) == name) return p;
  }
  return std::nullopt;
}

std::string one_line(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (const char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (u >= 0x20 && u != 0x7f) {
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c == '\r') {
      out += "\\r";
    } else {
      static constexpr char kHex[] = "0123456789abcdef";
      out += "\\x";
      out += kHex[u >> 4];
      out += kHex[u & 0xf];
    }
  }
  return out;
}

}  // namespace sockmesh::resources::detail
