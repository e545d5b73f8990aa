#include "signals.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <thread>
#include <utility>
#include <vector>

#include "teardown.h"

namespace sockmesh::lab {
namespace {

constexpr int kSignals[] = {SIGINT, SIGTERM, SIGHUP};

// The handler only writes the signal number into a pipe; a watcher thread does the teardown with ordinary
// (non async-signal-safe) code. Entries carry the pid that registered them: a forked child inherits the list
// but must not tear down its parent's labs.
struct Registry {
  std::mutex mu;
  std::vector<std::pair<pid_t, std::string>> labs;
  pid_t watcher_pid = 0;  // process that runs the watcher thread
  int pipe_fds[2] = {-1, -1};
  struct sigaction previous[3] = {};
};

Registry& registry() {
  static Registry* r = new Registry;  // never destroyed: the watcher thread may outlive static destruction
  return *r;
}

void on_signal(int sig) {
  int saved = errno;
  ssize_t ignored = ::write(registry().pipe_fds[1], &sig, sizeof sig);
  (void)ignored;
  errno = saved;
}

void watch(int read_fd) {
  for (;;) {
    int sig = 0;
    ssize_t n = ::read(read_fd, &sig, sizeof sig);
    if (n < 0 && errno == EINTR) continue;
    if (n != sizeof sig) return;
    Registry& r = registry();
    std::vector<std::string> mine;
    {
      std::lock_guard lock(r.mu);
      for (const auto& [pid, run] : r.labs) {
        if (pid == ::getpid()) mine.push_back(run);
      }
    }
    {
      std::lock_guard lock(teardown_mutex());
      for (const auto& run : mine) {
        for (const auto& problem : teardown_run(run)) std::fprintf(stderr, "sockmesh-lab %s: %s\n", run.c_str(), problem.c_str());
      }
    }
    int slot = static_cast<int>(std::find(std::begin(kSignals), std::end(kSignals), sig) - std::begin(kSignals));
    if (slot < 3) ::sigaction(sig, &r.previous[slot], nullptr);
    ::kill(::getpid(), sig);
  }
}

// Starts the watcher in this process (again after a fork: threads do not survive fork) and installs handlers.
void ensure_watcher(Registry& r) {
  if (r.watcher_pid == ::getpid()) return;
  if (r.pipe_fds[0] >= 0) {
    ::close(r.pipe_fds[0]);
    ::close(r.pipe_fds[1]);
  }
  if (::pipe2(r.pipe_fds, O_CLOEXEC) != 0) return;
  std::thread(watch, r.pipe_fds[0]).detach();
  r.watcher_pid = ::getpid();
  for (int i = 0; i < 3; ++i) {
    struct sigaction current {};
    ::sigaction(kSignals[i], nullptr, &current);
    if (current.sa_handler == on_signal) continue;  // inherited through fork, previous[] is still right
    if (current.sa_handler == SIG_IGN) continue;
    struct sigaction sa {};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    r.previous[i] = current;
    ::sigaction(kSignals[i], &sa, nullptr);
  }
}

}  // namespace

std::mutex& teardown_mutex() {
  static std::mutex* mu = new std::mutex;
  return *mu;
}

void register_owned_lab(const std::string& run_id) {
  Registry& r = registry();
  std::lock_guard lock(r.mu);
  ensure_watcher(r);
  r.labs.emplace_back(::getpid(), run_id);
}

void unregister_owned_lab(const std::string& run_id) {
  Registry& r = registry();
  std::lock_guard lock(r.mu);
  std::erase_if(r.labs, [&](const auto& e) { return e.first == ::getpid() && e.second == run_id; });
}

}  // namespace sockmesh::lab
