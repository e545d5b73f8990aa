#include "duration.h"

#include <cstdint>

namespace sockmesh::resources::detail {
namespace {

constexpr std::string_view kExamples = "e.g. 500ms, 2s, 1.5s, 5m or 1h";

struct Unit {
  std::string_view suffix;
  uint64_t ms;
};
// "ms" before "m" and "s": the longest suffix wins.
constexpr Unit kUnits[] = {{"ms", 1}, {"h", 3600000}, {"m", 60000}, {"s", 1000}};

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

bool all_digits(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!is_digit(c)) return false;
  }
  return true;
}

// digits, or digits '.' digits.
bool is_decimal(std::string_view s) {
  const size_t dot = s.find('.');
  if (dot == std::string_view::npos) return all_digits(s);
  return all_digits(s.substr(0, dot)) && all_digits(s.substr(dot + 1));
}

std::string quoted(std::string_view s) {
  return "\"" + std::string(s) + "\"";
}

// a * b + c, or UINT64_MAX when it overflows.
uint64_t mul_add(uint64_t a, uint64_t b, uint64_t c) {
  if (a == UINT64_MAX || (b != 0 && a > (UINT64_MAX - c) / b)) return UINT64_MAX;
  return a * b + c;
}

}  // namespace

std::variant<uint64_t, std::string> parse_duration_ms(std::string_view text) {
  const std::string shape = "must be a duration (" + std::string(kExamples) + "), got ";
  if (is_decimal(text)) {
    // A bare number is ambiguous (seconds? milliseconds?), so the unit is never implied.
    return "must be a duration with a unit (ms, s, m or h), got " + std::string(text) +
           "; add a unit, e.g. " + std::string(text) + "s";
  }
  if (text.starts_with('-')) return "must not be negative, got " + std::string(text);
  const Unit *unit = nullptr;
  for (const Unit &u : kUnits) {
    if (text.ends_with(u.suffix) && is_decimal(text.substr(0, text.size() - u.suffix.size()))) {
      unit = &u;
      break;
    }
  }
  if (unit == nullptr) return shape + quoted(text);
  const std::string_view number = text.substr(0, text.size() - unit->suffix.size());
  const size_t dot = number.find('.');
  const std::string_view whole = number.substr(0, dot);
  std::string_view fraction =
      dot == std::string_view::npos ? std::string_view{} : number.substr(dot + 1);
  while (fraction.ends_with('0')) fraction.remove_suffix(1);

  uint64_t ms = 0;
  for (char c : whole) ms = mul_add(ms, 10, uint64_t(c - '0'));
  ms = mul_add(ms, unit->ms, 0);
  // The fraction in the unit's milliseconds: exact, or not a whole number of milliseconds.
  uint64_t numerator = 0;
  uint64_t denominator = 1;
  for (char c : fraction) {
    // No fraction with more than 7 significant decimals is a whole number of milliseconds, even
    // of an hour (3600000 ms): stop before the arithmetic could overflow.
    if (denominator > 10000000) {
      return "must be a whole number of milliseconds, got " + std::string(text);
    }
    numerator = numerator * 10 + uint64_t(c - '0');
    denominator *= 10;
  }
  const uint64_t scaled = numerator * unit->ms;
  if (scaled % denominator != 0) {
    return "must be a whole number of milliseconds, got " + std::string(text);
  }
  if (ms == UINT64_MAX) return ms;
  const uint64_t extra = scaled / denominator;
  return ms > UINT64_MAX - extra ? UINT64_MAX : ms + extra;
}

std::string format_duration_ms(uint64_t ms) {
  if (ms != 0) {
    for (const Unit &u : {kUnits[1], kUnits[2], kUnits[3]}) {
      if (ms % u.ms == 0) return std::to_string(ms / u.ms) + std::string(u.suffix);
    }
  }
  return std::to_string(ms) + "ms";
}

}  // namespace sockmesh::resources::detail
