// What the running kernel offers the data path, probed at start (docs/kernels.md). A required
// feature that is absent stops meshd with an error naming it and the kernel that brings it; an
// optional one that is absent is switched off in the programs through a read-only global, so the
// verifier never sees the code that needs it.
#pragma once

#include <functional>
#include <string>
#include <vector>

namespace sockmesh::loader {

struct Feature {
  std::string name;       // stable, e.g. "attach:cgroup/getpeername4", "helper:bpf_set_retval"
  std::string since;      // the upstream kernel that brought it, e.g. "5.8"
  bool required = false;  // absent => meshd refuses to start
  std::string without;    // optional ones: what degrades when it is absent
  bool present = false;
};

// Probes the running kernel: program and map types, attach types, map flags and helpers the
// programs use. Each probe loads or creates a tiny object and closes it; nothing is attached.
std::vector<Feature> probe_features();

// The probes, without the kernel: each entry of the table with its probe. For tests.
struct FeatureProbe {
  Feature feature;
  std::function<bool()> probe;
};
std::vector<FeatureProbe> feature_table();

// Whether cgroup sock_addr programs (attach type connect4) may call helper `id` on this kernel.
bool sock_addr_has_helper(int id);

// Marks features named in SOCKMESH_HIDE_FEATURES (comma-separated) absent: how the tests prove the
// start-up error on a kernel that has everything. Unknown names are an error (a typo would hide
// nothing and the test would pass for the wrong reason).
void hide_features(std::vector<Feature> &features, const std::string &names);

// "" when every required feature is present; else the start-up error, one line per missing
// feature: `the kernel lacks <name> (Linux <since>+), which sockmesh requires; ...`.
std::string missing_required(const std::vector<Feature> &features);

// Whether an optional feature is present (false for unknown names).
bool has(const std::vector<Feature> &features, const std::string &name);

// The features the same-node fast path needs that are absent (empty: the kernel supports it).
std::vector<std::string> fast_path_missing(const std::vector<Feature> &features);

}  // namespace sockmesh::loader
