#include "maglev/maglev.h"

#include <algorithm>
#include <numeric>
#include <stdexcept>

#include "sockmesh/lb_maps.h"

namespace sockmesh::maglev {
namespace {

constexpr uint64_t kFnvOffsetBasis = 0xcbf29ce484222325;
constexpr uint64_t kFnvPrime = 0x100000001b3;
constexpr size_t kMaxBackends = 255;
// Marks a slot nobody owns yet; indices are at most kMaxBackends - 1.
constexpr uint8_t kUnowned = 255;

// A backend's walk through its preference list: slot (offset + j * skip) % size for j = 0, 1, ...
// With size prime and 0 < skip < size, the walk visits every slot once per size steps.
struct Walk {
  uint8_t index;    // into the caller's backends
  uint32_t weight;  // > 0
  uint32_t slot;    // next preference
  uint32_t skip;
  uint64_t credit;  // weight accumulated and not yet spent on a slot
};

void validate(const std::vector<Backend> &backends, uint32_t size) {
  if (!is_prime(size))
    throw std::invalid_argument("maglev: table size must be a prime, got " + std::to_string(size));
  if (size > SM_MAGLEV_MAX_SIZE)
    throw std::invalid_argument("maglev: table size must be at most " +
                                std::to_string(SM_MAGLEV_MAX_SIZE) + " (the kernel's bound), got " +
                                std::to_string(size));
  if (backends.size() > kMaxBackends)
    throw std::invalid_argument("maglev: at most " + std::to_string(kMaxBackends) +
                                " backends fit a table of byte indices, got " +
                                std::to_string(backends.size()));
  if (std::none_of(backends.begin(), backends.end(), [](const Backend &b) { return b.weight > 0; }))
    throw std::invalid_argument("maglev: no backend has a weight > 0 (" +
                                std::to_string(backends.size()) + " backends)");
}

// Backends with weight > 0, ordered by id: the order in which they take turns, so that a table
// does not depend on the order the caller lists them in.
std::vector<Walk> walks_by_id(const std::vector<Backend> &backends, uint32_t size) {
  std::vector<uint8_t> order(backends.size());
  std::iota(order.begin(), order.end(), uint8_t{0});
  std::sort(order.begin(), order.end(),
            [&](uint8_t a, uint8_t b) { return backends[a].id < backends[b].id; });
  std::vector<Walk> walks;
  for (size_t k = 0; k < order.size(); k++) {
    const Backend &backend = backends[order[k]];
    if (k > 0 && backends[order[k - 1]].id == backend.id)
      throw std::invalid_argument("maglev: backend id \"" + backend.id + "\" appears twice (at " +
                                  std::to_string(std::min(order[k - 1], order[k])) + " and " +
                                  std::to_string(std::max(order[k - 1], order[k])) + ")");
    if (backend.weight == 0) continue;
    walks.push_back(Walk{
        .index = order[k],
        .weight = backend.weight,
        .slot = uint32_t(id_hash(backend.id, kOffsetSeed) % size),
        .skip = uint32_t(id_hash(backend.id, kSkipSeed) % (size - 1) + 1),
        .credit = 0,
    });
  }
  return walks;
}

}  // namespace

uint64_t id_hash(std::string_view id, uint64_t seed) {
  uint64_t h = kFnvOffsetBasis ^ seed;
  for (unsigned char c : id) {
    h ^= c;
    h *= kFnvPrime;
  }
  return sm_maglev_mix64(h);
}

bool is_prime(uint32_t n) {
  if (n < 2) return false;
  if (n % 2 == 0) return n == 2;
  for (uint64_t d = 3; d * d <= n; d += 2)
    if (n % d == 0) return false;
  return true;
}

// Weighted turns (the scheme of Katran's MaglevHashV2): in every round each backend adds its
// weight to its credit, and a backend whose credit reaches the largest weight spends that much to
// claim its next preferred free slot. The heaviest backend claims once per round, so the table
// fills in at most `size` rounds; after R rounds backend b has claimed floor(R * w_b / w_max)
// slots, so every share is proportional to weight up to the last, partial round (a few slots).
// With equal weights this is the paper's round-robin fill.
std::vector<uint8_t> build_table(const std::vector<Backend> &backends, uint32_t size) {
  validate(backends, size);
  std::vector<Walk> walks = walks_by_id(backends, size);
  uint64_t max_weight = 0;
  for (const Walk &w : walks) max_weight = std::max<uint64_t>(max_weight, w.weight);

  std::vector<uint8_t> table(size, kUnowned);
  uint32_t filled = 0;
  for (;;) {
    for (Walk &w : walks) {
      w.credit += w.weight;
      if (w.credit < max_weight) continue;
      w.credit -= max_weight;
      // A free slot is ahead: the walk covers every slot and filled < size.
      while (table[w.slot] != kUnowned) w.slot = (w.slot + w.skip) % size;
      table[w.slot] = w.index;
      w.slot = (w.slot + w.skip) % size;
      if (++filled == size) return table;
    }
  }
}

}  // namespace sockmesh::maglev
