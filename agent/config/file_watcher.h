// Tells when a config file may have changed: inotify on its directory, so an editor's
// write-to-temp-and-rename and a Kubernetes ConfigMap's symlink swap are seen as well as an
// in-place write.
#pragma once

#include <string>

#include "sockmesh/common/unique_fd.h"

namespace sockmesh::config {

class FileWatcher {
 public:
  explicit FileWatcher(const std::string &path);  // throws std::runtime_error
  // Readable when something happened; poll() it.
  int fd() const { return inotify_.get(); }
  // Drains the pending events; true when one of them concerns the file.
  bool drain();

 private:
  std::string name_;  // file name within its directory
  UniqueFd inotify_;
};

// Reads a whole file. Throws std::runtime_error naming the path and the reason.
std::string read_file(const std::string &path);

}  // namespace sockmesh::config
