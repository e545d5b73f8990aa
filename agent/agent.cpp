#include "agent.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <malloc.h>
#include <poll.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <regex>
#include <set>
#include <stdexcept>

#include "admin/admin_server.h"
#include "admin/health_server.h"
#include "admin/mesh_status.h"
#include "config/file_watcher.h"
#include "fastpath/fast_path.h"
#include "identity/rotator.h"
#include "loader/datapath.h"
#include "loader/features.h"
#include "proxy/node_proxy.h"
#include "reconcile/bpf_lb_maps.h"
#include "reconcile/capture_maps.h"
#include "reconcile/mesh_view.h"
#include "reconcile/policy_maps.h"
#include "reconcile/reconciler.h"
#include "reconcile/bpf_resilience_states.h"
#include "reconcile/fault_sources.h"
#include "reconcile/upstream_reports.h"
#include "reconcile/translate.h"
#include "sockmesh/capture_maps.h"
#include "sockmesh/common/paths.h"
#include "sockmesh/lb_maps.h"
#include "sockmesh/resources/load.h"
#include "sockmesh/resources/resource_set.h"
#include "sockmesh/resources/validate.h"
#include "telemetry/datapath_counters.h"
#include "telemetry/map_decode.h"
#include "telemetry/map_inspector.h"
#include "telemetry/metrics_exporter.h"
#include "telemetry/names.h"
#include "telemetry/resilience_report.h"
#include "telemetry/traffic_counters.h"
#include "xds/discovery_client.h"
#include "xds/error_detail.h"
#include "xds/last_known_good.h"

namespace sockmesh {
namespace {

int64_t unix_ms(std::chrono::system_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}
int64_t now_ms() {
  return unix_ms(std::chrono::system_clock::now());
}

std::string join_lines(const std::vector<std::string> &lines) {
  std::string out;
  for (const auto &line : lines) out += (out.empty() ? "" : "\n") + line;
  return out;
}

// The programs must never act on the agent's own sockets (its upstream connections would be
// balanced or captured again). An agent inside the workload cgroup (a DaemonSet pod under
// kubepods, the programs attached at the cgroup v2 root) is fine: the loader tells the programs
// its cgroup and they leave its sockets alone (docs/datapath.md). An agent whose own cgroup IS the
// workload cgroup is refused: nothing would tell its sockets from the workloads' there, and the
// agent-cgroup programs would run for every workload socket (any workload could report upstream
// failures to eject backends, or be answered SO_ORIGINAL_DST).
void check_workload_cgroup(const std::string &cgroup) {
  if (cgroup.empty() || cgroup[0] != '/')
    throw std::runtime_error("--cgroup must be an absolute path, got \"" + cgroup + "\"");
  struct statfs fs {};
  if (statfs(cgroup.c_str(), &fs) != 0)
    throw std::runtime_error("--cgroup " + cgroup + ": " + std::strerror(errno));
  if (fs.f_type != CGROUP2_SUPER_MAGIC)
    throw std::runtime_error("--cgroup " + cgroup + " is not a cgroup v2 directory (mount: " +
                             loader::cgroup2_mount() + ")");
  std::string mine = loader::cgroup2_mount() + loader::own_cgroup();
  while (mine.size() > 1 && mine.back() == '/') mine.pop_back();
  std::string target = cgroup;
  while (target.size() > 1 && target.back() == '/') target.pop_back();
  if (mine == target)
    throw std::runtime_error("meshd runs in the workload cgroup itself (" + mine +
                             "); start it from another cgroup, or from one below it");
}

// 64-bit FNV-1a: the agent remembers which file text it applied or refused by digest, not by
// keeping the text (megabytes at 10,000 services).
uint64_t text_digest(const std::string &text) {
  uint64_t hash = 0xcbf29ce484222325ull;
  for (unsigned char c : text) hash = (hash ^ c) * 0x100000001b3ull;
  return hash;
}

}  // namespace

void check_node_name(const std::string &node) {
  static const std::regex label("^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$");
  if (!std::regex_match(node, label))
    throw std::runtime_error("--node \"" + node +
                             "\" is not a valid node name (lowercase letters, digits and '-', "
                             "at most 63, starting and ending with a letter or digit)");
}

int lock_node(const std::string &node) {
  std::string dir = paths::run_dir(node);
  mkdir(std::string(paths::kRunRoot).c_str(), 0700);
  if (mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST)
    throw std::runtime_error("mkdir " + dir + ": " + std::strerror(errno));
  std::string path = dir + "/meshd.lock";
  int fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) throw std::runtime_error("open " + path + ": " + std::strerror(errno));
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    char pid[32] = {};
    ssize_t n = pread(fd, pid, sizeof(pid) - 1, 0);
    close(fd);
    std::string holder = n > 0 ? std::string(pid, strnlen(pid, size_t(n))) : "?";
    while (!holder.empty() && holder.back() == '\n') holder.pop_back();
    throw std::runtime_error("another meshd serves node \"" + node + "\" (pid " + holder + ")");
  }
  std::string pid = std::to_string(getpid()) + "\n";
  if (ftruncate(fd, 0) != 0 || pwrite(fd, pid.data(), pid.size(), 0) < 0)
    spdlog::warn("event=lock_pid_write_failed path={} error=\"{}\"", path, std::strerror(errno));
  return fd;
}

