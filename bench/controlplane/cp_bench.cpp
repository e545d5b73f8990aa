// cp_bench: the control plane at scale (docs/benchmarks.md "control plane"). With S services x E
// endpoints in meshcp's store it measures
//   1. full sync: a fresh meshd (no pins, no last-known-good) started on one node until it has
//      applied and ACKed the whole state, several rounds;
//   2. change latency: one endpoint's weight changed with an Apply to meshcp, until the kernel map
//   of
//      every agent of the lab holds it, read straight from each node's pinned maps;
//   3. memory: RSS of every meshd and of meshcp at that scale.
// Needs root and an otherwise idle machine; run.sh drives it.
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <stdexcept>
#include <thread>

#include "../connect/kernel_memory.h"
#include "../connect/service_plan.h"
#include "sockmesh/common/paths.h"
#include "sockmesh/common/unique_fd.h"
#include "sockmesh/lab/lab.h"
#include "sockmesh/lb_maps.h"
#include "sockmesh/resources/resource_set.h"
#include "sockmesh/v1/admin.grpc.pb.h"
#include "sockmesh/v1/controlplane.grpc.pb.h"

namespace sockmesh::bench {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
namespace fs = std::filesystem;

struct Options {
  int services = 10000;
  int endpoints = 10;
  int nodes = 4;
  int sync_rounds = 3;
  int changes = 300;
  int warmup = 20;
  uint64_t seed = 1;
  int chunk = 20000;  // resources per Apply while filling the store
  // Next change only once every agent ACKed the last one (isolated changes), or as soon as every
  // kernel holds it (back to back: an agent may still be finishing the previous push).
  bool back_to_back = false;
  std::string state_parent = "/var/tmp";
  std::string out;
  std::string git_rev;
  std::string meshd = MESHD_BIN;
  std::string meshcp = MESHCP_BIN;
};

constexpr const char *kNamespace = "bench";

double ms_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

// ---- resources ---------------------------------------------------------------------------------

v1::Resource named(v1::Resource r) {
  r.set_name(resources::resource_name(r));
  return r;
}

v1::Resource node_resource(const lab::Lab &lab, int node) {
  v1::Resource r;
  auto *n = r.mutable_node();
  n->mutable_metadata()->set_name(lab.node_name(node));
  n->mutable_metadata()->set_namespace_("default");
  n->add_addresses(lab.node_address(node));
  return named(std::move(r));
}

// Endpoint j of service s runs on node (s * E + j) % nodes + 1: the workloads spread over the lab.
v1::Resource workload_resource(const lab::Lab &lab, const ServicePlan &plan, int s, int j) {
  v1::Resource r;
  auto *w = r.mutable_workload();
  w->mutable_metadata()->set_name(workload_name(s, j));
  w->mutable_metadata()->set_namespace_(kNamespace);
  w->set_service_account("bench");
  w->set_node(lab.node_name((s * plan.endpoints + j) % lab.node_count() + 1));
  w->add_addresses(to_string(backend_address(plan, s, j)));
  return named(std::move(r));
}

v1::Resource service_resource(const ServicePlan &plan, int s, uint32_t first_weight) {
  v1::Resource r;
  auto *svc = r.mutable_service();
  svc->mutable_metadata()->set_name(service_name(s));
  svc->mutable_metadata()->set_namespace_(kNamespace);
  auto *vip = svc->add_vips();
  vip->set_address(to_string(vip_address(s)));
  vip->set_port(kVipPort);
  vip->set_protocol(v1::PROTOCOL_TCP);
  svc->set_lb_policy(v1::LB_POLICY_RANDOM);
  for (int j = 0; j < plan.endpoints; ++j) {
    auto *ep = svc->add_endpoints();
    ep->set_workload(workload_name(s, j));
    ep->set_port(kBackendPort);
    ep->set_weight(j == 0 ? first_weight : 1);
  }
  return named(std::move(r));
}

// ---- processes ---------------------------------------------------------------------------------

// meshcp runs on the host, outside the lab; it dies with the benchmark (PR_SET_PDEATHSIG) so that
// an interrupted run leaves no control plane behind (the lab itself is removed by the next run).
pid_t spawn(const std::vector<std::string> &argv, const std::string &log) {
  std::vector<char *> args;
  for (const auto &a : argv) args.push_back(const_cast<char *>(a.c_str()));
  args.push_back(nullptr);
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error(fmt::format("fork: {}", std::strerror(errno)));
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (::getppid() != parent) ::_exit(126);
    const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0 || ::dup2(fd, 1) < 0 || ::dup2(fd, 2) < 0) ::_exit(126);
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  return pid;
}

