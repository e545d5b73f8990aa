// What a node's agent costs in memory: meshd's resident set and the kernel memory of the node's BPF
// maps (docs/benchmarks.md "Memory").
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace sockmesh::bench {

struct ProcessMemory {
  long rss_kib = 0;  // VmRSS
  long hwm_kib = 0;  // VmHWM, the peak resident set
};

// From /proc/<pid>/status. Throws if the process is gone.
ProcessMemory process_memory(pid_t pid);

// One map, or all inner maps of one map-in-map together.
struct MapMemory {
  std::string name;
  std::string type;        // e.g. "hash", "array_of_maps"
  uint32_t max_entries = 0;
  long maps = 1;           // how many maps this line counts (inner maps are summed)
  uint64_t bytes = 0;      // memlock, as `bpftool map show` reports it (bytes_memlock)
};

struct NodeMapMemory {
  std::vector<MapMemory> maps;  // the node's maps, then one line per inner-map name
  uint64_t total_bytes = 0;
};

// Every map of the node whose pins are under pin_dir: the pinned maps, the maps used by the programs
// behind the pinned links (their .rodata/.bss), and every inner map held by a map-in-map. Sizes are
// the kernel's memlock accounting of each map (fdinfo "memlock").
NodeMapMemory node_map_memory(const std::string& pin_dir);

void to_json(nlohmann::json& out, const ProcessMemory& m);
void to_json(nlohmann::json& out, const MapMemory& m);
void to_json(nlohmann::json& out, const NodeMapMemory& m);

}  // namespace sockmesh::bench
