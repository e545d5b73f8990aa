// Counters of one tunnel end (TunnelClient or TunnelServer). Stable names, as docs/tunnel.md
// lists them. Written on the tunnel's strand, read from anywhere (stats() takes a snapshot).
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>

namespace sockmesh::proxy {

// A snapshot.
struct TunnelStats {
  uint64_t connections_opened =
      0;  // TLS connections established (client: dialled; server: accepted)
  uint64_t connections_closed = 0;
  uint64_t connections_active = 0;  // gauge
  uint64_t handshakes_failed = 0;   // each also counted in `refusals` with its reason
  uint64_t streams_opened = 0;      // CONNECT streams answered 200
  uint64_t streams_closed = 0;      // ended with both directions finished (END_STREAM each way)
  uint64_t streams_reset = 0;       // ended by a reset from either side (or the connection lost)
  uint64_t streams_refused = 0;     // answered (server) or received (client) with a non-200 status
  uint64_t streams_retried = 0;     // client: refused unprocessed (REFUSED_STREAM), placed again
  uint64_t bytes_to_tunnel = 0;     // read from local TCP sockets into the tunnel
  uint64_t bytes_from_tunnel = 0;   // written from the tunnel to local TCP sockets
  uint64_t pool_hits = 0;           // client: a stream placed on an existing connection
  uint64_t pool_misses = 0;         // client: a stream that needed a new connection
  uint64_t buffered_bytes = 0;      // gauge: data held in stream buffers (TunnelLimits)
  uint64_t buffered_bytes_peak = 0;
  uint64_t buffer_memory = 0;  // gauge: memory of the stream buffers' chunks (data + slack)
  uint64_t buffer_memory_peak = 0;
  // Why peers were refused: pki::reason_name() of the verification failure ("unknown_ca",
  // "expired", ...), "peer_id_mismatch" (client: the node is not who it should be),
  // "handshake_failed" (any other TLS failure), "too_many_connections", "peer_connection_limit"
  // (server); "stream_limit" (server: a stream over max_concurrent_streams, refused with
  // REFUSED_STREAM), "h2_protocol_error" and the other "h2_<error code>" (server: the connection
  // ended with a GOAWAY for a protocol violation or a flood).
  std::map<std::string, uint64_t> refusals;
  // Server: CONNECTs denied by the Authorizer, by the rule it named.
  std::map<std::string, uint64_t> denials;
  // CONNECT response statuses: sent (server) or received (client).
  std::map<int, uint64_t> responses;
};

// A gauge and its high-water mark.
class Gauge {
 public:
  void add(uint64_t n) {
    uint64_t now = value_.fetch_add(n, std::memory_order_relaxed) + n;
    uint64_t peak = peak_.load(std::memory_order_relaxed);
    while (now > peak && !peak_.compare_exchange_weak(peak, now)) {
    }
  }
  void sub(uint64_t n) { value_.fetch_sub(n, std::memory_order_relaxed); }
  uint64_t value() const { return value_.load(); }
  uint64_t peak() const { return peak_.load(); }

 private:
  std::atomic<uint64_t> value_{0};
  std::atomic<uint64_t> peak_{0};
};

class TunnelCounters {
 public:
  std::atomic<uint64_t> connections_opened{0};
  std::atomic<uint64_t> connections_closed{0};
  std::atomic<uint64_t> handshakes_failed{0};
  std::atomic<uint64_t> streams_opened{0};
  std::atomic<uint64_t> streams_closed{0};
  std::atomic<uint64_t> streams_reset{0};
  std::atomic<uint64_t> streams_refused{0};
  std::atomic<uint64_t> streams_retried{0};
  std::atomic<uint64_t> bytes_to_tunnel{0};
  std::atomic<uint64_t> bytes_from_tunnel{0};
  std::atomic<uint64_t> pool_hits{0};
  std::atomic<uint64_t> pool_misses{0};

  Gauge buffered;       // data in stream buffers
  Gauge buffer_memory;  // their chunks' memory

  void refused(const std::string &reason) {
    std::lock_guard lock(mutex_);
    ++refusals_[reason];
  }
  void denied(const std::string &rule) {
    std::lock_guard lock(mutex_);
    ++denials_[rule];
  }
  void response(int status) {
    std::lock_guard lock(mutex_);
    ++responses_[status];
  }

  TunnelStats snapshot() const {
    TunnelStats s;
    s.connections_opened = connections_opened.load();
    s.connections_closed = connections_closed.load();
    s.connections_active =
        s.connections_opened - std::min(s.connections_opened, s.connections_closed);
    s.handshakes_failed = handshakes_failed.load();
    s.streams_opened = streams_opened.load();
    s.streams_closed = streams_closed.load();
    s.streams_reset = streams_reset.load();
    s.streams_refused = streams_refused.load();
    s.streams_retried = streams_retried.load();
    s.bytes_to_tunnel = bytes_to_tunnel.load();
    s.bytes_from_tunnel = bytes_from_tunnel.load();
    s.pool_hits = pool_hits.load();
    s.pool_misses = pool_misses.load();
    s.buffered_bytes = buffered.value();
    s.buffered_bytes_peak = buffered.peak();
    s.buffer_memory = buffer_memory.value();
    s.buffer_memory_peak = buffer_memory.peak();
    std::lock_guard lock(mutex_);
    s.refusals = refusals_;
    s.denials = denials_;
    s.responses = responses_;
    return s;
  }

 private:
  mutable std::mutex mutex_;
  std::map<std::string, uint64_t> refusals_;
  std::map<std::string, uint64_t> denials_;
  std::map<int, uint64_t> responses_;
};

}  // namespace sockmesh::proxy
