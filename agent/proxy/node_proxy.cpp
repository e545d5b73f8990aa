#include "proxy/node_proxy.h"

#include <netinet/in.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/ip/v6_only.hpp>
#include <cstring>
#include <filesystem>
#include <future>
#include <optional>
#include <random>
#include <set>

#include "fastpath/fast_path.h"
#include "identity/rotator.h"
#include "proxy/capture_info.h"
#include "proxy/tunnel_client.h"
#include "proxy/tunnel_server.h"
#include "reconcile/capture_maps.h"
#include "reconcile/mesh_view.h"
#include "reconcile/policy_maps.h"
#include "sockmesh/policy/authorize.h"
#include "telemetry/names.h"

namespace sockmesh::proxy {
namespace {

struct WorkloadEntry {
  std::string id;  // "ns/name"
  std::string node;
  pki::SpiffeId spiffe;
  policy::Destination destination;
};

// What the proxy looks up per connection, rebuilt whole for every mesh view and swapped in.
struct Tables {
  std::map<uint32_t, WorkloadEntry> workloads;       // by the workload number the kernel reports
  std::map<std::string, uint32_t> workload_numbers;  // "ns/name" -> number (retry targets)
  std::map<uint32_t, std::string> node_names;        // by node number
  std::map<std::string, asio::ip::tcp::endpoint>
      tunnels;  // node name -> its agent's tunnel listener
  std::map<asio::ip::address, uint32_t> local_by_address;  // this node's workloads, for inbound
  std::map<uint64_t, uint32_t> cgroups;  // this node's workloads' cgroup ids -> number
  policy::PolicyIndex policies;
};

std::optional<asio::ip::address> first_of_family(const std::vector<std::string> &addresses,
                                                 bool v4) {
  for (const auto &text : addresses) {
    std::error_code ec;
    auto address = asio::ip::make_address(text, ec);
    if (!ec && address.is_v4() == v4) return address;
  }
  return std::nullopt;
}

// The port a handed-over listening socket is bound to must be the one this agent was told.
void check_port(int fd, uint16_t want, const char *what) {
  sockaddr_storage addr{};
  socklen_t len = sizeof(addr);
  if (getsockname(fd, reinterpret_cast<sockaddr *>(&addr), &len) != 0)
    throw std::runtime_error(std::string("handed-over ") + what +
                             " listener: getsockname: " + std::strerror(errno));
  const uint16_t port =
      ntohs(addr.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6 *>(&addr)->sin6_port
                                       : reinterpret_cast<sockaddr_in *>(&addr)->sin_port);
  if (port != want)
    throw std::runtime_error(std::string("the handed-over ") + what + " listener is on port " +
                             std::to_string(port) + ", this agent's is " + std::to_string(want));
}

void adopt_listener(asio::ip::tcp::acceptor &acceptor, const asio::ip::tcp &protocol, int fd,
                    uint16_t port) {
  check_port(fd, port, "captured-connection");
  acceptor.assign(protocol, fd);
}

// A listener for captured connections of one family; IPv6 only on the IPv6 one, so that both can
// use the same port.
void listen_on(asio::ip::tcp::acceptor &acceptor, const asio::ip::tcp::endpoint &at) {
  acceptor.open(at.protocol());
  acceptor.set_option(asio::socket_base::reuse_address(true));
  if (at.protocol() == asio::ip::tcp::v6()) acceptor.set_option(asio::ip::v6_only(true));
  std::error_code ec;
  acceptor.bind(at, ec);
  if (ec)
    throw std::runtime_error("cannot listen for captured connections on " +
                             at.address().to_string() + " port " + std::to_string(at.port()) +
                             ": " + ec.message());
  acceptor.listen(asio::socket_base::max_listen_connections);
}

// One captured connection's attempts at the backends of its service.
struct Attempts {
  std::shared_ptr<const Tables> tables;
  std::shared_ptr<const UpstreamService> service;  // null: not a VIP's (a direct connect)
  UpstreamBackend current;                         // of the attempt under way
  TriedBackends tried;
  uint32_t retries_left = 0;
  uint32_t count = 1;
};

}  // namespace

struct NodeProxy::Impl {
  NodeProxyOptions options;
  identity::Rotator &identities;
  reconcile::CaptureMaps &capture;
  reconcile::PolicyMaps *policy;  // may be null: no same-node authorization in the kernel
  asio::io_context io{1};
  asio::executor_work_guard<asio::io_context::executor_type> work{io.get_executor()};
  asio::ip::tcp::acceptor outbound{io};
  asio::ip::tcp::acceptor outbound6{io};
  std::unique_ptr<TunnelClient> client;
  std::unique_ptr<TunnelServer> server;
  std::thread thread;

