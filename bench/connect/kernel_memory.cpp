#include "kernel_memory.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fmt/format.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <stdexcept>

#include "sockmesh/common/unique_fd.h"

namespace sockmesh::bench {
namespace {

// key -> value of /proc/self/fdinfo/<fd> (a map's "memlock", a link's "link_type", ...).
std::map<std::string, std::string> fdinfo(int fd) {
  std::map<std::string, std::string> out;
  std::ifstream in(fmt::format("/proc/self/fdinfo/{}", fd));
  for (std::string line; std::getline(in, line);) {
    auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    auto value = line.substr(colon + 1);
    value.erase(0, value.find_first_not_of(" \t"));
    out[line.substr(0, colon)] = value;
  }
  return out;
}

struct MapInfo {
  uint32_t id = 0;
  std::string name;
  bpf_map_type type{};
  uint32_t max_entries = 0;
  uint32_t key_size = 0;
  uint64_t bytes = 0;
};

MapInfo map_info(int fd) {
  bpf_map_info info{};
  uint32_t len = sizeof(info);
  if (bpf_obj_get_info_by_fd(fd, &info, &len) != 0)
    throw std::runtime_error(fmt::format("bpf map info: {}", std::strerror(errno)));
  MapInfo out{info.id, info.name, bpf_map_type(info.type), info.max_entries, info.key_size, 0};
  out.bytes = std::stoull(fdinfo(fd).at("memlock"));
  return out;
}

std::string type_name(bpf_map_type type) {
  const char* name = libbpf_bpf_map_type_str(type);
  return name ? name : std::to_string(int(type));
}

bool is_map_in_map(bpf_map_type type) {
  return type == BPF_MAP_TYPE_ARRAY_OF_MAPS || type == BPF_MAP_TYPE_HASH_OF_MAPS;
}

// Map ids used by the program behind a pinned link.
std::vector<uint32_t> link_map_ids(int link_fd) {
  bpf_link_info link{};
  uint32_t len = sizeof(link);
  if (bpf_obj_get_info_by_fd(link_fd, &link, &len) != 0) return {};
  UniqueFd prog(bpf_prog_get_fd_by_id(link.prog_id));
  if (!prog.valid()) return {};
  bpf_prog_info info{};
  len = sizeof(info);
  if (bpf_obj_get_info_by_fd(prog.get(), &info, &len) != 0) return {};
  std::vector<uint32_t> ids(info.nr_map_ids);
  bpf_prog_info again{};
  again.nr_map_ids = uint32_t(ids.size());
  again.map_ids = reinterpret_cast<uint64_t>(ids.data());
  len = sizeof(again);
  if (bpf_obj_get_info_by_fd(prog.get(), &again, &len) != 0) return {};
  ids.resize(std::min<size_t>(ids.size(), again.nr_map_ids));
  return ids;
}

// Ids of the inner maps a map-in-map holds (a lookup from user space returns the inner map's id).
std::vector<uint32_t> inner_map_ids(int outer_fd, uint32_t key_size) {
  std::vector<uint32_t> ids;
  std::vector<unsigned char> key(key_size), next(key_size);
  void* prev = nullptr;
  while (bpf_map_get_next_key(outer_fd, prev, next.data()) == 0) {
    uint32_t id = 0;
    if (bpf_map_lookup_elem(outer_fd, next.data(), &id) == 0 && id != 0) ids.push_back(id);
    key.swap(next);
    prev = key.data();
  }
  return ids;
}

}  // namespace

ProcessMemory process_memory(pid_t pid) {
  std::ifstream in(fmt::format("/proc/{}/status", pid));
  if (!in) throw std::runtime_error(fmt::format("process {} is gone", pid));
  ProcessMemory out;
  for (std::string line; std::getline(in, line);) {
    std::istringstream words(line);
    std::string key;
    long kib = 0;
    words >> key >> kib;
    if (key == "VmRSS:") out.rss_kib = kib;
    if (key == "VmHWM:") out.hwm_kib = kib;
  }
  return out;
}

NodeMapMemory node_map_memory(const std::string& pin_dir) {
  std::set<uint32_t> ids;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(pin_dir)) {
    if (!entry.is_regular_file()) continue;
    UniqueFd fd(bpf_obj_get(entry.path().c_str()));
    if (!fd.valid()) continue;
    auto info = fdinfo(fd.get());
    if (info.count("map_id")) {
      ids.insert(uint32_t(std::stoul(info["map_id"])));
    } else if (info.count("link_type")) {
      for (uint32_t id : link_map_ids(fd.get())) ids.insert(id);
    }
  }

  NodeMapMemory out;
  std::map<std::string, MapMemory> inner;  // by inner map name
  std::set<uint32_t> inner_seen;
  for (uint32_t id : ids) {
    UniqueFd fd(bpf_map_get_fd_by_id(id));
    if (!fd.valid()) continue;  // freed meanwhile
    MapInfo map = map_info(fd.get());
    out.maps.push_back({map.name, type_name(map.type), map.max_entries, 1, map.bytes});
    out.total_bytes += map.bytes;
    if (!is_map_in_map(map.type)) continue;
    for (uint32_t inner_id : inner_map_ids(fd.get(), map.key_size)) {
      if (!inner_seen.insert(inner_id).second) continue;
      UniqueFd inner_fd(bpf_map_get_fd_by_id(inner_id));
      if (!inner_fd.valid()) continue;
      MapInfo m = map_info(inner_fd.get());
      auto [it, fresh] =
          inner.try_emplace(m.name, MapMemory{m.name, type_name(m.type), m.max_entries, 0, 0});
      it->second.maps++;
      it->second.bytes += m.bytes;
      out.total_bytes += m.bytes;
    }
  }
  for (auto& [name, m] : inner) out.maps.push_back(m);
  return out;
}

void to_json(nlohmann::json& out, const ProcessMemory& m) {
  out = {{"rss_kib", m.rss_kib}, {"hwm_kib", m.hwm_kib}};
}

void to_json(nlohmann::json& out, const MapMemory& m) {
  out = {{"name", m.name}, {"type", m.type}, {"max_entries", m.max_entries}, {"maps", m.maps},
         {"bytes", m.bytes}};
}

void to_json(nlohmann::json& out, const NodeMapMemory& m) {
  out = {{"maps", m.maps}, {"total_bytes", m.total_bytes}};
}

}  // namespace sockmesh::bench
