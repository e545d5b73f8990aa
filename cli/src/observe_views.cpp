#include "sockmesh/cli/observe_views.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <sstream>
#include <tuple>

#include "sockmesh/cli/error.h"
#include "sockmesh/cli/format.h"
#include "sockmesh/cli/table.h"

namespace sockmesh::cli {
namespace {

std::string entries_of(const v1::BpfMap &m) {
  if (m.max_entries() == 0) return m.entries_known() ? std::to_string(m.entries()) : "-";
  return fmt::format("{}/{}", m.entries_known() ? std::to_string(m.entries()) : "?",
                     m.max_entries());
}

std::string fill_of(const v1::BpfMap &m) {
  if (!m.entries_known() || m.max_entries() == 0) return "-";
  const double percent = static_cast<double>(m.entries()) * 100.0 / m.max_entries();
  if (m.entries() > 0 && percent < 0.1) return "<0.1%";
  return fmt::format("{:.1f}%", percent);
}

// What a tuple's counters add up to.
struct Counters {
  std::uint64_t opened = 0, failed = 0, active = 0, sent = 0, received = 0, srtt_samples = 0,
                srtt_us_sum = 0;
};

Counters counters_of(const v1::TrafficPair &p) {
  return {.opened = p.opened(),
          .failed = p.failed() + p.no_backend() + p.denied(),
          .active = p.active(),
          .sent = p.bytes_sent(),
          .received = p.bytes_received(),
          .srtt_samples = p.srtt_samples(),
          .srtt_us_sum = p.srtt_us_sum()};
}

// A counter's growth; one lower than before has restarted from zero.
std::uint64_t growth(std::uint64_t before, std::uint64_t after) {
  return after >= before ? after - before : after;
}

using TupleKey = std::tuple<std::string, std::string, std::string, std::string, std::string>;

TupleKey key_of(const v1::TrafficPair &p) {
  return {p.service(), p.vip(), p.backend(), p.source_workload(), p.destination_workload()};
}

// Growth over the interval, plus the active connections now.
struct Sum {
  std::uint64_t opened = 0, failed = 0, active = 0, sent = 0, received = 0, srtt_samples = 0,
                srtt_us_sum = 0;
  void add(const Counters &before, const Counters &after) {
    opened += growth(before.opened, after.opened);
    failed += growth(before.failed, after.failed);
    active += after.active;
    sent += growth(before.sent, after.sent);
    received += growth(before.received, after.received);
    srtt_samples += growth(before.srtt_samples, after.srtt_samples);
    srtt_us_sum += growth(before.srtt_us_sum, after.srtt_us_sum);
  }
  TrafficRow row(std::string name, double seconds) const {
    TrafficRow r;
    r.name = std::move(name);
    r.connections = opened / seconds;
    r.active = active;
    r.failed = failed / seconds;
    r.sent = sent / seconds;
    r.received = received / seconds;
    if (srtt_samples > 0) r.srtt_us = static_cast<double>(srtt_us_sum) / srtt_samples;
    return r;
  }
};

std::vector<TrafficRow> rows_of(const std::map<std::string, Sum> &sums, double seconds) {
  std::vector<TrafficRow> rows;
  for (const auto &[name, sum] : sums) rows.push_back(sum.row(name, seconds));
  std::stable_sort(rows.begin(), rows.end(), [](const TrafficRow &a, const TrafficRow &b) {
    const double bytes_a = a.sent + a.received, bytes_b = b.sent + b.received;
    if (bytes_a != bytes_b) return bytes_a > bytes_b;
    return a.connections > b.connections;  // names already in order (std::map)
  });
  return rows;
}

std::string rate(double value) {
  return fmt::format("{:.1f}", value);
}

std::string srtt_text(const std::optional<double> &us) {
  if (!us) return "-";
  if (*us < 1000) return fmt::format("{:.0f}us", *us);
  if (*us < 1'000'000) return fmt::format("{:.1f}ms", *us / 1000);
  return fmt::format("{:.2f}s", *us / 1'000'000);
}

Table traffic_table(const std::string &first, const std::vector<TrafficRow> &rows,
                    std::size_t top) {
  Table table({first, "CONN/S", "ACTIVE", "FAILED/S", "SENT/S", "RECV/S", "AVG SRTT"});
  for (std::size_t i = 0; i < rows.size() && i < top; ++i) {
    const auto &r = rows[i];
    table.add_row({r.name, rate(r.connections), std::to_string(r.active), rate(r.failed),
                   format_bytes(r.sent), format_bytes(r.received), srtt_text(r.srtt_us)});
  }
  return table;
}

std::string access_log_text(const v1::AccessLogStatus &log) {
  std::string text;
  const std::string path = log.path().empty() ? "-" : log.path();
  if (log.mode() == "all") {
    text = "all connections to " + path;
  } else if (log.mode() == "sampled") {
    text = fmt::format("sampled, {:.4g}% of connections to {}", log.sampling() * 100, path);
  } else {
    text = log.mode().empty() ? "off" : log.mode();
  }
  return text + fmt::format(", {} events lost", log.events_lost());
}

}  // namespace

std::string render_maps(const v1::ListMapsResponse &maps) {
  if (maps.maps().empty()) return "No maps.\n";
  Table table({"NAME", "TYPE", "ENTRIES/MAX", "FILL%", "MEMORY", "HOLDS"});
  for (const auto &m : maps.maps()) {
    table.add_row({m.name(), m.type(), entries_of(m), fill_of(m),
                   format_bytes(static_cast<double>(m.memory_bytes())),
                   m.holds().empty() ? "-" : m.holds()});
  }
  std::ostringstream out;
  table.render(out);
  out << fmt::format("Total: {} map{}, {}\n", maps.maps_size(), maps.maps_size() == 1 ? "" : "s",
                     format_bytes(static_cast<double>(maps.memory_bytes())));
  return out.str();
}

std::string render_dump(const v1::DumpMapResponse &dump) {
  const auto &m = dump.map();
  std::ostringstream out;
  if (!m.entries_known()) {
    // Nothing to list: the agent says why, in entries without a key.
    out << fmt::format("{} ({}): entries cannot be listed\n", m.name(), m.type());
    for (const auto &e : dump.entries()) out << e.value() << '\n';
    return out.str();
  }
  out << fmt::format("{} ({}): {} entr{}\n", m.name(), m.type(), dump.total(),
                     dump.total() == 1 ? "y" : "ies");
  if (dump.entries().empty()) return out.str();
  Table table({"KEY", "VALUE"});
  for (const auto &e : dump.entries()) table.add_row({e.key(), e.value()});
  table.render(out);
  if (dump.truncated()) {
    out << fmt::format("... {} more not shown (--limit N shows up to N)\n",
                       dump.total() - static_cast<std::uint64_t>(dump.entries_size()));
  }
  return out.str();
}

TrafficStats traffic_stats(const v1::TrafficReport &before, const v1::TrafficReport &after) {
  if (after.unix_ms() <= before.unix_ms()) {
    throw CliError(fmt::format(
        "the agent's traffic report did not move on (read at {} ms, then {} ms): cannot compute "
        "rates",
        before.unix_ms(), after.unix_ms()));
  }
  TrafficStats stats;
  stats.seconds = static_cast<double>(after.unix_ms() - before.unix_ms()) / 1000.0;
  std::map<TupleKey, Counters> previous;
  for (const auto &p : before.pairs()) {
    auto &c = previous[key_of(p)];
    const Counters add = counters_of(p);
    c.opened += add.opened;
    c.failed += add.failed;
    c.active += add.active;
    c.sent += add.sent;
    c.received += add.received;
    c.srtt_samples += add.srtt_samples;
    c.srtt_us_sum += add.srtt_us_sum;
  }
  std::map<std::string, Sum> services, pairs;
  for (const auto &p : after.pairs()) {
    const auto it = previous.find(key_of(p));
    const Counters was = it == previous.end() ? Counters{} : it->second;
    const Counters now = counters_of(p);
    const std::string service = p.service().empty() ? "(direct)" : p.service();
    services[service].add(was, now);
    const std::string pair =
        p.service().empty() ? fmt::format("{} → {}", p.source_workload(), p.destination_workload())
                            : fmt::format("{} → {} ({})", p.source_workload(),
                                          p.destination_workload(), p.service());
    pairs[pair].add(was, now);
  }
  stats.services = rows_of(services, stats.seconds);
  stats.pairs = rows_of(pairs, stats.seconds);
  return stats;
}

std::string render_stats(const std::string &node, const v1::TrafficReport &after,
                         const TrafficStats &stats, std::size_t top) {
  std::ostringstream out;
  out << field_line("Node", node)
      << field_line("Time",
                    fmt::format("{}, rates over {:g}s", format_utc(after.unix_ms()), stats.seconds))
      << field_line("Access log", access_log_text(after.access_log()))
      << field_line("Untracked", fmt::format("{} connections", after.untracked()));
  render_section(out, "Services", traffic_table("SERVICE", stats.services, top), "No traffic.");
  render_section(out, "Workload pairs",
                 traffic_table("SOURCE → DESTINATION (SERVICE)", stats.pairs, top), "No traffic.");
  return out.str();
}

}  // namespace sockmesh::cli
