#include "metrics_exporter.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <prometheus/client_metric.h>
#include <prometheus/collectable.h>
#include <prometheus/exposer.h>
#include <prometheus/metric_family.h>
#include <prometheus/metric_type.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <vector>

#include "identity_authority.h"
#include "state.h"

namespace sockmesh::controlplane {
namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;
using Labels = std::vector<ClientMetric::Label>;
constexpr auto kCounter = MetricType::Counter;
constexpr auto kGauge = MetricType::Gauge;

class Families {
 public:
  MetricFamily &add(std::string name, std::string help, MetricType type) {
    out_.push_back(MetricFamily{std::move(name), std::move(help), type, {}});
    return out_.back();
  }
  void single(std::string name, std::string help, MetricType type, double value) {
    sample(add(std::move(name), std::move(help), type), {}, value);
  }
  static void sample(MetricFamily &family, Labels labels, double value) {
    ClientMetric m;
    m.label = std::move(labels);
    if (family.type == MetricType::Counter)
      m.counter.value = value;
    else
      m.gauge.value = value;
    family.metric.push_back(std::move(m));
  }
  std::vector<MetricFamily> take() { return std::move(out_); }

 private:
  std::vector<MetricFamily> out_;
};

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

// Why binding `address` fails, as the kernel says it ("" when the probe binds).
std::string bind_error(const std::string &address, int port) {
  std::string host = address.substr(0, address.rfind(':'));
  const bool v6 = host.size() >= 2 && host.front() == '[' && host.back() == ']';
  if (v6) host = host.substr(1, host.size() - 2);
  const int fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return std::strerror(errno);
  const int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  int rc = -1;
  sockaddr_in6 sa6{};
  sockaddr_in sa4{};
  if (v6) {
    sa6.sin6_family = AF_INET6;
    sa6.sin6_port = htons(uint16_t(port));
    if (inet_pton(AF_INET6, host.c_str(), &sa6.sin6_addr) == 1)
      rc = bind(fd, reinterpret_cast<sockaddr *>(&sa6), sizeof(sa6));
    else
      errno = EINVAL;
  } else {
    sa4.sin_family = AF_INET;
    sa4.sin_port = htons(uint16_t(port));
    if (inet_pton(AF_INET, host.c_str(), &sa4.sin_addr) == 1)
      rc = bind(fd, reinterpret_cast<sockaddr *>(&sa4), sizeof(sa4));
    else
      errno = EINVAL;
  }
  const std::string why = rc == 0           ? ""
                          : errno == EINVAL ? "not an IP address"
                                            : std::strerror(errno);
  close(fd);
  return why;
}

// process_* from /proc/self, as the Prometheus client libraries name them (the same as meshd's,
// agent/telemetry/metrics_exporter.cpp).
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

double number(const std::string &s) {
  try {
    return s.empty() ? 0 : std::stod(s);
  } catch (const std::exception &) {
    return 0;
  }
}

class Collector final : public prometheus::Collectable {
 public:
  Collector(const State &state, const IdentityAuthority &authority, std::string version)
      : state_(state), authority_(authority), version_(std::move(version)) {}

