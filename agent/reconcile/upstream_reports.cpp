#include "reconcile/upstream_reports.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <stdexcept>

#include "reconcile/desired_state.h"
#include "sockmesh/capture_maps.h"
#include "sockmesh/resilience.h"

namespace sockmesh::reconcile {
namespace {

// The kernel's key of the attempt's backend; false for an address that does not parse.
bool key_of(const proxy::UpstreamAttempt &attempt, sm_backend_key *key, uint8_t *family) {
  IpAddress addr;
  try {
    addr = parse_ip(attempt.backend_ip);
  } catch (const std::invalid_argument &) {
    return false;
  }
  *key = sm_backend_key{};
  key->service = service_id_of(attempt.service_key);
  std::memcpy(key->addr, addr.bytes.data(), sizeof(key->addr));
  key->port = htons(attempt.backend_port);
  key->family = addr.family == AF_INET6 ? SM_AF_INET6 : SM_AF_INET;
  *family = addr.family;
  return true;
}

uint64_t monotonic_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1000000000ull + uint64_t(ts.tv_nsec);
}

}  // namespace

KernelUpstreamReports::KernelUpstreamReports(int backend_states_fd) : states_fd_(backend_states_fd) {
  socket_fd_ = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (socket_fd_ < 0)
    throw std::runtime_error(std::string("socket for upstream reports: ") + std::strerror(errno));
}

KernelUpstreamReports::~KernelUpstreamReports() {
  if (socket_fd_ >= 0) ::close(socket_fd_);
}

void KernelUpstreamReports::set_slots(Slots slots) {
  std::lock_guard lock(mu_);
  slots_ = std::move(slots);
}

void KernelUpstreamReports::report(const proxy::UpstreamAttempt &attempt, uint32_t outcome) {
  sm_rs_report r{};
  uint8_t family = 0;
  std::lock_guard lock(mu_);
  if (!key_of(attempt, &r.backend, &family)) {
    unreported_++;
    return;
  }
  auto it = slots_.find({attempt.service_key, family});
  if (it == slots_.end()) {
    unreported_++;
    return;
  }
  r.slot = it->second;
  r.outcome = outcome;
  if (::setsockopt(socket_fd_, SOL_IP, SM_SO_RS_REPORT, &r, sizeof(r)) != 0) {
    unreported_++;
    return;
  }
  reported_++;
}

void KernelUpstreamReports::failed(const proxy::UpstreamAttempt &attempt) {
  report(attempt, SM_RS_REPORT_FAILED);
}

void KernelUpstreamReports::succeeded(const proxy::UpstreamAttempt &attempt) {
  report(attempt, SM_RS_REPORT_SUCCEEDED);
}

bool KernelUpstreamReports::ejected(const proxy::UpstreamAttempt &attempt) const {
  sm_backend_key key{};
  uint8_t family = 0;
  if (!key_of(attempt, &key, &family)) return false;
  sm_backend_state st{};
  if (bpf_map_lookup_elem(states_fd_, &key, &st) != 0) return false;
  return sm_rs_ejected(&st, monotonic_ns());
}

}  // namespace sockmesh::reconcile
