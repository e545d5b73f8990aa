#include "admin/mesh_status.h"

#include "identity/rotator.h"
#include "proxy/node_proxy.h"
#include "reconcile/policy_maps.h"

namespace sockmesh::admin {
namespace {

int64_t unix_ms(pki::TimePoint t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

void fill(const proxy::TunnelStats &s, v1::TunnelEndStatus *out) {
  out->set_connections_opened(s.connections_opened);
  out->set_connections_active(s.connections_active);
  out->set_handshakes_failed(s.handshakes_failed);
  out->set_streams_opened(s.streams_opened);
  out->set_streams_closed(s.streams_closed);
  out->set_streams_reset(s.streams_reset);
  out->set_streams_refused(s.streams_refused);
  out->set_bytes_to_tunnel(s.bytes_to_tunnel);
  out->set_bytes_from_tunnel(s.bytes_from_tunnel);
  out->set_pool_hits(s.pool_hits);
  out->set_pool_misses(s.pool_misses);
  out->set_buffered_bytes(s.buffered_bytes);
  for (const auto &[reason, n] : s.refusals) (*out->mutable_refusals())[reason] = n;
  for (const auto &[rule, n] : s.denials) (*out->mutable_denials())[rule] = n;
}

}  // namespace

v1::MeshStatus mesh_status(const identity::Rotator &identities, const proxy::NodeProxy &proxy,
                           const std::string &trust_domain, const reconcile::PolicyMaps *policy) {
  v1::MeshStatus out;
  out.set_trust_domain(trust_domain);
  const auto node = identities.node();
  const auto cert = pki::Certificate::from_pem(node.certificate_pem);
  if (const auto id = cert.spiffe_id()) out.set_node_spiffe_id(id->str());
  out.set_node_certificate_not_after_unix_ms(unix_ms(cert.not_after()));
  out.set_identity_error(identities.last_error());
  for (const auto &[id, svid] : identities.workloads().all()) {
    auto *s = out.add_svids();
    s->set_spiffe_id(id);
    s->set_workload(svid.workload);
    s->set_generation(svid.generation);
    s->set_serial(svid.credential.chain.front().serial_hex());
    s->set_not_after_unix_ms(unix_ms(svid.not_after));
    s->set_renew_at_unix_ms(unix_ms(svid.renew_at));
  }
  const auto stats = proxy.stats();
  out.set_captured_accepted(stats.captured_accepted);
  for (const auto &[reason, n] : stats.outbound_dropped) (*out.mutable_outbound_dropped())[reason] = n;
  fill(stats.outbound, out.mutable_outbound());
  fill(stats.inbound, out.mutable_inbound());
  for (const auto &c : stats.inbound_connections) {
    auto *i = out.add_inbound_connections();
    i->set_peer(c.peer);
    i->set_peer_certificate(c.peer_certificate);
    i->set_remote(c.remote.address().to_string() + ":" + std::to_string(c.remote.port()));
    i->set_streams_total(c.streams_total);
    i->set_streams_active(c.streams_active);
  }
  if (policy) {
    try {
      for (const auto &d : policy->denials()) {
        auto *k = out.add_kernel_denials();
        k->set_rule(d.rule);
        k->set_count(d.count);
        k->set_rule_id(d.id);
      }
    } catch (const std::exception &) {
      out.clear_kernel_denials();  // the counters could not be read: shown as none
    }
  }
  return out;
}

}  // namespace sockmesh::admin
