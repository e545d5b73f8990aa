#include "dead_backend.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>

namespace sockmesh::bench {
namespace {

uint64_t mono_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1000000000ull + uint64_t(ts.tv_nsec);
}

void sleep_until(uint64_t ns) {
  timespec ts{time_t(ns / 1000000000ull), long(ns % 1000000000ull)};
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr) == EINTR) {
  }
}

int listen_on(const sockaddr_in &addr) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (fd < 0 || ::bind(fd, reinterpret_cast<const sockaddr *>(&addr), sizeof(addr)) != 0 ||
      ::listen(fd, 4096) != 0)
    throw std::runtime_error(std::string("listen for the trial: ") + std::strerror(errno));
  return fd;
}

uint16_t local_port(int fd, bool peer) {
  sockaddr_in addr{};
  socklen_t len = sizeof(addr);
  int rc = peer ? ::getpeername(fd, reinterpret_cast<sockaddr *>(&addr), &len)
                : ::getsockname(fd, reinterpret_cast<sockaddr *>(&addr), &len);
  return rc == 0 ? ntohs(addr.sin_port) : 0;
}

// The listener that accepted the connection from client port `port`: accepts from every ready
// listener (and closes what it accepts) until it finds it. The handshake's last ACK may still be on
// its way through the loopback when connect() returns, hence the poll.
int accepted_by(const std::vector<int> &listeners, uint16_t port) {
  for (int attempt = 0; attempt < 100; attempt++) {
    std::vector<pollfd> fds;
    std::vector<int> which;
    for (size_t i = 0; i < listeners.size(); i++)
      if (listeners[i] >= 0) {
        fds.push_back({listeners[i], POLLIN, 0});
        which.push_back(int(i));
      }
    if (::poll(fds.data(), fds.size(), 10) <= 0) continue;
    for (size_t i = 0; i < fds.size(); i++) {
      if (!(fds[i].revents & POLLIN)) continue;
      for (;;) {
        int conn = ::accept4(fds[i].fd, nullptr, nullptr, SOCK_CLOEXEC);
        if (conn < 0) break;
        uint16_t peer = local_port(conn, true);
        ::close(conn);
        if (peer == port) return which[i];
      }
    }
  }
  throw std::runtime_error("a connect succeeded but no listener accepted it within 1 s");
}

// One connect to the VIP; the record's times are absolute (ns) until the caller rebases them.
ConnectRecord connect_once(const sockaddr_in &vip, const std::vector<int> &listeners,
                           uint64_t *start, uint64_t *end) {
  ConnectRecord r;
  *start = mono_ns();
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw std::runtime_error(std::string("socket: ") + std::strerror(errno));
  int rc = ::connect(fd, reinterpret_cast<const sockaddr *>(&vip), sizeof(vip));
  *end = mono_ns();
  if (rc != 0) {
    r.err = errno;
  } else {
    r.backend = accepted_by(listeners, local_port(fd, false));
  }
  linger abort_on_close{1, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &abort_on_close, sizeof(abort_on_close));
  ::close(fd);
  return r;
}

}  // namespace

TrialRun run_trial(const TrialPlan &plan) {
  // The default 50 µs timer slack would stretch every paced sleep.
  prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
  std::vector<int> listeners;
  for (const auto &addr : plan.backends) listeners.push_back(listen_on(addr));

  TrialRun run;
  const uint64_t pace = uint64_t(plan.pace_us) * 1000;
  uint64_t next = mono_ns(), start = 0, end = 0;
  auto paced = [&] {
    if (pace) {
      sleep_until(next);
      next += pace;
    }
    return connect_once(plan.vip, listeners, &start, &end);
  };
  for (int i = 0; i < plan.before; i++) {
    ConnectRecord r = paced();
    if (r.err) {
      run.before_failed++;
    } else {
      run.before_ok++;
      run.before_to_dead += r.backend == plan.dead;
    }
  }

  ::close(listeners[size_t(plan.dead)]);
  listeners[size_t(plan.dead)] = -1;
  run.kill_ns = mono_ns();

  int refused = 0, after_threshold = -1;
  for (int i = 0; i < plan.max_after_kill && after_threshold < plan.after; i++) {
    ConnectRecord r = paced();
    r.start_us = (double(start) - double(run.kill_ns)) / 1000.0;
    r.end_us = (double(end) - double(run.kill_ns)) / 1000.0;
    run.after_kill.push_back(r);
    if (after_threshold >= 0) after_threshold++;
    if (r.err == ECONNREFUSED && ++refused == plan.threshold) after_threshold = 0;
  }
  for (int fd : listeners)
    if (fd >= 0) ::close(fd);
  return run;
}

TrialResult analyze_trial(const TrialPlan &plan, const TrialRun &run, uint64_t ejected_until_ns,
                          uint64_t base_ejection_ns) {
  TrialResult out;
  out.threshold = plan.threshold;
  out.pace_us = plan.pace_us;
  out.dead = plan.dead;
  out.before_ok = run.before_ok;
  out.before_failed = run.before_failed;
  out.before_to_dead = run.before_to_dead;
  out.after_kill = run.after_kill;
  long n = 0;
  for (const auto &r : run.after_kill) {
    n++;
    if (r.err == 0) {
      if (out.ejection_us >= 0 && out.avoided_us < 0 && r.backend != plan.dead)
        out.avoided_us = r.end_us;
      continue;
    }
    if (r.err != ECONNREFUSED) {
      out.other_errors++;
      continue;
    }
    out.refused++;
    if (out.refused == plan.threshold) {
      out.ejection_us = r.end_us;
      out.connects_to_ejection = n;
    } else if (out.refused > plan.threshold) {
      out.to_dead_after++;
    }
  }
  if (ejected_until_ns > base_ejection_ns)
    out.kernel_ejection_us =
        (double(ejected_until_ns - base_ejection_ns) - double(run.kill_ns)) / 1000.0;
  return out;
}

}  // namespace sockmesh::bench
