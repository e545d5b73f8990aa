#include "sockmesh/cli/interrupt.h"

#include <pthread.h>
#include <signal.h>

#include <cstdlib>
#include <thread>

namespace sockmesh::cli {

std::stop_token stop_on_signals() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::stop_source source;
  // Detached: it waits for a signal that may never come, and must not hold up the exit.
  std::thread([signals, source]() mutable {
    int signal = 0;
    sigwait(&signals, &signal);
    source.request_stop();
    sigwait(&signals, &signal);
    std::_Exit(128 + signal);
  }).detach();
  return source.get_token();
}

}  // namespace sockmesh::cli
