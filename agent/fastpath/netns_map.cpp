#include "fastpath/netns_map.h"

#include <bpf/bpf.h>
#include <dirent.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <stdexcept>
#include <thread>

#include "reconcile/sorted_merge.h"
#include "sockmesh/common/unique_fd.h"
#include "sockmesh/fastpath.h"

#ifndef SO_NETNS_COOKIE
#define SO_NETNS_COOKIE 71
#endif

namespace sockmesh::fastpath {
namespace {

[[noreturn]] void fail(const std::string &what, int err) {
  throw std::runtime_error(what + ": " + std::strerror(err));
}

}  // namespace

NetnsMap::NetnsMap(int fd) : fd_(fd) {
  sm_ip_key key{}, next{};
  const void *prev = nullptr;
  while (bpf_map_get_next_key(fd_, prev, &next) == 0) {
    key = next;
    prev = &key;
    uint64_t netns = 0;
    if (bpf_map_lookup_elem(fd_, &key, &netns) != 0) continue;  // deleted meanwhile
    entries_.push_back({key, netns});
  }
  std::sort(entries_.begin(), entries_.end(),
            [](const Entry &a, const Entry &b) { return reconcile::less_key(a.key, b.key); });
}

reconcile::CaptureSyncStats NetnsMap::sync(const std::vector<NetnsAddress> &addresses) {
  struct Desired {
    sm_ip_key key;
    uint64_t value;
  };
  std::vector<Desired> desired;
  desired.reserve(addresses.size());
  for (const auto &a : addresses) {
    if (a.netns == 0)
      throw std::invalid_argument("address " + reconcile::format_ip(a.addr) +
                                  ": network namespace cookie 0");
    desired.push_back({reconcile::ip_key_of(a.addr), a.netns});
  }
  std::sort(desired.begin(), desired.end(),
            [](const Desired &a, const Desired &b) { return reconcile::less_key(a.key, b.key); });
  for (size_t i = 1; i < desired.size(); i++)
    if (reconcile::same_key(desired[i].key, desired[i - 1].key))
      throw std::invalid_argument(
          "address " + reconcile::text_of(desired[i].key) + " given twice (namespaces " +
          std::to_string(desired[i - 1].value) + " and " + std::to_string(desired[i].value) + ")");
  if (desired.size() > SM_MAX_NETNS_ADDRESSES)
    throw std::invalid_argument(std::to_string(desired.size()) +
                                " addresses, more than sm_netns holds (" +
                                std::to_string(SM_MAX_NETNS_ADDRESSES) + ")");
  std::vector<Desired> have;
  have.reserve(entries_.size());
  for (const auto &e : entries_) have.push_back({e.key, e.netns});
  auto key_of = [](const Desired &e) -> const sm_ip_key & { return e.key; };
  try {
    auto stats = reconcile::sorted_merge(
        have, desired, key_of, reconcile::less_key, [](uint64_t a, uint64_t b) { return a == b; },
        [this](const Desired &e) {
          if (bpf_map_update_elem(fd_, &e.key, &e.value, BPF_ANY) != 0)
            fail("write the namespace of " + reconcile::text_of(e.key) + " (sm_netns)", errno);
        },
        [this](const Desired &e) {
          if (bpf_map_delete_elem(fd_, &e.key) != 0 && errno != ENOENT)
            fail("remove " + reconcile::text_of(e.key) + " from sm_netns", errno);
        });
    entries_.clear();
    for (const auto &e : desired) entries_.push_back({e.key, e.value});
    return stats;
  } catch (...) {
    *this = NetnsMap(fd_);  // the mirror follows what the kernel holds after a partial write
    throw;
  }
}

uint64_t own_netns_cookie() {
  UniqueFd s(socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!s.valid()) fail("socket for SO_NETNS_COOKIE", errno);
  uint64_t cookie = 0;
  socklen_t len = sizeof(cookie);
  if (getsockopt(s.get(), SOL_SOCKET, SO_NETNS_COOKIE, &cookie, &len) != 0)
    fail("getsockopt SO_NETNS_COOKIE", errno);
  return cookie;
}

uint64_t netns_cookie_of(const std::string &ns_file) {
  UniqueFd ns(open(ns_file.c_str(), O_RDONLY | O_CLOEXEC));
  if (!ns.valid()) fail("open " + ns_file, errno);
  uint64_t cookie = 0;
  std::string error;
  // setns() moves only the calling thread: a thread of its own, which ends with the answer.
  std::thread enter([&] {
    if (setns(ns.get(), CLONE_NEWNET) != 0) {
      error = "enter " + ns_file + ": " + std::strerror(errno);
      return;
    }
    try {
      cookie = own_netns_cookie();
    } catch (const std::exception &e) {
      error = e.what();
    }
  });
  enter.join();
  if (!error.empty()) throw std::runtime_error(error);
  return cookie;
}

std::vector<reconcile::IpAddress> own_addresses() {
  ifaddrs *list = nullptr;
  if (getifaddrs(&list) != 0) fail("getifaddrs", errno);
  std::vector<reconcile::IpAddress> out;
  for (ifaddrs *i = list; i; i = i->ifa_next) {
    if (!i->ifa_addr) continue;
    reconcile::IpAddress a;
    if (i->ifa_addr->sa_family == AF_INET) {
      a.family = AF_INET;
      std::memcpy(a.bytes.data(), &reinterpret_cast<sockaddr_in *>(i->ifa_addr)->sin_addr, 4);
    } else if (i->ifa_addr->sa_family == AF_INET6) {
      a.family = AF_INET6;
      std::memcpy(a.bytes.data(), &reinterpret_cast<sockaddr_in6 *>(i->ifa_addr)->sin6_addr, 16);
    } else {
      continue;
    }
    if (std::find(out.begin(), out.end(), a) == out.end()) out.push_back(a);
  }
  freeifaddrs(list);
  return out;
}

std::optional<std::string> netns_file_of_cgroup(const std::string &dir) {
  {
    std::ifstream procs(dir + "/cgroup.procs");
    long pid = 0;
    while (procs >> pid) {
      std::string file = "/proc/" + std::to_string(pid) + "/ns/net";
      if (access(file.c_str(), R_OK) == 0) return file;
    }
  }
  // A pod's processes may live in its containers' cgroups below it.
  DIR *d = opendir(dir.c_str());
  if (!d) return std::nullopt;
  std::vector<std::string> children;
  while (dirent *entry = readdir(d))
    if (entry->d_type == DT_DIR && entry->d_name[0] != '.') children.push_back(entry->d_name);
  closedir(d);
  std::sort(children.begin(), children.end());
  for (const auto &child : children)
    if (auto file = netns_file_of_cgroup(dir + "/" + child)) return file;
  return std::nullopt;
}

}  // namespace sockmesh::fastpath
