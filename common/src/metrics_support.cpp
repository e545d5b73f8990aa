#include "sockmesh/common/metrics_support.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <sstream>
#include <stdexcept>

namespace sockmesh::metrics {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

MetricFamily &Families::add(std::string name, std::string help, MetricType type) {
  out_.push_back(MetricFamily{std::move(name), std::move(help), type, {}});
  return out_.back();
}

void Families::single(std::string name, std::string help, MetricType type, double value) {
  sample(add(std::move(name), std::move(help), type), {}, value);
}

void Families::sample(MetricFamily &family, Labels labels, double value) {
  ClientMetric m;
  m.label = std::move(labels);
  if (family.type == MetricType::Counter)
    m.counter.value = value;
  else if (family.type == MetricType::Gauge)
    m.gauge.value = value;
  else
    m.untyped.value = value;
  family.metric.push_back(std::move(m));
}

void add_process_metrics(Families &f) {
  const long page = sysconf(_SC_PAGESIZE), ticks = sysconf(_SC_CLK_TCK);
  {
    std::ifstream statm("/proc/self/statm");
    uint64_t size = 0, resident = 0;
    if (statm >> size >> resident) {
      f.single("process_resident_memory_bytes", "Resident memory size in bytes.", kGauge,
               double(resident) * double(page));
      f.single("process_virtual_memory_bytes", "Virtual memory size in bytes.", kGauge,
               double(size) * double(page));
    }
  }
  if (DIR *dir = opendir("/proc/self/fd")) {
    int fds = 0;
    while (const dirent *e = readdir(dir))
      if (e->d_name[0] != '.') ++fds;
    closedir(dir);
    f.single("process_open_fds", "Number of open file descriptors.", kGauge, fds - 1);  // less ours
  }
  std::ifstream stat_file("/proc/self/stat");
  const std::string stat((std::istreambuf_iterator<char>(stat_file)), {});
  const auto close_paren = stat.rfind(')');
  if (close_paren == std::string::npos) return;
  // Fields after "(comm)": state is field 3; utime 14, stime 15, starttime 22.
  std::istringstream in(stat.substr(close_paren + 2));
  std::vector<std::string> fields;
  for (std::string s; in >> s;) fields.push_back(s);
  if (fields.size() <= 19) return;
  f.single("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.",
           kCounter, (std::stod(fields[11]) + std::stod(fields[12])) / double(ticks));
  std::ifstream proc_stat("/proc/stat");
  for (std::string line; std::getline(proc_stat, line);)
    if (line.rfind("btime ", 0) == 0) {
      f.single("process_start_time_seconds",
               "Start time of the process since unix epoch in seconds.", kGauge,
               std::stod(line.substr(6)) + std::stod(fields[19]) / double(ticks));
      break;
    }
}

int parse_port(const std::string &address) {
  const auto colon = address.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == address.size())
    throw std::runtime_error("metrics address \"" + address + "\" is not host:port");
  const std::string port = address.substr(colon + 1);
  if (port.find_first_not_of("0123456789") != std::string::npos || port.size() > 5 ||
      std::stoi(port) > 65535)
    throw std::runtime_error("metrics address \"" + address + "\" has no valid port");
  return std::stoi(port);
}

namespace {

// Binds a probe socket to `address`: why that fails, as the kernel says it ("" when it binds).
std::string bind_error(const std::string &address, int port) {
  std::string host = address.substr(0, address.rfind(':'));
  const bool v6 = host.size() >= 2 && host.front() == '[' && host.back() == ']';
  if (v6) host = host.substr(1, host.size() - 2);
  const int fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return std::strerror(errno);
  const int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_storage sa{};
  void *ip = nullptr;
  socklen_t len = 0;
  if (v6) {
    auto *sa6 = reinterpret_cast<sockaddr_in6 *>(&sa);
    sa6->sin6_family = AF_INET6;
    sa6->sin6_port = htons(uint16_t(port));
    ip = &sa6->sin6_addr;
    len = sizeof(*sa6);
  } else {
    auto *sa4 = reinterpret_cast<sockaddr_in *>(&sa);
    sa4->sin_family = AF_INET;
    sa4->sin_port = htons(uint16_t(port));
    ip = &sa4->sin_addr;
    len = sizeof(*sa4);
  }
  if (inet_pton(v6 ? AF_INET6 : AF_INET, host.c_str(), ip) != 1) {
    close(fd);
    return "not an IP address";
  }
  const int rc = bind(fd, reinterpret_cast<sockaddr *>(&sa), len);
  const std::string why = rc == 0 ? "" : std::strerror(errno);
  close(fd);
  return why;
}

}  // namespace

Endpoint start_exposer(const std::string &address, int port) {
  Endpoint out;
  try {
    out.exposer = std::make_unique<prometheus::Exposer>(address, 2);
  } catch (const std::exception &) {
    const std::string why = bind_error(address, port);
    throw std::runtime_error("cannot serve metrics on " + address + ": " +
                             (why.empty() ? "the HTTP server did not start" : why) +
                             " (choose another --metrics-address, or \"off\")");
  }
  const auto ports = out.exposer->GetListeningPorts();
  out.port = ports.empty() ? port : ports.front();
  return out;
}

}  // namespace sockmesh::metrics
