// meshcp's store: its state directory is the truth. One JSON file per resource
// (<dir>/resources/<kind>/<namespace>/<name>.json, the proto JSON of the Resource body) and
// <dir>/version, the state version (a decimal integer, written last).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "sockmesh/v1/discovery.pb.h"

namespace sockmesh::controlplane {

using Resources = std::map<std::string, v1::Resource>;  // name -> resource (name, version, body)

struct StoredState {
  Resources resources;
  uint64_t version = 0;
};

class Store {
 public:
  // Creates the directory (0700) when missing.
  explicit Store(std::string dir);

  // Reads and validates every stored resource (resources::validate on the whole set). Throws
  // std::runtime_error naming the file (or the resource's file) that is wrong.
  StoredState load() const;

  // Writes the changed resources and removes the removed ones, each file atomically (temp file +
  // rename), then the version.
  void write(const Resources &changed, const std::vector<std::string> &removed, uint64_t version);

  const std::string &dir() const { return dir_; }
  // <dir>/resources/<kind>/<namespace>/<name>.json for "<kind>/<namespace>/<name>".
  std::string path_of(const std::string &name) const;

 private:
  std::string file_of_error(const std::string &error) const;

  std::string dir_;
};

}  // namespace sockmesh::controlplane