  mutable std::mutex mu;  // guards what follows
  std::shared_ptr<const Tables> tables = std::make_shared<Tables>();
  std::map<std::string, uint32_t>
      workload_numbers;  // "ns/name" -> number, stable for the agent's life
  std::map<std::string, uint32_t> node_numbers;
  uint32_t next_workload_number = 1;
  uint32_t next_node_number = 1;
  bool numbers_seeded = false;
  bool accept_after_view = false;  // handed-over listeners: accept from the first view on
  std::map<std::string, std::shared_ptr<const Credentialed>> credentials;  // SPIFFE ID -> current
  std::string server_cert;                                                 // of server_context
  SslCtx server_context;
  uint64_t captured_accepted = 0;
  std::map<std::string, uint64_t> dropped;
  std::shared_ptr<const UpstreamTable> upstreams = std::make_shared<UpstreamTable>();
  uint64_t upstream_attempts = 0;
  uint64_t upstream_retries = 0;
  std::map<std::string, uint64_t> upstream_failed;
  uint64_t upstream_exhausted = 0;
  std::mt19937_64 random{std::random_device{}()};  // the io thread's only

  Impl(NodeProxyOptions o, identity::Rotator &ids, reconcile::CaptureMaps &maps,
       reconcile::PolicyMaps *policy_maps)
      : options(std::move(o)), identities(ids), capture(maps), policy(policy_maps) {}

  std::shared_ptr<const Tables> current() const {
    std::lock_guard lock(mu);
    return tables;
  }

  void drop(const std::string &reason, const std::string &detail) {
    {
      std::lock_guard lock(mu);
      ++dropped[reason];
    }
    spdlog::warn("event=outbound_dropped reason={} detail=\"{}\"", reason, detail);
  }

  // The SSL context a source identity presents: its current SVID (new context per generation).
  std::shared_ptr<const Credentialed> credential_for(const pki::SpiffeId &source) {
    const auto svid = identities.workloads().current(source);
    if (!svid) return nullptr;
    std::lock_guard lock(mu);
    auto &cached = credentials[source.str()];
    if (!cached || cached->generation != svid->generation) {
      auto fresh = std::make_shared<Credentialed>();
      fresh->context = share_context(pki::make_client_context(
          svid->credential, identities.node().bundle_pem, options.trust_domain));
      fresh->generation = svid->generation;
      cached = std::move(fresh);
    }
    return cached;
  }

  // The node's own certificate, as the inbound listener presents it (renewed: a new context).
  SslCtx server_context_now() {
    const auto node = identities.node();
    std::lock_guard lock(mu);
    if (!server_context || server_cert != node.certificate_pem) {
      server_context = share_context(
          pki::make_server_context(node.credential(), node.bundle_pem, options.trust_domain));
      server_cert = node.certificate_pem;
    }
    return server_context;
  }

