#include "teardown.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

#include <fmt/format.h>

#include "sockmesh/common/paths.h"
#include "sockmesh/lab/lab.h"
#include "state.h"

namespace sockmesh::lab {
namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

constexpr auto kKillTimeout = 10s;

bool write_file(const std::string& path, const std::string& data) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return false;
  bool ok = ::write(fd, data.data(), data.size()) == static_cast<ssize_t>(data.size());
  ::close(fd);
  return ok;
}

bool cgroup_populated(const std::string& dir) {
  std::ifstream f(dir + "/cgroup.events");
  std::string key;
  int value = 0;
  while (f >> key >> value) {
    if (key == "populated") return value != 0;
  }
  return false;
}

// SIGKILL every process listed in the subtree's cgroup.procs files (kernels without cgroup.kill).
void kill_listed(const std::string& dir) {
  std::error_code ec;
  std::ifstream f(dir + "/cgroup.procs");
  pid_t pid;
  while (f >> pid) ::kill(pid, SIGKILL);
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    if (e.is_directory(ec)) kill_listed(e.path().string());
  }
}

void kill_cgroup_tree(const std::string& root, std::vector<std::string>& problems) {
  std::error_code ec;
  if (!fs::exists(root, ec)) return;
  const bool has_kill = write_file(root + "/cgroup.kill", "1");
  const auto deadline = std::chrono::steady_clock::now() + kKillTimeout;
  while (cgroup_populated(root)) {
    if (std::chrono::steady_clock::now() > deadline) {
      problems.push_back(fmt::format("processes left in {} after SIGKILL", root));
      return;
    }
    if (!has_kill) kill_listed(root);
    std::this_thread::sleep_for(10ms);
  }
}

void remove_cgroup_tree(const std::string& dir, std::vector<std::string>& problems) {
  std::error_code ec;
  if (!fs::exists(dir, ec)) return;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    if (e.is_directory(ec)) remove_cgroup_tree(e.path().string(), problems);
  }
  // An emptied cgroup can stay busy for a moment while its last tasks finish exiting.
  for (int attempt = 0; attempt < 200; ++attempt) {
    if (::rmdir(dir.c_str()) == 0 || errno == ENOENT) return;
    if (errno != EBUSY) break;
    std::this_thread::sleep_for(10ms);
  }
  problems.push_back(fmt::format("cannot remove cgroup {}: {}", dir, std::strerror(errno)));
}

// Entries of dir whose name starts with prefix.
std::vector<std::string> entries_with_prefix(const std::string& dir, const std::string& prefix) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    if (name.rfind(prefix, 0) == 0) out.push_back(e.path().string());
  }
  return out;
}

// What `ip netns delete` does: detach the nsfs bind mount, remove the file. The namespace itself goes away with
// its last process (killed before) and its veths with it.
void remove_netns(const std::string& path, std::vector<std::string>& problems) {
  if (::umount2(path.c_str(), MNT_DETACH) != 0 && errno != EINVAL && errno != ENOENT) {
    problems.push_back(fmt::format("cannot unmount {}: {}", path, std::strerror(errno)));
    return;
  }
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
    problems.push_back(fmt::format("cannot remove {}: {}", path, std::strerror(errno)));
  }
}

// Unlinking pinned maps and links on bpffs drops the pins; a link detaches once no fd holds it.
void remove_tree(const std::string& path, std::vector<std::string>& problems) {
  std::error_code ec;
  fs::remove_all(path, ec);
  if (ec) problems.push_back(fmt::format("cannot remove {}: {}", path, ec.message()));
}

// Kills the background processes the state lists, when they still live in the lab's cgroup (a pid alone may
// have been recycled).
void kill_tracked(const LabState& state) {
  const std::string marker = fmt::format("/{}/{}/", kCgroupParent, name_prefix(state.run_id));
  for (const auto& p : state.processes) {
    std::ifstream f(fmt::format("/proc/{}/cgroup", p.pid));
    std::stringstream ss;
    ss << f.rdbuf();
    if (ss.str().find(marker) != std::string::npos) ::kill(p.pid, SIGKILL);
  }
}

}  // namespace

void make_cgroup_dir(const std::string& dir) {
  for (int attempt = 0;; ++attempt) {
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (!ec) return;
    if (attempt >= 20) throw std::runtime_error(fmt::format("cannot create cgroup {}: {}", dir, ec.message()));
    std::this_thread::sleep_for(5ms);
  }
}

std::vector<std::string> teardown_run(const std::string& run_id) {
  std::vector<std::string> problems;
  if (!valid_run_id(run_id)) {
    problems.push_back(fmt::format("run id \"{}\": must be 1-12 characters of [a-z0-9]", run_id));
    return problems;
  }
  const std::string prefix = name_prefix(run_id) + "-";
  std::optional<LabState> state;
  try {
    state = read_state(run_id);
  } catch (const std::exception&) {
    // An unreadable state file still names the run: remove by name below.
  }
  std::string cgroup_root;
  if (state) {
    cgroup_root = state->cgroup_root;
    kill_tracked(*state);
  } else {
    try {
      cgroup_root = fmt::format("{}/{}/{}", cgroup2_mount(), kCgroupParent, name_prefix(run_id));
    } catch (const std::exception& e) {
      problems.push_back(e.what());
    }
  }
  if (!cgroup_root.empty()) {
    kill_cgroup_tree(cgroup_root, problems);
    remove_cgroup_tree(cgroup_root, problems);
    // The shared parent goes when the last lab is gone; a concurrent up re-creates it (make_cgroup_dir retries).
    ::rmdir(fs::path(cgroup_root).parent_path().c_str());
  }
  for (const auto& ns : entries_with_prefix("/run/netns", prefix)) remove_netns(ns, problems);
  for (const auto& dir : entries_with_prefix(std::string(paths::kPinRoot), prefix)) remove_tree(dir, problems);
  for (const auto& dir : entries_with_prefix(std::string(paths::kRunRoot), prefix)) remove_tree(dir, problems);
  if (problems.empty()) {
    ::unlink(state_path(run_id).c_str());
    ::unlink((state_path(run_id) + ".tmp").c_str());
  }
  return problems;
}

}  // namespace sockmesh::lab
