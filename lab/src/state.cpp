#include "state.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <stdexcept>

#include <fmt/format.h>

#include "sockmesh/common/paths.h"
#include "sockmesh/lab/lab.h"

namespace sockmesh::lab {
namespace fs = std::filesystem;

namespace {

bool valid_pod_name(const std::string& name) {
  if (name.empty() || name.size() > 40 || name.front() == '-') return false;
  for (char c : name) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) return false;
  }
  return true;
}

// The pod address, or nullopt when ip is not an IPv4 address inside the node's pod range 10.78.<node>.0/24
// (excluding network, gateway and broadcast).
std::optional<int> pod_host_part(const std::string& ip, int node) {
  in_addr addr{};
  if (inet_pton(AF_INET, ip.c_str(), &addr) != 1) return std::nullopt;
  uint32_t a = ntohl(addr.s_addr);
  if ((a >> 8) != ((10u << 16) | (78u << 8) | static_cast<uint32_t>(node))) return std::nullopt;
  int host = static_cast<int>(a & 0xff);
  if (host < 2 || host > 254) return std::nullopt;
  return host;
}

}  // namespace

const NodeState& LabState::node(int index) const {
  if (index < 1 || index > static_cast<int>(nodes.size())) {
    throw std::out_of_range(fmt::format("lab {}: no node {} (nodes are 1..{})", run_id, index, nodes.size()));
  }
  return nodes[index - 1];
}

const PodState& LabState::pod(const std::string& name) const {
  for (const auto& p : pods) {
    if (p.name == name) return p;
  }
  throw std::out_of_range(fmt::format("lab {}: no pod \"{}\"", run_id, name));
}

std::string name_prefix(const std::string& run_id) { return "sm" + run_id; }

bool valid_run_id(const std::string& run_id) {
  if (run_id.empty() || run_id.size() > 12) return false;
  for (char c : run_id) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))) return false;
  }
  return true;
}

LabState plan_lab(const LabSpec& spec, const std::string& run_id, const std::string& cgroup2) {
  if (!valid_run_id(run_id)) {
    throw std::invalid_argument(fmt::format("run id \"{}\": must be 1-12 characters of [a-z0-9]", run_id));
  }
  if (spec.nodes < 1 || spec.nodes > 200) {
    throw std::invalid_argument(fmt::format("nodes: must be 1..200, got {}", spec.nodes));
  }
  const std::string prefix = name_prefix(run_id);
  LabState s;
  s.run_id = run_id;
  s.cgroup_root = fmt::format("{}/{}/{}", cgroup2, kCgroupParent, prefix);
  s.bridge_netns = prefix + "-br";
  for (int i = 1; i <= spec.nodes; ++i) {
    NodeState n;
    n.index = i;
    n.name = fmt::format("{}-n{}", prefix, i);
    n.address = fmt::format("10.77.0.{}", i);
    n.pod_cidr = fmt::format("10.78.{}.0/24", i);
    n.gateway = fmt::format("10.78.{}.1", i);
    // The decimal numbers are written into hex groups as they are ("node 12" is fd00:77::12): distinct text,
    // distinct addresses, and the IPv6 plan reads like the IPv4 one.
    n.address6 = fmt::format("fd00:77::{}", i);
    n.pod_cidr6 = fmt::format("fd00:78:{}::/64", i);
    n.gateway6 = fmt::format("fd00:78:{}::1", i);
    n.cgroup = fmt::format("{}/n{}", s.cgroup_root, i);
    n.agent_cgroup = n.cgroup + "/agent";
    n.workload_cgroup = n.cgroup + "/pods";
    n.pin_dir = paths::pin_dir(n.name);
    n.run_dir = paths::run_dir(n.name);
    s.nodes.push_back(n);
  }
  std::set<std::string> names;
  std::vector<std::set<int>> used(spec.nodes + 1);
  for (const auto& p : spec.pods) {
    if (!valid_pod_name(p.name)) {
      throw std::invalid_argument(
          fmt::format("pod \"{}\": name must be 1-40 characters of [a-z0-9-], not starting with '-'", p.name));
    }
    if (!names.insert(p.name).second) throw std::invalid_argument(fmt::format("pod \"{}\": defined twice", p.name));
    if (p.node < 1 || p.node > spec.nodes) {
      throw std::invalid_argument(fmt::format("pod \"{}\": node must be 1..{}, got {}", p.name, spec.nodes, p.node));
    }
    if (!p.ip.empty()) {
      auto host = pod_host_part(p.ip, p.node);
      if (!host) {
        throw std::invalid_argument(fmt::format("pod \"{}\": ip must be 10.78.{}.2-254, got \"{}\"", p.name, p.node, p.ip));
      }
      if (!used[p.node].insert(*host).second) {
        throw std::invalid_argument(fmt::format("pod \"{}\": ip {} is taken", p.name, p.ip));
      }
    }
  }
  int veth = 0;
  for (const auto& p : spec.pods) {
    PodState ps;
    ps.name = p.name;
    ps.node = p.node;
    ps.ip = p.ip;
    int host = 0;
    if (ps.ip.empty()) {
      host = 10;
      while (host <= 254 && used[p.node].count(host)) ++host;
      if (host > 254) throw std::invalid_argument(fmt::format("pod \"{}\": node {} has no free address", p.name, p.node));
      used[p.node].insert(host);
    } else {
      host = *pod_host_part(p.ip, p.node);
    }
    ps.ip = fmt::format("10.78.{}.{}", p.node, host);  // canonical text, also for a given address
    ps.ip6 = fmt::format("fd00:78:{}::{}", p.node, host);
    ps.netns = fmt::format("{}-p-{}", prefix, p.name);
    ps.cgroup = fmt::format("{}/pods/{}", s.nodes[p.node - 1].cgroup, p.name);
    ps.node_veth = fmt::format("vp{}", veth++);
    s.pods.push_back(ps);
  }
  return s;
}