void stop(pid_t pid) {
  if (pid <= 0) return;
  ::kill(pid, SIGTERM);
  int status = 0;
  for (int i = 0; i < 500; ++i) {
    if (::waitpid(pid, &status, WNOHANG) == pid) return;
    std::this_thread::sleep_for(10ms);
  }
  ::kill(pid, SIGKILL);
  ::waitpid(pid, &status, 0);
}

bool alive(pid_t pid) {
  int status = 0;
  return ::waitpid(pid, &status, WNOHANG) == 0;
}

// ---- control plane and agents ------------------------------------------------------------------

std::unique_ptr<v1::ControlPlane::Stub> controlplane_stub(const std::string &socket) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(-1);
  args.SetMaxSendMessageSize(-1);
  return v1::ControlPlane::NewStub(
      grpc::CreateCustomChannel("unix:" + socket, grpc::InsecureChannelCredentials(), args));
}

std::string apply(v1::ControlPlane::Stub &cp, const v1::ApplyRequest &request) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + 600s);
  v1::ApplyResponse response;
  auto status = cp.Apply(&ctx, request, &response);
  if (!status.ok())
    throw std::runtime_error("meshcp refused the Apply: " + status.error_message().substr(0, 2000));
  return response.version();
}

// The agent's config status, or nullopt while its admin socket does not answer.
std::optional<v1::ConfigStatus> agent_config(const std::string &node) {
  auto channel = grpc::CreateChannel("unix:" + std::string(paths::admin_socket(node)),
                                     grpc::InsecureChannelCredentials());
  auto stub = v1::Admin::NewStub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + 2s);
  v1::AgentStatus status;
  if (!stub->GetStatus(&ctx, v1::GetStatusRequest{}, &status).ok()) return std::nullopt;
  return status.config();
}

struct Agent {
  int node = 0;
  pid_t pid = 0;
  std::string log;
};

// Polls the agent every 2 ms until it is at `version`; returns when that was seen.
Clock::time_point wait_at_version(const Agent &agent, const std::string &node,
                                  const std::string &version, std::chrono::seconds limit) {
  auto deadline = Clock::now() + limit;
  for (;;) {
    if (auto config = agent_config(node); config && config->system_version() == version)
      return Clock::now();
    if (!alive(agent.pid)) throw std::runtime_error("meshd exited; its log: " + agent.log);
    if (Clock::now() > deadline)
      throw std::runtime_error(fmt::format("meshd on {} not at version {} within {} s (log: {})",
                                           node, version, limit.count(), agent.log));
    std::this_thread::sleep_for(2ms);
  }
}

// meshd's own duration_us of its last config_applied event (the map writes of the sync).
long last_apply_duration_us(const std::string &log) {
  std::ifstream in(log);
  long out = -1;
  for (std::string line; std::getline(in, line);) {
    auto at = line.find("event=config_applied");
    if (at == std::string::npos) continue;
    auto d = line.find("duration_us=", at);
    if (d != std::string::npos) out = std::stol(line.substr(d + 12));
  }
  return out;
}

// ---- the kernel's view -------------------------------------------------------------------------

