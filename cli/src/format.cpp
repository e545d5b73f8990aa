#include "sockmesh/cli/format.h"

#include <fmt/chrono.h>
#include <fmt/format.h>

#include <ctime>
#include <iterator>

namespace sockmesh::cli {

std::string format_duration(std::int64_t ms) {
  const std::int64_t s = ms < 0 ? 0 : ms / 1000;
  const std::int64_t days = s / 86400, hours = s / 3600 % 24, minutes = s / 60 % 60,
                     seconds = s % 60;
  if (days > 0) return hours > 0 ? fmt::format("{}d{}h", days, hours) : fmt::format("{}d", days);
  if (hours > 0)
    return minutes > 0 ? fmt::format("{}h{}m", hours, minutes) : fmt::format("{}h", hours);
  if (minutes > 0) {
    return seconds > 0 ? fmt::format("{}m{}s", minutes, seconds) : fmt::format("{}m", minutes);
  }
  return fmt::format("{}s", seconds);
}

std::string format_utc(std::int64_t unix_ms) {
  const std::time_t t = static_cast<std::time_t>(unix_ms / 1000);
  return fmt::format("{:%Y-%m-%d %H:%M:%S} UTC", fmt::gmtime(t));
}

std::string format_host_port(std::string_view address, std::uint32_t port) {
  if (address.find(':') != std::string_view::npos) return fmt::format("[{}]:{}", address, port);
  return fmt::format("{}:{}", address, port);
}

std::string format_bytes(double bytes) {
  if (bytes < 1024) return fmt::format("{:.0f} B", bytes < 0 ? 0 : bytes);
  constexpr const char *kUnits[] = {"KiB", "MiB", "GiB", "TiB", "PiB"};
  std::size_t unit = 0;
  bytes /= 1024;
  while (bytes >= 1024 && unit + 1 < std::size(kUnits)) {
    bytes /= 1024;
    ++unit;
  }
  return fmt::format("{:.1f} {}", bytes, kUnits[unit]);
}

std::string field_line(std::string_view label, std::string_view value) {
  return fmt::format("{:<12} {}\n", fmt::format("{}:", label), value);
}

}  // namespace sockmesh::cli
