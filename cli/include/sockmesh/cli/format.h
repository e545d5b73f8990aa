// Small text renderings shared by every view: durations, times, addresses.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace sockmesh::cli {

// "42s", "5m3s", "2h5m", "3d4h": the two most significant units, like kubectl's AGE.
// Negative durations (clock skew) render as "0s".
std::string format_duration(std::int64_t ms);

// "2024-05-01 12:00:00 UTC".
std::string format_utc(std::int64_t unix_ms);

// "10.0.0.1:80", or "[fd00::1]:80" for an IPv6 address.
std::string format_host_port(std::string_view address, std::uint32_t port);

// "512 B", "1.5 KiB", "4.0 MiB": binary units, one decimal from KiB on.
std::string format_bytes(double bytes);

// "Label:" padded so that the values of consecutive lines line up in one column, then value and
// '\n': "Node:        n1\n".
std::string field_line(std::string_view label, std::string_view value);

}  // namespace sockmesh::cli
