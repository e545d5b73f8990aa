// The resources' lexical rules (resources/src/syntax.cpp), by hand: addresses (a strict dotted
// quad, IPv6 as inet_pton reads it), DNS-1123 labels and subdomains, label keys and values. The
// fuzzed bytes are one field's text.
//
// Beyond "no crash": an address the validator accepts is one the agent's translation reads
// (reconcile::parse_ip) to the same family and bytes (a validated VIP or workload address must
// reach the kernel), and prints (reconcile::format_ip) as an address the validator accepts again,
// equal; a DNS-1123 label is a subdomain and a node name; a label key without a prefix is a label
// value.
#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <string_view>

#include "fuzz_check.h"
#include "reconcile/desired_state.h"
#include "syntax.h"

namespace d = sockmesh::resources::detail;
namespace rc = sockmesh::reconcile;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const std::string_view text(reinterpret_cast<const char *>(data), size);
  const std::string t(text);

  if (const auto address = d::parse_address(text)) {
    rc::IpAddress ip;
    try {
      ip = rc::parse_ip(t);
    } catch (const std::invalid_argument &e) {
      sockmesh::fuzz::fail(__FILE__, __LINE__, "validated address translates", e.what());
    }
    FUZZ_CHECK(ip.family == (address->family == d::Family::kIpv4 ? AF_INET : AF_INET6), t);
    FUZZ_CHECK(std::memcmp(ip.bytes.data(), address->bytes.data(), 16) == 0, t);
    const std::string printed = rc::format_ip(ip);
    const auto again = d::parse_address(printed);
    FUZZ_CHECK(again.has_value() && *again == *address, printed + " from " + t);
  }

  if (d::is_dns1123_label(text)) {
    FUZZ_CHECK(d::is_dns1123_subdomain(text), t);
    FUZZ_CHECK(d::is_node_name(text), t);
  }
  if (d::is_label_key(text) && text.find('/') == std::string_view::npos) {
    FUZZ_CHECK(d::is_label_value(text), t);
  }
  (void)d::selector_label_error(text.substr(0, size / 2), text.substr(size / 2));
  (void)d::principal_error(text);
  (void)d::source_namespace_error(text);
  return 0;
}