nlohmann::json to_json(const LabState& s) {
  nlohmann::json j;
  j["run_id"] = s.run_id;
  j["owner_pid"] = s.owner_pid;
  j["owner_start"] = s.owner_start;
  j["cgroup_root"] = s.cgroup_root;
  j["bridge_netns"] = s.bridge_netns;
  j["nodes"] = nlohmann::json::array();
  for (const auto& n : s.nodes) {
    j["nodes"].push_back({{"index", n.index},
                          {"name", n.name},
                          {"netns", n.name},
                          {"address", n.address},
                          {"pod_cidr", n.pod_cidr},
                          {"gateway", n.gateway},
                          {"address6", n.address6},
                          {"pod_cidr6", n.pod_cidr6},
                          {"gateway6", n.gateway6},
                          {"cgroup", n.cgroup},
                          {"agent_cgroup", n.agent_cgroup},
                          {"workload_cgroup", n.workload_cgroup},
                          {"pin_dir", n.pin_dir},
                          {"run_dir", n.run_dir}});
  }
  j["pods"] = nlohmann::json::array();
  for (const auto& p : s.pods) {
    j["pods"].push_back({{"name", p.name},
                         {"node", p.node},
                         {"ip", p.ip},
                         {"ip6", p.ip6},
                         {"netns", p.netns},
                         {"cgroup", p.cgroup},
                         {"node_veth", p.node_veth}});
  }
  j["processes"] = nlohmann::json::array();
  for (const auto& p : s.processes) {
    j["processes"].push_back({{"pid", p.pid}, {"where", p.where}, {"argv", p.argv}, {"log", p.log}});
  }
  return j;
}

