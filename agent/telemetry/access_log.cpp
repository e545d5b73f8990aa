#include "telemetry/access_log.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/epoll.h>
#include <time.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <stdexcept>
#include <vector>

#include "sockmesh/counters.h"
#include "telemetry/map_decode.h"

namespace sockmesh::telemetry {
namespace {

int64_t now_ns(clockid_t clock) {
  timespec ts{};
  clock_gettime(clock, &ts);
  return int64_t(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

// RFC 3339 in UTC with microseconds.
std::string time_text(int64_t unix_ns) {
  const time_t seconds = time_t(unix_ns / 1000000000);
  tm utc{};
  gmtime_r(&seconds, &utc);
  char text[32];
  std::strftime(text, sizeof(text), "%Y-%m-%dT%H:%M:%S", &utc);
  return fmt::format("{}.{:06}Z", text, (unix_ns % 1000000000) / 1000);
}

// JSON string content: names come from the control plane, so escape what JSON requires.
void append_escaped(std::string &out, const std::string &text) {
  for (unsigned char c : text) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20)
          out += fmt::format("\\u{:04x}", c);
        else
          out += char(c);
    }
  }
}

void field(std::string &out, const char *name, const std::string &value) {
  out += '"';
  out += name;
  out += "\":\"";
  append_escaped(out, value);
  out += '"';
}

const char *reason_text(uint8_t reason) {
  switch (reason) {
    case SM_CLOSE_FIN:
      return "closed";
    case SM_CLOSE_RESET:
      return "reset";
    case SM_CLOSE_CONNECT_FAILED:
      return "connect_failed";
    case SM_CLOSE_NO_BACKEND:
      return "no_backend";
    case SM_CLOSE_DENIED:
      return "denied";
    case SM_CLOSE_OVERFLOW:
      return "overflow";
    case SM_CLOSE_RATE_LIMITED:
      return "rate_limited";
    case SM_CLOSE_FAULT:
      return "fault";
    default:
      return "";
  }
}

void workload_fields(std::string &out, uint32_t id, const Names &names) {
  const WorkloadName workload = workload_of(id, names);
  field(out, "workload", workload.id);
  out += ',';
  field(out, "principal", workload.principal);
}

// "" for an address slot that holds none.
std::string endpoint_or_empty(const uint32_t addr[4], uint16_t port_net, unsigned family) {
  return address_given(addr, port_net) ? endpoint_text(addr, port_net, family) : std::string();
}

}  // namespace

void check_access_log_options(const AccessLogOptions &options) {
  if (options.mode != "off" && options.mode != "sampled" && options.mode != "all")
    throw std::invalid_argument("--access-log-mode: \"" + options.mode +
                                "\" is none of off, sampled, all");
  if (options.mode == "sampled" && !(options.sampling > 0 && options.sampling < 1))
    throw std::invalid_argument("--access-log-sampling: " + fmt::format("{}", options.sampling) +
                                " is not in (0, 1); use --access-log-mode all to log every "
                                "connection");
  if (options.path.empty()) throw std::invalid_argument("--access-log: an empty path");
}

double sampling_of(const AccessLogOptions &options) {
  if (options.mode == "all") return 1.0;
  if (options.mode == "sampled") return options.sampling;
  return 0.0;
}

std::string event_json(const sm_conn_event &e, const Names &names, int64_t unix_offset_ns) {
  std::string out;
  out.reserve(512);
  out += '{';
  field(out, "time", time_text(int64_t(e.time_ns) + unix_offset_ns));
  out += ',';
  field(out, "event", e.kind == SM_EVENT_OPEN ? "open" : "close");
  if (e.kind == SM_EVENT_CLOSE) {
    out += ',';
    field(out, "reason", reason_text(e.reason));
  }
  out += fmt::format(",\"connection\":{}", e.cookie);
  out += ",\"source\":{";
  field(out, "address", endpoint_or_empty(e.src_addr, e.src_port, e.key.family));
  out += ',';
  workload_fields(out, e.key.src_workload, names);
  out += "},\"destination\":{";
  std::string service, vip;
  if (address_given(e.key.vip, e.key.vip_port)) {
    vip = vip_text(e.key.vip, e.key.vip_port, e.key.proto, e.key.family);
    service = service_of(vip, names);
  }
  field(out, "service", service);
  out += ',';
  field(out, "vip", vip);
  out += ',';
  field(out, "address", endpoint_or_empty(e.key.backend, e.key.backend_port, e.key.family));
  out += ',';
  workload_fields(out, e.key.dst_workload, names);
  out += "},";
  field(out, "route", (e.flags & SM_CONN_CAPTURED) ? "tunnel" : "direct");
  if (e.kind == SM_EVENT_CLOSE)
    out += fmt::format(
        ",\"bytes_sent\":{},\"bytes_received\":{},\"duration_ms\":{:.3f},\"srtt_us\":{},"
        "\"retransmits\":{}",
        e.bytes_sent, e.bytes_received, double(e.duration_ns) / 1e6, e.srtt_us, e.retransmits);
  out += '}';
  return out;
}