// One node's pinned maps, read the way the connect4 program reads them.
class NodeMaps {
 public:
  explicit NodeMaps(const std::string &node)
      : services_(bpf_obj_get((paths::pin_dir(node) + "/sm_services").c_str())),
        sets_(bpf_obj_get((paths::pin_dir(node) + "/sm_backend_sets").c_str())) {
    if (!services_.valid() || !sets_.valid())
      throw std::runtime_error("cannot open the pinned maps of " + node + ": " +
                               std::strerror(errno));
  }

  // The backend-set slot of service s, or -1.
  int slot_of(int s) const {
    sm_service_key key{};
    key.addr[0] = vip_address(s).s_addr;
    key.port = htons(kVipPort);
    key.proto = IPPROTO_TCP;
    key.family = SM_AF_INET;
    sm_service_value value{};
    if (bpf_map_lookup_elem(services_.get(), &key, &value) != 0) return -1;
    return int(value.set_slot);
  }

  // The id of the inner map in that slot (it changes with every swap).
  uint32_t inner_id(int slot) const {
    uint32_t key = uint32_t(slot), id = 0;
    if (bpf_map_lookup_elem(sets_.get(), &key, &id) != 0) return 0;
    return id;
  }

  // Weight of the first backend of the set in inner map `id` (0 when it cannot be read).
  static uint32_t first_weight(uint32_t id) {
    UniqueFd inner(bpf_map_get_fd_by_id(id));
    if (!inner.valid()) return 0;
    uint32_t key = 0;
    static thread_local sm_backend_set set;
    if (bpf_map_lookup_elem(inner.get(), &key, &set) != 0 || set.count == 0) return 0;
    return set.backends[0].weight_cum;
  }

 private:
  UniqueFd services_;
  UniqueFd sets_;
};

struct Percentiles {
  double p50 = 0, p90 = 0, p99 = 0, max = 0, mean = 0;
};

Percentiles percentiles(std::vector<double> v) {
  Percentiles p;
  if (v.empty()) return p;
  std::sort(v.begin(), v.end());
  auto at = [&](double q) {
    return v[std::min(v.size() - 1, size_t(q * double(v.size() - 1) + 0.5))];
  };
  p.p50 = at(0.50);
  p.p90 = at(0.90);
  p.p99 = at(0.99);
  p.max = v.back();
  for (double x : v) p.mean += x;
  p.mean /= double(v.size());
  return p;
}

nlohmann::json to_json(const Percentiles &p) {
  return {{"p50_ms", p.p50},
          {"p90_ms", p.p90},
          {"p99_ms", p.p99},
          {"max_ms", p.max},
          {"mean_ms", p.mean}};
}

// ---- the run -----------------------------------------------------------------------------------

