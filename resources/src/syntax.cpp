#include "syntax.h"

#include <arpa/inet.h>

#include <cstring>
#include <string>

#include "sockmesh/lb_maps.h"
#include "sockmesh/resources/names.h"

namespace sockmesh::resources::detail {
namespace {

constexpr size_t kMaxLabelLength = 63;

bool is_lower_alnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }

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
    what += " (the nearest primes are " + std::to_string(below) + " and " +
            std::to_string(above) + ")";
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

std::optional<v1::Protocol> parse_protocol(std::string_view name) {
  for (v1::Protocol p : {v1::PROTOCOL_TCP, v1::PROTOCOL_UDP}) {
    if (protocol_name(p) == name) return p;
  }
  return std::nullopt;
}

}  // namespace sockmesh::resources::detail
