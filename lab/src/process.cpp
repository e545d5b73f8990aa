#include "process.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <mutex>
#include <stdexcept>
#include <thread>

namespace sockmesh::lab {
namespace {

// Failure report from a child to its parent, before exec.
struct ChildError {
  int err = 0;
  char step[48] = {};
};

void report_and_exit(int status_fd, const char* step, int err) {
  ChildError e;
  e.err = err;
  std::strncpy(e.step, step, sizeof(e.step) - 1);
  if (status_fd >= 0) {
    ssize_t ignored = ::write(status_fd, &e, sizeof(e));
    (void)ignored;
  }
  ::_exit(127);
}

// The library's teardown handlers belong to the parent; a child must not run them.
void reset_signals() {
  for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGPIPE}) ::signal(sig, SIG_DFL);
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
}

// Joins the cgroup and netns; returns the failed step or nullptr. Only async-signal-safe calls (runs after
// fork in a possibly multi-threaded process).
const char* join(const char* cgroup_procs, const char* netns_path) {
  if (cgroup_procs[0] != '\0') {
    int fd = ::open(cgroup_procs, O_WRONLY | O_CLOEXEC);
    if (fd < 0) return "open cgroup.procs";
    // "0" moves the writing process itself.
    bool ok = ::write(fd, "0", 1) == 1;
    ::close(fd);
    if (!ok) return "join cgroup";
  }
  if (netns_path[0] != '\0') {
    int fd = ::open(netns_path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return "open netns";
    bool ok = ::setns(fd, CLONE_NEWNET) == 0;
    ::close(fd);
    if (!ok) return "setns";
  }
  return nullptr;
}

// What this process has buffered for its standard streams, written before a child is made (a fork
// child would write it again). Only those: fflush(nullptr) would also flush the FILE that a
// call_placed child's dprintf keeps on its stack (shared memory) while it writes, into this
// process's stdout instead of the child's output.
void flush_standard_streams() {
  std::cout.flush();
  std::cerr.flush();
  std::fflush(stdout);
  std::fflush(stderr);
}

struct PlacementPaths {
  std::string procs;
  std::string netns;
  explicit PlacementPaths(const Placement& p)
      : procs(p.cgroup.empty() ? "" : p.cgroup + "/cgroup.procs"),
        netns(p.netns.empty() ? "" : "/run/netns/" + p.netns) {}
};

std::string describe(const Placement& where) {
  std::string s;
  if (!where.cgroup.empty()) s += " cgroup " + where.cgroup;
  if (!where.netns.empty()) s += " netns " + where.netns;
  return s;
}

void read_all(int fd, std::string* out) {
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n > 0) {
      if (out) out->append(buf, static_cast<size_t>(n));
    } else if (n == 0 || errno != EINTR) {
      return;
    }
  }
}

}  // namespace

const std::string& ip_binary() {
  static const std::string path = [] {
    for (const char* p : {"/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"}) {
      if (::access(p, X_OK) == 0) return std::string(p);
    }
    return std::string("ip");
  }();
  return path;
}

int wait_exit_status(pid_t pid) {
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return -1;
  }
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

namespace {

// What the kernel says a stuck child is doing: its state, the syscall it sits in (202 is futex: a
// lock no thread will release, e.g. one another thread of the parent held when it forked) and its
// kernel stack.
std::string child_diagnostics(pid_t pid) {
  auto text_of = [](const std::string &path) {
    std::FILE *f = std::fopen(path.c_str(), "r");
    if (!f) return std::string("?");
    char buf[512];
    std::string text;
    while (std::fgets(buf, sizeof buf, f)) text += buf;
    std::fclose(f);
    std::replace(text.begin(), text.end(), '\n', ';');
    return text;
  };
  const std::string proc = "/proc/" + std::to_string(pid);
  return fmt::format("stat: {} syscall: {} wchan: {} stack: {}", text_of(proc + "/stat"),
                     text_of(proc + "/syscall"), text_of(proc + "/wchan"),
                     text_of(proc + "/stack"));
}

// A forked child that runs a test's function must finish. One that deadlocked (forked while another
// thread of the parent, e.g. one of gRPC's, held a lock of an allocator without fork handlers, as
// GCC 12's AddressSanitizer has none) would hang the test until ctest kills it, leaving no trace.
// Reads the child's stdout into *out until EOF (when pipe_fd >= 0) and reaps it; past the deadline
// it says what the child was doing, kills it and throws.
constexpr int kCallDeadlineSeconds = 240;

// Watches one call_placed child from a thread of its own (the calling thread is suspended until
// the child exits): past the deadline it records what the kernel says the child is doing and
// kills it. Killing a child that shares this process's memory is a last resort, like killing a
// thread: the call fails either way.
class CallWatch {
 public:
  CallWatch() : thread_([this] { watch(); }) {}
  ~CallWatch() { finish(); }

