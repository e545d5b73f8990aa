#include "sockmesh/lab/lab.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <stdexcept>

#include <fmt/format.h>

#include "process.h"
#include "signals.h"
#include "state.h"
#include "teardown.h"
#include "topology.h"

namespace sockmesh::lab {
namespace fs = std::filesystem;

namespace {

std::string fresh_run_id() {
  std::random_device rd;
  for (;;) {
    std::string id = fmt::format("{:05x}", rd() & 0xfffff);
    std::error_code ec;
    if (!fs::exists(state_path(id), ec) && !fs::exists(fmt::format("/run/netns/{}-br", name_prefix(id)), ec)) {
      return id;
    }
  }
}

std::string join_problems(const std::vector<std::string>& problems) {
  std::string s;
  for (const auto& p : problems) s += (s.empty() ? "" : "; ") + p;
  return s;
}

}  // namespace

std::string cgroup2_mount() {
  std::ifstream mounts("/proc/mounts");
  std::string line;
  while (std::getline(mounts, line)) {
    std::istringstream fields(line);
    std::string device, mount_point, type;
    fields >> device >> mount_point >> type;
    if (type == "cgroup2") return mount_point;
  }
  throw std::runtime_error("no cgroup2 file system in /proc/mounts (the lab needs cgroup v2)");
}

std::vector<std::string> list_labs() { return state_run_ids(); }

std::vector<std::string> remove_stale_labs() {
  std::vector<std::string> removed;
  for (const auto& id : state_run_ids()) {
    std::optional<LabState> state;
    try {
      state = read_state(id);
    } catch (const std::exception& e) {
      // Possibly a lab being written by a live process: never guess, leave it.
      std::fprintf(stderr, "sockmesh-lab: skipping %s\n", e.what());
      continue;
    }
    if (!state || owner_alive(*state)) continue;
    auto problems = teardown_run(id);
    if (problems.empty()) {
      removed.push_back(id);
    } else {
      std::fprintf(stderr, "sockmesh-lab: stale lab %s: %s\n", id.c_str(), join_problems(problems).c_str());
    }
  }
  return removed;
}

void remove_lab(const std::string& run_id) {
  auto problems = teardown_run(run_id);
  if (!problems.empty()) throw std::runtime_error(fmt::format("lab {}: {}", run_id, join_problems(problems)));
}

Lab::Lab(std::unique_ptr<LabState> state, bool owned) : state_(std::move(state)), owned_(owned) {}

std::unique_ptr<Lab> Lab::up(const LabSpec& spec) {
  if (::geteuid() != 0) throw std::runtime_error("the lab needs root (netns, cgroups)");
  const std::string cg2 = cgroup2_mount();
  remove_stale_labs();

  auto state = std::make_unique<LabState>();
  {
    StateLock lock;
    const std::string run_id = spec.run_id.empty() ? fresh_run_id() : spec.run_id;
    try {
      *state = plan_lab(spec, run_id, cg2);
    } catch (const std::invalid_argument& e) {
      throw std::runtime_error(e.what());
    }
    if (fs::exists(state_path(run_id))) throw std::runtime_error(fmt::format("lab {} exists already", run_id));
    state->owner_pid = spec.owner > 0 ? spec.owner : ::getpid();
    state->owner_start = process_start_time(state->owner_pid);
    register_owned_lab(run_id);
    // Written before anything is made: whatever exists of a lab always has a state file naming it.
    try {
      write_state(*state);
    } catch (...) {
      unregister_owned_lab(run_id);
      throw;
    }
  }
  std::unique_ptr<Lab> lab(new Lab(std::move(state), true));
  std::string failure;
  {
    // A signal arriving now waits for the build to finish, so that its teardown sees everything that was made.
    std::lock_guard lock(teardown_mutex());
    try {
      build_topology(*lab->state_);
    } catch (const std::exception& e) {
      failure = e.what();
    }
  }
  if (!failure.empty()) {
    lab->down();
    throw std::runtime_error(fmt::format("lab {}: {}", lab->run_id(), failure));
  }
  // Each pod gets a process that holds it, as Kubernetes' pause container does: the node agent
  // finds a pod's network namespace through a process in its cgroup (docs/fastpath.md).
  try {
    for (const auto& pod : lab->state_->pods) lab->spawn_in_pod(pod.name, {"sleep", "infinity"}, "/dev/null");
  } catch (const std::exception& e) {
    lab->down();
    throw std::runtime_error(fmt::format("lab {}: pod sandbox process: {}", lab->run_id(), e.what()));
  }
  return lab;
}

std::unique_ptr<Lab> Lab::attach(const std::string& run_id) {
  if (!valid_run_id(run_id)) throw std::runtime_error(fmt::format("no lab \"{}\" (see meshlab list)", run_id));
  auto state = read_state(run_id);
  if (!state) throw std::runtime_error(fmt::format("no lab \"{}\" (see meshlab list)", run_id));
  return std::unique_ptr<Lab>(new Lab(std::make_unique<LabState>(std::move(*state)), false));
}

Lab::~Lab() {
  if (!owned_) return;
  try {
    down();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "sockmesh-lab: %s\n", e.what());
  }
}

