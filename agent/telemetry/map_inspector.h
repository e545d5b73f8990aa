// `meshctl bpf maps` and `meshctl bpf dump`: every BPF map of the node with its use and memory,
// and one map's entries decoded into names (map_decode.h). The answers of the admin API's
// ListMaps and DumpMap.
//
// Entries in use, per map type:
//   hash, lru_hash, percpu_hash, ...  keys, counted with bpf_map_get_next_key (an entry deleted
//                                     during the walk can make it restart: the count is capped at
//                                     max_entries and approximate while the map changes)
//   array, percpu_array               elements that are not all zero (on any CPU): an array always
//                                     has max_entries elements, the non-zero ones are those in use
//   array_of_maps                     slots bound to an inner map
//   sk_storage, ringbuf               unknown (entries_known false): the kernel offers no way to
//                                     count them; dump() answers one entry explaining why
// memory_bytes is the kernel's memlock figure (/proc/self/fdinfo); for an array_of_maps it adds
// the memlock of every bound inner map.
//
// dump() lists, in the order the kernel iterates (hash maps) or by index (arrays): the keys of a
// hash, the non-zero elements of an array, the bound slots of an array_of_maps; per-CPU values
// are summed over the CPUs (libbpf_num_possible_cpus), except the round-robin cursors, which are
// shown per CPU. Both calls only read the maps, with buffers of their own: several threads may
// call them at once.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "loader/datapath.h"
#include "sockmesh/common/unique_fd.h"
#include "sockmesh/v1/admin.pb.h"
#include "telemetry/names.h"

namespace sockmesh::telemetry {

class MapInspector {
 public:
  // Default dump() limit (limit 0).
  static constexpr std::uint32_t kDefaultLimit = 1000;

  // Opens every map by id (bpf_map_get_fd_by_id) and keeps the descriptors: the maps stay
  // readable for as long as the inspector lives, whatever happens to their pins. `pin_dir` is
  // where the maps are pinned (Datapath::pin_dir()): BpfMap.pin is <pin_dir>/<name> when that file
  // exists. A map that cannot be opened (id 0, gone) is listed with what MapInfo says and no
  // entries (entries_known false). Lists in the order given.
  MapInspector(std::vector<loader::MapInfo> maps, std::string pin_dir);
  ~MapInspector();
  MapInspector(const MapInspector &) = delete;
  MapInspector &operator=(const MapInspector &) = delete;
  MapInspector(MapInspector &&) noexcept;
  MapInspector &operator=(MapInspector &&) noexcept;

  // Every map with its type, sizes, entries in use, memory, what it holds and its pin; the total
  // memory. A map that cannot be read is listed with entries_known false rather than failing the
  // whole list.
  v1::ListMapsResponse list() const;

  // The entries of map `name` (a name list() shows), at most `limit` (0: kDefaultLimit), decoded
  // with `names`; total is the number of entries in use (as list() counts them), truncated whether
  // some were left out. Throws std::out_of_range("no map X on this node; `meshctl bpf maps` lists
  // them") for an unknown name (the admin API answers NOT_FOUND), std::runtime_error when
  // reading the map fails.
  v1::DumpMapResponse dump(const std::string &name, std::uint32_t limit, const Names &names) const;

 private:
  struct Map {
    loader::MapInfo info;
    UniqueFd fd;
    std::uint32_t kernel_type = 0;  // enum bpf_map_type; 0 when not opened
    std::uint32_t key_size = 0;
    std::uint32_t value_size = 0;
    std::uint32_t max_entries = 0;
  };
  v1::BpfMap describe(const Map &map) const;

  std::vector<Map> maps_;
  std::string pin_dir_;
};

// The kernel's memlock figure for a BPF map fd ("memlock:" of /proc/self/fdinfo/<fd>); 0 when
// it is not there.
std::uint64_t map_memlock(int fd);

}  // namespace sockmesh::telemetry
