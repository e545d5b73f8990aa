// One application TCP connection carried as one HTTP/2 CONNECT stream: the relay between a local
// TCP socket (the application's on the outbound side, the destination's on the inbound side)
// and the stream, in both directions, with TCP's semantics kept across the tunnel:
//   - bytes intact and in order;
//   - half-close: EOF from the socket becomes END_STREAM; END_STREAM from the peer becomes
//     shutdown(SHUT_WR) once everything before it is written; the other direction keeps flowing;
//   - reset: a socket error (ECONNRESET, EPIPE, ...) becomes RST_STREAM(CONNECT_ERROR); an
//     RST_STREAM or a lost connection closes the socket with SO_LINGER{1,0}, so the application
//     sees a reset, not an EOF;
//   - backpressure: the socket is read only while fewer than stream_send_buffer bytes wait for
//     the stream's send window, and the receive window is reopened only for bytes the socket
//     took (H2Session::consume), so a slow reader throttles the writer at the other end.
// Lives on the tunnel's strand, like its session.
#pragma once

#include <asio/ip/tcp.hpp>
#include <asio/steady_timer.hpp>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "proxy/byte_queue.h"
#include "proxy/h2_session.h"
#include "proxy/tunnel_limits.h"
#include "proxy/tunnel_stats.h"

namespace sockmesh::proxy {

struct StreamEnd {
  enum class Outcome {
    kClosed,   // both directions ended with END_STREAM / EOF
    kReset,    // a reset from either side, or the connection was lost
    kRefused,  // the CONNECT was answered with a non-200 status
    kFailed,   // never carried: no tunnel connection, no response, stopped
  };
  Outcome outcome = Outcome::kFailed;
  int status = 0;  // the CONNECT response status, when there was one
  std::string detail;
  uint64_t bytes_to_tunnel = 0;    // read from the local socket
  uint64_t bytes_from_tunnel = 0;  // written to the local socket
};
const char *outcome_name(StreamEnd::Outcome outcome);

// How one attempt of an outbound stream at its destination ended (docs/tunnel.md, "Connect
// timeout and retries").
struct AttemptEnd {
  bool connected = false;  // the CONNECT was answered 200
  int status = 0;          // the response's status; 0 when there was none
  // Why it failed: "connect_refused" (502, 503), "connect_timeout" (504), "attempt_timeout" (no
  // response in time on this side), "tunnel" (the tunnel to the node could not carry it).
  std::string reason;
  std::string detail;
  bool retry_possible = true;  // false: the application or the client went away meanwhile
};

class TunnelStream : public H2Stream, public std::enable_shared_from_this<TunnelStream> {
 public:
  using Done = std::function<void(const StreamEnd &)>;

  // `socket` is the connected application socket (outbound), or an unopened socket that
  // connected() replaces (inbound). `done` is called once, when the stream ends.
  TunnelStream(asio::ip::tcp::socket socket, const TunnelLimits &limits, TunnelCounters &counters,
               Done done);

  // Reads the socket into the stream's buffer (bounded) even before the stream is established.
  void start_reading();
  // The stream got an id on a session.
  void bind(std::shared_ptr<H2Session> session, int32_t id);
  // Outbound: fail unless a response arrives within `timeout`.
  void expect_response_within(std::chrono::milliseconds timeout);
  // Outbound: fail the current attempt unless a response arrives by `deadline`; kept across a
  // REFUSED_STREAM placement (rearm_deadline()).
  void attempt_deadline(std::chrono::steady_clock::time_point deadline);
  bool has_attempt_deadline() const { return has_deadline_; }
  void rearm_deadline();
  // Inbound: the destination is connected; answers 200 and relays.
  void connected(asio::ip::tcp::socket destination);
  // Inbound: answered with `status` and no body (the server sent the response).
  void refused(int status, const std::string &detail);
  // Ends the stream without carrying it further: the local socket is reset and the HTTP/2
  // stream (if any) cancelled.
  void fail(const std::string &detail);
  // Outbound: when the peer refuses the stream unprocessed (REFUSED_STREAM: a GOAWAY crossed it,
  // or the peer's concurrency limit) before it was answered, the stream is unbound and `retry`
  // is called (posted) to place it on another connection, instead of resetting the application.
  // At most once per stream.
  using Retry = std::function<void(const std::shared_ptr<TunnelStream> &)>;
  void retry_if_refused(Retry retry) { retry_ = std::move(retry); }
  bool finished() const { return finished_; }

