#include "syntax.h"

#include <arpa/inet.h>

#include <string>

#include "sockmesh/resources/names.h"

namespace sockmesh::resources::detail {
namespace {

constexpr size_t kMaxLabelLength = 63;

bool is_lower_alnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }

bool is_ipv4(std::string_view s) {
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
    ++parts;
    if (parts == 4) return i == s.size();
    if (i >= s.size() || s[i] != '.') return false;
    ++i;
  }
}

bool is_ipv6(std::string_view s) {
  if (s.find(':') == std::string_view::npos) return false;
  in6_addr addr;
  return inet_pton(AF_INET6, std::string(s).c_str(), &addr) == 1;
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

bool is_node_name(std::string_view s) {
  if (s.empty() || s.size() > kMaxLabelLength) return false;
  for (char c : s) {
    if (!is_lower_alnum(c) && c != '-') return false;
  }
  return true;
}

AddressKind classify_address(std::string_view s) {
  if (is_ipv4(s)) return AddressKind::kIpv4;
  if (is_ipv6(s)) return AddressKind::kIpv6;
  return AddressKind::kInvalid;
}

std::optional<v1::LbPolicy> parse_lb_policy(std::string_view name) {
  for (v1::LbPolicy p : {v1::LB_POLICY_RANDOM, v1::LB_POLICY_ROUND_ROBIN,
                         v1::LB_POLICY_LEAST_CONNECTIONS, v1::LB_POLICY_MAGLEV}) {
    if (lb_policy_name(p) == name) return p;
  }
  return std::nullopt;
}

std::optional<v1::Protocol> parse_protocol(std::string_view name) {
  for (v1::Protocol p : {v1::PROTOCOL_TCP, v1::PROTOCOL_UDP}) {
    if (protocol_name(p) == name) return p;
  }
  return std::nullopt;
}

}  // namespace sockmesh::resources::detail
