// Ctrl-C as a request, not a kill: a watch ends cleanly and a call in flight is cancelled.
#pragma once

#include <stop_token>

namespace sockmesh::cli {

// Blocks SIGINT and SIGTERM in the calling thread and in every thread it starts later, and takes
// them in a thread of its own: the first requests a stop on the returned token, a second ends the
// process at once (exit 128 + signal). Call first thing in main(), before any other thread starts.
std::stop_token stop_on_signals();

}  // namespace sockmesh::cli