int run(const Options &o, const std::string &invoked_as) {
  if (::geteuid() != 0) throw std::runtime_error("needs root (network namespaces, cgroups, BPF)");
  const ServicePlan plan{o.services, o.endpoints};
  check_plan(plan);

  auto lab = lab::Lab::up({o.nodes, {}, "", 0});
  std::string tmpl = o.state_parent + "/sockmesh-cp-bench-XXXXXX";
  if (!::mkdtemp(tmpl.data()))
    throw std::runtime_error("mkdtemp: " + std::string(std::strerror(errno)));
  const std::string dir = tmpl;
  const std::string api = dir + "/api.sock", xds = "unix:" + dir + "/xds.sock";
  pid_t meshcp = 0;
  std::vector<Agent> agents;
  auto cleanup = [&] {
    for (auto &a : agents) stop(a.pid);
    stop(meshcp);
    lab->down();
  };

  try {
    // On the host's network namespace: a free loopback port for metrics (on, as by default).
    meshcp = spawn({o.meshcp, "--state-dir", dir + "/meshcp", "--listen", xds, "--api-socket", api,
                    "--metrics-address", "127.0.0.1:0", "--log-level", "warn"},
                   dir + "/meshcp.log");
    auto cp = controlplane_stub(api);
    for (int i = 0;; ++i) {
      grpc::ClientContext ctx;
      v1::ControlPlaneStatus status;
      if (cp->GetStatus(&ctx, {}, &status).ok()) break;
      if (i > 500 || !alive(meshcp))
        throw std::runtime_error("meshcp did not start; log: " + dir + "/meshcp.log");
      std::this_thread::sleep_for(10ms);
    }

    // Fill the store: nodes and workloads first (services name them), in chunks.
    std::fprintf(stderr, "cp_bench: filling meshcp's store: %d services x %d endpoints\n",
                 o.services, o.endpoints);
    const auto fill_start = Clock::now();
    std::string version;
    v1::ApplyRequest chunk;
    auto flush = [&] {
      if (chunk.resources_size() == 0) return;
      version = apply(*cp, chunk);
      chunk.Clear();
    };
    for (int n = 1; n <= o.nodes; ++n) *chunk.add_resources() = node_resource(*lab, n);
    for (int s = 0; s < o.services; ++s)
      for (int j = 0; j < o.endpoints; ++j) {
        *chunk.add_resources() = workload_resource(*lab, plan, s, j);
        if (chunk.resources_size() >= o.chunk) flush();
      }
    flush();
    std::vector<uint32_t> first_weight(size_t(o.services), 1);
    for (int s = 0; s < o.services; ++s) {
      *chunk.add_resources() = service_resource(plan, s, 1);
      if (chunk.resources_size() >= o.chunk) flush();
    }
    flush();
    const double fill_s = ms_between(fill_start, Clock::now()) / 1000;
    const long resources = long(o.nodes) + long(o.services) * (o.endpoints + 1);

    auto start_agent = [&](int node, const std::string &tag) {
      Agent a{node, 0, fmt::format("{}/meshd-n{}-{}.log", dir, node, tag)};
      // Every start is a fresh state directory: the node joins with a one-time token (the TLS
      // handshake and the CSR are part of the measured full sync, as for a real new node).
      grpc::ClientContext ctx;
      v1::AddNodeRequest join;
      join.set_node(lab->node_name(node));
      v1::AddNodeResponse token;
      if (auto s = cp->AddNode(&ctx, join, &token); !s.ok())
        throw std::runtime_error("meshcp AddNode: " + s.error_message());
      a.pid = lab->spawn_in_node(
          node,
          {o.meshd, "--node", lab->node_name(node), "--cgroup", lab->workload_cgroup(node),
           "--controlplane", xds, "--state-dir", fmt::format("{}/state-n{}-{}", dir, node, tag),
           "--join-token", token.token(), "--ca-cert-hash", token.ca_cert_hash(), "--log-level", "info"},
          a.log);
      return a;
    };

    // 1. Full sync, from nothing, to the agent of node 1.
    nlohmann::json syncs = nlohmann::json::array();
    std::vector<double> sync_ms;
    for (int r = 0; r < o.sync_rounds; ++r) {
      std::fprintf(stderr, "cp_bench: full sync round %d\n", r + 1);
      const auto t0 = Clock::now();
      Agent a = start_agent(1, fmt::format("sync{}", r));
      agents.push_back(a);
      const auto t1 = wait_at_version(a, lab->node_name(1), version, 600s);
      auto config = agent_config(lab->node_name(1));
      const double ms = ms_between(t0, t1);
      sync_ms.push_back(ms);
      syncs.push_back({{"start_to_acked_ms", ms},
                       {"meshd_apply_ms", double(last_apply_duration_us(a.log)) / 1000},
                       {"services", config ? config->services() : 0},
                       {"map_writes", config ? config->map_writes() : 0},
                       {"meshd_memory", process_memory(a.pid)}});
      if (!config || config->services() != uint32_t(o.services))
        throw std::runtime_error("the synced agent holds the wrong number of services");
      if (r + 1 < o.sync_rounds) {
        stop(a.pid);
        agents.pop_back();
        // Remove the pins so that the next round starts from an empty kernel too.
        std::string out;
        if (lab->run_in_node(1, {o.meshd, "uninstall", "--node", lab->node_name(1)}, &out) != 0)
          throw std::runtime_error("meshd uninstall failed: " + out);
      }
    }

    // The other agents.
    for (int n = 2; n <= o.nodes; ++n) agents.push_back(start_agent(n, "all"));
    for (auto &a : agents) wait_at_version(a, lab->node_name(a.node), version, 600s);
    std::vector<NodeMaps> maps;
    for (int n = 1; n <= o.nodes; ++n) maps.emplace_back(lab->node_name(n));

    // 2. Change latency: one endpoint's weight, on a random service, applied alone.
    std::fprintf(stderr, "cp_bench: %d changes (+%d warm-up)\n", o.changes, o.warmup);
    std::mt19937_64 rng(o.seed);
    std::vector<double> to_all, rpc, to_first;
    nlohmann::json per_change = nlohmann::json::array();
    for (int i = 0; i < o.warmup + o.changes; ++i) {
      const int s = int(rng() % uint64_t(o.services));
      const uint32_t w = first_weight[size_t(s)] % 9 + 2;  // 2..10, never the current one
      first_weight[size_t(s)] = w;
      std::vector<int> slots;
      std::vector<uint32_t> before;
      for (auto &m : maps) {
        slots.push_back(m.slot_of(s));
        if (slots.back() < 0) throw std::runtime_error("service missing from a node's sm_services");
        before.push_back(m.inner_id(slots.back()));
      }
      v1::ApplyRequest request;
      *request.add_resources() = service_resource(plan, s, w);

      const auto t0 = Clock::now();
      const std::string applied_version = apply(*cp, request);
      const auto t_rpc = Clock::now();
      std::vector<double> seen(maps.size(), -1);
      size_t left = maps.size();
      while (left > 0) {
        for (size_t n = 0; n < maps.size(); ++n) {
          if (seen[n] >= 0) continue;
          uint32_t id = maps[n].inner_id(slots[n]);
          if (id == before[n] || id == 0) continue;
          if (NodeMaps::first_weight(id) != w) continue;
          seen[n] = ms_between(t0, Clock::now());
          --left;
        }
        if (ms_between(t0, Clock::now()) > 10000)
          throw std::runtime_error(
              fmt::format("change {} not in every node's kernel within 10 s", i));
        if (left > 0) std::this_thread::sleep_for(50us);
      }
      if (!o.back_to_back)
        for (auto &a : agents) wait_at_version(a, lab->node_name(a.node), applied_version, 10s);
      if (i < o.warmup) continue;
      const double all = *std::max_element(seen.begin(), seen.end());
      to_all.push_back(all);
      to_first.push_back(*std::min_element(seen.begin(), seen.end()));
      rpc.push_back(ms_between(t0, t_rpc));
      per_change.push_back({{"service", s}, {"apply_rpc_ms", rpc.back()}, {"per_node_ms", seen}});
    }

    // 3. Memory at this scale.
    nlohmann::json memory = {{"meshcp", process_memory(meshcp)}};
    for (auto &a : agents) memory["meshd_" + lab->node_name(a.node)] = process_memory(a.pid);
    auto node1_maps = node_map_memory(paths::pin_dir(lab->node_name(1)));

    utsname uts{};
    uname(&uts);
    nlohmann::json result = {
        {"meta",
         {{"command", invoked_as},
          {"git_rev", o.git_rev},
          {"kernel", uts.release},
          {"cpus", std::thread::hardware_concurrency()},
          {"services", o.services},
          {"endpoints", o.endpoints},
          {"nodes", o.nodes},
          {"resources", resources},
          {"changes", o.changes},
          {"warmup", o.warmup},
          {"seed", o.seed},
          {"mode", o.back_to_back ? "back-to-back" : "isolated"},
          {"state_dir_parent", o.state_parent}}},
        {"store_fill_s", fill_s},
        {"full_sync", {{"rounds", syncs}, {"summary", to_json(percentiles(sync_ms))}}},
        {"change",
         {{"apply_to_every_kernel", to_json(percentiles(to_all))},
          {"apply_to_first_kernel", to_json(percentiles(to_first))},
          {"apply_rpc", to_json(percentiles(rpc))},
          {"samples", per_change}}},
        {"memory", memory},
        {"node_map_memory", node1_maps}};
    if (!o.out.empty()) {
      std::ofstream out(o.out);
      out << result.dump(1) << "\n";
      if (!out.flush()) throw std::runtime_error("cannot write " + o.out);
    }

    auto line = [](const char *what, const Percentiles &p) {
      std::printf("| %s | %.2f | %.2f | %.2f | %.2f | %.2f |\n", what, p.p50, p.p90, p.p99, p.max,
                  p.mean);
    };
    std::printf(
        "%d services x %d endpoints (%ld resources), %d nodes, %s changes; store filled in %.1f "
        "s\n\n",
        o.services, o.endpoints, resources, o.nodes, o.back_to_back ? "back-to-back" : "isolated",
        fill_s);
    std::printf("| measure (ms) | p50 | p90 | p99 | max | mean |\n|---|---|---|---|---|---|\n");
    line("full sync, meshd start -> ACKed", percentiles(sync_ms));
    line("apply -> kernel of every node", percentiles(to_all));
    line("apply -> kernel of the first node", percentiles(to_first));
    line("apply RPC (validate + store)", percentiles(rpc));
    std::printf("\n| process | RSS MiB | peak MiB |\n|---|---|---|\n");
    for (auto &[name, m] : memory.items())
      std::printf("| %s | %.1f | %.1f |\n", name.c_str(), m["rss_kib"].get<double>() / 1024,
                  m["hwm_kib"].get<double>() / 1024);
    cleanup();
    fs::remove_all(dir);
  } catch (...) {
    std::fprintf(stderr, "cp_bench: failed; logs kept in %s\n", dir.c_str());
    cleanup();
    throw;
  }
  return 0;
}

}  // namespace
}  // namespace sockmesh::bench

