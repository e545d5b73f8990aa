// The last configuration the agent ACKed, persisted so that an agent restarted while the control
// plane is down still serves it. One file, replaced atomically (write to a temp file, rename).
#pragma once

#include <map>
#include <optional>
#include <string>

#include "sockmesh/v1/discovery.pb.h"

namespace sockmesh::xds {

struct KnownGood {
  std::string system_version;
  std::map<std::string, v1::Resource> resources;  // name -> resource (with its version)
};

class LastKnownGood {
 public:
  explicit LastKnownGood(std::string path) : path_(std::move(path)) {}
  // Throws std::runtime_error when the file cannot be written.
  void save(const KnownGood &state) const;
  // save() in two steps, so that the state can be serialized under a lock and written outside it.
  static std::string serialize(const KnownGood &state);
  void write(const std::string &bytes) const;
  // nullopt when there is no file; throws std::runtime_error for an unreadable or corrupt file.
  std::optional<KnownGood> load() const;
  const std::string &path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace sockmesh::xds