  std::vector<MetricFamily> Collect() const override {
    Families f;
    v1::ControlPlaneStatus status;
    state_.status(&status);

    auto &info = f.add("sockmesh_cp_info",
                       "The control plane: version and trust domain (always 1).", kGauge);
    Families::sample(info,
                     {{"version", version_}, {"trust_domain", authority_.ca().trust_domain()}}, 1);
    f.single("sockmesh_cp_state_version", "The state version: increases with every stored change.",
             kGauge, number(status.version()));
    auto &resources = f.add("sockmesh_cp_resources", "Resources in the state, by kind.", kGauge);
    auto by_kind = state_.resources_by_kind();
    for (const char *kind : {"workload", "service", "node", "authorizationpolicy"}) by_kind[kind];
    for (const auto &[kind, count] : by_kind)
      Families::sample(resources, {{"kind", kind}}, double(count));
    auto &changes = f.add("sockmesh_cp_changes_total",
                          "Apply and Delete requests, by operation and result (applied, unchanged, "
                          "refused, failed); dry runs are not counted.",
                          kCounter);
    for (const auto &[key, count] : state_.changes())
      Families::sample(changes, {{"operation", key.first}, {"result", key.second}}, double(count));

    uint64_t connected = 0;
    auto &agent_up =
        f.add("sockmesh_cp_agent_connected",
              "1 while the node's agent has a discovery stream open, 0 after it left.", kGauge);
    auto &acked = f.add("sockmesh_cp_agent_acked_version",
                        "The state version the node's agent last ACKed (0: none yet).", kGauge);
    auto &nacked =
        f.add("sockmesh_cp_agent_nacked",
              "1 while the node's agent's last answer was a NACK (refused push).", kGauge);
    for (const auto &a : status.agents()) {
      connected += a.connected() ? 1 : 0;
      Families::sample(agent_up, {{"node", a.node()}}, a.connected() ? 1 : 0);
      Families::sample(acked, {{"node", a.node()}}, number(a.acked_version()));
      Families::sample(nacked, {{"node", a.node()}}, a.nacked_version().empty() ? 0 : 1);
    }
    f.single("sockmesh_cp_agents_connected", "Node agents with a discovery stream open.", kGauge,
             double(connected));
    f.single("sockmesh_cp_agents_known", "Node agents seen since start.", kGauge,
             double(status.agents_size()));
    const Agents::Counters c = state_.agents().counters();
    f.single("sockmesh_cp_discovery_streams_total",
             "Discovery streams agents opened (named a node).", kCounter, double(c.streams));
    f.single("sockmesh_cp_pushes_total", "Pushes sent to agents.", kCounter, double(c.pushes));
    f.single("sockmesh_cp_pushed_resources_total",
             "Resources added or changed, summed over pushes.", kCounter,
             double(c.pushed_resources));
    f.single("sockmesh_cp_pushed_removals_total", "Resource removals, summed over pushes.",
             kCounter, double(c.pushed_removals));
    f.single("sockmesh_cp_acks_total", "Pushes agents ACKed (applied).", kCounter, double(c.acks));
    f.single("sockmesh_cp_nacks_total", "Pushes agents NACKed (refused; nothing applied).",
             kCounter, double(c.nacks));

    auto &issued = f.add("sockmesh_cp_identity_issued_total",
                         "Certificates the CA issued, by kind: node (joins and renewals) and "
                         "workload (X.509-SVIDs).",
                         kCounter);
    auto issued_by_kind = authority_.issued();
    for (const char *kind : {"node", "workload"}) issued_by_kind[kind];
    for (const auto &[kind, count] : issued_by_kind)
      Families::sample(issued, {{"kind", kind}}, double(count));
    auto &refusals =
        f.add("sockmesh_cp_identity_refusals_total",
              "Requests the CA refused, by reason (token_used, workload_on_other_node, "
              "...).",
              kCounter);
    for (const auto &[reason, count] : authority_.refusals())
      Families::sample(refusals, {{"reason", reason}}, double(count));
    using namespace std::chrono;
    f.single(
        "sockmesh_cp_ca_certificate_expiry_timestamp_seconds",
        "When the CA certificate expires (unix time).", kGauge,
        double(duration_cast<seconds>(authority_.ca().certificate().not_after().time_since_epoch())
                   .count()));
    add_process_metrics(f);
    return f.take();
  }

 private:
  const State &state_;
  const IdentityAuthority &authority_;
  const std::string version_;
};

}  // namespace

struct MetricsServer::Impl {
  std::shared_ptr<Collector> collector;
  std::unique_ptr<prometheus::Exposer> exposer;
  int port = 0;
};

MetricsServer::MetricsServer(const std::string &address, const State &state,
                             const IdentityAuthority &authority, const std::string &version)
    : impl_(std::make_unique<Impl>()) {
  const int port = parse_port(address);
  impl_->collector = std::make_shared<Collector>(state, authority, version);
  try {
    impl_->exposer = std::make_unique<prometheus::Exposer>(address, 2);
  } catch (const std::exception &) {
    const std::string why = bind_error(address, port);
    throw std::runtime_error("cannot serve metrics on " + address + ": " +
                             (why.empty() ? "the HTTP server did not start" : why) +
                             " (choose another --metrics-address, or \"off\")");
  }
  impl_->exposer->RegisterCollectable(impl_->collector);
  const auto ports = impl_->exposer->GetListeningPorts();
  impl_->port = ports.empty() ? port : ports.front();
}

MetricsServer::~MetricsServer() = default;

int MetricsServer::port() const {
  return impl_->port;
}

}  // namespace sockmesh::controlplane
