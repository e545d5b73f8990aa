#include "fastpath/fast_path.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <netinet/in.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstring>
#include <set>

#include "reconcile/capture_maps.h"
#include "sockmesh/fastpath.h"
#include "telemetry/datapath_counters.h"

namespace sockmesh::fastpath {
namespace {

// Loopback and link-local addresses repeat in every namespace: the kernel never asks sm_netns
// for a loopback peer (the socket's own namespace is the answer), and a link-local one names no
// namespace of its own.
bool node_local_only(const reconcile::IpAddress &a) {
  if (a.family == AF_INET) return a.bytes[0] == 127 || (a.bytes[0] == 169 && a.bytes[1] == 254);
  static const uint8_t kLoopback[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
  if (std::memcmp(a.bytes.data(), kLoopback, 16) == 0) return true;
  return a.bytes[0] == 0xfe && (a.bytes[1] & 0xc0) == 0x80;
}

std::string endpoint_text(const uint32_t addr[4], uint32_t family, uint16_t port_n) {
  sm_ip_key key{};
  std::memcpy(key.addr, addr, sizeof(key.addr));
  key.family = family;
  const std::string ip = reconcile::text_of(key);
  const std::string port = std::to_string(ntohs(port_n));
  return family == SM_AF_INET6 ? "[" + ip + "]:" + port : ip + ":" + port;
}

}  // namespace

FastPath::FastPath(int netns_fd, int fastpath_fd, FastPathOptions options)
    : fastpath_fd_(fastpath_fd), options_(std::move(options)), map_(netns_fd) {
  node_netns_ = own_netns_cookie();
  {
    std::lock_guard lock(mu_);
    refresh_locked();
  }
  thread_ = std::thread([this] { loop(); });
}

FastPath::~FastPath() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

void FastPath::set_workloads(std::vector<LocalWorkload> workloads) {
  std::lock_guard lock(mu_);
  workloads_ = std::move(workloads);
  refresh_locked();
}

void FastPath::loop() {
  std::unique_lock lock(mu_);
  while (!stopping_) {
    wake_.wait_for(lock, options_.refresh, [this] { return stopping_; });
    if (stopping_) break;
    refresh_locked();
  }
}

void FastPath::refresh_locked() {
  std::map<std::string, uint64_t> netns_of;
  std::map<std::string, std::string> unknown_why;
  for (const auto &w : workloads_) {
    auto file = netns_file_of_cgroup(w.cgroup_dir);
    if (!file) {
      unknown_why[w.id] = "no process in its cgroup " + w.cgroup_dir + " yet";
      continue;
    }
    struct stat st {};
    if (stat(file->c_str(), &st) != 0) {
      unknown_why[w.id] = "its process left before its namespace was read";
      continue;
    }
    // The namespace's identity: entered only the first time it is seen.
    const std::string inode = std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino);
    auto cached = cookie_of_file_.find(inode);
    if (cached != cookie_of_file_.end()) {
      netns_of[w.id] = cached->second;
      continue;
    }
    try {
      const uint64_t cookie = netns_cookie_of(*file);
      cookie_of_file_[inode] = cookie;
      netns_of[w.id] = cookie;
    } catch (const std::exception &e) {
      unknown_why[w.id] = e.what();
    }
  }
  // Namespaces no workload is in any more are forgotten (their inode numbers may come back).
  std::set<uint64_t> in_use;
  for (const auto &[id, cookie] : netns_of) in_use.insert(cookie);
  for (auto it = cookie_of_file_.begin(); it != cookie_of_file_.end();)
    it = in_use.count(it->second) ? std::next(it) : cookie_of_file_.erase(it);