AccessLog::AccessLog(const AccessLogOptions &options, int events_fd, int counters_fd,
                     uint64_t ring_bytes)
    : options_(options), counters_fd_(counters_fd), ring_bytes_(ring_bytes) {
  if (options_.path == "-") {
    out_ = stdout;
  } else {
    out_ = std::fopen(options_.path.c_str(), "ae");
    if (!out_)
      throw std::runtime_error("open access log " + options_.path + ": " + std::strerror(errno));
    own_out_ = true;
  }
  lost_base_ = kernel_lost();
  ring_ = ring_buffer__new(events_fd, &AccessLog::on_event, this, nullptr);
  if (!ring_) {
    int err = errno;
    if (own_out_) std::fclose(out_);
    throw std::runtime_error(std::string("read the event ring buffer: ") + std::strerror(err));
  }
  thread_ = std::thread([this] { run(); });
}

AccessLog::~AccessLog() {
  stop_ = true;
  thread_.join();
  ring_buffer__free(ring_);
  if (own_out_)
    std::fclose(out_);
  else
    std::fflush(out_);
}

void AccessLog::set_names(std::shared_ptr<const Names> names) {
  std::lock_guard lock(names_mu_);
  names_ = std::move(names);
}

uint64_t AccessLog::kernel_lost() const {
  const int cpus = libbpf_num_possible_cpus();
  if (cpus <= 0) return 0;
  std::vector<uint64_t> values(static_cast<size_t>(cpus), 0);
  const uint32_t key = SM_CNT_EVENTS_LOST;
  if (bpf_map_lookup_elem(counters_fd_, &key, values.data()) != 0) return 0;
  uint64_t sum = 0;
  for (auto v : values) sum += v;
  return sum;
}

int AccessLog::on_event(void *self, void *data, size_t size) {
  auto *log = static_cast<AccessLog *>(self);
  log->events_read_++;
  if (size < sizeof(sm_conn_event)) return 0;
  sm_conn_event event;
  std::memcpy(&event, data, sizeof(event));
  static const Names kNoNames;
  std::string line =
      event_json(event, log->batch_names_ ? *log->batch_names_ : kNoNames, log->batch_offset_ns_);
  line += '\n';
  if (std::fwrite(line.data(), 1, line.size(), log->out_) == line.size())
    log->lines_written_++;
  else
    log->write_errors_++;
  return 0;
}

void AccessLog::write_batch_end() {
  const uint64_t lost = kernel_lost() - lost_base_;
  const uint64_t reported = events_lost_.load();
  if (lost > reported) {
    const std::string line =
        fmt::format("{{\"time\":\"{}\",\"event\":\"lost\",\"count\":{},\"total\":{}}}\n",
                    time_text(now_ns(CLOCK_REALTIME)), lost - reported, lost);
    if (std::fwrite(line.data(), 1, line.size(), out_) == line.size())
      lines_written_++;
    else
      write_errors_++;
    events_lost_ = lost;
    spdlog::warn("event=access_log_events_lost count={} total={} ring_bytes={}", lost - reported,
                 lost, ring_bytes_);
  }
  if (std::fflush(out_) != 0) {
    write_errors_++;
    std::clearerr(out_);
  }
}

void AccessLog::run() {
  // The programs wake this thread only when the ring buffer is a quarter full
  // (bpf/lib/telemetry.h): otherwise the events wait for the next read, at most kReadEveryMs.
  constexpr int kReadEveryMs = 100;
  const int epoll_fd = ring_buffer__epoll_fd(ring_);
  for (;;) {
    const bool last = stop_.load();
    if (!last) {
      epoll_event ready{};
      if (epoll_wait(epoll_fd, &ready, 1, kReadEveryMs) < 0 && errno != EINTR)
        spdlog::warn("event=access_log_wait_failed error=\"{}\"", std::strerror(errno));
    }
    // The names as they are now, after the wait: a workload added while this thread waited is
    // named in the events it already has.
    {
      std::lock_guard lock(names_mu_);
      batch_names_ = names_;
    }
    batch_offset_ns_ = now_ns(CLOCK_REALTIME) - now_ns(CLOCK_MONOTONIC);
    const int n = ring_buffer__consume(ring_);
    if (n < 0 && n != -EINTR) spdlog::warn("event=access_log_read_failed error={}", n);
    write_batch_end();
    if (last) break;
  }
}

v1::AccessLogStatus AccessLog::status() const {
  v1::AccessLogStatus s;
  s.set_mode(options_.mode);
  s.set_sampling(sampling_of(options_));
  s.set_path(options_.path);
  s.set_events_read(events_read_.load());
  s.set_lines_written(lines_written_.load());
  s.set_events_lost(events_lost_.load());
  s.set_write_errors(write_errors_.load());
  s.set_ring_bytes(ring_bytes_);
  return s;
}

}  // namespace sockmesh::telemetry