  // Written by the child itself: the parent learns its pid only once vfork() returns.
  std::atomic<pid_t> child{0};

  // Stops the watch; returns the diagnostics if the child was killed, else "".
  std::string finish() {
    {
      std::lock_guard lock(mu_);
      done_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
    return why_;
  }

 private:
  void watch() {
    std::unique_lock lock(mu_);
    if (cv_.wait_for(lock, std::chrono::seconds(kCallDeadlineSeconds), [&] { return done_; }))
      return;
    const pid_t pid = child.load();
    if (pid <= 0) return;
    why_ = child_diagnostics(pid);
    ::kill(pid, SIGKILL);
  }

  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  std::string why_;
  std::thread thread_;
};

// The vfork child: never returns (it runs on the caller's stack, below call_placed's frame).
[[noreturn]] void run_call_child(const PlacementPaths &paths, const Placement &where,
                                 const std::function<int()> &fn, int out_fd,
                                 std::atomic<pid_t> *self) {
  self->store(::getpid());
  reset_signals();
  if (out_fd >= 0) ::dup2(out_fd, STDOUT_FILENO);
  if (const char *step = join(paths.procs.c_str(), paths.netns.c_str())) {
    std::fprintf(stderr, "call_in_pod:%s: %s: %s\n", describe(where).c_str(), step,
                 std::strerror(errno));
    ::_exit(125);
  }
  int rc = 1;
  try {
    rc = fn();
  } catch (const std::exception &e) {
    std::fprintf(stderr, "call_in_pod: %s\n", e.what());
  } catch (...) {
    std::fprintf(stderr, "call_in_pod: unknown exception\n");
  }
  // No fflush: stdio's buffers are this process's, shared with the parent's threads.
  ::_exit(rc);
}

}  // namespace

pid_t launch(const Placement& where, const std::vector<std::string>& argv, const LaunchOptions& opts) {
  if (argv.empty()) throw std::invalid_argument("empty command");
  const PlacementPaths paths(where);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);