  // Outbound, retries on other destinations: with a hook, an attempt that fails before the 200
  // (a 502/503/504, no response by the deadline, the tunnel connection failing or lost, the
  // stream reset before its response) does not end the stream. The stream leaves its session,
  // keeps the application's socket and the bytes read from it (nothing was sent: no DATA before
  // the 200), and the hook is called (posted) with the failure; it must then either place the
  // stream again (after next_attempt()) or give_up(). A 200 calls the hook too (posted, with
  // `connected`); its return is then only news.
  using AttemptHook =
      std::function<void(const std::shared_ptr<TunnelStream> &, const AttemptEnd &)>;
  void watch_attempts(AttemptHook hook) { attempt_hook_ = std::move(hook); }
  // Fails the current attempt (as above) when there is a hook and no response yet; otherwise
  // the same as fail().
  void fail_attempt(const std::string &reason, const std::string &detail);
  // Ends the stream after a failed attempt: refused with its status, or failed.
  void give_up(const AttemptEnd &end);
  // Attempts started so far; placements of an older attempt are stale.
  uint32_t attempt() const { return attempt_; }

  // H2Stream
  void on_response(int status) override;
  void on_data(const uint8_t *data, size_t n) override;
  void on_remote_end() override;
  void on_closed(uint32_t error_code) override;
  ssize_t ready_to_send(size_t max, bool *last) override;
  void take(uint8_t *out, size_t n) override;

 private:
  void read_socket();
  void on_read(const std::error_code &ec, size_t n, size_t asked);
  void write_socket();
  void schedule_write();
  void watch_socket();
  void maybe_finish();
  // Drops both buffers (giving the connection window back for dropped received bytes) and
  // resets the socket.
  void discard();
  void reset_socket();
  void end(StreamEnd::Outcome outcome, const std::string &detail);
  void attempt_failed(int status, const std::string &reason, const std::string &detail);

  asio::ip::tcp::socket socket_;
  TunnelLimits limits_;
  TunnelCounters &counters_;
  Done done_;
  Retry retry_;
  AttemptHook attempt_hook_;
  uint32_t attempt_ = 0;
  bool has_deadline_ = false;
  std::chrono::steady_clock::time_point deadline_;
  std::shared_ptr<H2Session> session_;
  int32_t id_ = -1;
  ByteQueue up_;    // socket -> tunnel
  ByteQueue down_;  // tunnel -> socket
  asio::steady_timer response_timer_;
  int status_ = 0;
  uint64_t bytes_up_ = 0;
  uint64_t bytes_down_ = 0;
  bool established_ = false;    // 200 sent (inbound) or received (outbound)
  bool reading_ = false;        // a socket read is pending
  bool socket_drained_ = true;  // the last read got less than it asked: wait before reading
  bool up_eof_ = false;         // the socket said EOF
  bool up_ended_ = false;       // END_STREAM handed to nghttp2
  bool writing_ = false;        // a socket write is pending
  bool write_scheduled_ = false;
  bool down_eof_ = false;    // END_STREAM received
  bool down_shut_ = false;   // shutdown(SHUT_WR) done
  bool watching_ = false;    // waiting for a socket error after EOF
  bool h2_closed_ = false;   // the session no longer knows the stream
  bool discarding_ = false;  // reset or refused: received bytes are dropped
  bool finished_ = false;    // done_ was called
};

}  // namespace sockmesh::proxy