// After a handover the previous agent lets go of the node lock once it has stopped writing the
// node's state; until then (and for a moment of its run directory's removal) try again.
int lock_node_within(const std::string &node, std::chrono::milliseconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  for (;;) {
    try {
      return lock_node(node);
    } catch (const std::runtime_error &e) {
      if (std::chrono::steady_clock::now() >= deadline)
        throw std::runtime_error(std::string(e.what()) + " after the handover (waited " +
                                 std::to_string(limit.count() / 1000) + " s)");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

namespace {

// The signals run() reads from a signalfd. They are blocked before the agent starts any thread
// (gRPC's, the discovery stream's, the last-known-good writer's): a thread created earlier would
// not block them, the kernel would deliver SIGTERM to it, and its default action would kill the
// agent without the orderly stop (seen as a last-known-good state never written).
sigset_t agent_signals() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  return signals;
}

}  // namespace

Agent::Agent(AgentOptions options) : options_(std::move(options)) {
  const sigset_t signals = agent_signals();
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  started_ = std::chrono::system_clock::now();
  check_node_name(options_.node);
  check_workload_cgroup(options_.workload_cgroup);
  // With an agent serving the node, this one loads its programs first and asks for the node
  // afterwards (take_over()): the serving agent accepts until then (docs/upgrades.md).
  struct stat st {};
  upgrading_ = ::stat(upgrade::handover_socket(options_.node).c_str(), &st) == 0;
  if (!upgrading_) lock_fd_ = lock_node(options_.node);
  try {
    start();
  } catch (...) {
    release_node();
    throw;
  }
}

// The serving agent's listeners and the node, once this agent's programs are loaded: an agent
// serving the node hands them over and lets go of it; without one, a cold start takes the lock.
void Agent::take_over() {
  if (!upgrading_) return;
  handover_ =
      upgrade::request_handover(upgrade::handover_socket(options_.node), std::chrono::seconds(10));
  if (handover_) {
    spdlog::info("event=handover_received from_pid={} listeners={}", handover_->previous,
                 handover_->listeners.size());
    lock_fd_ = lock_node_within(options_.node, std::chrono::seconds(20));
  } else {
    lock_fd_ = lock_node(options_.node);  // a socket file left by an agent that crashed
  }
}

void Agent::start() {
  // Read (and in file mode validate) the configuration before touching the kernel: a bad file
  // at start changes nothing.
  std::string text;
  resources::LoadResult loaded;
  std::optional<xds::KnownGood> known_good;
  if (controlplane_mode()) {
    lkg_ = std::make_unique<xds::LastKnownGood>(options_.state_dir + "/last-known-good.pb");
  } else {
    text = config::read_file(options_.config_path);
    loaded = resources::load_yaml_string(text, options_.config_path);
    if (!loaded.ok()) throw std::runtime_error("invalid config:\n" + join_lines(loaded.errors));
  }

  const auto probe_begin = std::chrono::steady_clock::now();
  features_ = loader::probe_features();
  const auto probe_end = std::chrono::steady_clock::now();
  if (const char *hidden = std::getenv("SOCKMESH_HIDE_FEATURES"))
    loader::hide_features(features_, hidden);
  if (auto missing = loader::missing_required(features_); !missing.empty())
    throw std::runtime_error(missing);
  for (const auto &f : features_) {
    if (!f.present)
      spdlog::warn("event=kernel_feature_absent feature={} since={} effect=\"{}\"", f.name, f.since,
                   f.without);
  }
  loader::DatapathOptions datapath_options;
  datapath_options.set_retval = loader::has(features_, "helper:bpf_set_retval");
  datapath_options.events_ring_bytes = options_.events_ring_bytes;
  const auto fast_path_missing = loader::fast_path_missing(features_);
  datapath_options.fast_path = fast_path_missing.empty();
  // Told before the first workload program is attached: inside the workload cgroup, the agent's
  // sockets are left alone from the start (its listeners and connections are all made later).
  datapath_options.agent_cgroup = loader::cgroup2_mount() + loader::own_cgroup();
  datapath_ =
      std::make_unique<loader::Datapath>(options_.node, options_.workload_cgroup, datapath_options);
  const auto load_end = std::chrono::steady_clock::now();
  // Before anything reads or writes the node's state (maps, last-known-good, event ring): the node
  // is this agent's from here on.
  take_over();
  if (lkg_) {
    try {
      known_good = lkg_->load();  // after the handover: the previous agent wrote it last
    } catch (const std::exception &e) {
      spdlog::error("event=lkg_unusable reason=\"{}\" action=start_empty", e.what());
    }
  }
  lb_maps_ = std::make_unique<reconcile::BpfLbMaps>(datapath_->services_fd(),
                                                    datapath_->backend_sets_fd());
  resilience_states_ = std::make_unique<reconcile::BpfResilienceStates>(
      datapath_->service_states_fd(), datapath_->backend_states_fd());
  reconciler_ = std::make_unique<reconcile::Reconciler>(*lb_maps_, resilience_states_.get());
  fault_sources_ = std::make_unique<reconcile::FaultSourceMap>(datapath_->fault_sources_fd());
  auto ms = [](auto d) { return std::chrono::duration_cast<std::chrono::milliseconds>(d).count(); };
  spdlog::info(
      "event=datapath_ready node={} pin_dir={} adopted={} adopted_services={} probe_ms={} "
      "load_ms={}",
      options_.node, datapath_->pin_dir(), datapath_->adopted(), reconciler_->services(),
      ms(probe_end - probe_begin), ms(load_end - probe_end));
  start_telemetry();

  if (controlplane_mode()) {
    xds::KnownGood held;
    if (known_good) {
      // The control plane may be down: serve what was last ACKed until it answers.
      if (auto refused = apply_candidate(*known_good, nullptr)) {
        spdlog::error("event=lkg_rejected reason=\"{}\" action=start_empty", refused->message());
      } else {
        held = std::move(*known_good);
        spdlog::info("event=lkg_applied version={} resources={}", held.system_version,
                     held.resources.size());
      }
    }
    // Join (or load the node's identity) before anything talks to meshcp: every channel is mTLS.
    auto join = options_.join;
    join.controlplane = options_.controlplane;
    const std::string identity_dir = options_.state_dir + "/identity";
    auto node_identity = identity::NodeIdentity::load_or_join(identity_dir, options_.node, join,
                                                              pki::system_clock());
    trust_domain_ = node_identity.trust_domain;
    const identity::ChannelSecurity security{node_identity.bundle_pem, node_identity.key.pem(),
                                             node_identity.certificate_pem};
    rotator_ = std::make_unique<identity::Rotator>(
        options_.controlplane, identity_dir, std::move(node_identity),
        [this](const identity::NodeIdentity &renewed) {
          if (client_)
            client_->set_security({renewed.bundle_pem, renewed.key.pem(), renewed.certificate_pem});
        });
    // Capture: the agent's end of it in the kernel (its own cgroup), the maps, and the proxy that
    // carries captured connections over the tunnel.
    datapath_->attach_agent(loader::cgroup2_mount() + loader::own_cgroup());
    capture_maps_ = std::make_unique<reconcile::CaptureMaps>(
        datapath_->workloads_fd(), datapath_->endpoints_fd(), datapath_->agent_config_fd());
    policy_maps_ = std::make_unique<reconcile::PolicyMaps>(datapath_->policy_fd(),
                                                           datapath_->policy_denials_fd());
    fast_path_ = std::make_unique<fastpath::FastPath>(
        datapath_->netns_fd(), datapath_->fastpath_fd(),
        fastpath::FastPathOptions{options_.fast_path, options_.fast_path_agent_hops,
                                  fast_path_missing});
    spdlog::info("event=fastpath switched_on={} supported={} enabled={} agent_hops={}",
                 options_.fast_path, fast_path_missing.empty(), fast_path_->enabled(),
                 fast_path_->agent_hops());
    // Made here, in the agent's cgroup now that sm_setsockopt is attached to it.
    upstream_reports_ =
        std::make_unique<reconcile::KernelUpstreamReports>(datapath_->backend_states_fd());
    proxy::NodeProxyOptions proxy_options{
        options_.node,        trust_domain_,    options_.workload_cgroup, options_.outbound_port,
        options_.tunnel_port, fast_path_.get(), upstream_reports_.get()};
    if (handover_ && handover_->listeners.size() == proxy_options.inherited_listeners.size())
      for (size_t i = 0; i < handover_->listeners.size(); ++i)
        proxy_options.inherited_listeners[i] = handover_->listeners[i].release();
    proxy_ = std::make_unique<proxy::NodeProxy>(std::move(proxy_options), *rotator_, *capture_maps_,
                                                policy_maps_.get());
    {
      // What was applied before the proxy existed (the last known good state).
      std::lock_guard lock(mu_);
      proxy_->set_upstreams(proxy::upstream_table_of(desired_, snapshot_.services()));
      set_report_slots();
    }
    if (!held.resources.empty()) mesh_state_applied(held, nullptr);
    admin_ = std::make_unique<admin::AdminServer>(paths::admin_socket(options_.node), *this);
    client_ = std::make_unique<xds::DiscoveryClient>(
        options_.controlplane, options_.node, security, std::move(held),
        [this](const xds::KnownGood &candidate, const xds::Delta &delta) {
          return apply_candidate(candidate, &delta);
        });
    persist_thread_ = std::thread([this] { persist_loop(); });
    if (handover_) {
      // The connections waiting on the handed-over listeners need their sources' SVIDs.
      wait_for_local_svids(std::chrono::seconds(10));
      proxy_->accept_handed_over();
    }
    start_health();
    serve_handover();
    return;
  }
  {
    std::lock_guard lock(mu_);
    applied_text_ = text_digest(text);
    apply_locked(loaded.snapshot);
  }
  refresh_log_names();
  admin_ = std::make_unique<admin::AdminServer>(paths::admin_socket(options_.node), *this);
  start_health();
  serve_handover();
}

// Last in start(): this agent serves now. It tells the agent it replaces, and from here on hands
// its own listeners to the next one.
void Agent::serve_handover() {
  if (handover_) {
    upgrade::confirm_taken(*handover_);
    handover_.reset();
  }
  handover_listener_ =
      std::make_unique<upgrade::HandoverListener>(upgrade::handover_socket(options_.node));
}

// Until every workload of this node in the applied view has its SVID, or `limit` passed.
void Agent::wait_for_local_svids(std::chrono::milliseconds limit) {
  std::vector<pki::SpiffeId> wanted;
  {
    std::lock_guard lock(mu_);
    if (mesh_view_)
      for (const auto &[id, w] : mesh_view_->workloads)
        if (w.node == options_.node)
          wanted.push_back(pki::SpiffeId::workload(trust_domain_, w.ns, w.service_account));
  }
  const auto deadline = std::chrono::steady_clock::now() + limit;
  for (;;) {
    size_t missing = 0;
    for (const auto &id : wanted) missing += !rotator_->workloads().current(id);
    if (missing == 0) return;
    if (std::chrono::steady_clock::now() >= deadline) {
      spdlog::warn("event=handover_accepting_without_svids missing={} reason=\"{}\"", missing,
                   rotator_->last_error());
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

bool Agent::hand_over(UniqueFd connection) {
  std::vector<int> listeners;
  if (proxy_) {
    const auto fds = proxy_->listener_fds();
    listeners.assign(fds.begin(), fds.end());
  }
  try {
    upgrade::HandoverListener::send_listeners(connection.get(), listeners);
  } catch (const std::exception &e) {
    spdlog::error("event=handover_failed error=\"{}\" action=keep_serving", e.what());
    return false;
  }
  // The next agent accepts from here on; connections waiting in the backlogs are its to accept.
  if (proxy_) proxy_->stop_accepting();
  handed_to_ = std::move(connection);
  handed_over_ = true;
  spdlog::info("event=handed_over listeners={} drain_seconds={}", listeners.size(),
               options_.drain.count());
  return true;
}

void Agent::drain() {
  const auto begin = std::chrono::steady_clock::now();
  // Let go of the node before the next agent needs it: it waits for the node lock.
  std::string steps;
  auto step = [&, last = begin](const char *name) mutable {
    const auto now = std::chrono::steady_clock::now();
    steps += fmt::format(" {}_ms={}", name,
                         std::chrono::duration_cast<std::chrono::milliseconds>(now - last).count());
    last = now;
  };
  handover_listener_.reset();
  health_.reset();
  step("health");
  stop_persisting();
  client_.reset();
  step("controlplane");
  metrics_.reset();
  step("metrics");
  if (admin_) admin_->release_path();  // the admin server itself stops once the node is let go
  access_log_.reset();                 // the ring buffer is the next agent's to read
  release_node();
  step("lock");
  spdlog::info("event=node_released{}", steps);
  admin_.reset();
  const auto deadline = begin + options_.drain;
  uint64_t open = proxy_ ? proxy_->open_streams() : 0;
  bool taken = false;
  while (open > 0 && std::chrono::steady_clock::now() < deadline) {
    pollfd p{handed_to_.get(), POLLIN, 0};
    if (!taken && ::poll(&p, 1, 100) > 0) {
      char buf[64];
      const ssize_t n = ::recv(handed_to_.get(), buf, sizeof buf, MSG_DONTWAIT);
      taken = n > 0 && std::string(buf, size_t(n)) == std::string(upgrade::kProtocol) + " taken";
      spdlog::info("event=handover_{} open_streams={}", taken ? "taken" : "connection_closed",
                   open);
      if (!taken) handed_to_.reset();
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    open = proxy_ ? proxy_->open_streams() : 0;
  }
  const auto waited = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - begin);
  spdlog::info("event=drained open_streams={} waited_ms={} action=exit", open, waited.count());
}

// A push (or the persisted state at start): validated, then applied; refused with the first
// error's resource and field otherwise. Only an applied push is persisted.
std::optional<v1::ErrorDetail> Agent::apply_candidate(const xds::KnownGood &candidate,
                                                      const xds::Delta *delta) {
  std::vector<std::string> errors;
  std::string failure;
  bool applied = false;
  if (delta) {
    std::lock_guard lock(mu_);
    if (auto result = apply_service_change(candidate, *delta, &errors)) {
      failure = *result;
      applied = true;
    }
  }
  if (!applied) {
    v1::Snapshot snapshot = resources::to_snapshot(candidate.resources);
    errors = resources::validate(snapshot);
    if (errors.empty()) {
      std::lock_guard lock(mu_);
      failure = apply_locked(snapshot);
    } else {
      failure = join_lines(errors);
    }
  }
  {
    std::lock_guard lock(mu_);
    if (failure.empty()) {
      system_version_ = candidate.system_version;
    } else if (!errors.empty()) {
      last_error_ = failure;
      last_error_unix_ms_ = now_ms();
    }
  }
  if (!failure.empty()) {
    for (const auto &error : errors)
      spdlog::error("event=push_rejected version={} reason=\"{}\"", candidate.system_version,
                    error);
    return xds::error_detail(errors.empty() ? failure : errors.front());
  }
  if (delta) request_persist();
  if (rotator_) mesh_state_applied(candidate, delta);
  refresh_log_names();
  return std::nullopt;
}

// The (service, workload) pairs a scoped fault applies to, from the services and this node's
// workloads (their numbers are the proxy's). Without the proxy (file mode) workloads have no
// numbers and a scoped fault applies to nobody (docs/resilience.md). Called with mu_ held.
void Agent::sync_fault_sources() {
  if (!fault_sources_) return;
  reconcile::FaultSourceSet wanted;
  if (proxy_ && mesh_view_) {
    telemetry::Names names;
    proxy_->name_numbers(&names);
    std::map<std::string, uint32_t> number_of;
    for (const auto &[n, w] : names.workloads) number_of[w.id] = n;
    for (const auto &service : snapshot_.services()) {
      if (!service.has_fault_injection() || !service.fault_injection().has_sources()) continue;
      const uint64_t id =
          reconcile::service_id_of(service.metadata().namespace_() + "/" + service.metadata().name());
      for (const auto &[wid, w] : mesh_view_->workloads) {
        if (w.node != options_.node) continue;
        if (!reconcile::fault_source_matches(service.fault_injection().sources(), w.ns, w.labels))
          continue;
        auto it = number_of.find(wid);
        if (it != number_of.end()) wanted.insert({id, it->second});
      }
    }
  }
  try {
    const auto stats = fault_sources_->sync(wanted);
    if (stats.written || stats.removed)
      spdlog::info("event=fault_sources_synced entries={} written={} removed={}", wanted.size(),
                   stats.written, stats.removed);
  } catch (const std::exception &e) {
    spdlog::error("event=fault_sources_sync_failed reason=\"{}\"", e.what());
  }
}

// Where the kernel finds each service's settings when the agent reports an upstream connect: one
// TCP VIP port's slot per service and family. Called with mu_ held.
void Agent::set_report_slots() {
  if (!upstream_reports_) return;
  reconcile::KernelUpstreamReports::Slots slots;
  for (const auto &[key, service] : desired_) {
    if (key.proto != IPPROTO_TCP) continue;
    const int64_t slot = reconciler_->slot_of(key);
    if (slot >= 0) slots.emplace(std::pair{service.service, key.addr.family}, uint32_t(slot));
  }
  upstream_reports_->set_slots(std::move(slots));
}

void Agent::mesh_state_applied(const xds::KnownGood &state, const xds::Delta *delta) {
  if (delta && !reconcile::touches_mesh_view(delta->changed, delta->removed)) return;
  auto view = std::make_shared<const reconcile::MeshView>(reconcile::mesh_view_of(state.resources));
  std::vector<identity::LocalWorkload> local;
  for (const auto &[id, workload] : view->workloads)
    if (workload.node == options_.node)
      local.push_back(
          {id, pki::SpiffeId::workload(trust_domain_, workload.ns, workload.service_account)});
  rotator_->set_workloads(std::move(local));
  proxy_->set_view(view);
  {
    std::lock_guard lock(mu_);
    mesh_view_ = std::move(view);
    sync_fault_sources();
  }
  refresh_log_names();
}

std::optional<std::string> Agent::apply_service_change(const xds::KnownGood &state,
                                                       const xds::Delta &delta,
                                                       std::vector<std::string> *errors) {
  if (!desired_is_whole_) return std::nullopt;
  constexpr std::string_view kService = "service/";
  // Authorization policies ride along: they name nothing and the kernel does not hold them yet.
  constexpr std::string_view kPolicy = "authorizationpolicy/";
  for (const auto *names : {&delta.changed, &delta.removed})
    for (const auto &name : *names)
      if (!name.starts_with(kService) && !name.starts_with(kPolicy)) return std::nullopt;
  const auto begin = std::chrono::steady_clock::now();

  // The changed services and the workloads they name make a mesh of their own that must pass
  // every rule; what ties them to the services left alone (VIPs used once, the mesh's VIP limit)
  // is checked against desired_, which holds every VIP of the applied state.
  v1::Snapshot part;
  std::set<std::string> touched;  // "namespace/name" of every changed or removed service
  std::set<std::string> named;
  std::set<std::string> policies;  // names of every changed or removed policy
  for (const auto &name : delta.changed) {
    if (name.starts_with(kPolicy)) {
      policies.insert(name);
      *part.add_authorization_policies() = state.resources.at(name).authorization_policy();
      continue;
    }
    const v1::Service &service = state.resources.at(name).service();
    *part.add_services() = service;
    touched.insert(name.substr(kService.size()));
    for (const auto &endpoint : service.endpoints()) {
      std::string workload =
          "workload/" + service.metadata().namespace_() + "/" + endpoint.workload();
      if (!named.insert(workload).second) continue;
      auto it = state.resources.find(workload);
      if (it != state.resources.end() && it->second.has_workload())
        *part.add_workloads() = it->second.workload();
    }
  }
  for (const auto &name : delta.removed) {
    if (name.starts_with(kPolicy))
      policies.insert(name);
    else
      touched.insert(name.substr(kService.size()));
  }
  *errors = resources::validate(part);
  if (errors->empty()) {
    size_t vips = desired_.size();
    for (const auto &id : touched)
      if (auto it = service_keys_.find(id); it != service_keys_.end()) vips -= it->second.size();
    for (const auto &service : part.services()) {
      const std::string id = service.metadata().namespace_() + "/" + service.metadata().name();
      for (int i = 0; i < service.vips_size(); ++i) {
        ++vips;
        const reconcile::ServiceKey key = reconcile::key_of(service.vips(i));
        auto it = desired_.find(key);
        if (it == desired_.end() || touched.count(it->second.service)) continue;
        errors->push_back("service \"" + id + "\": spec.vips[" + std::to_string(i) +
                          "]: " + reconcile::format_key(key) + " is already used by service \"" +
                          it->second.service + "\"");
      }
    }
    if (vips > SM_MAX_SERVICES) {
      errors->push_back("too many VIPs: at most " + std::to_string(SM_MAX_SERVICES) +
                        " in the mesh, got " + std::to_string(vips));
    }
  }
  if (!errors->empty()) return join_lines(*errors);

  reconcile::DesiredState changed = reconcile::translate(part);
  std::vector<reconcile::ServiceKey> removed;
  for (const auto &id : touched) {
    auto it = service_keys_.find(id);
    if (it == service_keys_.end()) continue;
    for (const auto &key : it->second)
      if (!changed.count(key)) removed.push_back(key);
  }
  reconcile::ApplyStats stats;
  try {
    stats = reconciler_->update(changed, removed);
  } catch (const std::exception &e) {
    // The reconciler knows which slots it is unsure of; the full path rewrites them next time.
    return record_kernel_failure(e);
  }
  for (const auto &key : removed) desired_.erase(key);
  for (const auto &id : touched) service_keys_.erase(id);
  for (auto &[key, service] : changed) {
    service_keys_[service.service].push_back(key);
    desired_[key] = std::move(service);
  }

  // The services the views list, kept in name order as the full path leaves them ("ns/name"),
  // without re-sorting 10,000 of them for one change.
  auto id_of = [](const v1::Service &s) {
    return s.metadata().namespace_() + "/" + s.metadata().name();
  };
  auto *services = snapshot_.mutable_services();
  auto position = [&](const std::string &id) {
    return std::lower_bound(
               services->pointer_begin(), services->pointer_end(), id,
               [&](const v1::Service *s, const std::string &key) { return id_of(*s) < key; }) -
           services->pointer_begin();
  };
  for (const auto &id : touched) {
    const auto index = position(id);
    if (index < services->size() && id_of(services->Get(int(index))) == id)
      services->DeleteSubrange(int(index), 1);
  }
  for (auto &service : *part.mutable_services()) {
    const auto index = position(id_of(service));
    *services->Add() = std::move(service);
    std::rotate(services->pointer_begin() + index, services->pointer_end() - 1,
                services->pointer_end());
  }
  if (!policies.empty()) {
    // Kept like the full path keeps them, in name order, for the enforcement to come.
    auto *held = snapshot_.mutable_authorization_policies();
    auto policy_name = [](const v1::AuthorizationPolicy &p) {
      return "authorizationpolicy/" + p.metadata().namespace_() + "/" + p.metadata().name();
    };
    for (int i = held->size() - 1; i >= 0; --i)
      if (policies.count(policy_name(held->Get(i)))) held->DeleteSubrange(i, 1);
    for (auto &policy : *part.mutable_authorization_policies()) *held->Add() = std::move(policy);
    std::sort(held->pointer_begin(), held->pointer_end(),
              [&](const auto *a, const auto *b) { return policy_name(*a) < policy_name(*b); });
  }

  auto micros = std::chrono::duration_cast<std::chrono::microseconds>(
                    std::chrono::steady_clock::now() - begin)
                    .count();
  record_applied(stats, micros, "change");
  return std::string();
}

void Agent::record_applied(const reconcile::ApplyStats &stats, int64_t micros,
                           std::string_view path) {
  // The proxy retries failed connects on other backends of the same VIP (M8).
  if (proxy_) proxy_->set_upstreams(proxy::upstream_table_of(desired_, snapshot_.services()));
  sync_fault_sources();
  set_report_slots();
  generation_++;
  changed_.notify_all();
  applied_unix_ms_ = now_ms();
  if (metrics_) metrics_->observe_apply(double(micros) / 1e6);
  last_error_.clear();
  spdlog::info(
      "event=config_applied generation={} services={} vips={} added={} updated={} removed={} "
      "unchanged={} duration_us={} path={}",
      generation_, snapshot_.services_size(), desired_.size(), stats.added, stats.updated,
      stats.removed, stats.unchanged, micros, path);
}

// desired_ no longer says what the kernel holds: the next change takes the full path.
std::string Agent::record_kernel_failure(const std::exception &e) {
  desired_is_whole_ = false;
  last_error_ = std::string("applying to the kernel failed: ") + e.what();
  last_error_unix_ms_ = now_ms();
  spdlog::error("event=config_apply_failed error=\"{}\"", e.what());
  return last_error_;
}

void Agent::request_persist() {
  std::lock_guard lock(persist_mu_);
  persist_dirty_ = true;
  persist_cv_.notify_all();
}

void Agent::persist_loop() {
  // Pushes are written at most about once a second, a second after the first unwritten one:
  // serializing and fsyncing the state (12 MB at 10,000 services x 10 endpoints) after every push
  // of a busy stream cost the agents more CPU than the pushes themselves. An agent that crashes
  // restarts on a state at most that much older, and resyncs when the control plane answers.
  constexpr auto kQuiet = std::chrono::seconds(1);
  std::unique_lock lock(persist_mu_);
  for (;;) {
    persist_cv_.wait(lock, [&] { return persist_dirty_ || persist_stop_; });
    if (!persist_dirty_) return;
    if (!persist_stop_) persist_cv_.wait_for(lock, kQuiet, [&] { return persist_stop_; });
    persist_dirty_ = false;
    lock.unlock();
    try {
      lkg_->write(client_->serialize_held());
    } catch (const std::exception &e) {
      spdlog::error("event=lkg_save_failed reason=\"{}\"", e.what());
    }
    lock.lock();
  }
}

// Stops the stream first (no push after this), then writes what is still unwritten.
void Agent::stop_persisting() {
  if (!persist_thread_.joinable()) return;
  client_->stop();
  {
    std::lock_guard lock(persist_mu_);
    persist_stop_ = true;
    persist_cv_.notify_all();
  }
  persist_thread_.join();
}

Agent::~Agent() {
  health_.reset();  // its thread calls status() at every probe
  stop_persisting();
  client_.reset();      // its thread calls back into the agent
  metrics_.reset();     // its threads read the agent's state at every scrape
  admin_.reset();       // its threads read the proxy and the identities (status)
  access_log_.reset();  // writes what the ring buffer still holds
  proxy_.reset();       // uses the maps and the identities; capture stays on (fail closed)
  capture_maps_.reset();
  fast_path_.reset();
  policy_maps_.reset();
  rotator_.reset();
  release_node();
}

// The runtime directory goes with the agent; the pins stay (they are the data path).
void Agent::release_node() {
  if (lock_fd_ < 0) return;
  std::string dir = paths::run_dir(options_.node);
  unlink((dir + "/meshd.lock").c_str());
  close(lock_fd_);
  lock_fd_ = -1;
  rmdir(dir.c_str());
}

std::string Agent::apply_locked(v1::Snapshot &snapshot) {
  auto begin = std::chrono::steady_clock::now();
  reconcile::DesiredState desired = reconcile::translate(snapshot);
  reconcile::ApplyStats stats;
  try {
    stats = reconciler_->apply(desired);
  } catch (const std::exception &e) {
    // Services applied before the failure are in the kernel and known to the reconciler; the
    // next change (or SIGHUP) retries the rest.
    return record_kernel_failure(e);
  }
  auto micros = std::chrono::duration_cast<std::chrono::microseconds>(
                    std::chrono::steady_clock::now() - begin)
                    .count();
  // Workloads are needed only to translate; the views read services and the desired state. At
  // 100,000 workloads they would be the agent's largest memory. A parsed config file's snapshot
  // lies scattered among yaml-cpp's freed nodes (17 million at 10,000 services): kept in place, or
  // copied into the holes, it pinned ~1.3 GB of RSS for 72 MB in use.
  // So the kept part is serialized, everything freed and the heap trimmed, then it is parsed back.
  workloads_ = uint32_t(snapshot.workloads_size());
  snapshot.clear_workloads();
  const std::string kept = snapshot.SerializeAsString();
  v1::Snapshot().Swap(&snapshot);  // frees it all, the repeated fields' capacity too
  snapshot_.Clear();
  v1::Snapshot().Swap(&snapshot_);
  malloc_trim(0);
  snapshot_.ParseFromString(kept);
  desired_ = std::move(desired);
  desired_is_whole_ = true;
  service_keys_.clear();
  for (const auto &[key, service] : desired_) service_keys_[service.service].push_back(key);
  record_applied(stats, micros, "full");
  malloc_trim(0);
  return "";
}

void Agent::reload() {
  std::string text;
  try {
    text = config::read_file(options_.config_path);
  } catch (const std::exception &e) {
    std::lock_guard lock(mu_);
    last_error_ = e.what();
    last_error_unix_ms_ = now_ms();
    spdlog::error("event=config_rejected reason=\"{}\" action=keep_previous", e.what());
    return;
  }
  std::lock_guard lock(mu_);
  // Touched but not changed, or the same rejected text again: nothing to do or to log.
  uint64_t digest = text_digest(text);
  if ((digest == applied_text_ && last_error_.empty()) ||
      (rejected_text_ && digest == *rejected_text_))
    return;
  auto loaded = resources::load_yaml_string(text, options_.config_path);
  if (!loaded.ok()) {
    rejected_text_ = digest;  // an empty file can be refused too
    last_error_ = join_lines(loaded.errors);
    last_error_unix_ms_ = now_ms();
    for (const auto &error : loaded.errors)
      spdlog::error("event=config_rejected reason=\"{}\" action=keep_previous", error);
    return;
  }
  applied_text_ = digest;
  rejected_text_.reset();
  apply_locked(loaded.snapshot);
}

void Agent::run() {
  const sigset_t signals = agent_signals();  // blocked since the constructor
  UniqueFd signal_fd(signalfd(-1, &signals, SFD_CLOEXEC | SFD_NONBLOCK));
  if (!signal_fd.valid())
    throw std::runtime_error(std::string("signalfd: ") + std::strerror(errno));
  std::optional<config::FileWatcher> watcher;
  if (!controlplane_mode()) watcher.emplace(options_.config_path);
  spdlog::info("event=serving node={} admin={}", options_.node, paths::admin_socket(options_.node));

  // Editors write in several steps: after a change, wait for a short quiet period, then read.
  constexpr int kSettleMs = 25;
  bool pending = false;
  for (;;) {
    pollfd fds[3] = {{signal_fd.get(), POLLIN, 0},
                     {watcher ? watcher->fd() : -1, POLLIN, 0},
                     {handover_listener_ ? handover_listener_->fd() : -1, POLLIN, 0}};
    int ready = poll(fds, 3, pending ? kSettleMs : -1);
    if (ready < 0 && errno != EINTR)
      throw std::runtime_error(std::string("poll: ") + std::strerror(errno));
    if (ready == 0 && pending) {
      pending = false;
      reload();
      refresh_log_names();
      continue;
    }
    if (fds[0].revents & POLLIN) {
      signalfd_siginfo info{};
      while (read(signal_fd.get(), &info, sizeof(info)) == sizeof(info)) {
        if (info.ssi_signo == SIGHUP) {
          pending = watcher.has_value();
          continue;
        }
        spdlog::info("event=stopping signal={} pins=kept", strsignal(int(info.ssi_signo)));
        return;
      }
    }
    if (handover_listener_ && (fds[2].revents & POLLIN)) {
      if (auto connection = handover_listener_->accept_request(std::chrono::seconds(2));
          connection && hand_over(std::move(*connection)))
        return;
    }
    if (watcher && (fds[1].revents & POLLIN) && watcher->drain()) pending = true;
  }
}

v1::AgentStatus Agent::status() {
  v1::AgentStatus out;
  out.set_node(options_.node);
  out.set_version(SOCKMESH_VERSION);
  out.set_pid(getpid());
  out.set_started_unix_ms(unix_ms(started_));
  out.set_cgroup(options_.workload_cgroup);
  out.set_pin_dir(datapath_->pin_dir());
  for (const auto &program : datapath_->programs()) {
    auto *p = out.add_programs();
    p->set_name(program.name);
    p->set_id(program.prog_id);
    p->set_attach_type(program.attach_type);
    p->set_link_id(program.link_id);
    p->set_attached(program.attached);
    p->set_kept(program.kept);
  }
  for (const auto &feature : features_) {
    auto *f = out.add_features();
    f->set_name(feature.name);
    f->set_present(feature.present);
    f->set_required(feature.required);
    f->set_since(feature.since);
    f->set_without(feature.without);
  }
  for (const auto &[name, value] : telemetry::read_datapath_counters(datapath_->counters_fd())) {
    auto *c = out.add_counters();
    c->set_name(name);
    c->set_value(value);
  }
  if (proxy_)
    *out.mutable_mesh() = admin::mesh_status(*rotator_, *proxy_, trust_domain_, policy_maps_.get());
  std::lock_guard lock(mu_);
  for (const auto &map : datapath_->maps()) {
    auto *m = out.add_maps();
    m->set_name(map.name);
    m->set_id(map.id);
    m->set_type(map.type);
    m->set_max_entries(map.max_entries);
    if (map.name == "sm_services" || map.name == "sm_backend_sets")
      m->set_entries(uint32_t(reconciler_->services()));
    else if (map.name == "sm_counters")
      m->set_entries(map.max_entries);
  }
  auto *config = out.mutable_config();
  config->set_source(controlplane_mode() ? "controlplane:" + options_.controlplane
                                         : "file:" + options_.config_path);
  config->set_map_writes(reconciler_->map_writes());
  if (client_) {
    auto stream = client_->status();
    config->set_stream_state(stream.state);
    config->set_system_version(stream.system_version);
    config->set_last_nack(stream.last_nack);
    config->set_last_ack_unix_ms(stream.last_ack_unix_ms);
  }
  config->set_generation(generation_);
  config->set_applied_unix_ms(applied_unix_ms_);
  config->set_last_error(last_error_);
  config->set_last_error_unix_ms(last_error_unix_ms_);
  config->set_services(uint32_t(snapshot_.services_size()));
  config->set_workloads(workloads_);
  return out;
}

v1::ListServicesResponse Agent::services() {
  std::lock_guard lock(mu_);
  v1::ListServicesResponse out;
  for (const auto &service : snapshot_.services()) {
    auto *view = out.add_services();
    view->set_namespace_(service.metadata().namespace_());
    view->set_name(service.metadata().name());
    *view->mutable_vips() = service.vips();
    view->set_lb_policy(service.lb_policy());
    view->set_endpoints(uint32_t(service.endpoints_size()));
    uint32_t usable = 0;
    for (const auto &vip : service.vips()) {
      auto key = reconcile::key_of(vip);
      view->add_slots(uint32_t(reconciler_->slot_of(key)));
      auto it = desired_.find(key);
      if (it != desired_.end() && usable == 0)
        for (const auto &backend : it->second.backends) usable += backend.weight > 0;
    }
    view->set_usable_endpoints(usable);
    if (service.lb_policy() == v1::LB_POLICY_MAGLEV)
      view->set_maglev_table_size(service.maglev().table_size() ? service.maglev().table_size()
                                                                : SM_MAGLEV_DEFAULT_SIZE);
  }
  out.set_generation(generation_);
  return out;
}

bool Agent::wait_for_change(uint64_t generation, std::chrono::milliseconds limit) {
  std::unique_lock lock(mu_);
  return changed_.wait_for(lock, limit, [&] { return generation_ != generation; });
}

v1::ListEndpointsResponse Agent::endpoints() {
  std::lock_guard lock(mu_);
  v1::ListEndpointsResponse out;
  // Every VIP of a family balances over the same backends: list them once per service and family.
  std::set<std::pair<std::string, uint8_t>> listed;
  for (const auto &[key, service] : desired_) {
    if (!listed.insert({service.service, key.addr.family}).second) continue;
    uint64_t total = 0;
    for (const auto &backend : service.backends) total += backend.weight;
    auto slash = service.service.find('/');
    for (const auto &backend : service.backends) {
      auto *view = out.add_endpoints();
      view->set_service_namespace(service.service.substr(0, slash));
      view->set_service_name(service.service.substr(slash + 1));
      view->set_workload(backend.workload.substr(backend.workload.find('/') + 1));
      view->set_address(reconcile::format_ip(backend.addr));
      view->set_port(backend.port);
      view->set_subset(backend.subset);
      view->set_kernel_weight(backend.weight);
      view->set_share_percent(total ? 100.0 * double(backend.weight) / double(total) : 0.0);
    }
  }
  return out;
}

void Agent::start_telemetry() {
  telemetry::TelemetrySettings settings;
  settings.counters = options_.traffic_counters;
  settings.events = options_.access_log.mode != "off";
  settings.sampling = telemetry::sampling_of(options_.access_log);
  traffic_ = std::make_unique<telemetry::TrafficCounters>(datapath_->traffic_fd(),
                                                          datapath_->telemetry_fd());
  traffic_->start(settings);
  if (settings.events)
    access_log_ = std::make_unique<telemetry::AccessLog>(
        options_.access_log, datapath_->events_fd(), datapath_->counters_fd(),
        options_.events_ring_bytes);
  inspector_ = std::make_unique<telemetry::MapInspector>(datapath_->maps(), datapath_->pin_dir());
  spdlog::info("event=telemetry_ready counters={} access_log={} sampling={} ring_bytes={} epoch={}",
               settings.counters, options_.access_log.mode, settings.sampling,
               options_.events_ring_bytes, traffic_->epoch());
  if (options_.metrics_address != "off") {
    telemetry::MetricsOptions metrics;
    metrics.address = options_.metrics_address;
    metrics.bpf_run_stats = options_.bpf_run_stats;
    metrics_ = std::make_unique<telemetry::MetricsServer>(metrics, *this);
    spdlog::info("event=metrics_listening address={} port={} bpf_run_stats={}",
                 options_.metrics_address, metrics_->port(), metrics_->bpf_stats_held());
  }
}

void Agent::start_health() {
  if (options_.health_address == "off") return;
  admin::HealthOptions health;
  health.address = options_.health_address;
  health_ = std::make_unique<admin::HealthServer>(health, *this);
  spdlog::info("event=health_listening address={} port={} paths=/healthz/live,/healthz/ready",
               options_.health_address, health_->port());
}

std::shared_ptr<const telemetry::Names> Agent::names() {
  auto names = std::make_shared<telemetry::Names>();
  {
    std::lock_guard lock(mu_);
    for (const auto &[key, service] : desired_) {
      uint32_t addr[4] = {};
      std::memcpy(addr, key.addr.bytes.data(), key.addr.family == AF_INET ? 4 : 16);
      const std::string vip = telemetry::vip_text(
          addr, htons(key.port), key.proto, key.addr.family == AF_INET ? SM_AF_INET : SM_AF_INET6);
      names->service_by_vip[vip] = service.service;
      const int64_t slot = reconciler_->slot_of(key);
      if (slot >= 0) names->service_by_slot[uint32_t(slot)] = service.service + " " + vip;
    }
  }
  if (proxy_) proxy_->name_numbers(names.get());
  if (policy_maps_) {
    const auto rules = policy_maps_->rules();
    for (size_t i = 0; i < rules.size(); i++)
      if (!rules[i].empty()) names->policy_rules[uint32_t(i)] = rules[i];
  }
  return names;
}

void Agent::refresh_log_names() {
  if (access_log_) access_log_->set_names(names());
}

v1::TrafficReport Agent::traffic() {
  v1::TrafficReport report;
  const auto tuples = traffic_->read();
  report.set_unix_ms(now_ms());
  telemetry::fill_report(tuples, *names(), &report);
  if (access_log_) {
    *report.mutable_access_log() = access_log_->status();
  } else {
    report.mutable_access_log()->set_mode("off");
    report.mutable_access_log()->set_path(options_.access_log.path);
  }
  for (const auto &[name, value] : telemetry::read_datapath_counters(datapath_->counters_fd()))
    if (name == "traffic_untracked") report.set_untracked(value);
  return report;
}

v1::ListMapsResponse Agent::maps() {
  return inspector_->list();
}

v1::DumpMapResponse Agent::dump_map(const std::string &name, uint32_t limit) {
  return inspector_->dump(name, limit, *names());
}

v1::FastPathReport Agent::fast_path() {
  if (fast_path_) return fast_path_->report(datapath_->counters_fd());
  // File mode: no mesh view, so no workload is known to the fast path.
  v1::FastPathReport report;
  report.set_switched_on(false);
  report.set_supported(datapath_->fast_path_loaded());
  return report;
}

v1::ResilienceReport Agent::resilience(const std::string &ns, const std::string &name) {
  telemetry::ResilienceSelection selection;
  {
    // Only the selection is taken under the lock; the maps are read after it.
    std::lock_guard lock(mu_);
    selection = telemetry::select_resilience(desired_, ns, name);
  }
  auto report =
      telemetry::resilience_report(selection, datapath_->service_states_fd(),
                                   datapath_->backend_states_fd(), telemetry::read_clocks());
  report.set_node(options_.node);
  return report;
}

}  // namespace sockmesh
