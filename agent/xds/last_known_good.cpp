#include "xds/last_known_good.h"

#include <fcntl.h>
#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <google/protobuf/wire_format_lite.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace sockmesh::xds {
namespace {

void mkdir_parents(const std::string &path) {
  for (size_t pos = path.find('/', 1); pos != std::string::npos; pos = path.find('/', pos + 1)) {
    std::string dir = path.substr(0, pos);
    if (mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST)
      throw std::runtime_error("mkdir " + dir + ": " + std::strerror(errno));
  }
}

}  // namespace

// The file holds a DiscoveryResponse: every resource, and the system version in
// system_version_info. A format the agent already speaks; nothing new to parse.
// Written field by field rather than by building the message: a DiscoveryResponse holding the
// state would be a copy of every resource (110,000 at 10,000 services x 10 endpoints).
std::string LastKnownGood::serialize(const KnownGood &state) {
  using google::protobuf::internal::WireFormatLite;
  std::string bytes;
  {
    google::protobuf::io::StringOutputStream raw(&bytes);
    google::protobuf::io::CodedOutputStream out(&raw);
    WireFormatLite::WriteString(v1::DiscoveryResponse::kSystemVersionInfoFieldNumber,
                                state.system_version, &out);
    for (const auto &[name, resource] : state.resources) {
      resource.ByteSizeLong();  // WriteMessage writes the size cached by this
      WireFormatLite::WriteMessage(v1::DiscoveryResponse::kResourcesFieldNumber, resource, &out);
    }
    if (out.HadError()) throw std::runtime_error("serialize last-known-good state");
  }
  return bytes;
}

void LastKnownGood::save(const KnownGood &state) const {
  write(serialize(state));
}

void LastKnownGood::write(const std::string &bytes) const {
  mkdir_parents(path_);
  std::string tmp = path_ + ".tmp";
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) throw std::runtime_error("write " + tmp + ": " + std::strerror(errno));
  ssize_t written = ::write(fd, bytes.data(), bytes.size());
  bool ok = written == ssize_t(bytes.size()) && fsync(fd) == 0;
  int err = errno;
  close(fd);
  if (!ok) throw std::runtime_error("write " + tmp + ": " + std::strerror(err));
  if (rename(tmp.c_str(), path_.c_str()) != 0)
    throw std::runtime_error("rename " + tmp + ": " + std::strerror(errno));
}

std::optional<KnownGood> LastKnownGood::load() const {
  std::ifstream in(path_, std::ios::binary);
  if (!in) {
    if (errno == ENOENT) return std::nullopt;
    throw std::runtime_error("read " + path_ + ": " + std::strerror(errno));
  }
  std::ostringstream bytes;
  bytes << in.rdbuf();
  v1::DiscoveryResponse file;
  if (!file.ParseFromString(bytes.str()))
    throw std::runtime_error(path_ + " is not a last-known-good state file (corrupt?)");
  KnownGood state;
  state.system_version = file.system_version_info();
  for (const auto &resource : file.resources()) state.resources[resource.name()] = resource;
  return state;
}

}  // namespace sockmesh::xds
