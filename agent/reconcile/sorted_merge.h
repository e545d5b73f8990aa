// The merge of a map's desired content into the kernel, shared by the agent's map writers
// (capture, fast path): both sides sorted by key, and only the differences written.
#pragma once

#include <vector>

#include "reconcile/capture_maps.h"

namespace sockmesh::reconcile {

// Writes the merge of `desired` (sorted, unique) into a map mirrored by `have` (sorted): changed
// and new entries, then deletions. KeyOf, Less and Same (of two values) describe the entry type.
template <typename Entry, typename KeyOf, typename Less, typename Same, typename Write,
          typename Remove>
CaptureSyncStats sorted_merge(const std::vector<Entry> &have, const std::vector<Entry> &desired,
                              KeyOf key_of_entry, Less less, Same same_value, Write write,
                              Remove remove) {
  CaptureSyncStats stats;
  std::vector<const Entry *> gone;
  size_t i = 0, j = 0;
  while (i < have.size() || j < desired.size()) {
    if (j == desired.size() ||
        (i < have.size() && less(key_of_entry(have[i]), key_of_entry(desired[j])))) {
      gone.push_back(&have[i++]);
    } else if (i == have.size() || less(key_of_entry(desired[j]), key_of_entry(have[i]))) {
      write(desired[j++]);
      stats.written++;
    } else {
      if (same_value(have[i].value, desired[j].value)) {
        stats.unchanged++;
      } else {
        write(desired[j]);
        stats.written++;
      }
      i++;
      j++;
    }
  }
  for (const Entry *entry : gone) {
    remove(*entry);
    stats.removed++;
  }
  return stats;
}

}  // namespace sockmesh::reconcile
