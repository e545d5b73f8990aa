// The limits of the node-to-node tunnel (docs/tunnel.md): HTTP/2 flow-control windows, buffer
// sizes, timeouts. One struct shared by both ends, so that the memory a stream or a connection
// may hold is computed from the same numbers the code uses.
//
// Memory per stream (both ends hold one TunnelStream per application connection):
//   towards the tunnel:  at most `stream_send_buffer` bytes read from the TCP socket and not yet
//                        framed (the socket is not read while the buffer is full);
//   out of the tunnel:   at most `stream_window` bytes received and not yet written to the TCP
//                        socket (the window is only reopened, nghttp2_session_consume(), for
//                        bytes the socket took, so the peer cannot send more);
//   plus allocation slack of at most two `read_chunk`s per direction (ByteQueue).
// Memory per connection: the fixed TLS/HTTP/2 buffers (`fixed_connection_bytes()`), plus the
// streams' buffers, where the sum of the out-of-tunnel buffers is also bounded by
// `connection_window`, plus OpenSSL's state (record buffers are released when empty) and
// nghttp2's (well under 1 KiB per stream, a 4 KiB HPACK table each way).
// docs/tunnel.md works the numbers out for the defaults.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>

namespace sockmesh::proxy {

struct TunnelLimits {
  // SETTINGS_INITIAL_WINDOW_SIZE: bytes a peer may send on one stream before we have written
  // them out; the bound of a stream's out-of-tunnel buffer.
  uint32_t stream_window = 256 * 1024;
  // Connection-level receive window: bound of the sum of all streams' out-of-tunnel buffers on
  // one connection. Streams whose reader is slow hold their share of it, so it is much larger
  // than one stream window (128 stalled streams before the others on the connection wait).
  uint32_t connection_window = 32 * 1024 * 1024;
  // SETTINGS_MAX_CONCURRENT_STREAMS we announce; the client also opens no more than this many
  // streams on one pooled connection (a full connection gets a sibling).
  uint32_t max_concurrent_streams = 1000;
  // Bytes read from a TCP socket and not yet handed to HTTP/2 (per stream).
  size_t stream_send_buffer = 64 * 1024;
  // Size of one stream buffer chunk (a socket read fills up to the buffer's room, over several).
  size_t read_chunk = 16 * 1024;
  // HTTP/2 frames collected before one TLS write (per connection).
  size_t write_batch = 128 * 1024;
  // One socket read of TLS records, and the decrypted bytes handed to nghttp2 at once.
  size_t tls_read_buffer = 64 * 1024;

  // TCP connect to a peer node (client) or to the destination (server; failure answers 504).
  std::chrono::milliseconds connect_timeout{5000};
  // Server: the most a client may ask for in the connect-timeout header (longer requests are
  // cut to it). Larger than connect_timeout, which stands when a client asks nothing: a service
  // may allow its backends more than the default, but no peer may hold a connect for long.
  std::chrono::milliseconds max_connect_timeout{60000};
  // Client: an attempt that asked for a connect timeout gives up this much after it (counted
  // from the attempt's start, the tunnel's dial and handshake included), so that a node that
  // does not answer at all fails the attempt too.
  std::chrono::milliseconds attempt_margin{1000};
  // TLS handshake, both ends.
  std::chrono::milliseconds handshake_timeout{5000};
  // Client: from sending CONNECT to its response (the server's connect_timeout plus margin).
  std::chrono::milliseconds response_timeout{15000};
  // Client: a pooled connection without streams is closed after this long.
  std::chrono::milliseconds idle_timeout{30000};
  // Server: a connection without streams is closed after this long (the client normally closes
  // first; this reclaims connections of clients that went away).
  std::chrono::milliseconds inbound_idle_timeout{300000};
  // Server: TLS connections accepted at once; more are closed at accept and counted.
  size_t max_inbound_connections = 4096;
  // Server: connections from one peer address (handshaking or open); more are closed at accept
  // and counted as peer_connection_limit. A peer agent needs one per source identity and a few
  // siblings for streams beyond max_concurrent_streams; a flood from one address cannot take the
  // whole of max_inbound_connections from the other nodes.
  size_t max_inbound_connections_per_peer = 256;

  // Data one stream may hold in its two buffers (what the buffered-bytes gauge counts).
  size_t stream_buffer_bound() const { return stream_send_buffer + stream_window; }
  // The same with allocation slack: what one stream's buffers may occupy in memory.
  size_t stream_memory_bound() const { return stream_buffer_bound() + 4 * read_chunk; }
  // Per connection with streams, independent of their number: the TLS read (ciphertext +
  // plaintext), and the frame batch with its ciphertext in two buffers (written, being written);
  // a batch passes write_batch by at most one frame and TLS record overhead. A connection without
  // streams gives the write buffers back (two read buffers stay).
  size_t fixed_connection_bytes() const {
    return 2 * tls_read_buffer + 3 * (write_batch + 16 * 1024 + 9 + 1024);
  }
  // The whole bound for one connection carrying `streams` streams.
  size_t connection_memory_bound(size_t streams) const {
    size_t out = streams * (stream_window + 2 * read_chunk);
    if (out > connection_window + streams * 2 * read_chunk) {
      out = connection_window + streams * 2 * read_chunk;
    }
    return fixed_connection_bytes() + out + streams * (stream_send_buffer + 2 * read_chunk);
  }
};

}  // namespace sockmesh::proxy
