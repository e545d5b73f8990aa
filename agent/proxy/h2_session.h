// An HTTP/2 connection (nghttp2) over a TlsChannel, the same for both tunnel ends: settings and
// windows from TunnelLimits, frames batched into TLS writes, and a table of streams whose bytes
// are handled by H2Stream implementations (TunnelStream). Windows are reopened only when a
// stream says its bytes were written out (consume()), never automatically.
//
// Threading: every call and callback runs on the TLS socket's executor (the tunnel's strand).
// nghttp2 callbacks may call back into the session (consume, reset_stream, resume_send, submit_*);
// the writes they cause are sent once the callback returns.
#pragma once

#include <sys/types.h>

#include <asio/steady_timer.hpp>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "proxy/tls_channel.h"
#include "proxy/tunnel_limits.h"

struct nghttp2_session;

namespace sockmesh::proxy {

// Error code handed to H2Stream::on_closed when the connection went away under the stream
// (outside HTTP/2's codes, which fit in 16 bits in practice).
constexpr uint32_t kConnectionLost = 0x10000;

// The bytes of one HTTP/2 stream.
class H2Stream {
 public:
  virtual ~H2Stream() = default;
  // Client: the response's :status (0 when absent).
  virtual void on_response(int status) = 0;
  // DATA payload. The session has not consumed it: the stream calls consume() when it has
  // written (or dropped) these bytes.
  virtual void on_data(const uint8_t *data, size_t n) = 0;
  // END_STREAM arrived: the peer sends nothing more.
  virtual void on_remote_end() = 0;
  // The stream left the session. 0 (NO_ERROR) when both sides ended it; otherwise the RST_STREAM
  // code (sent or received) or kConnectionLost.
  virtual void on_closed(uint32_t error_code) = 0;
  // Data provider: how many bytes (<= max) can be sent now, -1 when none yet (the stream calls
  // resume_send() when there are); *last is set when no byte follows them (END_STREAM).
  virtual ssize_t ready_to_send(size_t max, bool *last) = 0;
  // Copies n bytes (what ready_to_send offered) to out and drops them.
  virtual void take(uint8_t *out, size_t n) = 0;
};

// The request header in which the outbound agent says how long the inbound agent's connect to
// the destination may take, in milliseconds (docs/tunnel.md, "Request and response").
inline constexpr std::string_view kConnectTimeoutHeader = "sockmesh-connect-timeout-ms";

// The pseudo-headers of a request (server side), and the headers the tunnel knows.
struct H2Request {
  std::string method;
  std::string authority;
  std::string scheme;
  std::string path;
  std::string protocol;
  std::string connect_timeout;  // kConnectTimeoutHeader's value as sent; empty when absent
};

class H2Session : public std::enable_shared_from_this<H2Session> {
 public:
  enum class Role { kClient, kServer };
  struct Hooks {
    // Server: a request's headers are complete. Calls attach() and later submit_response(), or
    // submit_response() alone to refuse it.
    std::function<void(int32_t stream_id, const H2Request &request)> on_request;
    // A stream left (posted, not called from inside nghttp2). `streams` is the count left.
    std::function<void(size_t streams)> on_stream_closed;
    // The connection is gone (once). Streams were told before.
    std::function<void(const std::string &why)> on_closed;
    // Server: nghttp2 refused the peer a stream over max_concurrent_streams (RST_STREAM
    // REFUSED_STREAM: "stream_limit"), or ends the connection for a protocol violation or a flood
    // (GOAWAY with an error: "h2_" and the code in lower case, e.g. "h2_protocol_error",
    // "h2_enhance_your_calm"). Called from inside nghttp2: count, nothing else.
    std::function<void(const std::string &reason)> on_refused;
  };

  // `idle_timeout`: the session shuts itself down after having no stream this long.
  H2Session(std::shared_ptr<TlsChannel> tls, Role role, const TunnelLimits &limits,
            std::chrono::milliseconds idle_timeout, Hooks hooks);
  ~H2Session();
  H2Session(const H2Session &) = delete;
  H2Session &operator=(const H2Session &) = delete;

  // Sends the preface and settings and starts reading. Call once, after the TLS handshake.
  void start();

  // Client: a CONNECT request for `authority` whose body comes from `stream`, with
  // kConnectTimeoutHeader when `connect_timeout_ms` is not 0. Returns the stream id, or -1 (the
  // session cannot take streams).
  int32_t submit_connect(const std::string &authority, std::shared_ptr<H2Stream> stream,
                         uint32_t connect_timeout_ms = 0);
  // Server: `stream` handles the bytes of request `stream_id`.
  void attach(int32_t stream_id, std::shared_ptr<H2Stream> stream);
  // Server: the response; with_body makes the attached stream the body (the tunnel's other
  // direction), otherwise the response ends the stream.
  void submit_response(int32_t stream_id, int status, bool with_body);
  // The stream has bytes to send again after ready_to_send() returned -1.
  void resume_send(int32_t stream_id);
  // n bytes of the stream's DATA were written out: reopen the windows by that much.
  void consume(int32_t stream_id, size_t n);
  void reset_stream(int32_t stream_id, uint32_t error_code);
  // Client: resets the stream and forgets its H2Stream at once (no on_closed, no more DATA for
  // it): the stream goes on to another attempt elsewhere.
  void abandon(int32_t stream_id, uint32_t error_code);

  // GOAWAY and close once written; streams still open are told kConnectionLost.
  void shutdown();
  // Closes the connection now; streams are told kConnectionLost.
  void abort(const std::string &why);

  size_t streams() const { return streams_.size(); }
  bool open() const { return state_ == State::kOpen; }
  // Client: a new stream may be started (open, and no GOAWAY received).
  bool accepting_streams() const;
  // The peer's SETTINGS_MAX_CONCURRENT_STREAMS (ours until its SETTINGS arrive).
  uint32_t peer_max_streams() const;
  TlsChannel &tls() { return *tls_; }

 private:
  enum class State { kOpen, kClosing, kClosed };
  struct Callbacks;
  friend struct Callbacks;

  void read_loop();
  void flush();
  void finish(const std::string &why);
  void fail_later(const std::string &why);
  void notify_closed(const std::string &why);
  void lose_streams();
  void arm_idle_timer();
  void give_back_unsendable();
  std::shared_ptr<H2Stream> find(int32_t stream_id) const;

  std::shared_ptr<TlsChannel> tls_;
  Role role_;
  TunnelLimits limits_;
  std::chrono::milliseconds idle_timeout_;
  Hooks hooks_;
  nghttp2_session *session_ = nullptr;
  State state_ = State::kOpen;
  std::unordered_map<int32_t, std::shared_ptr<H2Stream>> streams_;
  std::unordered_map<int32_t, H2Request> requests_;  // server: headers being received
  std::unordered_map<int32_t, int> statuses_;        // client: :status being received
  std::unordered_set<int32_t> unsent_;  // client: requests whose HEADERS are not sent yet
  Bytes rbuf_;                          // decrypted bytes handed to nghttp2
  Bytes wbuf_;                          // frames collected for the next TLS write
  bool writing_ = false;                // a TLS write is pending
  bool busy_ = false;                   // inside nghttp2 (no nested send)
  bool flush_again_ = false;            // something wanted a flush while busy_
  asio::steady_timer idle_timer_;
  asio::steady_timer close_timer_;
};

}  // namespace sockmesh::proxy
