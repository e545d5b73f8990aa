#include "telemetry/map_inspector.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <stdexcept>

#include "telemetry/map_decode.h"

namespace sockmesh::telemetry {
namespace {

using Bytes = std::vector<std::uint8_t>;

bool per_cpu_type(std::uint32_t type) {
  return type == BPF_MAP_TYPE_PERCPU_HASH || type == BPF_MAP_TYPE_PERCPU_ARRAY ||
         type == BPF_MAP_TYPE_LRU_PERCPU_HASH || type == BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE;
}

bool array_type(std::uint32_t type) {
  return type == BPF_MAP_TYPE_ARRAY || type == BPF_MAP_TYPE_PERCPU_ARRAY;
}

// Maps the kernel gives no way to iterate or count from user space.
bool unlistable_type(std::uint32_t type) {
  return type == BPF_MAP_TYPE_SK_STORAGE || type == BPF_MAP_TYPE_RINGBUF ||
         type == BPF_MAP_TYPE_INODE_STORAGE || type == BPF_MAP_TYPE_TASK_STORAGE ||
         type == BPF_MAP_TYPE_USER_RINGBUF;
}

// Whether max_entries means a number of entries (not bytes, not unused).
bool has_capacity(std::uint32_t type) {
  return !unlistable_type(type);
}

unsigned possible_cpus() {
  const int cpus = libbpf_num_possible_cpus();
  if (cpus <= 0) throw std::runtime_error("cannot count the possible CPUs");
  return static_cast<unsigned>(cpus);
}

bool all_zero(const Bytes &bytes) {
  return std::all_of(bytes.begin(), bytes.end(), [](std::uint8_t b) { return b == 0; });
}

struct MapFacts {
  std::uint32_t type = 0, key_size = 0, value_size = 0, max_entries = 0;
};

std::optional<MapFacts> facts_of(int fd) {
  bpf_map_info info{};
  std::uint32_t len = sizeof(info);
  if (bpf_obj_get_info_by_fd(fd, &info, &len) != 0) return std::nullopt;
  return MapFacts{info.type, info.key_size, info.value_size, info.max_entries};
}

// Walks the keys of a map with get_next_key, at most `cap` of them (0: no cap). fn returns false
// to stop. Returns 0, or the errno of a failed step.
int walk_keys(int fd, std::uint32_t key_size, std::uint64_t cap,
              const std::function<bool(const Bytes &)> &fn) {
  Bytes key(std::max<std::uint32_t>(key_size, 1)), next(key.size());
  bool first = true;
  for (std::uint64_t seen = 0; cap == 0 || seen < cap; ++seen) {
    if (bpf_map_get_next_key(fd, first ? nullptr : key.data(), next.data()) != 0)
      return errno == ENOENT ? 0 : errno;
    first = false;
    key.swap(next);
    if (!fn(key)) return 0;
  }
  return 0;
}

}  // namespace

std::uint64_t map_memlock(int fd) {
  std::ifstream in(fmt::format("/proc/self/fdinfo/{}", fd));
  for (std::string line; std::getline(in, line);) {
    constexpr std::string_view kLabel = "memlock:";
    if (line.rfind(kLabel, 0) == 0) {
      try {
        return std::stoull(line.substr(kLabel.size()));
      } catch (const std::exception &) {
        return 0;
      }
    }
  }
  return 0;
}

MapInspector::MapInspector(std::vector<loader::MapInfo> maps, std::string pin_dir)
    : pin_dir_(std::move(pin_dir)) {
  for (auto &info : maps) {
    Map map;
    map.info = std::move(info);
    if (map.info.id != 0) map.fd.reset(bpf_map_get_fd_by_id(map.info.id));
    if (map.fd.valid()) {
      if (auto facts = facts_of(map.fd.get())) {
        map.kernel_type = facts->type;
        map.key_size = facts->key_size;
        map.value_size = facts->value_size;
        map.max_entries = facts->max_entries;
      } else {
        map.fd.reset();
      }
    }
    if (!map.fd.valid()) map.max_entries = map.info.max_entries;
    maps_.push_back(std::move(map));
  }
}

MapInspector::~MapInspector() = default;
MapInspector::MapInspector(MapInspector &&) noexcept = default;
MapInspector &MapInspector::operator=(MapInspector &&) noexcept = default;

v1::BpfMap MapInspector::describe(const Map &map) const {
  v1::BpfMap out;
  out.set_name(map.info.name);
  out.set_id(map.info.id);
  const char *type = map.fd.valid()
                         ? libbpf_bpf_map_type_str(static_cast<bpf_map_type>(map.kernel_type))
                         : nullptr;
  out.set_type(type ? type : map.info.type);
  out.set_key_size(map.key_size);
  out.set_value_size(map.value_size);
  out.set_max_entries(map.fd.valid() && !has_capacity(map.kernel_type) ? 0 : map.max_entries);
  out.set_holds(map_holds(map.info.name));
  if (!pin_dir_.empty()) {
    std::error_code error;
    const auto pin = std::filesystem::path(pin_dir_) / map.info.name;
    if (std::filesystem::exists(pin, error)) out.set_pin(pin.string());
  }
  if (map.fd.valid()) out.set_memory_bytes(map_memlock(map.fd.get()));
  return out;
}

namespace {

std::size_t value_buffer_size(std::uint32_t type, std::uint32_t value_size, unsigned cpus) {
  if (per_cpu_type(type)) return (value_size + 7) / 8 * 8 * cpus;
  return std::max<std::uint32_t>(value_size, 1);
}

// Visits what list() counts and dump() lists: fn(key, value) per entry in use. Returns 0, or the
// errno of the step that failed.
int visit(int fd, std::uint32_t type, std::uint32_t key_size, std::uint32_t value_size,
          std::uint32_t max_entries, unsigned cpus,
          const std::function<void(const Bytes &, const Bytes &)> &fn) {
  Bytes value(value_buffer_size(type, value_size, cpus));
  if (array_type(type) || type == BPF_MAP_TYPE_ARRAY_OF_MAPS) {
    Bytes key(sizeof(std::uint32_t));
    for (std::uint32_t i = 0; i < max_entries; ++i) {
      std::memcpy(key.data(), &i, sizeof(i));
      std::fill(value.begin(), value.end(), 0);
      if (bpf_map_lookup_elem(fd, key.data(), value.data()) != 0) {
        if (errno == ENOENT) continue;  // an unbound slot
        return errno;
      }
      if (all_zero(value)) continue;
      fn(key, value);
    }
    return 0;
  }
  return walk_keys(fd, key_size, max_entries, [&](const Bytes &key) {
    if (bpf_map_lookup_elem(fd, key.data(), value.data()) == 0) fn(key, value);
    return true;  // a key deleted since get_next_key: skipped
  });
}

// The inner map id an ARRAY_OF_MAPS lookup answers.
std::uint32_t inner_id_of(const Bytes &value) {
  std::uint32_t id = 0;
  std::memcpy(&id, value.data(), std::min<std::size_t>(value.size(), sizeof(id)));
  return id;
}

}  // namespace

v1::ListMapsResponse MapInspector::list() const {
  v1::ListMapsResponse out;
  const unsigned cpus = possible_cpus();
  std::uint64_t total = 0;
  for (const auto &map : maps_) {
    v1::BpfMap view = describe(map);
    if (map.fd.valid() && !unlistable_type(map.kernel_type)) {
      std::uint64_t entries = 0, inner_memory = 0;
      const int error = visit(map.fd.get(), map.kernel_type, map.key_size, map.value_size,
                              map.max_entries, cpus, [&](const Bytes &, const Bytes &value) {
                                ++entries;
                                if (map.kernel_type != BPF_MAP_TYPE_ARRAY_OF_MAPS) return;
                                UniqueFd inner(bpf_map_get_fd_by_id(inner_id_of(value)));
                                if (inner.valid()) inner_memory += map_memlock(inner.get());
                              });
      if (error == 0) {
        view.set_entries(entries);
        view.set_entries_known(true);
        view.set_memory_bytes(view.memory_bytes() + inner_memory);
      }
    }
    total += view.memory_bytes();
    *out.add_maps() = std::move(view);
  }
  out.set_memory_bytes(total);
  return out;
}

v1::DumpMapResponse MapInspector::dump(const std::string &name, std::uint32_t limit,
                                       const Names &names) const {
  const auto it = std::find_if(maps_.begin(), maps_.end(),
                               [&](const Map &map) { return map.info.name == name; });
  if (it == maps_.end())
    throw std::out_of_range(
        fmt::format("no map {} on this node; `meshctl bpf maps` lists them", name));
  const Map &map = *it;
  if (!map.fd.valid())
    throw std::runtime_error(fmt::format("map {} (id {}) cannot be opened", name, map.info.id));
  if (limit == 0) limit = kDefaultLimit;

  v1::DumpMapResponse out;
  *out.mutable_map() = describe(map);
  const std::string reason = unlistable_type(map.kernel_type)
                                 ? not_listable_reason(name, out.map().type(), map.max_entries)
                                 : "";
  if (unlistable_type(map.kernel_type)) {
    // No entries to list: one entry without a key says why (docs/meshctl.md, `bpf dump`).
    auto *entry = out.add_entries();
    entry->set_value(reason.empty() ? fmt::format("{} cannot be listed from user space", name)
                                    : reason);
    return out;
  }

  const unsigned cpus = possible_cpus();
  const bool percpu = per_cpu_type(map.kernel_type);
  std::uint64_t total = 0, inner_memory = 0;
  const int error =
      visit(map.fd.get(), map.kernel_type, map.key_size, map.value_size, map.max_entries, cpus,
            [&](const Bytes &key, const Bytes &value) {
              ++total;
              UniqueFd inner;
              if (map.kernel_type == BPF_MAP_TYPE_ARRAY_OF_MAPS) {
                inner.reset(bpf_map_get_fd_by_id(inner_id_of(value)));
                if (inner.valid()) inner_memory += map_memlock(inner.get());
              }
              if (static_cast<std::uint64_t>(out.entries_size()) >= limit) return;
              RawEntry raw{.key = key, .value = value, .cpus = percpu ? cpus : 0u, .inner = {}};
              Bytes inner_value;
              if (inner.valid()) {
                if (auto facts = facts_of(inner.get())) {
                  inner_value.resize(facts->value_size);
                  const std::uint32_t zero = 0;
                  if (bpf_map_lookup_elem(inner.get(), &zero, inner_value.data()) == 0)
                    raw.inner = inner_value;
                }
              }
              const EntryText text = decode_entry(name, raw, names);
              auto *entry = out.add_entries();
              entry->set_key(text.key);
              entry->set_value(text.value);
            });
  if (error != 0)
    throw std::runtime_error(fmt::format("read map {}: {}", name, std::strerror(error)));
  out.mutable_map()->set_memory_bytes(out.map().memory_bytes() + inner_memory);
  out.mutable_map()->set_entries(total);
  out.mutable_map()->set_entries_known(true);
  out.set_total(total);
  out.set_truncated(total > static_cast<std::uint64_t>(out.entries_size()));
  return out;
}

}  // namespace sockmesh::telemetry
