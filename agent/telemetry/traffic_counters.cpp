#include "telemetry/traffic_counters.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>

#include "telemetry/map_decode.h"

namespace sockmesh::telemetry {
namespace {

[[noreturn]] void fail(const std::string &what, int err) {
  throw std::runtime_error(what + ": " + std::strerror(err));
}

void add(sm_traffic_value &to, const sm_traffic_value &from) {
  to.balanced += from.balanced;
  to.captured += from.captured;
  to.no_backend += from.no_backend;
  to.denied += from.denied;
  to.opened += from.opened;
  to.failed += from.failed;
  to.closed += from.closed;
  to.reset += from.reset;
  to.bytes_sent += from.bytes_sent;
  to.bytes_received += from.bytes_received;
  to.fastpath_bytes_sent += from.fastpath_bytes_sent;
  to.fastpath_bytes_received += from.fastpath_bytes_received;
  to.retransmits += from.retransmits;
  to.srtt_samples += from.srtt_samples;
  to.srtt_us_sum += from.srtt_us_sum;
}

}  // namespace

uint32_t sample_below(double sampling) {
  if (!(sampling > 0)) return 0;
  if (sampling >= 1) return 0xffffffffu;
  return uint32_t(std::floor(sampling * 4294967296.0));
}

TrafficCounters::TrafficCounters(int traffic_fd, int telemetry_fd)
    : traffic_fd_(traffic_fd), telemetry_fd_(telemetry_fd) {}

void TrafficCounters::start(const TelemetrySettings &settings) {
  const uint32_t zero_key = 0;
  sm_telemetry_config config{};
  if (bpf_map_lookup_elem(telemetry_fd_, &zero_key, &config) != 0) fail("read sm_telemetry", errno);
  // Off first, so that no record is made under the new epoch while old tuples are deleted.
  sm_telemetry_config off{};
  off.epoch = config.epoch;
  if (bpf_map_update_elem(telemetry_fd_, &zero_key, &off, BPF_ANY) != 0)
    fail("write sm_telemetry", errno);
  sm_traffic_key key{}, next{};
  const sm_traffic_key *previous = nullptr;
  std::vector<sm_traffic_key> keys;
  while (bpf_map_get_next_key(traffic_fd_, previous, &next) == 0) {
    keys.push_back(next);
    key = next;
    previous = &key;
  }
  for (const auto &k : keys)
    if (bpf_map_delete_elem(traffic_fd_, &k) != 0 && errno != ENOENT)
      fail("empty sm_traffic", errno);
  epoch_ = config.epoch + 1;
  if (epoch_ == 0) epoch_ = 1;
  sm_telemetry_config now{};
  now.epoch = epoch_;
  if (settings.counters) now.flags |= SM_TELEMETRY_COUNTERS;
  if (settings.counters && settings.events) {
    now.flags |= SM_TELEMETRY_EVENTS;
    now.sample_below = sample_below(settings.sampling);
  }
  if (bpf_map_update_elem(telemetry_fd_, &zero_key, &now, BPF_ANY) != 0)
    fail("write sm_telemetry", errno);
}

std::vector<TrafficTuple> TrafficCounters::read() const {
  const int cpus = libbpf_num_possible_cpus();
  if (cpus <= 0) fail("count the possible CPUs", -cpus);
  std::vector<sm_traffic_value> per_cpu(static_cast<size_t>(cpus));
  std::vector<TrafficTuple> out;
  sm_traffic_key key{}, next{};
  const sm_traffic_key *previous = nullptr;
  while (bpf_map_get_next_key(traffic_fd_, previous, &next) == 0) {
    key = next;
    previous = &key;
    if (bpf_map_lookup_elem(traffic_fd_, &key, per_cpu.data()) != 0) {
      if (errno == ENOENT) continue;  // deleted meanwhile
      fail("read sm_traffic", errno);
    }
    TrafficTuple tuple;
    tuple.key = key;
    for (const auto &v : per_cpu) add(tuple.value, v);
    out.push_back(tuple);
  }
  if (errno != ENOENT) fail("walk sm_traffic", errno);
  return out;
}

void fill_report(const std::vector<TrafficTuple> &tuples, const Names &names,
                 v1::TrafficReport *report) {
  std::vector<const TrafficTuple *> order;
  for (const auto &t : tuples) order.push_back(&t);
  std::stable_sort(order.begin(), order.end(), [](const TrafficTuple *a, const TrafficTuple *b) {
    const uint64_t ab = a->value.bytes_sent + a->value.bytes_received;
    const uint64_t bb = b->value.bytes_sent + b->value.bytes_received;
    if (ab != bb) return ab > bb;
    return a->value.balanced + a->value.captured > b->value.balanced + b->value.captured;
  });
  for (const auto *t : order) {
    const auto &k = t->key;
    const auto &v = t->value;
    auto *pair = report->add_pairs();
    if (address_given(k.vip, k.vip_port)) {
      const std::string vip = vip_text(k.vip, k.vip_port, k.proto, k.family);
      pair->set_vip(vip);
      pair->set_service(service_of(vip, names));
    }
    if (address_given(k.backend, k.backend_port))
      pair->set_backend(endpoint_text(k.backend, k.backend_port, k.family));
    WorkloadName source = workload_of(k.src_workload, names);
    WorkloadName destination = workload_of(k.dst_workload, names);
    pair->set_source_workload(std::move(source.id));
    pair->set_source_principal(std::move(source.principal));
    pair->set_destination_workload(std::move(destination.id));
    pair->set_destination_principal(std::move(destination.principal));
    pair->set_balanced(v.balanced);
    pair->set_captured(v.captured);
    pair->set_no_backend(v.no_backend);
    pair->set_denied(v.denied);
    pair->set_opened(v.opened);
    pair->set_failed(v.failed);
    pair->set_closed(v.closed);
    pair->set_active(v.opened > v.closed ? v.opened - v.closed : 0);
    pair->set_reset(v.reset);
    pair->set_bytes_sent(v.bytes_sent);
    pair->set_bytes_received(v.bytes_received);
    pair->set_fastpath_bytes_sent(v.fastpath_bytes_sent);
    pair->set_fastpath_bytes_received(v.fastpath_bytes_received);
    pair->set_retransmits(v.retransmits);
    pair->set_srtt_samples(v.srtt_samples);
    pair->set_srtt_us_sum(v.srtt_us_sum);
  }
}

}  // namespace sockmesh::telemetry