void Lab::down() {
  std::vector<std::string> problems;
  {
    std::lock_guard lock(teardown_mutex());
    // Own children: killed directly (their pids cannot be recycled before we reap them) and reaped, so that
    // they are gone, not zombies, when down() returns.
    for (pid_t pid : children_) ::kill(pid, SIGKILL);
    problems = teardown_run(state_->run_id);
    for (pid_t pid : children_) wait_exit_status(pid);
    children_.clear();
  }
  if (owned_) unregister_owned_lab(state_->run_id);
  owned_ = false;
  if (!problems.empty()) throw std::runtime_error(fmt::format("lab {}: {}", state_->run_id, join_problems(problems)));
}

void Lab::detach() {
  if (owned_) unregister_owned_lab(state_->run_id);
  owned_ = false;
}

const std::string& Lab::run_id() const { return state_->run_id; }
int Lab::node_count() const { return static_cast<int>(state_->nodes.size()); }
std::string Lab::node_name(int node) const { return state_->node(node).name; }
std::string Lab::node_netns(int node) const { return state_->node(node).name; }
std::string Lab::node_address(int node) const { return state_->node(node).address; }
std::string Lab::node_pod_cidr(int node) const { return state_->node(node).pod_cidr; }
std::string Lab::node_address6(int node) const { return state_->node(node).address6; }
std::string Lab::node_pod_cidr6(int node) const { return state_->node(node).pod_cidr6; }
std::string Lab::workload_cgroup(int node) const { return state_->node(node).workload_cgroup; }
std::string Lab::agent_cgroup(int node) const { return state_->node(node).agent_cgroup; }
std::string Lab::bridge_netns() const { return state_->bridge_netns; }
std::string Lab::pod_ip(const std::string& pod) const { return state_->pod(pod).ip; }
std::string Lab::pod_ip6(const std::string& pod) const { return state_->pod(pod).ip6; }
int Lab::pod_node(const std::string& pod) const { return state_->pod(pod).node; }
std::string Lab::pod_netns(const std::string& pod) const { return state_->pod(pod).netns; }
std::string Lab::pod_cgroup(const std::string& pod) const { return state_->pod(pod).cgroup; }

std::vector<std::string> Lab::pods() const {
  std::vector<std::string> names;
  for (const auto& p : state_->pods) names.push_back(p.name);
  return names;
}

std::string Lab::state_json() const { return to_json(*state_).dump(2); }

pid_t Lab::spawn(const std::string& cgroup, const std::string& netns, const std::vector<std::string>& argv,
                 const std::string& log_path, const std::string& where) {
  LaunchOptions opts;
  opts.log_path = log_path;
  opts.new_session = true;
  pid_t pid = launch({cgroup, netns}, argv, opts);
  children_.push_back(pid);
  ProcessState p{pid, where, argv, log_path};
  state_->processes.push_back(p);
  // Another process (meshlab exec) may have added processes meanwhile: merge into the file's list.
  StateLock lock;
  auto on_disk = read_state(state_->run_id);
  if (on_disk) {
    on_disk->processes.push_back(p);
    write_state(*on_disk);
  }
  return pid;
}

pid_t Lab::spawn_in_pod(const std::string& pod, const std::vector<std::string>& argv, const std::string& log_path) {
  const PodState& p = state_->pod(pod);
  return spawn(p.cgroup, p.netns, argv, log_path, "pod:" + pod);
}

pid_t Lab::spawn_in_node(int node, const std::vector<std::string>& argv, const std::string& log_path) {
  const NodeState& n = state_->node(node);
  return spawn(n.agent_cgroup, n.name, argv, log_path, fmt::format("node:{}", node));
}

int Lab::run_in_pod(const std::string& pod, const std::vector<std::string>& argv, std::string* out) {
  const PodState& p = state_->pod(pod);
  return run_placed({p.cgroup, p.netns}, argv, out);
}

int Lab::run_in_node(int node, const std::vector<std::string>& argv, std::string* out) {
  const NodeState& n = state_->node(node);
  return run_placed({n.agent_cgroup, n.name}, argv, out);
}

int Lab::call_in_pod(const std::string& pod, const std::function<int()>& fn, std::string* out) {
  const PodState& p = state_->pod(pod);
  return call_placed({p.cgroup, p.netns}, fn, out);
}

}  // namespace sockmesh::lab