  Decision authorize(const pki::SpiffeId &peer, const asio::ip::tcp::endpoint &destination) {
    const auto t = current();
    const auto local = t->local_by_address.find(destination.address());
    if (local == t->local_by_address.end()) {
      spdlog::warn("event=inbound_denied peer={} destination={} rule=not_local", peer.str(),
                   destination.address().to_string() + ":" + std::to_string(destination.port()));
      return {false, "not_local", "the destination is not a workload of this node"};
    }
    const WorkloadEntry &workload = t->workloads.at(local->second);
    const auto source = policy::Source::parse(peer.str());
    const auto decision = t->policies.decide(source ? *source : policy::Source::unauthenticated(),
                                             workload.destination, destination.port());
    spdlog::info("event=inbound peer={} destination={} workload={} decision={} rule=\"{}\"",
                 peer.str(),
                 destination.address().to_string() + ":" + std::to_string(destination.port()),
                 workload.id, decision.allowed ? "allow" : "deny", decision.decided_by);
    return {decision.allowed, decision.decided_by, decision.explanation};
  }

  // The first view takes over the numbers an earlier agent gave (the kernel's capture maps, by
  // cgroup and by address): a connection captured before this agent applied its view names its
  // source and destination by them, so they must keep meaning the same workloads and nodes.
  // Numbers the maps do not vouch for, or that two names would share, are given anew.
  void seed_numbers(const reconcile::MeshView &view) {
    numbers_seeded = true;
    std::map<uint64_t, uint32_t> by_cgroup;
    for (const auto &e : capture.workload_entries()) by_cgroup[e.cgroup_id] = e.value.id;
    std::map<std::string, sm_endpoint> by_address;
    for (const auto &e : capture.endpoint_entries())
      by_address[reconcile::text_of(e.key)] = e.value;
    std::set<uint32_t> workloads_taken, nodes_taken;
    auto claim = [](std::map<std::string, uint32_t> &numbers, std::set<uint32_t> &taken,
                    uint32_t &next, const std::string &key, uint32_t n) {
      if (n == 0 || numbers.count(key) || !taken.insert(n).second) return;
      numbers[key] = n;
      next = std::max(next, n + 1);
    };
    size_t adopted = 0;
    for (const auto &[id, w] : view.workloads) {
      uint32_t n = 0, node = 0;
      if (w.node == options.node && !w.cgroup_path.empty()) {
        try {
          const auto it = by_cgroup.find(
              reconcile::CaptureMaps::cgroup_id_of(options.workload_cgroup + "/" + w.cgroup_path));
          if (it != by_cgroup.end()) n = it->second;
        } catch (const std::exception &) {
        }
      }
      for (const auto &text : w.addresses) {
        std::string key;
        try {
          key = reconcile::text_of(reconcile::ip_key_of(reconcile::parse_ip(text)));
        } catch (const std::exception &) {
          continue;
        }
        const auto it = by_address.find(key);
        if (it == by_address.end()) continue;
        if (n == 0) n = it->second.workload_id;
        if (node == 0) node = it->second.node_id;
      }
      adopted += n != 0;
      claim(workload_numbers, workloads_taken, next_workload_number, id, n);
      claim(node_numbers, nodes_taken, next_node_number, w.node, node);
    }
    spdlog::info("event=numbers_adopted workloads={} of={} nodes={}", adopted,
                 view.workloads.size(), node_numbers.size());
  }

  void accept(asio::ip::tcp::acceptor &acceptor) {
    acceptor.async_accept([this, &acceptor](std::error_code ec, asio::ip::tcp::socket socket) {
      if (ec == asio::error::operation_aborted || !acceptor.is_open()) return;
      if (!ec) carry(std::move(socket));
      accept(acceptor);
    });
  }

