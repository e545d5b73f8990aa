// The kernel's side of the proxy's UpstreamFailureSink (agent/proxy/upstream_failures.h): the
// outcome of each connect the agent makes for a captured connection is reported to the kernel
// (SM_SO_RS_REPORT, bpf/include/sockmesh/resilience.h), which counts it and ejects exactly as it
// does for connects it sees itself; whether a backend is ejected is read from sm_backend_states.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>

#include "proxy/upstream_failures.h"

namespace sockmesh::reconcile {

class KernelUpstreamReports : public proxy::UpstreamFailureSink {
 public:
  // `backend_states_fd` stays owned by the caller (the loaded datapath). Opens the socket the
  // reports go through: it must be made in the agent's cgroup, where sm_setsockopt is attached.
  explicit KernelUpstreamReports(int backend_states_fd);
  ~KernelUpstreamReports() override;

  // Where each service's settings are: a backend-set slot of one of its TCP VIP ports per
  // family ("namespace/name", AF_INET or AF_INET6). Replaced whole after every apply.
  using Slots = std::map<std::pair<std::string, uint8_t>, uint32_t>;
  void set_slots(Slots slots);

  void failed(const proxy::UpstreamAttempt &attempt) override;
  void succeeded(const proxy::UpstreamAttempt &attempt) override;
  bool ejected(const proxy::UpstreamAttempt &attempt) const override;

  uint64_t reported() const { return reported_; }
  uint64_t unreported() const { return unreported_; }  // no slot known, or the kernel refused

 private:
  void report(const proxy::UpstreamAttempt &attempt, uint32_t outcome);

  int states_fd_;
  int socket_fd_ = -1;
  mutable std::mutex mu_;
  Slots slots_;
  uint64_t reported_ = 0, unreported_ = 0;
};

}  // namespace sockmesh::reconcile
