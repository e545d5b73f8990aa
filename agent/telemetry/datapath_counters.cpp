#include "telemetry/datapath_counters.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "sockmesh/counters.h"

namespace sockmesh::telemetry {
namespace {

// In the order of enum sm_counter; the static_asserts catch a counter added on one side only.
constexpr const char *kNames[] = {
    "connect_balanced",     // SM_CNT_CONNECT_BALANCED
    "connect_no_backend",   // SM_CNT_CONNECT_NO_BACKEND
    "connect_passthrough",  // SM_CNT_CONNECT_PASSTHROUGH
    "peername_restored",    // SM_CNT_PEERNAME_RESTORED
    "orig_dst_lost",        // SM_CNT_ORIG_DST_LOST
    "sendmsg_balanced",     // SM_CNT_SENDMSG_BALANCED
    "sendmsg_no_backend",   // SM_CNT_SENDMSG_NO_BACKEND
    "recvmsg_restored",     // SM_CNT_RECVMSG_RESTORED
    "reverse_lost",         // SM_CNT_REVERSE_LOST
    "connect_captured",     // SM_CNT_CONNECT_CAPTURED
    "capture_no_listener",  // SM_CNT_CAPTURE_NO_LISTENER
    "capture_record_lost",  // SM_CNT_CAPTURE_RECORD_LOST
    "getsockopt_answered",  // SM_CNT_GETSOCKOPT_ANSWERED
    "getsockopt_miss",      // SM_CNT_GETSOCKOPT_MISS
    "connect_denied",       // SM_CNT_CONNECT_DENIED
    "traffic_untracked",    // SM_CNT_TRAFFIC_UNTRACKED
    "events_lost",          // SM_CNT_EVENTS_LOST
    "fastpath_sockets",     // SM_CNT_FASTPATH_SOCKETS
    "fastpath_messages",    // SM_CNT_FASTPATH_MSGS
    "fastpath_bytes",       // SM_CNT_FASTPATH_BYTES
    "fastpath_no_netns",    // SM_CNT_FASTPATH_NO_NETNS
    "fastpath_map_full",    // SM_CNT_FASTPATH_MAP_FULL
    "fastpath_peer_missing",  // SM_CNT_FASTPATH_PEER_MISSING
    "fastpath_peer_gone",   // SM_CNT_FASTPATH_PEER_GONE
    "connect_overflow",     // SM_CNT_RS_OVERFLOW
    "connect_no_healthy_backend",  // SM_CNT_RS_NO_BACKEND
    "connect_rerouted",     // SM_CNT_RS_REROUTED
    "connect_rate_limited", // SM_CNT_RS_RATE_LIMITED
    "connect_fault",        // SM_CNT_RS_FAULT
    "backend_failures",     // SM_CNT_RS_FAILURES
    "backend_ejections",    // SM_CNT_RS_EJECTIONS
    "backend_ejections_held",  // SM_CNT_RS_EJECT_HELD
    "connect_untracked",    // SM_CNT_RS_UNTRACKED
};
static_assert(sizeof(kNames) / sizeof(kNames[0]) == SM_CNT__MAX);
static_assert(SM_CNT_REVERSE_LOST == 8);
static_assert(SM_CNT_GETSOCKOPT_MISS == 13);
static_assert(SM_CNT_CONNECT_DENIED == 14);
static_assert(SM_CNT_EVENTS_LOST == 16);
static_assert(SM_CNT_FASTPATH_PEER_GONE == 23);
static_assert(SM_CNT_RS_UNTRACKED == 32);

}  // namespace

const char *counter_name(uint32_t index) {
  return index < SM_CNT__MAX ? kNames[index] : "unknown";
}

std::vector<std::pair<std::string, uint64_t>> read_datapath_counters(int counters_fd) {
  int cpus = libbpf_num_possible_cpus();
  if (cpus <= 0) throw std::runtime_error("cannot count possible CPUs");
  std::vector<uint64_t> per_cpu(cpus);
  std::vector<std::pair<std::string, uint64_t>> out;
  for (uint32_t i = 0; i < SM_CNT__MAX; i++) {
    if (bpf_map_lookup_elem(counters_fd, &i, per_cpu.data()) != 0)
      throw std::runtime_error(std::string("read counter ") + kNames[i] + ": " +
                               std::strerror(errno));
    uint64_t sum = 0;
    for (uint64_t v : per_cpu) sum += v;
    out.emplace_back(kNames[i], sum);
  }
  return out;
}

}  // namespace sockmesh::telemetry
