// Durations as resources write them ("500ms", "2s", "1.5s", "5m", "1h"), stored in the protos as
// whole milliseconds.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <variant>

namespace sockmesh::resources::detail {

// A decimal number (digits, optionally '.' and digits) followed by one unit: ms, s, m or h. The
// value must be a whole number of milliseconds. Returns the milliseconds (UINT64_MAX when they do
// not fit, for the caller's range check) or what is wrong, as the end of an error message
// ("must be a duration with a unit ...").
std::variant<uint64_t, std::string> parse_duration_ms(std::string_view text);

// The largest unit that states `ms` exactly: 86400000 -> "24h", 90000 -> "90s", 1500 -> "1500ms",
// so that a value parse_duration_ms() read prints back as a duration it reads the same.
std::string format_duration_ms(uint64_t ms);

}  // namespace sockmesh::resources::detail
