#include "topology.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

#include <fmt/format.h>

#include "process.h"
#include "teardown.h"

namespace sockmesh::lab {
namespace {

// A VIP that was not rewritten must fail at connect() (EHOSTUNREACH) instead of leaving the lab.
constexpr const char* kVipRoutes = "route add unreachable 10.96.0.0/16\nroute add unreachable fd00:96::/64\n";

void ip(const std::vector<std::string>& args) {
  std::vector<std::string> argv{ip_binary()};
  argv.insert(argv.end(), args.begin(), args.end());
  CommandResult r = run_command(argv);
  if (r.status != 0) {
    std::string cmd;
    for (const auto& a : args) cmd += " " + a;
    throw std::runtime_error(fmt::format("ip{} failed: {}", cmd, r.err.empty() ? r.out : r.err));
  }
}

// Runs the lines as one `ip -n <netns> -batch -`; stops at the first failing line.
void ip_batch(const std::string& netns, const std::string& lines) {
  CommandResult r = run_command({ip_binary(), "-n", netns, "-batch", "-"}, lines);
  if (r.status != 0) {
    throw std::runtime_error(fmt::format("ip -n {} -batch failed: {}", netns, r.err.empty() ? r.out : r.err));
  }
}

// Writes "1"/"0" to /proc/sys/net/... files inside a netns. Net sysctls resolve against the netns of the process
// that opens them, so the writes happen in a child that joined it.
void write_sysctls(const std::string& netns, const std::vector<std::pair<std::string, std::string>>& values) {
  std::string failed;
  int rc = call_placed({"", netns}, [&] {
    for (const auto& [key, value] : values) {
      const std::string path = "/proc/sys/" + key;
      int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
      if (fd < 0) return 1;
      const std::string text = value + "\n";
      bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
      ::close(fd);
      if (!ok) return 1;
    }
    return 0;
  }, nullptr);
  if (rc != 0) {
    std::string keys;
    for (const auto& kv : values) keys += " " + kv.first + "=" + kv.second;
    throw std::runtime_error(fmt::format("cannot set sysctls in netns {}:{}", netns, keys));
  }
}

// Before any link exists in the netns: interfaces take their IPv6 settings from `default` when they are made
// (also the veth ends made elsewhere and moved in). No duplicate address detection, so every address, link-local
// ones included, is usable at once instead of "tentative" for a second or more (the lab owns all addresses).
const std::vector<std::pair<std::string, std::string>> kNoDad = {
    {"net/ipv6/conf/all/accept_dad", "0"}, {"net/ipv6/conf/default/accept_dad", "0"}};

const std::vector<std::pair<std::string, std::string>> kNodeSysctls = {
    {"net/ipv6/conf/all/accept_dad", "0"},
    {"net/ipv6/conf/default/accept_dad", "0"},
    {"net/ipv4/ip_forward", "1"},
    // Also sets `default` and every existing interface; a router ignores router advertisements.
    {"net/ipv6/conf/all/forwarding", "1"}};

}  // namespace

void build_topology(const LabState& s) {
  for (const auto& n : s.nodes) {
    make_cgroup_dir(n.agent_cgroup);
    make_cgroup_dir(n.workload_cgroup);
  }
  for (const auto& p : s.pods) make_cgroup_dir(p.cgroup);

  ip({"netns", "add", s.bridge_netns});
  for (const auto& n : s.nodes) ip({"netns", "add", n.name});
  for (const auto& p : s.pods) ip({"netns", "add", p.netns});
  write_sysctls(s.bridge_netns, kNoDad);
  for (const auto& n : s.nodes) write_sysctls(n.name, kNodeSysctls);
  for (const auto& p : s.pods) write_sysctls(p.netns, kNoDad);

  ip_batch(s.bridge_netns, "link set lo up\nlink add br0 type bridge\nlink set br0 up\n");

  // Each veth is created inside one of its namespaces with its peer moved straight into the other, so host-level
  // interface names never collide between parallel labs.
  for (const auto& n : s.nodes) {
    std::string b = "link set lo up\n";
    b += fmt::format("link add eth0 type veth peer name n{} netns {}\n", n.index, s.bridge_netns);
    b += fmt::format("addr add {}/24 dev eth0\naddr add {}/64 dev eth0 nodad\nlink set eth0 up\n", n.address,
                     n.address6);
    b += fmt::format("link add cbr0 type bridge\naddr add {}/24 dev cbr0\naddr add {}/64 dev cbr0 nodad\n", n.gateway,
                     n.gateway6);
    b += "link set cbr0 up\n";
    for (const auto& p : s.pods) {
      if (p.node != n.index) continue;
      b += fmt::format("link add {} type veth peer name eth0 netns {}\n", p.node_veth, p.netns);
      b += fmt::format("link set {} master cbr0 up\n", p.node_veth);
    }
    for (const auto& other : s.nodes) {
      if (other.index == n.index) continue;
      b += fmt::format("route add {} via {}\n", other.pod_cidr, other.address);
      b += fmt::format("route add {} via {}\n", other.pod_cidr6, other.address6);
    }
    b += kVipRoutes;
    ip_batch(n.name, b);
  }

  std::string bridge_ports;
  for (const auto& n : s.nodes) bridge_ports += fmt::format("link set n{} master br0 up\n", n.index);
  ip_batch(s.bridge_netns, bridge_ports);

  for (const auto& p : s.pods) {
    const NodeState& n = s.node(p.node);
    std::string b = "link set lo up\n";
    b += fmt::format("addr add {}/24 dev eth0\naddr add {}/64 dev eth0 nodad\nlink set eth0 up\n", p.ip, p.ip6);
    b += fmt::format("route add default via {}\n", n.gateway);
    b += fmt::format("route add default via {}\n", n.gateway6);
    b += kVipRoutes;
    ip_batch(p.netns, b);
  }
}

}  // namespace sockmesh::lab
