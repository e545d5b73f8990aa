// Teardown on SIGINT/SIGTERM/SIGHUP: the labs this process owns are removed, then the signal is re-raised with
// its previous disposition so the process ends as it would have without the lab.
#pragma once

#include <mutex>
#include <string>

namespace sockmesh::lab {

// Installs the handlers on first use (signals that were ignored stay ignored).
void register_owned_lab(const std::string& run_id);
void unregister_owned_lab(const std::string& run_id);
// Held while a lab of this process is torn down, so that a signal and down() do not interleave.
std::mutex& teardown_mutex();

}  // namespace sockmesh::lab
