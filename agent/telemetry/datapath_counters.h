// The kernel's global counters (enum sm_counter in bpf/include/sockmesh/counters.h), summed over
// CPUs, with their display names.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace sockmesh::telemetry {

// Name of counter `index` ("connect_balanced", …), in the order of enum sm_counter.
const char *counter_name(uint32_t index);

// Reads the PERCPU_ARRAY sm_counters. Throws std::runtime_error on a failed read.
std::vector<std::pair<std::string, uint64_t>> read_datapath_counters(int counters_fd);

}  // namespace sockmesh::telemetry
