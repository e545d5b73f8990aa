// SPIFFE IDs and principals: the fuzzed bytes are a URI as it arrives in a peer certificate's SAN
// (pki::SpiffeId::parse, called on every handshake's SVID), a principal or SPIFFE ID as the
// authorization code reads it (policy::Source::parse: a peer's verified ID, `meshctl check`'s
// SOURCE), and a trust-domain URI (pki's bundle and CA checks).
//
// Beyond "no crash": an ID pki accepts prints back byte for byte (nothing is normalized), parses
// again equal, is rebuilt equal from its namespace and service account (workload IDs) or node name
// (node IDs), and is accepted by policy::Source::parse with the same namespace (an SVID the
// handshake verified must be one authorization can decide on); a parsed Source's spiffe_id()
// parses again to the same principal and namespace.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "fuzz_check.h"
#include "internal.h"
#include "sockmesh/pki/pki.h"
#include "sockmesh/policy/authorize.h"

namespace pki = sockmesh::pki;
namespace policy = sockmesh::policy;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const std::string_view text(reinterpret_cast<const char *>(data), size);
  const std::string t(text);

  if (const auto id = pki::SpiffeId::parse(text)) {
    FUZZ_CHECK(id->str() == text, id->str() + " printed from " + t);
    FUZZ_CHECK(pki::SpiffeId::parse(id->str()) == id, t);
    if (!id->ns().empty()) {
      const auto rebuilt =
          pki::SpiffeId::workload(id->trust_domain, id->ns(), id->service_account());
      FUZZ_CHECK(rebuilt == *id, t);
    }
    if (!id->node_name().empty()) {
      FUZZ_CHECK(pki::SpiffeId::node(id->trust_domain, id->node_name()) == *id, t);
    }
    const auto source = policy::Source::parse(id->str());
    FUZZ_CHECK(source.has_value(), "a valid SVID policy cannot read: " + t);
    FUZZ_CHECK(source->spiffe_id() == id->str(), t);
    if (!id->ns().empty()) FUZZ_CHECK(source->namespace_() == id->ns(), t);
  }

  if (const auto source = policy::Source::parse(text)) {
    FUZZ_CHECK(source->authenticated(), t);
    const auto again = policy::Source::parse(source->spiffe_id());
    FUZZ_CHECK(again.has_value(), source->spiffe_id() + " from " + t);
    FUZZ_CHECK(again->principal() == source->principal(), t);
    FUZZ_CHECK(again->namespace_() == source->namespace_(), t);
  }

  if (const auto td = pki::detail::parse_trust_domain_uri(text)) {
    FUZZ_CHECK(!td->empty() && "spiffe://" + *td == text, t);
  }
  return 0;
}
