// --watch-dir: the YAML files of a directory applied as one Apply on start and whenever a *.yaml
// file in it changes. Resources absent from the directory are not deleted from the store.
#pragma once

#include <atomic>
#include <string>
#include <thread>

#include "state.h"

namespace sockmesh::controlplane {

// Reads every *.yaml file of `dir` (sorted by name) as one set of resources, so a file may name
// workloads defined in another. Errors name the file and line. Returns the request, or the errors.
struct DirLoad {
  v1::ApplyRequest request;
  std::vector<std::string> errors;
};
DirLoad load_yaml_dir(const std::string &dir);

class DirWatcher {
 public:
  // Applies the directory once, then watches it on a thread of its own.
  DirWatcher(State &state, std::string dir);
  ~DirWatcher();

 private:
  void apply_dir();
  void run();

  State &state_;
  std::string dir_;
  int inotify_fd_ = -1;
  int stop_fd_ = -1;  // eventfd that ends run()
  std::thread thread_;
};

}  // namespace sockmesh::controlplane
