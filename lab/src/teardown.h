// Removing a lab: everything that carries its run id, whether or not the state file lists it.
#pragma once

#include <string>
#include <vector>

namespace sockmesh::lab {

// Kills the lab's processes, removes its cgroups, netns, pin dirs and run dirs, then its state file. Idempotent;
// safe to run from two processes at once. Returns what could not be removed ("" entries never); when that list
// is non-empty the state file is kept so that a later down or gc retries.
std::vector<std::string> teardown_run(const std::string& run_id);

// Creates dir and its missing parents; retries when a concurrent teardown removes a parent meanwhile.
void make_cgroup_dir(const std::string& dir);

}  // namespace sockmesh::lab
