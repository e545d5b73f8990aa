// The tunnel's request headers as the inbound agent reads them by hand: the fuzzed bytes are a
// CONNECT :authority (proxy::parse_authority) and the
// sockmesh-connect-timeout-ms value (proxy::parse_connect_timeout), as a remote agent sends them.
//
// Beyond "no crash": an accepted authority has a port in 1..65535 and prints ("ip:port",
// "[ip6]:port") as an authority that parses to the same endpoint; an accepted timeout is 1 to 9
// decimal digits and their value.
#include <asio/ip/tcp.hpp>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_check.h"
#include "proxy/tunnel_server.h"

namespace proxy = sockmesh::proxy;

namespace {

std::string authority_of(const asio::ip::tcp::endpoint &e) {
  const std::string ip = e.address().to_string();
  return (e.address().is_v6() ? "[" + ip + "]" : ip) + ":" + std::to_string(e.port());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const std::string_view text(reinterpret_cast<const char *>(data), size);
  const std::string t(text);

  if (const auto endpoint = proxy::parse_authority(text)) {
    FUZZ_CHECK(endpoint->port() != 0, t);
    const std::string printed = authority_of(*endpoint);
    const auto again = proxy::parse_authority(printed);
    FUZZ_CHECK(again.has_value(), printed + " (from " + t + ") does not parse");
    FUZZ_CHECK(*again == *endpoint, printed + " (from " + t + ") parses to another endpoint");
  }

  if (const auto timeout = proxy::parse_connect_timeout(text)) {
    FUZZ_CHECK(!text.empty() && text.size() <= 9, t);
    FUZZ_CHECK(timeout->count() > 0 && std::to_string(timeout->count()).size() <= text.size(), t);
    FUZZ_CHECK(text.find_first_not_of("0123456789") == std::string_view::npos, t);
  }
  return 0;
}
