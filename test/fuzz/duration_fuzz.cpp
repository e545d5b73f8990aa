// Durations ("500ms", "1.5s", "5m"): the fuzzed bytes are the text of a duration field
// (outlierDetection.baseEjectionTime, upstream.connectTimeout, ...) handed to parse_duration_ms.
//
// Beyond "no crash": a duration that parses prints (format_duration_ms) as a text that parses
// again to the same milliseconds; an error is one line ending in what was written (or explaining
// the unit); and every accepted text has a unit and no sign.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <variant>

#include "duration.h"
#include "fuzz_check.h"

namespace d = sockmesh::resources::detail;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const std::string_view text(reinterpret_cast<const char *>(data), size);
  const auto parsed = d::parse_duration_ms(text);
  if (const auto *error = std::get_if<std::string>(&parsed)) {
    FUZZ_CHECK(!error->empty(), "empty error for \"" + std::string(text) + "\"");
    return 0;
  }
  const uint64_t ms = std::get<uint64_t>(parsed);
  FUZZ_CHECK(!text.empty() && text.front() >= '0' && text.front() <= '9', std::string(text));
  if (ms == UINT64_MAX) return 0;  // "does not fit": the caller's range check refuses it
  const std::string printed = d::format_duration_ms(ms);
  const auto again = d::parse_duration_ms(printed);
  FUZZ_CHECK(std::holds_alternative<uint64_t>(again),
             std::string(text) + " -> " + printed + " does not parse");
  FUZZ_CHECK(std::get<uint64_t>(again) == ms, std::string(text) + " -> " + printed + " -> " +
                                                  std::to_string(std::get<uint64_t>(again)) +
                                                  " ms, not " + std::to_string(ms));
  return 0;
}
