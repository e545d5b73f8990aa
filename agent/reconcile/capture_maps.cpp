#include "reconcile/capture_maps.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <netinet/in.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "reconcile/sorted_merge.h"
#include "sockmesh/fastpath.h"

namespace sockmesh::reconcile {
namespace {

[[noreturn]] void fail(const std::string &what, int err) {
  throw std::runtime_error(what + ": " + std::strerror(err));
}

bool same_value(const sm_endpoint &a, const sm_endpoint &b) {
  return std::memcmp(&a, &b, sizeof(a)) == 0;
}

bool same_value(const sm_workload &a, const sm_workload &b) {
  return a.id == b.id && a.flags == b.flags;
}

}  // namespace

sm_ip_key ip_key_of(const IpAddress &addr) {
  sm_ip_key key{};
  static const uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (addr.family == AF_INET) {
    std::memcpy(key.addr, addr.bytes.data(), 4);
    key.family = SM_AF_INET;
  } else if (addr.family == AF_INET6 && std::memcmp(addr.bytes.data(), kMapped, 12) == 0) {
    std::memcpy(key.addr, addr.bytes.data() + 12, 4);
    key.family = SM_AF_INET;
  } else if (addr.family == AF_INET6) {
    std::memcpy(key.addr, addr.bytes.data(), 16);
    key.family = SM_AF_INET6;
  } else {
    throw std::invalid_argument("endpoint address of unknown family " +
                                std::to_string(addr.family));
  }
  return key;
}

IpAddress address_of(const sm_ip_key &key) {
  IpAddress out;
  out.family = key.family == SM_AF_INET6 ? AF_INET6 : AF_INET;
  std::memcpy(out.bytes.data(), key.addr, key.family == SM_AF_INET6 ? 16 : 4);
  return out;
}

std::string text_of(const sm_ip_key &key) {
  return format_ip(address_of(key));
}

bool less_key(const sm_ip_key &a, const sm_ip_key &b) {
  return std::memcmp(&a, &b, sizeof(a)) < 0;
}

bool same_key(const sm_ip_key &a, const sm_ip_key &b) {
  return std::memcmp(&a, &b, sizeof(a)) == 0;
}

CaptureMaps::CaptureMaps(int workloads_fd, int endpoints_fd, int agent_fd)
    : workloads_fd_(workloads_fd), endpoints_fd_(endpoints_fd), agent_fd_(agent_fd) {
  adopt_workloads();
  adopt_endpoints();
}

uint64_t CaptureMaps::cgroup_id_of(const std::string &cgroup_dir) {
  struct stat st {};
  if (stat(cgroup_dir.c_str(), &st) != 0) fail("stat cgroup " + cgroup_dir, errno);
  if (!S_ISDIR(st.st_mode)) throw std::runtime_error("cgroup " + cgroup_dir + " is no directory");
  return st.st_ino;  // on cgroup v2 the inode number is the cgroup id
}

void CaptureMaps::adopt_workloads() {
  workloads_.clear();
  uint64_t key = 0, next = 0;
  const void *prev = nullptr;
  while (bpf_map_get_next_key(workloads_fd_, prev, &next) == 0) {
    key = next;
    prev = &key;
    sm_workload value{};
    if (bpf_map_lookup_elem(workloads_fd_, &key, &value) != 0) continue;  // deleted meanwhile
    workloads_.push_back({key, value});
  }
  std::sort(
      workloads_.begin(), workloads_.end(),
      [](const WorkloadEntry &a, const WorkloadEntry &b) { return a.cgroup_id < b.cgroup_id; });
}

void CaptureMaps::adopt_endpoints() {
  endpoints_.clear();
  sm_ip_key key{}, next{};
  const void *prev = nullptr;
  while (bpf_map_get_next_key(endpoints_fd_, prev, &next) == 0) {
    key = next;
    prev = &key;
    sm_endpoint value{};
    if (bpf_map_lookup_elem(endpoints_fd_, &key, &value) != 0) continue;
    endpoints_.push_back({key, value});
  }
  std::sort(endpoints_.begin(), endpoints_.end(),
            [](const EndpointEntry &a, const EndpointEntry &b) { return less_key(a.key, b.key); });
}

void CaptureMaps::set_agent(const AgentListener &agent) {
  if (agent.ipv4 && (agent.ipv4->addr.family != AF_INET || agent.ipv4->port == 0))
    throw std::invalid_argument("agent listener ipv4: needs an IPv4 address and a port, got " +
                                format_endpoint(agent.ipv4->addr, agent.ipv4->port));
  if (agent.ipv6 && (agent.ipv6->addr.family != AF_INET6 || agent.ipv6->port == 0))
    throw std::invalid_argument("agent listener ipv6: needs an IPv6 address and a port, got " +
                                format_endpoint(agent.ipv6->addr, agent.ipv6->port));
  if (agent.capture_on && !agent.ipv4 && !agent.ipv6)
    throw std::invalid_argument("capture on needs an agent listener (ipv4, ipv6 or both)");
  sm_agent_config config{};
  config.flags = (agent.capture_on ? SM_AGENT_CAPTURE_ON : 0) |
                 (agent.fast_path ? SM_AGENT_FASTPATH_ON : 0) |
                 (agent.fast_path && agent.fast_path_agent_hops ? SM_AGENT_FASTPATH_AGENT_HOPS : 0);
  if (agent.ipv4) {
    std::memcpy(&config.addr4, agent.ipv4->addr.bytes.data(), 4);
    config.port4 = htons(agent.ipv4->port);
  }
  if (agent.ipv6) {
    std::memcpy(config.addr6, agent.ipv6->addr.bytes.data(), 16);
    config.port6 = htons(agent.ipv6->port);
  }
  uint32_t zero = 0;
  sm_agent_config current{};
  if (bpf_map_lookup_elem(agent_fd_, &zero, &current) == 0 &&
      std::memcmp(&current, &config, sizeof(config)) == 0)
    return;
  if (bpf_map_update_elem(agent_fd_, &zero, &config, BPF_ANY) != 0)
    fail("write the agent listener (sm_agent)", errno);
}

AgentListener CaptureMaps::agent() const {
  uint32_t zero = 0;
  sm_agent_config config{};
  if (bpf_map_lookup_elem(agent_fd_, &zero, &config) != 0) fail("read sm_agent", errno);
  AgentListener out;
  out.capture_on = config.flags & SM_AGENT_CAPTURE_ON;
  out.fast_path = config.flags & SM_AGENT_FASTPATH_ON;
  out.fast_path_agent_hops = config.flags & SM_AGENT_FASTPATH_AGENT_HOPS;
  if (config.port4 != 0) {
    ListenAddress l;
    l.addr.family = AF_INET;
    std::memcpy(l.addr.bytes.data(), &config.addr4, 4);
    l.port = ntohs(config.port4);
    out.ipv4 = l;
  }
  if (config.port6 != 0) {
    ListenAddress l;
    l.addr.family = AF_INET6;
    std::memcpy(l.addr.bytes.data(), config.addr6, 16);
    l.port = ntohs(config.port6);
    out.ipv6 = l;
  }
  return out;
}

CaptureSyncStats CaptureMaps::sync_workloads(const std::vector<CapturedWorkload> &workloads) {
  std::vector<WorkloadEntry> desired;
  desired.reserve(workloads.size());
  for (const auto &w : workloads) {
    if (w.cgroup_id == 0)
      throw std::invalid_argument("workload " + std::to_string(w.id) + ": cgroup id 0");
    if (w.id == 0)
      throw std::invalid_argument("workload of cgroup " + std::to_string(w.cgroup_id) + ": id 0");
    desired.push_back({w.cgroup_id, {w.id, w.captured ? uint32_t(SM_WL_CAPTURED) : 0u}});
  }
  std::sort(desired.begin(), desired.end(), [](const WorkloadEntry &a, const WorkloadEntry &b) {
    return a.cgroup_id < b.cgroup_id;
  });
  for (size_t i = 1; i < desired.size(); i++)
    if (desired[i].cgroup_id == desired[i - 1].cgroup_id)
      throw std::invalid_argument(
          "cgroup " + std::to_string(desired[i].cgroup_id) + " given for workloads " +
          std::to_string(desired[i - 1].value.id) + " and " + std::to_string(desired[i].value.id));
  try {
    auto stats = sorted_merge(
        workloads_, desired, [](const WorkloadEntry &e) { return e.cgroup_id; },
        [](uint64_t a, uint64_t b) { return a < b; },
        [](const sm_workload &a, const sm_workload &b) { return same_value(a, b); },
        [this](const WorkloadEntry &e) {
          if (bpf_map_update_elem(workloads_fd_, &e.cgroup_id, &e.value, BPF_ANY) != 0)
            fail("write workload " + std::to_string(e.value.id) + " (cgroup " +
                     std::to_string(e.cgroup_id) + ")",
                 errno);
        },
        [this](const WorkloadEntry &e) {
          if (bpf_map_delete_elem(workloads_fd_, &e.cgroup_id) != 0 && errno != ENOENT)
            fail("remove workload of cgroup " + std::to_string(e.cgroup_id), errno);
        });
    workloads_ = std::move(desired);
    return stats;
  } catch (...) {
    adopt_workloads();  // the mirror follows what the kernel holds after a partial write
    throw;
  }
}

CaptureSyncStats CaptureMaps::sync_endpoints(const std::vector<MeshEndpoint> &endpoints) {
  std::vector<EndpointEntry> desired;
  desired.reserve(endpoints.size());
  for (const auto &e : endpoints) {
    sm_endpoint value{};
    value.workload_id = e.workload_id;
    value.node_id = e.node_id;
    value.flags = e.remote ? SM_EP_REMOTE : 0;
    desired.push_back({ip_key_of(e.addr), value});
  }
  std::sort(desired.begin(), desired.end(),
            [](const EndpointEntry &a, const EndpointEntry &b) { return less_key(a.key, b.key); });
  for (size_t i = 1; i < desired.size(); i++)
    if (same_key(desired[i].key, desired[i - 1].key))
      throw std::invalid_argument("endpoint address " + text_of(desired[i].key) +
                                  " given twice (workloads " +
                                  std::to_string(desired[i - 1].value.workload_id) + " and " +
                                  std::to_string(desired[i].value.workload_id) + ")");
  try {
    auto stats = sorted_merge(
        endpoints_, desired, [](const EndpointEntry &e) -> const sm_ip_key & { return e.key; },
        less_key, [](const sm_endpoint &a, const sm_endpoint &b) { return same_value(a, b); },
        [this](const EndpointEntry &e) {
          if (bpf_map_update_elem(endpoints_fd_, &e.key, &e.value, BPF_ANY) != 0)
            fail("write endpoint " + text_of(e.key), errno);
        },
        [this](const EndpointEntry &e) {
          if (bpf_map_delete_elem(endpoints_fd_, &e.key) != 0 && errno != ENOENT)
            fail("remove endpoint " + text_of(e.key), errno);
        });
    endpoints_ = std::move(desired);
    return stats;
  } catch (...) {
    adopt_endpoints();
    throw;
  }
}

}  // namespace sockmesh::reconcile
