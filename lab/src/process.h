// Starting processes inside a lab pod or node: fork, join the cgroup (write to cgroup.procs) and the netns
// (setns on /run/netns/<name>, which keeps /sys and the cgroup fs visible, unlike `ip netns exec`), exec.
#pragma once

#include <sys/types.h>

#include <functional>
#include <string>
#include <vector>

namespace sockmesh::lab {

// Where a child goes; empty fields: stay where the parent is.
struct Placement {
  std::string cgroup;  // cgroup directory
  std::string netns;   // netns name under /run/netns
};

struct LaunchOptions {
  std::string log_path;      // stdout+stderr appended here if set
  bool new_session = false;  // setsid(): not hit by the terminal's Ctrl-C
  int stdout_fd = -1;        // dup'ed to stdout if >= 0 (capture)
};

// Forks, places and execs argv. Throws std::runtime_error when the child cannot be placed or the program cannot
// be executed (reported by the child before exec through a close-on-exec pipe).
pid_t launch(const Placement& where, const std::vector<std::string>& argv, const LaunchOptions& opts);

// waitpid() that retries on EINTR; exit status, or 128+N when killed by signal N.
int wait_exit_status(pid_t pid);

// Runs argv to completion (no placement), feeding stdin_data; collects stdout and stderr.
struct CommandResult {
  int status = 0;
  std::string out;
  std::string err;
};
CommandResult run_command(const std::vector<std::string>& argv, const std::string& stdin_data = "");

// Runs argv placed, to completion; stdout into *out if given (else inherited). 127 when it cannot be executed.
int run_placed(const Placement& where, const std::vector<std::string>& argv, std::string* out);

// Runs fn in a placed vfork() child, which shares this process's memory (see process.cpp); fn's
// return value is the exit status. What the child writes to file descriptor 1 goes to *out: write
// with dprintf/write, not stdio, whose buffers are shared with the parent's threads. Throws if the
// child still runs after 240 s (it is killed).
int call_placed(const Placement& where, const std::function<int()>& fn, std::string* out);

// Absolute path of `ip` (iproute2).
const std::string& ip_binary();

}  // namespace sockmesh::lab
