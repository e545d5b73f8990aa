#include "store.h"

#include <fcntl.h>
#include <google/protobuf/util/json_util.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "sockmesh/common/atomic_file.h"
#include "sockmesh/resources/resource_set.h"
#include "sockmesh/resources/validate.h"

namespace sockmesh::controlplane {
namespace {

namespace fs = std::filesystem;

constexpr const char *kSuffix = ".json";
// What write_file_atomically() leaves behind when a crash interrupts it.
constexpr const char *kTempSuffix = ".tmp";

void make_dirs(const fs::path &dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw std::runtime_error("cannot create " + dir.string() + ": " + ec.message());
}

std::string to_json(const v1::Resource &resource) {
  v1::Resource body = resource;
  body.clear_name();
  body.clear_version();
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  std::string json;
  auto status = google::protobuf::util::MessageToJsonString(body, &json, options);
  if (!status.ok()) throw std::runtime_error("cannot encode " + resource.name());
  return json;
}

uint64_t read_version(const fs::path &path) {
  if (!fs::exists(path)) return 0;
  const std::string text = read_whole_file(path);
  size_t end = text.find_last_not_of(" \n");
  const std::string digits = end == std::string::npos ? "" : text.substr(0, end + 1);
  if (digits.empty() || digits.find_first_not_of("0123456789") != std::string::npos ||
      digits.size() > 19)
    throw std::runtime_error(path.string() + ": not a version number: \"" + digits + "\"");
  return std::stoull(digits);
}

}  // namespace

// `service "demo/web": ...` -> the file of service/demo/web.
std::string Store::file_of_error(const std::string &error) const {
  const size_t space = error.find(" \"");
  const size_t close = space == std::string::npos ? space : error.find('"', space + 2);
  if (close == std::string::npos) return dir_;
  const std::string id = error.substr(space + 2, close - space - 2);
  if (id.find('/') == std::string::npos) return dir_;
  return path_of(error.substr(0, space) + "/" + id);
}

Store::Store(std::string dir) : dir_(std::move(dir)) {
  make_dirs(dir_);
  ::chmod(dir_.c_str(), 0700);
}

std::string Store::path_of(const std::string &name) const {
  return dir_ + "/resources/" + name + kSuffix;
}

StoredState Store::load() const {
  StoredState state;
  const fs::path root = fs::path(dir_) / "resources";
  if (fs::exists(root)) {
    for (const auto &entry : fs::recursive_directory_iterator(root)) {
      if (!entry.is_regular_file()) continue;
      const fs::path &path = entry.path();
      // A temp file is the remains of a write that never completed its rename.
      if (path.string().ends_with(kTempSuffix)) {
        fs::remove(path);
        continue;
      }
      if (path.extension() != kSuffix)
        throw std::runtime_error(path.string() + ": not a resource file (*.json)");
      v1::Resource resource;
      google::protobuf::util::JsonParseOptions options;
      auto status =
          google::protobuf::util::JsonStringToMessage(read_whole_file(path), &resource, options);
      if (!status.ok())
        throw std::runtime_error(path.string() +
                                 ": not a resource: " + std::string(status.message()));
      const std::string name = resources::resource_name(resource);
      if (name.empty()) throw std::runtime_error(path.string() + ": resource has no body");
      if (path_of(name) != path.string())
        throw std::runtime_error(path.string() + ": holds " + name + ", expected at " +
                                 path_of(name));
      resource.set_name(name);
      resource.set_version(resources::content_version(resource));
      state.resources.emplace(name, std::move(resource));
    }
  }
  auto errors = resources::validate(resources::to_snapshot(state.resources));
  if (!errors.empty()) {
    std::string text = "stored resources are invalid:";
    for (const auto &e : errors) text += "\n" + file_of_error(e) + ": " + e;
    throw std::runtime_error(text);
  }
  state.version = read_version(fs::path(dir_) / "version");
  return state;
}

void Store::write(const Resources &changed, const std::vector<std::string> &removed,
                  uint64_t version) {
  for (const auto &[name, resource] : changed) write_file_atomically(path_of(name), to_json(resource));
  for (const auto &name : removed) {
    if (::unlink(path_of(name).c_str()) != 0 && errno != ENOENT)
      throw std::runtime_error("cannot remove " + path_of(name) + ": " + std::strerror(errno));
  }
  write_file_atomically(fs::path(dir_) / "version", std::to_string(version) + "\n");
}

}  // namespace sockmesh::controlplane
