#include "sockmesh/cli/mesh_view.h"

#include <fmt/format.h>

#include <map>

#include "sockmesh/cli/format.h"

namespace sockmesh::cli {
namespace {

std::string counts(const google::protobuf::Map<std::string, std::uint64_t> &by_reason) {
  if (by_reason.empty()) return "-";
  std::map<std::string, std::uint64_t> sorted(by_reason.begin(), by_reason.end());
  std::string out;
  for (const auto &[reason, n] : sorted) out += fmt::format("{}{}={}", out.empty() ? "" : ",", reason, n);
  return out;
}

void tunnel_row(Table &table, const char *end, const v1::TunnelEndStatus &t) {
  table.add_row({end, fmt::format("{}/{}", t.connections_active(), t.connections_opened()),
                 fmt::format("{}/{}/{}/{}", t.streams_opened(), t.streams_closed(), t.streams_reset(),
                             t.streams_refused()),
                 fmt::format("{}/{}", t.bytes_to_tunnel(), t.bytes_from_tunnel()), counts(t.refusals()),
                 counts(t.denials())});
}

}  // namespace

void render_mesh(std::ostream &out, const v1::MeshStatus &mesh, std::int64_t now_unix_ms) {
  out << "\nMesh:\n"
      << field_line("Domain", mesh.trust_domain()) << field_line("Node ID", mesh.node_spiffe_id())
      << field_line("Node cert", "expires in " +
                                     format_duration(mesh.node_certificate_not_after_unix_ms() - now_unix_ms))
      << field_line("Identity", mesh.identity_error());
  Table svids({"SPIFFE-ID", "WORKLOAD", "GEN", "SERIAL", "EXPIRES", "RENEWS"});
  for (const auto &s : mesh.svids())
    svids.add_row({s.spiffe_id(), s.workload(), std::to_string(s.generation()), s.serial().substr(0, 16),
                   "in " + format_duration(s.not_after_unix_ms() - now_unix_ms),
                   "in " + format_duration(s.renew_at_unix_ms() - now_unix_ms)});
  render_section(out, "SVIDs", svids, "No SVIDs (no workload of this node has an identity yet).");
  Table tunnel({"END", "CONNECTIONS(ACTIVE/ALL)", "STREAMS(OPEN/CLOSED/RESET/REFUSED)", "BYTES(OUT/IN)",
                "PEERS-REFUSED", "DENIED"});
  tunnel_row(tunnel, "outbound", mesh.outbound());
  tunnel_row(tunnel, "inbound", mesh.inbound());
  render_section(out, "Tunnel", tunnel, "");
  out << field_line("Captured", fmt::format("{} accepted, dropped: {}", mesh.captured_accepted(),
                                            counts(mesh.outbound_dropped())));
  Table peers({"PEER", "CERTIFICATE", "FROM", "STREAMS(ACTIVE/ALL)"});
  for (const auto &c : mesh.inbound_connections())
    peers.add_row({c.peer(), c.peer_certificate().substr(0, 23), c.remote(),
                   fmt::format("{}/{}", c.streams_active(), c.streams_total())});
  render_section(out, "Inbound tunnel connections", peers, "None.");
  Table denials({"RULE", "DENIED"});
  for (const auto &d : mesh.kernel_denials()) denials.add_row({d.rule(), std::to_string(d.count())});
  render_section(out, "Same-node denials (kernel, at connect)", denials, "None.");
}

}  // namespace sockmesh::cli