  void carry(asio::ip::tcp::socket socket) {
    {
      std::lock_guard lock(mu);
      ++captured_accepted;
    }
    std::string error;
    const auto info = read_capture_info(socket.native_handle(), &error);
    if (!info) return drop("no_capture_record", error);
    const auto t = current();
    const auto source = t->workloads.find(info->src_workload);
    if (source == t->workloads.end())
      return drop("unknown_source", "workload number " + std::to_string(info->src_workload));
    const auto node = t->node_names.find(info->dst_node);
    const auto tunnel =
        node == t->node_names.end() ? t->tunnels.end() : t->tunnels.find(node->second);
    if (tunnel == t->tunnels.end())
      return drop("unknown_destination_node", "node number " + std::to_string(info->dst_node));
    if (!identities.workloads().current(source->second.spiffe))
      return drop("no_svid", source->second.spiffe.str());
    auto attempts = std::make_shared<Attempts>();
    attempts->tables = t;
    attempts->current = {reconcile::format_ip(info->backend.addr), info->backend.port, 0, ""};
    attempts->tried.insert({attempts->current.ip, attempts->current.port});
    std::shared_ptr<const UpstreamTable> upstream_table;
    {
      std::lock_guard lock(mu);
      upstream_table = upstreams;
      ++upstream_attempts;
    }
    const auto service = upstream_table->find(
        reconcile::ServiceKey{info->original.addr, info->original.port, IPPROTO_TCP});
    if (service != upstream_table->end()) {
      attempts->service = service->second;
      attempts->retries_left = service->second->retries;
    }
    Target first{
        {tunnel->second, pki::SpiffeId::node(options.trust_domain, node->second)},
        info->backend.to_string(),
        attempts->service ? attempts->service->connect_timeout : std::chrono::milliseconds(0)};
    const std::string from = source->second.id, to = info->original.to_string();
    client->carry(
        std::move(socket), source->second.spiffe, std::move(first),
        [this, attempts, from, to](const AttemptEnd &end) {
          return attempt_ended(*attempts, end, from, to);
        },
        [from, to, attempts](const CarryResult &result) {
          spdlog::info(
              "event=outbound source={} original={} backend={} outcome={} status={} attempts={} "
              "bytes_out={} bytes_in={}{}",
              from, to,
              reconcile::format_endpoint(reconcile::parse_ip(attempts->current.ip),
                                         attempts->current.port),
              outcome_name(result.outcome), result.status, attempts->count, result.bytes_to_tunnel,
              result.bytes_from_tunnel,
              result.detail.empty() ? "" : " detail=\"" + result.detail + "\"");
        });
  }

