// Config parsing and validation: the fuzzed bytes are a YAML text as `meshctl apply -f`, meshd's
// --config file and meshcp's watch directory hand it to resources::load_yaml_string, in both
// scopes (a whole config, a partial change).
//
// Beyond "no crash":
//  - no exception reaches load_yaml_string's last-resort catch ("internal error: ...");
//  - every error is one line, prefixed with the source name and a line number;
//  - a text that loads whole also loads as a partial change (the partial scope only relaxes);
//  - a snapshot that loaded validates again unchanged, also after the round trip through the
//    store's resource form (resources::to_resources / to_snapshot), as meshcp keeps it;
//  - it survives protobuf's wire form (what gRPC, meshcp's store and meshd's kept state do with
//    it): it serializes and parses back.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_check.h"
#include "sockmesh/resources/load.h"
#include "sockmesh/resources/resource_set.h"
#include "sockmesh/resources/validate.h"

namespace r = sockmesh::resources;

namespace {

constexpr std::string_view kSource = "fuzz.yaml";

void check_errors(const r::LoadResult &result) {
  for (const std::string &e : result.errors) {
    FUZZ_CHECK(!e.starts_with(std::string(kSource) + ":1: internal error: "), e);
    FUZZ_CHECK(e.find('\n') == std::string::npos, e);
    FUZZ_CHECK(e.starts_with(std::string(kSource) + ":"), e);
    const size_t digits = e.find_first_not_of("0123456789", kSource.size() + 1);
    FUZZ_CHECK(digits > kSource.size() + 1 && digits != std::string::npos && e[digits] == ':', e);
  }
}

std::string joined(const std::vector<std::string> &lines) {
  std::string out;
  for (const auto &l : lines) out += l + "\n";
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const std::string_view text(reinterpret_cast<const char *>(data), size);
  const r::LoadResult whole = r::load_yaml_string(text, kSource, r::Scope::kComplete);
  check_errors(whole);
  const r::LoadResult part = r::load_yaml_string(text, kSource, r::Scope::kPartial);
  check_errors(part);
  if (whole.ok()) {
    FUZZ_CHECK(part.ok(), "loads whole but not as a partial change:\n" + joined(part.errors));
    const auto again = r::validate(whole.snapshot);
    FUZZ_CHECK(again.empty(), "loaded, but validate() refuses the snapshot:\n" + joined(again));
    sockmesh::v1::Snapshot parsed;
    FUZZ_CHECK(parsed.ParseFromString(whole.snapshot.SerializeAsString()),
               "the loaded snapshot does not parse back from its wire form");
    const auto stored = r::validate(r::to_snapshot(r::to_resources(whole.snapshot)));
    FUZZ_CHECK(stored.empty(),
               "loaded, but refused after the store's round trip:\n" + joined(stored));
  }
  if (part.ok()) {
    const auto again = r::validate(part.snapshot, r::Scope::kPartial);
    FUZZ_CHECK(again.empty(), "loaded as a change, but validate() refuses it:\n" + joined(again));
  }
  return 0;
}
