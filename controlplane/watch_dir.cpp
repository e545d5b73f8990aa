#include "watch_dir.h"

#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <vector>

#include "sockmesh/resources/load.h"
#include "sockmesh/resources/resource_set.h"

namespace sockmesh::controlplane {
namespace {

namespace fs = std::filesystem;

// The loader's source name for the joined text; its "<source>:<line>" is mapped back to files.
// Not a path (the files' are absolute), and printable: the loader escapes control characters in
// its error lines.
constexpr std::string_view kJoined = "<joined>";

struct Part {
  std::string path;
  int first_line;  // line of the joined text where the file starts
};

std::string where(const std::vector<Part> &parts, int line) {
  auto it = std::upper_bound(parts.begin(), parts.end(), line,
                             [](int l, const Part &p) { return l < p.first_line; });
  if (it == parts.begin()) return "?:" + std::to_string(line);
  --it;
  return it->path + ":" + std::to_string(line - it->first_line + 1);
}

// Replaces every "<kJoined>:<line>" in an error by "<file>:<line in file>".
std::string map_back(const std::string &error, const std::vector<Part> &parts) {
  std::string out;
  size_t pos = 0;
  while (true) {
    size_t at = error.find(kJoined, pos);
    if (at == std::string::npos) break;
    out += error.substr(pos, at - pos);
    size_t digits = at + kJoined.size() + 1;
    size_t end = digits;
    while (end < error.size() && std::isdigit(static_cast<unsigned char>(error[end]))) ++end;
    if (end == digits) {
      out += "?";
      pos = at + kJoined.size();
      continue;
    }
    out += where(parts, std::stoi(error.substr(digits, end - digits)));
    pos = end;
  }
  return out + error.substr(pos);
}

}  // namespace

DirLoad load_yaml_dir(const std::string &dir) {
  DirLoad result;
  std::vector<std::string> files;
  std::error_code ec;
  for (const auto &entry : fs::directory_iterator(dir, ec))
    if (entry.is_regular_file() && entry.path().extension() == ".yaml")
      files.push_back(entry.path().string());
  if (ec) {
    result.errors.push_back(dir + ": cannot read: " + ec.message());
    return result;
  }
  std::sort(files.begin(), files.end());
  std::string joined;
  std::vector<Part> parts;
  int line = 1;
  for (const auto &path : files) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
      result.errors.push_back(path + ": cannot read: " + std::strerror(errno));
      continue;
    }
    std::ostringstream text;
    text << in.rdbuf();
    std::string content = text.str();
    if (!content.empty() && content.back() != '\n') content += '\n';
    parts.push_back({path, line});
    joined += content;
    line += int(std::count(content.begin(), content.end(), '\n'));
    joined += "---\n";
    ++line;
  }
  if (!result.errors.empty()) return result;
  auto loaded = resources::load_yaml_string(joined, kJoined);
  for (const auto &e : loaded.errors) result.errors.push_back(map_back(e, parts));
  if (!result.errors.empty()) return result;
  for (auto &[name, resource] : resources::to_resources(loaded.snapshot))
    *result.request.add_resources() = std::move(resource);
  return result;
}

DirWatcher::DirWatcher(State &state, std::string dir) : state_(state), dir_(std::move(dir)) {
  inotify_fd_ = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
  if (inotify_fd_ < 0) throw std::runtime_error(std::string("inotify: ") + std::strerror(errno));
  if (inotify_add_watch(inotify_fd_, dir_.c_str(),
                        IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | IN_CREATE) < 0) {
    int err = errno;
    ::close(inotify_fd_);
    throw std::runtime_error("--watch-dir " + dir_ + ": " + std::strerror(err));
  }
  stop_fd_ = eventfd(0, EFD_CLOEXEC);
  apply_dir();
  thread_ = std::thread([this] { run(); });
}

DirWatcher::~DirWatcher() {
  uint64_t one = 1;
  (void)!::write(stop_fd_, &one, sizeof one);
  if (thread_.joinable()) thread_.join();
  ::close(stop_fd_);
  ::close(inotify_fd_);
}

void DirWatcher::apply_dir() {
  DirLoad load = load_yaml_dir(dir_);
  if (!load.errors.empty()) {
    for (const auto &e : load.errors) spdlog::error("event=watch_dir_invalid error=\"{}\"", e);
    return;
  }
  v1::ApplyResponse response;
  grpc::Status status = state_.apply(load.request, &response);
  if (!status.ok()) {
    spdlog::error("event=watch_dir_refused dir={} errors=\"{}\"", dir_, status.error_message());
    return;
  }
  spdlog::info("event=watch_dir_applied dir={} version={} created={} configured={} unchanged={}",
               dir_, response.version(), response.created(), response.configured(),
               response.unchanged());
}

void DirWatcher::run() {
  // Editors write a file in several steps: wait until the directory is quiet for a moment.
  constexpr int kSettleMs = 100;
  alignas(inotify_event) char buf[4096];
  while (true) {
    pollfd fds[2] = {{inotify_fd_, POLLIN, 0}, {stop_fd_, POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0 && errno != EINTR) return;
    if (fds[1].revents) return;
    if (!fds[0].revents) continue;
    bool yaml_changed = false;
    do {
      ssize_t n;
      while ((n = ::read(inotify_fd_, buf, sizeof buf)) > 0) {
        for (char *p = buf; p < buf + n;) {
          auto *event = reinterpret_cast<inotify_event *>(p);
          // A Kubernetes ConfigMap volume changes by swapping the "..data" symlink to a new
          // directory (its *.yaml are symlinks through it): no event names a .yaml file then.
          const std::string_view name = event->len > 0 ? event->name : "";
          if (name.ends_with(".yaml") || name == "..data") yaml_changed = true;
          p += sizeof(inotify_event) + event->len;
        }
      }
      pollfd settle[2] = {{inotify_fd_, POLLIN, 0}, {stop_fd_, POLLIN, 0}};
      int ready = ::poll(settle, 2, kSettleMs);
      if (ready > 0 && settle[1].revents) return;
      if (ready <= 0) break;
    } while (true);
    if (yaml_changed) apply_dir();
  }
}

}  // namespace sockmesh::controlplane
