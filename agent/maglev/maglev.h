// Maglev lookup tables (Eisenbud et al., NSDI 2016, §3.4), weighted: the agent builds a service's
// table, the kernel indexes it with sm_maglev_position (bpf/include/sockmesh/maglev_hash.h).
// docs/datapath.md "Maglev" has the algorithm, the hash and the measured balance and disruption.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "sockmesh/maglev_hash.h"

namespace sockmesh::maglev {

struct Backend {
  // Stable identity, e.g. "10.78.1.10:8080": it alone decides where the backend lands, so the
  // same id gets the same slots on every node and after restarts. Unique within a table.
  std::string id;
  uint32_t weight;
};

// Seeds of id_hash for a backend's first preferred slot and for the step between its preferences.
inline constexpr uint64_t kOffsetSeed = 0;
inline constexpr uint64_t kSkipSeed = 0x9e3779b97f4a7c15;

// 64-bit FNV-1a over the bytes of id, starting from the FNV offset basis XOR seed, then the
// splitmix64 finalizer (FNV alone mixes its last bytes poorly). Fixed for good: the same id must
// hash alike on every node, compiler and version.
uint64_t id_hash(std::string_view id, uint64_t seed);

bool is_prime(uint32_t n);

// Entry i is the index into `backends` of the backend owning slot i; backends of weight 0 own
// nothing. Each backend owns a share of the slots proportional to its weight (within a few
// slots). The owner of each slot depends on the ids and weights only, not on the order of
// `backends`. Throws std::invalid_argument when size is not a prime or exceeds
// SM_MAGLEV_MAX_SIZE, when there are more than 255 backends, when two share an id, or when none
// has a weight > 0 (the caller handles "no usable backend" separately).
std::vector<uint8_t> build_table(const std::vector<Backend> &backends, uint32_t size);

// The entry the kernel picks for a client (its cgroup id) in a table of table_size entries.
inline uint32_t position(uint64_t client_key, uint32_t table_size) {
  return sm_maglev_position(client_key, table_size);
}

}  // namespace sockmesh::maglev
