#include "config/file_watcher.h"

#include <sys/inotify.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace sockmesh::config {

FileWatcher::FileWatcher(const std::string &path) {
  auto slash = path.rfind('/');
  std::string dir = slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
  name_ = slash == std::string::npos ? path : path.substr(slash + 1);
  inotify_.reset(inotify_init1(IN_NONBLOCK | IN_CLOEXEC));
  if (!inotify_.valid()) throw std::runtime_error(std::string("inotify: ") + std::strerror(errno));
  uint32_t mask = IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_DELETE | IN_MODIFY | IN_ATTRIB;
  if (inotify_add_watch(inotify_.get(), dir.c_str(), mask) < 0)
    throw std::runtime_error("watch " + dir + ": " + std::strerror(errno));
}

bool FileWatcher::drain() {
  alignas(inotify_event) char buffer[8192];
  bool relevant = false;
  for (;;) {
    ssize_t n = read(inotify_.get(), buffer, sizeof(buffer));
    if (n <= 0) break;
    for (char *p = buffer; p < buffer + n;) {
      auto *event = reinterpret_cast<inotify_event *>(p);
      // A ConfigMap swaps a "..data" symlink in the same directory: treat it as a change too.
      if (event->len > 0 && (name_ == event->name || std::strncmp(event->name, "..", 2) == 0))
        relevant = true;
      if (event->mask & IN_Q_OVERFLOW) relevant = true;
      p += sizeof(inotify_event) + event->len;
    }
  }
  return relevant;
}

std::string read_file(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path + ": " + std::strerror(errno));
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace sockmesh::config