int main(int argc, char **argv) {
  using namespace sockmesh::bench;
  CLI::App app{
      "cp_bench: meshcp and meshd at scale (docs/benchmarks.md \"control plane\"). Root; idle "
      "machine."};
  Options o;
  app.add_option("--services", o.services, "Services in the store")->check(CLI::Range(1, 16384));
  app.add_option("--endpoints", o.endpoints, "Endpoints (each its own workload) per service")
      ->check(CLI::Range(1, 64));
  app.add_option("--nodes", o.nodes, "Nodes of the lab, one agent each")->check(CLI::Range(1, 16));
  app.add_option("--sync-rounds", o.sync_rounds, "Full syncs from nothing")
      ->check(CLI::Range(1, 20));
  app.add_option("--changes", o.changes, "Measured one-endpoint changes")
      ->check(CLI::Range(1, 100000));
  app.add_option("--warmup", o.warmup, "Changes before measuring")->check(CLI::Range(0, 10000));
  app.add_option("--seed", o.seed, "Which services are changed");
  app.add_flag("--back-to-back", o.back_to_back,
               "Apply the next change as soon as every kernel holds the last one, without waiting "
               "for the agents' ACKs");
  app.add_option("--state-parent", o.state_parent,
                 "Where meshcp's store goes (a disk, as in production)");
  app.add_option("--out", o.out, "JSON results file");
  app.add_option("--git-rev", o.git_rev, "Recorded in the results");
  CLI11_PARSE(app, argc, argv);
  std::string invoked;
  for (int i = 0; i < argc; ++i) invoked += (i ? " " : "") + std::string(argv[i]);
  try {
    return run(o, invoked);
  } catch (const std::exception &e) {
    std::fprintf(stderr, "cp_bench: %s\n", e.what());
    return 1;
  }
}