  int out_fd = -1;
  if (!opts.log_path.empty()) {
    out_fd = ::open(opts.log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (out_fd < 0) throw std::runtime_error(fmt::format("cannot open log {}: {}", opts.log_path, std::strerror(errno)));
  }
  int status_pipe[2];
  if (::pipe2(status_pipe, O_CLOEXEC) != 0) {
    if (out_fd >= 0) ::close(out_fd);
    throw std::runtime_error(fmt::format("pipe: {}", std::strerror(errno)));
  }
  flush_standard_streams();
  pid_t pid = ::fork();
  if (pid < 0) {
    int err = errno;
    ::close(status_pipe[0]);
    ::close(status_pipe[1]);
    if (out_fd >= 0) ::close(out_fd);
    throw std::runtime_error(fmt::format("fork: {}", std::strerror(err)));
  }
  if (pid == 0) {
    reset_signals();
    if (opts.new_session) ::setsid();
    if (const char* step = join(paths.procs.c_str(), paths.netns.c_str())) report_and_exit(status_pipe[1], step, errno);
    if (opts.new_session) {
      int null_in = ::open("/dev/null", O_RDONLY);
      if (null_in >= 0) ::dup2(null_in, 0);
    }
    if (opts.stdout_fd >= 0) ::dup2(opts.stdout_fd, 1);
    if (out_fd >= 0) {
      if (opts.stdout_fd < 0) ::dup2(out_fd, 1);
      ::dup2(out_fd, 2);
    }
    // Keep the lab's and the caller's descriptors out of the program.
    ::close_range(3, ~0U, CLOSE_RANGE_CLOEXEC);
    ::execvp(args[0], args.data());
    report_and_exit(status_pipe[1], "exec", errno);
  }
  ::close(status_pipe[1]);
  if (out_fd >= 0) ::close(out_fd);
  ChildError e;
  ssize_t n;
  do {
    n = ::read(status_pipe[0], &e, sizeof e);
  } while (n < 0 && errno == EINTR);
  ::close(status_pipe[0]);
  if (n == static_cast<ssize_t>(sizeof e)) {
    wait_exit_status(pid);
    throw std::runtime_error(
        fmt::format("cannot run \"{}\"{}: {}: {}", argv[0], describe(where), e.step, std::strerror(e.err)));
  }
  return pid;
}

int run_placed(const Placement& where, const std::vector<std::string>& argv, std::string* out) {
  int pipefd[2] = {-1, -1};
  if (out && ::pipe2(pipefd, O_CLOEXEC) != 0) throw std::runtime_error(fmt::format("pipe: {}", std::strerror(errno)));
  LaunchOptions opts;
  opts.stdout_fd = out ? pipefd[1] : -1;
  pid_t pid;
  try {
    pid = launch(where, argv, opts);
  } catch (const std::exception& e) {
    if (out) {
      ::close(pipefd[0]);
      ::close(pipefd[1]);
    }
    std::fprintf(stderr, "%s\n", e.what());
    return 127;
  }
  if (out) {
    ::close(pipefd[1]);
    read_all(pipefd[0], out);
    ::close(pipefd[0]);
  }
  return wait_exit_status(pid);
}

// Runs fn in a child made with vfork(): it shares this process's memory as a thread does, yet as a
// process of its own it can join the pod's cgroup (cgroup v2 places whole processes) and netns.
// Not fork(): a forked copy of a multi-threaded process inherits every lock another thread held
// at that instant, and GCC 12's AddressSanitizer takes no allocator lock around fork, so a forked
// child of the ASan-built tests could wait forever for one (CI at stop 18: a child in futex on the
// allocator's region table while the soak's other threads allocated). A vfork child takes and
// releases locks beside the parent's threads like one of them. Its output goes to a memfd, read
// once it has exited, since the calling thread cannot read a pipe while it is suspended.
int call_placed(const Placement& where, const std::function<int()>& fn, std::string* out) {
  const PlacementPaths paths(where);
  int out_fd = -1;
  if (out) {
    out_fd = ::memfd_create("sockmesh-lab-call-out", MFD_CLOEXEC);
    if (out_fd < 0) throw std::runtime_error(fmt::format("memfd_create: {}", std::strerror(errno)));
  }
  flush_standard_streams();
  CallWatch watch;
  const pid_t pid = ::vfork();
  if (pid == 0) run_call_child(paths, where, fn, out_fd, &watch.child);
  const int vfork_errno = errno;
  const std::string why = watch.finish();
  const int status = pid > 0 ? wait_exit_status(pid) : -1;
  if (out_fd >= 0) {
    if (pid > 0 && why.empty()) {
      ::lseek(out_fd, 0, SEEK_SET);
      read_all(out_fd, out);
    }
    ::close(out_fd);
  }
  if (pid < 0) throw std::runtime_error(fmt::format("vfork: {}", std::strerror(vfork_errno)));
  if (!why.empty()) {
    throw std::runtime_error(
        fmt::format("call_in_pod:{}: child {} still running after {} s, killed; {}",
                    describe(where), pid, kCallDeadlineSeconds, why));
  }
  return status;
}

CommandResult run_command(const std::vector<std::string>& argv, const std::string& stdin_data) {
  // stdin from a memfd, not a pipe: a child that exits early cannot raise SIGPIPE in this process.
  int in_fd = ::memfd_create("sockmesh-lab-stdin", MFD_CLOEXEC);
  int outp[2], errp[2];
  if (in_fd < 0 || ::pipe2(outp, O_CLOEXEC) || ::pipe2(errp, O_CLOEXEC)) {
    throw std::runtime_error(fmt::format("pipe: {}", std::strerror(errno)));
  }
  for (size_t done = 0; done < stdin_data.size();) {
    ssize_t n = ::write(in_fd, stdin_data.data() + done, stdin_data.size() - done);
    if (n < 0 && errno != EINTR) throw std::runtime_error(fmt::format("memfd write: {}", std::strerror(errno)));
    if (n > 0) done += static_cast<size_t>(n);
  }
  ::lseek(in_fd, 0, SEEK_SET);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  flush_standard_streams();
  pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error(fmt::format("fork: {}", std::strerror(errno)));
  if (pid == 0) {
    reset_signals();
    ::dup2(in_fd, 0);
    ::dup2(outp[1], 1);
    ::dup2(errp[1], 2);
    ::close_range(3, ~0U, CLOSE_RANGE_CLOEXEC);
    ::execvp(args[0], args.data());
    std::fprintf(stderr, "cannot exec %s: %s\n", args[0], std::strerror(errno));
    ::_exit(127);
  }
  ::close(in_fd);
  ::close(outp[1]);
  ::close(errp[1]);
  CommandResult r;
  int out_fd = outp[0], err_fd = errp[0];
  while (out_fd >= 0 || err_fd >= 0) {
    pollfd fds[2] = {{out_fd, POLLIN, 0}, {err_fd, POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    for (int i = 0; i < 2; ++i) {
      int& fd = i == 0 ? out_fd : err_fd;
      if (fd >= 0 && (fds[i].revents & (POLLIN | POLLERR | POLLHUP))) {
        char buf[4096];
        ssize_t n = ::read(fd, buf, sizeof buf);
        if (n > 0) {
          (i == 0 ? r.out : r.err).append(buf, static_cast<size_t>(n));
        } else if (n == 0 || errno != EINTR) {
          ::close(fd);
          fd = -1;
        }
      }
    }
  }
  r.status = wait_exit_status(pid);
  return r;
}

}  // namespace sockmesh::lab