  // Every address once: the node's own, then the workloads'; one claimed by two namespaces is
  // left out.
  std::map<reconcile::IpAddress, uint64_t> owner;
  std::set<reconcile::IpAddress> ambiguous;
  auto claim = [&](const reconcile::IpAddress &a, uint64_t netns) {
    if (node_local_only(a)) return;
    auto [it, added] = owner.emplace(a, netns);
    if (!added && it->second != netns) ambiguous.insert(a);
  };
  try {
    for (const auto &a : own_addresses()) claim(a, node_netns_);
  } catch (const std::exception &e) {
    spdlog::warn("event=fastpath_node_addresses_unreadable reason=\"{}\"", e.what());
  }
  for (const auto &w : workloads_) {
    auto it = netns_of.find(w.id);
    if (it == netns_of.end()) continue;
    for (const auto &a : w.addresses) claim(a, it->second);
  }
  std::vector<NetnsAddress> desired;
  for (const auto &[a, netns] : owner) {
    if (ambiguous.count(a)) continue;
    desired.push_back({a, netns});
  }
  for (const auto &a : ambiguous)
    spdlog::warn("event=fastpath_address_ambiguous address={} effect=\"no fast path to it\"",
                 reconcile::format_ip(a));
  for (const auto &[id, why] : unknown_why)
    if (!unknown_why_.count(id) || unknown_why_.at(id) != why)
      spdlog::info("event=fastpath_netns_unknown workload={} reason=\"{}\"", id, why);
  try {
    const auto stats = map_.sync(desired);
    if (stats.written || stats.removed)
      spdlog::info("event=fastpath_netns_synced addresses={} written={} removed={} unknown={}",
                   desired.size(), stats.written, stats.removed, unknown_why.size());
  } catch (const std::exception &e) {
    spdlog::error("event=fastpath_netns_sync_failed reason=\"{}\"", e.what());
  }
  netns_of_ = std::move(netns_of);
  unknown_why_ = std::move(unknown_why);
}

v1::FastPathReport FastPath::report(int counters_fd) const {
  v1::FastPathReport out;
  out.set_switched_on(options_.switched_on);
  out.set_supported(options_.missing_features.empty());
  out.set_enabled(enabled());
  out.set_agent_hops(agent_hops());
  for (const auto &f : options_.missing_features) out.add_missing_features(f);
  out.set_node_netns_cookie(node_netns_);
  out.set_max_sockets(SM_MAX_FASTPATH_SOCKETS);

  std::vector<LocalWorkload> workloads;
  std::map<std::string, uint64_t> netns_of;
  std::map<std::string, std::string> unknown_why;
  {
    std::lock_guard lock(mu_);
    workloads = workloads_;
    netns_of = netns_of_;
    unknown_why = unknown_why_;
    out.set_addresses(map_.size());
  }
  // Which workload a socket belongs to: the one whose namespace and address it has.
  std::map<std::pair<uint64_t, sm_ip_key>, std::string,
           bool (*)(const std::pair<uint64_t, sm_ip_key> &, const std::pair<uint64_t, sm_ip_key> &)>
      owner_of(
          [](const std::pair<uint64_t, sm_ip_key> &a, const std::pair<uint64_t, sm_ip_key> &b) {
            if (a.first != b.first) return a.first < b.first;
            return reconcile::less_key(a.second, b.second);
          });
  std::map<std::string, uint64_t> sockets_of;
  for (const auto &w : workloads) {
    auto it = netns_of.find(w.id);
    if (it == netns_of.end()) continue;
    for (const auto &a : w.addresses) owner_of[{it->second, reconcile::ip_key_of(a)}] = w.id;
  }

  std::vector<v1::FastPathSocket> sockets;
  sm_fp_key key{}, next{};
  const void *prev = nullptr;
  uint64_t total = 0, node = 0;
  while (bpf_map_get_next_key(fastpath_fd_, prev, &next) == 0) {
    key = next;
    prev = &key;
    total++;
    sm_ip_key local{};
    std::memcpy(local.addr, key.local, sizeof(local.addr));
    local.family = key.family;
    std::string owner;
    if (auto it = owner_of.find({key.netns, local}); it != owner_of.end()) {
      owner = it->second;
      sockets_of[owner]++;
    } else if (key.netns == node_netns_) {
      owner = "node";
      node++;
    }
    if (sockets.size() < 1000) {
      v1::FastPathSocket s;
      s.set_netns_cookie(key.netns);
      s.set_local(endpoint_text(key.local, key.family, key.local_port));
      s.set_remote(endpoint_text(key.remote, key.family, key.remote_port));
      s.set_owner(owner);
      uint64_t cookie = 0;
      if (bpf_map_lookup_elem(fastpath_fd_, &key, &cookie) == 0) s.set_cookie(cookie);
      sockets.push_back(std::move(s));
    }
  }
  std::sort(sockets.begin(), sockets.end(), [](const auto &a, const auto &b) {
    return std::tie(a.owner(), a.local(), a.remote()) < std::tie(b.owner(), b.local(), b.remote());
  });
  for (auto &s : sockets) *out.add_socket_list() = std::move(s);
  out.set_sockets(total);
  out.set_node_sockets(node);

  for (const auto &w : workloads) {
    auto *v = out.add_workloads();
    v->set_workload(w.id);
    for (const auto &a : w.addresses) v->add_addresses(reconcile::format_ip(a));
    if (auto it = netns_of.find(w.id); it != netns_of.end()) v->set_netns_cookie(it->second);
    if (auto it = unknown_why.find(w.id); it != unknown_why.end())
      v->set_netns_unknown_reason(it->second);
    if (auto it = sockets_of.find(w.id); it != sockets_of.end()) v->set_sockets(it->second);
  }

  for (const auto &[name, value] : telemetry::read_datapath_counters(counters_fd)) {
    if (name == "fastpath_sockets")
      out.set_sockets_added(value);
    else if (name == "fastpath_messages")
      out.set_redirected_messages(value);
    else if (name == "fastpath_bytes")
      out.set_redirected_bytes(value);
    else if (name.rfind("fastpath_", 0) == 0)
      (*out.mutable_fallbacks())[name.substr(9)] = value;
  }
  return out;
}

}  // namespace sockmesh::fastpath
