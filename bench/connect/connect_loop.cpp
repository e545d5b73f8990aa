#include "connect_loop.h"

#include <arpa/inet.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <numeric>
#include <sstream>

namespace sockmesh::bench {
namespace {

using Clock = std::chrono::steady_clock;

// TcpExt counters of the calling process's netns (/proc/net is per netns).
long tcp_ext(const std::string& name) {
  std::ifstream in("/proc/net/netstat");
  std::string names, values;
  while (std::getline(in, names) && std::getline(in, values)) {
    if (names.rfind("TcpExt:", 0) != 0) continue;
    std::istringstream n(names), v(values);
    std::string key, value;
    while (n >> key && v >> value)
      if (key == name) return std::stol(value);
  }
  return 0;
}

// Sums of the per-CPU conntrack statistics of this netns (hex columns under a header line); empty
// when conntrack is not loaded.
std::map<std::string, long> conntrack_stats() {
  std::map<std::string, long> sums;
  std::ifstream in("/proc/net/stat/nf_conntrack");
  std::string header, line;
  if (!std::getline(in, header)) return sums;
  std::vector<std::string> columns;
  std::istringstream h(header);
  for (std::string c; h >> c;) columns.push_back(c);
  while (std::getline(in, line)) {
    std::istringstream v(line);
    std::string value;
    for (size_t i = 0; i < columns.size() && v >> value; i++)
      sums[columns[i]] += std::stol(value, nullptr, 16);
  }
  return sums;
}

long conntrack_drops() {
  auto s = conntrack_stats();
  return s["drop"] + s["early_drop"] + s["insert_failed"];
}

long conntrack_count() {
  std::ifstream in("/proc/sys/net/netfilter/nf_conntrack_count");
  long n = 0;
  in >> n;
  return n;
}

double percentile_us(const std::vector<uint32_t>& sorted_ns, double q) {
  if (sorted_ns.empty()) return 0;
  size_t rank = size_t(q * double(sorted_ns.size() - 1) + 0.5);
  return sorted_ns[std::min(rank, sorted_ns.size() - 1)] / 1000.0;
}

// One connect; returns the errno of a failure, 0 on success, and the time in *ns.
int connect_once(const sockaddr_in& target, uint32_t* ns) {
  auto start = Clock::now();
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return errno;
  int rc = ::connect(fd, reinterpret_cast<const sockaddr*>(&target), sizeof(target));
  auto end = Clock::now();
  int err = rc == 0 ? 0 : errno;
  linger abort_on_close{1, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &abort_on_close, sizeof(abort_on_close));
  ::close(fd);
  *ns = uint32_t(std::min<int64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(end - start).count(), UINT32_MAX));
  return err;
}

}  // namespace

void to_json(nlohmann::json& out, const SampleStats& s) {
  out = {{"connects", s.connects},
         {"failures", s.failures},
         {"first_errno", s.first_errno},
         {"p50_us", s.p50_us},
         {"p90_us", s.p90_us},
         {"p99_us", s.p99_us},
         {"p999_us", s.p999_us},
         {"mean_us", s.mean_us},
         {"min_us", s.min_us},
         {"max_us", s.max_us},
         {"wall_s", s.wall_s},
         {"listen_overflows", s.listen_overflows},
         {"conntrack_drops", s.conntrack_drops},
         {"conntrack_entries", s.conntrack_entries}};
}

void from_json(const nlohmann::json& in, SampleStats& s) {
  in.at("connects").get_to(s.connects);
  in.at("failures").get_to(s.failures);
  in.at("first_errno").get_to(s.first_errno);
  in.at("p50_us").get_to(s.p50_us);
  in.at("p90_us").get_to(s.p90_us);
  in.at("p99_us").get_to(s.p99_us);
  in.at("p999_us").get_to(s.p999_us);
  in.at("mean_us").get_to(s.mean_us);
  in.at("min_us").get_to(s.min_us);
  in.at("max_us").get_to(s.max_us);
  in.at("wall_s").get_to(s.wall_s);
  in.at("listen_overflows").get_to(s.listen_overflows);
  in.at("conntrack_drops").get_to(s.conntrack_drops);
  in.at("conntrack_entries").get_to(s.conntrack_entries);
}

SampleStats time_connects(const std::vector<sockaddr_in>& targets, size_t warmup) {
  SampleStats stats;
  uint32_t ns = 0;
  for (size_t i = 0; i < std::min(warmup, targets.size()); i++) connect_once(targets[i], &ns);

  long overflows_before = tcp_ext("ListenOverflows");
  long drops_before = conntrack_drops();
  std::vector<uint32_t> times;
  times.reserve(targets.size());
  auto start = Clock::now();
  for (size_t i = warmup; i < targets.size(); i++) {
    int err = connect_once(targets[i], &ns);
    if (err == 0) {
      times.push_back(ns);
    } else if (stats.failures++ == 0) {
      stats.first_errno = err;
    }
  }
  stats.wall_s = std::chrono::duration<double>(Clock::now() - start).count();
  stats.listen_overflows = tcp_ext("ListenOverflows") - overflows_before;
  stats.conntrack_drops = conntrack_drops() - drops_before;
  stats.conntrack_entries = conntrack_count();

  std::sort(times.begin(), times.end());
  stats.connects = long(times.size());
  if (!times.empty()) {
    stats.p50_us = percentile_us(times, 0.50);
    stats.p90_us = percentile_us(times, 0.90);
    stats.p99_us = percentile_us(times, 0.99);
    stats.p999_us = percentile_us(times, 0.999);
    stats.min_us = times.front() / 1000.0;
    stats.max_us = times.back() / 1000.0;
    stats.mean_us = std::accumulate(times.begin(), times.end(), 0.0) / double(times.size()) / 1000.0;
  }
  return stats;
}

int serve_accept_close(uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_ANY);
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::listen(fd, 4096) != 0) {
    std::fprintf(stderr, "serve: 0.0.0.0:%u: %s\n", port, std::strerror(errno));
    return 1;
  }
  for (;;) {
    int conn = ::accept4(fd, nullptr, nullptr, SOCK_CLOEXEC);
    if (conn >= 0) {
      ::close(conn);
    } else if (errno != EINTR && errno != ECONNABORTED && errno != EMFILE && errno != ENFILE) {
      std::fprintf(stderr, "serve: accept: %s\n", std::strerror(errno));
      return 1;
    }
  }
}

}  // namespace sockmesh::bench
