// What the observability commands show (docs/meshctl.md): `bpf maps`, `bpf dump` and `stats`,
// built from the admin API's ListMaps, DumpMap and GetTraffic answers.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "sockmesh/v1/admin.pb.h"

namespace sockmesh::cli {

// `meshctl bpf maps`: NAME TYPE ENTRIES/MAX FILL% MEMORY HOLDS, one row per map in the agent's
// order, then "Total: N maps, <memory>". ENTRIES/MAX is "?/MAX" when the agent cannot count the
// entries, "-" for a map without a capacity; FILL% "-" in both cases.
std::string render_maps(const v1::ListMapsResponse &maps);

// `meshctl bpf dump`: "<name> (<type>): <total> entries" then KEY VALUE rows, and a line saying how
// many were left out when truncated. A map that cannot be listed (sk_storage, ringbuf) prints the
// agent's explanation instead.
std::string render_dump(const v1::DumpMapResponse &dump);

// One line of `meshctl stats`: rates over the interval between two reports.
struct TrafficRow {
  std::string name;          // "demo/web", or "demo/client → demo/web (demo/web)"
  double connections = 0;    // connections established per second (opened)
  std::uint64_t active = 0;  // open now
  double failed = 0;         // connects failed or refused per second (failed, no_backend, denied)
  double sent = 0;           // bytes per second
  double received = 0;       // bytes per second
  std::optional<double> srtt_us;  // average of the RTT readings taken during the interval
};

struct TrafficStats {
  double seconds = 0;                // between the two reports (unix_ms)
  std::vector<TrafficRow> services;  // per service ("(direct)": connects to workload addresses)
  std::vector<TrafficRow> pairs;     // per (source, destination, service)
};

// Rates from two reports of the same agent, `after` read later. A tuple absent from `before`
// counts from zero; a counter lower in `after` (the agent restarted) counts from zero too. Both
// lists are sorted by bytes per second (sent + received), then connections per second, then name.
// Throws CliError when `after` is not later than `before`.
TrafficStats traffic_stats(const v1::TrafficReport &before, const v1::TrafficReport &after);

// One frame of `meshctl stats`: node, time, access log, untracked connections, then the `top`
// busiest services and workload pairs.
std::string render_stats(const std::string &node, const v1::TrafficReport &after,
                         const TrafficStats &stats, std::size_t top);

}  // namespace sockmesh::cli