  // How an attempt went: told to the failure sink and counted; after a failure, the next backend
  // of the service to try, if the connection may still be retried (docs/tunnel.md).
  std::optional<Target> attempt_ended(Attempts &a, const AttemptEnd &end, const std::string &from,
                                      const std::string &to) {
    UpstreamFailureSink *sink = options.upstream_failures;
    const UpstreamAttempt attempt{a.service ? a.service->service : "", a.current.ip,
                                  a.current.port};
    if (end.connected) {
      if (sink && a.service) sink->succeeded(attempt);
      return std::nullopt;
    }
    if (sink && a.service) sink->failed(attempt);
    {
      std::lock_guard lock(mu);
      ++upstream_failed[end.reason];
    }
    if (!end.retry_possible) return std::nullopt;  // the client went away
    std::optional<size_t> next;
    if (a.service && a.retries_left > 0) {
      const Tables &t = *a.tables;
      // Same-node backends are not retried on: the agent would have to relay them itself
      // without the tunnel (docs/tunnel.md, "Limits").
      auto usable = [&](const UpstreamBackend &b) {
        const auto number = t.workload_numbers.find(b.workload);
        if (number == t.workload_numbers.end()) return false;
        const auto &workload = t.workloads.at(number->second);
        return workload.node != options.node && t.tunnels.count(workload.node) > 0;
      };
      auto ejected = [&](const UpstreamBackend &b) {
        return sink && sink->ejected({a.service->service, b.ip, b.port});
      };
      next = next_backend(a.service->backends, a.tried, usable, ejected, random());
    }
    if (!next) {
      {
        std::lock_guard lock(mu);
        ++upstream_exhausted;
      }
      spdlog::warn(
          "event=upstream_exhausted source={} original={} backend={}:{} attempts={} reason={} "
          "detail=\"{}\"",
          from, to, a.current.ip, a.current.port, a.count, end.reason, end.detail);
      return std::nullopt;
    }
    const UpstreamBackend &b = a.service->backends[*next];
    const Tables &t = *a.tables;
    const std::string &node = t.workloads.at(t.workload_numbers.at(b.workload)).node;
    spdlog::info(
        "event=upstream_retry source={} original={} failed={}:{} reason={} next={}:{} "
        "attempt={}",
        from, to, a.current.ip, a.current.port, end.reason, b.ip, b.port, a.count + 1);
    a.current = b;
    a.tried.insert({b.ip, b.port});
    --a.retries_left;
    ++a.count;
    {
      std::lock_guard lock(mu);
      ++upstream_attempts;
      ++upstream_retries;
    }
    return Target{{t.tunnels.at(node), pki::SpiffeId::node(options.trust_domain, node)},
                  reconcile::format_endpoint(reconcile::parse_ip(b.ip), b.port),
                  a.service->connect_timeout};
  }
};

NodeProxy::NodeProxy(NodeProxyOptions options, identity::Rotator &identities,
                     reconcile::CaptureMaps &capture, reconcile::PolicyMaps *policy)
    : impl_(std::make_unique<Impl>(std::move(options), identities, capture, policy)) {
  auto &d = *impl_;
  const auto &inherited = d.options.inherited_listeners;
  if (inherited[0] >= 0)
    adopt_listener(d.outbound, asio::ip::tcp::v4(), inherited[0], d.options.outbound_port);
  else
    listen_on(d.outbound, {asio::ip::address_v4::any(), d.options.outbound_port});
  if (inherited[1] >= 0)
    adopt_listener(d.outbound6, asio::ip::tcp::v6(), inherited[1], d.options.outbound_port);
  else
    listen_on(d.outbound6, {asio::ip::address_v6::any(), d.options.outbound_port});
  if (inherited[2] >= 0) check_port(inherited[2], d.options.inbound_port, "tunnel");
  d.client = std::make_unique<TunnelClient>(
      d.io, [&d](const pki::SpiffeId &s) { return d.credential_for(s); });
  try {
    d.server = std::make_unique<TunnelServer>(
        d.io, asio::ip::tcp::endpoint(asio::ip::address_v4::any(), d.options.inbound_port),
        [&d] { return d.server_context_now(); },
        [&d](const pki::SpiffeId &peer, const asio::ip::tcp::endpoint &to) {
          return d.authorize(peer, to);
        },
        TunnelLimits{}, inherited[2]);
  } catch (const std::system_error &e) {
    throw std::runtime_error("cannot listen for the tunnel on port " +
                             std::to_string(d.options.inbound_port) + ": " + e.what());
  }
  // Connections waiting on handed-over listeners were captured under the previous agent's
  // numbers: they are accepted once the first view has adopted those (accept_handed_over()).
  if (inherited[0] < 0 && inherited[1] < 0 && inherited[2] < 0) {
    d.accept(d.outbound);
    d.accept(d.outbound6);
  } else {
    d.accept_after_view = true;
  }
  d.thread = std::thread([&d] { d.io.run(); });
  spdlog::info("event=proxy_listening outbound_port={} inbound_port={}", d.options.outbound_port,
               d.options.inbound_port);
}

std::array<int, 3> NodeProxy::listener_fds() const {
  auto &d = *impl_;
  return {d.outbound.native_handle(), d.outbound6.native_handle(), d.server->listener_fd()};
}

void NodeProxy::stop_accepting() {
  auto &d = *impl_;
  std::promise<void> done;
  asio::post(d.io, [&d, &done] {
    std::error_code ignored;
    d.outbound.close(ignored);
    d.outbound6.close(ignored);
    done.set_value();
  });
  d.server->stop_accepting();
  done.get_future().wait();
}

uint64_t NodeProxy::open_streams() const {
  const auto s = stats();
  auto open = [](const TunnelStats &t) {
    const uint64_t ended = t.streams_closed + t.streams_reset;
    return t.streams_opened > ended ? t.streams_opened - ended : 0;
  };
  return open(s.outbound) + open(s.inbound);
}

NodeProxy::~NodeProxy() {
  auto &d = *impl_;
  // Capture stays on (docs/decisions.md, M5): while no agent listens, a captured connect to
  // another node is refused rather than sent in the clear; connections the kernel alone carries
  // (same node, not captured) are not affected.
  asio::post(d.io, [&d] {
    std::error_code ignored;
    d.outbound.close(ignored);
    d.outbound6.close(ignored);
    d.client->stop();
    d.server->stop();
  });
  d.work.reset();
  // Give the tunnel ends a moment to reset their streams and close, then stop whatever is left.
  std::thread stopper([&d] {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    d.io.stop();
  });
  d.thread.join();
  stopper.join();
  d.client.reset();
  d.server.reset();
}

void NodeProxy::set_view(std::shared_ptr<const reconcile::MeshView> view) {
  auto &d = *impl_;
  auto tables = std::make_shared<Tables>();
  std::vector<reconcile::CapturedWorkload> captured;
  std::vector<reconcile::MeshEndpoint> endpoints;
  std::vector<reconcile::PolicyWorkload> local_workloads;  // same-node authorization
  std::vector<fastpath::LocalWorkload> fast_path_workloads;
  std::optional<asio::ip::address> own_address, own_address6;
  {
    std::lock_guard lock(d.mu);
    if (!d.numbers_seeded) d.seed_numbers(*view);
    auto number = [](std::map<std::string, uint32_t> &numbers, uint32_t &next,
                     const std::string &key) {
      auto [it, added] = numbers.emplace(key, next);
      if (added) ++next;
      return it->second;
    };
    for (const auto &[name, addresses] : view->nodes) {
      const uint32_t n = number(d.node_numbers, d.next_node_number, name);
      tables->node_names[n] = name;
      if (auto v4 = first_of_family(addresses, true)) {
        tables->tunnels[name] = asio::ip::tcp::endpoint(*v4, d.options.inbound_port);
        if (name == d.options.node) own_address = v4;
      }
      if (name == d.options.node) own_address6 = first_of_family(addresses, false);
    }
    for (const auto &[id, w] : view->workloads) {
      const uint32_t n = number(d.workload_numbers, d.next_workload_number, id);
      const bool local = w.node == d.options.node;
      WorkloadEntry entry{
          id, w.node, pki::SpiffeId::workload(d.options.trust_domain, w.ns, w.service_account),
          policy::Destination{w.ns, policy::Labels(w.labels.begin(), w.labels.end()), id}};
      const uint32_t node = number(d.node_numbers, d.next_node_number, w.node);
      tables->node_names.emplace(node, w.node);
      for (const auto &text : w.addresses) {
        std::error_code ec;
        const auto address = asio::ip::make_address(text, ec);
        if (ec) continue;
        if (local) tables->local_by_address[address] = n;
        endpoints.push_back({reconcile::parse_ip(text), n, node, !local});
      }
      if (local && !w.cgroup_path.empty()) {
        const std::string dir = d.options.workload_cgroup + "/" + w.cgroup_path;
        fastpath::LocalWorkload fw{id, dir, {}};
        for (const auto &text : w.addresses) {
          try {
            fw.addresses.push_back(reconcile::parse_ip(text));
          } catch (const std::invalid_argument &) {
          }
        }
        fast_path_workloads.push_back(std::move(fw));
        try {
          captured.push_back({reconcile::CaptureMaps::cgroup_id_of(dir), n, w.captured});
          tables->cgroups[captured.back().cgroup_id] = n;
        } catch (const std::exception &e) {
          spdlog::warn("event=workload_cgroup_missing workload={} cgroup={} reason=\"{}\"", id, dir,
                       e.what());
        }
      }
      if (local) {
        const auto source = policy::Source::parse(entry.spiffe.str());
        local_workloads.push_back(
            {n, source ? *source : policy::Source::unauthenticated(), entry.destination});
      }
      tables->workload_numbers[id] = n;
      tables->workloads.emplace(n, std::move(entry));
    }
    tables->policies = policy::PolicyIndex::build(view->policies, d.options.trust_domain);
    d.tables = tables;
  }
  // Same-node authorization before the capture maps: entries name workload numbers, so a new
  // workload's decisions are in place before the kernel can resolve its cgroup or address.
  // A compile over the kernel's bounds is refused whole; the kernel keeps the last good entries.
  if (d.policy) {
    try {
      const auto p = d.policy->apply(tables->policies, local_workloads);
      spdlog::info(
          "event=policy_synced local_workloads={} entries={} written={} removed={} rules={}",
          local_workloads.size(), p.entries, p.written, p.removed, p.rules);
    } catch (const std::exception &e) {
      spdlog::error("event=policy_sync_refused reason=\"{}\" kept=last_good_entries", e.what());
    }
  }
  // The kernel follows: endpoints and workloads first, then capture on (only once this node's
  // address is known, the address captured connections are sent to).
  try {
    // The fast path learns the workloads' namespaces before sock_ops may look for them.
    if (d.options.fast_path) d.options.fast_path->set_workloads(fast_path_workloads);
    const auto e = d.capture.sync_endpoints(endpoints);
    const auto w = d.capture.sync_workloads(captured);
    reconcile::AgentListener agent;
    agent.fast_path = d.options.fast_path && d.options.fast_path->enabled();
    agent.fast_path_agent_hops = agent.fast_path && d.options.fast_path->agent_hops();
    // Captured connections are sent to this node's own address of their family; a family the
    // Node has no address of is not captured (the tunnel itself runs over the IPv4 address).
    if (own_address) {
      agent.ipv4 = reconcile::ListenAddress{reconcile::parse_ip(own_address->to_string()),
                                            d.options.outbound_port};
      if (own_address6)
        agent.ipv6 = reconcile::ListenAddress{reconcile::parse_ip(own_address6->to_string()),
                                              d.options.outbound_port};
      agent.capture_on = true;
    }
    if (!(d.capture.agent() == agent)) d.capture.set_agent(agent);
    spdlog::info(
        "event=capture_synced endpoints={} workloads={} written={} removed={} capture={} "
        "policies={}",
        endpoints.size(), captured.size(), e.written + w.written, e.removed + w.removed,
        agent.capture_on ? "on" : "off", view->policies.size());
  } catch (const std::exception &e) {
    spdlog::error("event=capture_sync_failed reason=\"{}\"", e.what());
  }
}

void NodeProxy::accept_handed_over() {
  auto &d = *impl_;
  {
    std::lock_guard lock(d.mu);
    if (!d.accept_after_view) return;
    d.accept_after_view = false;
  }
  asio::post(d.io, [&d] {
    d.accept(d.outbound);
    d.accept(d.outbound6);
  });
  d.server->start_accepting();
  spdlog::info("event=handed_over_listeners_accepting");
}

void NodeProxy::set_upstreams(std::shared_ptr<const UpstreamTable> upstreams) {
  if (!upstreams) upstreams = std::make_shared<UpstreamTable>();
  std::lock_guard lock(impl_->mu);
  impl_->upstreams = std::move(upstreams);
}

void NodeProxy::name_numbers(telemetry::Names *names) const {
  auto &d = *impl_;
  std::shared_ptr<const Tables> tables;
  {
    std::lock_guard lock(d.mu);
    tables = d.tables;
  }
  if (!tables) return;
  for (const auto &[n, w] : tables->workloads) names->workloads[n] = {w.id, w.spiffe.str()};
  names->nodes.insert(tables->node_names.begin(), tables->node_names.end());
  names->workload_by_cgroup.insert(tables->cgroups.begin(), tables->cgroups.end());
}

NodeProxyStats NodeProxy::stats() const {
  NodeProxyStats s;
  s.outbound = impl_->client->stats();
  s.inbound = impl_->server->stats();
  s.inbound_connections = impl_->server->connections();
  std::lock_guard lock(impl_->mu);
  s.captured_accepted = impl_->captured_accepted;
  s.outbound_dropped = impl_->dropped;
  s.upstream_attempts = impl_->upstream_attempts;
  s.upstream_retries = impl_->upstream_retries;
  s.upstream_failed = impl_->upstream_failed;
  s.upstream_exhausted = impl_->upstream_exhausted;
  return s;
}

}  // namespace sockmesh::proxy