LabState state_from_json(const nlohmann::json& j) {
  LabState s;
  s.run_id = j.at("run_id").get<std::string>();
  s.owner_pid = j.at("owner_pid").get<pid_t>();
  s.owner_start = j.value("owner_start", 0ULL);
  s.cgroup_root = j.at("cgroup_root").get<std::string>();
  s.bridge_netns = j.at("bridge_netns").get<std::string>();
  for (const auto& n : j.at("nodes")) {
    NodeState ns;
    ns.index = n.at("index").get<int>();
    ns.name = n.at("name").get<std::string>();
    ns.address = n.at("address").get<std::string>();
    ns.pod_cidr = n.at("pod_cidr").get<std::string>();
    ns.gateway = n.at("gateway").get<std::string>();
    // Absent in state files of labs made before IPv6 (teardown still has to read those).
    ns.address6 = n.value("address6", "");
    ns.pod_cidr6 = n.value("pod_cidr6", "");
    ns.gateway6 = n.value("gateway6", "");
    ns.cgroup = n.at("cgroup").get<std::string>();
    ns.agent_cgroup = n.at("agent_cgroup").get<std::string>();
    ns.workload_cgroup = n.at("workload_cgroup").get<std::string>();
    ns.pin_dir = n.at("pin_dir").get<std::string>();
    ns.run_dir = n.at("run_dir").get<std::string>();
    s.nodes.push_back(ns);
  }
  for (const auto& p : j.at("pods")) {
    PodState ps;
    ps.name = p.at("name").get<std::string>();
    ps.node = p.at("node").get<int>();
    ps.ip = p.at("ip").get<std::string>();
    ps.ip6 = p.value("ip6", "");
    ps.netns = p.at("netns").get<std::string>();
    ps.cgroup = p.at("cgroup").get<std::string>();
    ps.node_veth = p.at("node_veth").get<std::string>();
    s.pods.push_back(ps);
  }
  for (const auto& p : j.value("processes", nlohmann::json::array())) {
    ProcessState ps;
    ps.pid = p.at("pid").get<pid_t>();
    ps.where = p.at("where").get<std::string>();
    ps.argv = p.at("argv").get<std::vector<std::string>>();
    ps.log = p.value("log", "");
    s.processes.push_back(ps);
  }
  return s;
}

std::string state_path(const std::string& run_id) { return fmt::format("{}/{}.json", kStateDir, run_id); }

StateLock::StateLock() {
  std::error_code ec;
  fs::create_directories(kStateDir, ec);
  const std::string path = fmt::format("{}/.lock", kStateDir);
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd_ < 0) throw std::runtime_error(fmt::format("cannot open {}: {}", path, std::strerror(errno)));
  while (::flock(fd_, LOCK_EX) != 0) {
    if (errno != EINTR) throw std::runtime_error(fmt::format("cannot lock {}: {}", path, std::strerror(errno)));
  }
}

StateLock::~StateLock() { ::close(fd_); }

void write_state(const LabState& state) {
  std::error_code ec;
  fs::create_directories(kStateDir, ec);
  const std::string path = state_path(state.run_id);
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::trunc);
    f << to_json(state).dump(2) << "\n";
    if (!f.flush()) throw std::runtime_error(fmt::format("cannot write {}", tmp));
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    throw std::runtime_error(fmt::format("cannot rename {} to {}: {}", tmp, path, std::strerror(errno)));
  }
}

std::optional<LabState> read_state(const std::string& run_id) {
  std::ifstream f(state_path(run_id));
  if (!f) return std::nullopt;
  try {
    return state_from_json(nlohmann::json::parse(f));
  } catch (const std::exception& e) {
    throw std::runtime_error(fmt::format("{}: unreadable state: {}", state_path(run_id), e.what()));
  }
}

std::vector<std::string> state_run_ids() {
  std::vector<std::string> ids;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(kStateDir, ec)) {
    const auto p = e.path();
    if (p.extension() == ".json" && valid_run_id(p.stem().string())) ids.push_back(p.stem().string());
  }
  std::sort(ids.begin(), ids.end());
  return ids;
}

unsigned long long process_start_time(pid_t pid) {
  if (pid <= 0) return 0;
  std::ifstream f(fmt::format("/proc/{}/stat", pid));
  std::string line;
  if (!std::getline(f, line)) return 0;
  // The command name (field 2) may contain spaces and parentheses: fields restart after the last ')'.
  auto close = line.rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream rest(line.substr(close + 2));
  std::string field;
  rest >> field;  // field 3: state; a zombie has exited
  if (field == "Z" || field == "X") return 0;
  for (int i = 4; i < 22; ++i) rest >> field;
  unsigned long long start = 0;
  rest >> start;
  return start;
}

bool owner_alive(const LabState& state) {
  const unsigned long long start = process_start_time(state.owner_pid);
  if (start == 0) return false;
  // A recycled pid is a different process.
  return state.owner_start == 0 || start == state.owner_start;
}

}  // namespace sockmesh::lab
