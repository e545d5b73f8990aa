// The two ends of a connect sample, each run inside a lab pod: a client that times connect() to a
// list of addresses, and a server that accepts and closes (docs/benchmarks.md "Measurement").
#pragma once

#include <netinet/in.h>

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace sockmesh::bench {

// What one sample measured, in the pod it ran in.
struct SampleStats {
  long connects = 0;  // timed connects that succeeded
  long failures = 0;  // timed connects that failed
  int first_errno = 0;
  double p50_us = 0, p90_us = 0, p99_us = 0, p999_us = 0, mean_us = 0, min_us = 0, max_us = 0;
  double wall_s = 0;  // the timed part, socket to close
  // Deltas over the sample in the pod's netns: a SYN dropped by a full accept queue or conntrack
  // table costs a 1 s retransmit and would pollute the tail.
  long listen_overflows = 0;   // TcpExtListenOverflows
  long conntrack_drops = 0;    // nf_conntrack stat drop + early_drop + insert_failed
  long conntrack_entries = 0;  // nf_conntrack_count at the end
};

void to_json(nlohmann::json& out, const SampleStats& s);
void from_json(const nlohmann::json& in, SampleStats& s);

// For each address in order: socket(), connect() (timed from before socket() to connect()'s return),
// then close() with SO_LINGER {1, 0} so that no TIME_WAIT piles up. The first `warmup` addresses
// are connected to the same way but not counted.
SampleStats time_connects(const std::vector<sockaddr_in>& targets, size_t warmup);

// Listens on 0.0.0.0:port and closes every connection it accepts, until killed. Returns only on an
// error (with a message on stderr), non-zero.
int serve_accept_close(uint16_t port);

}  // namespace sockmesh::bench
