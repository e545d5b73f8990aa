#include "proxy/h2_session.h"

#include <nghttp2/nghttp2.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <asio/error.hpp>
#include <asio/post.hpp>
#include <cctype>
#include <cstring>
#include <stdexcept>
#include <string_view>

namespace sockmesh::proxy {

namespace {

std::string_view view(const uint8_t *p, size_t n) {
  return {reinterpret_cast<const char *>(p), n};
}

nghttp2_nv header(std::string_view name, std::string_view value) {
  return nghttp2_nv{reinterpret_cast<uint8_t *>(const_cast<char *>(name.data())),
                    reinterpret_cast<uint8_t *>(const_cast<char *>(value.data())), name.size(),
                    value.size(), NGHTTP2_NV_FLAG_NONE};
}

// How long a closing connection waits for the peer's end of TLS before closing the socket.
constexpr std::chrono::seconds kCloseLinger{2};

}  // namespace

// nghttp2's C callbacks, with access to the session.
struct H2Session::Callbacks {
  static H2Session &of(void *user_data) { return *static_cast<H2Session *>(user_data); }

  static ssize_t send(nghttp2_session *, const uint8_t *data, size_t length, int, void *user_data) {
    H2Session &s = of(user_data);
    if (s.wbuf_.size() >= s.limits_.write_batch) return NGHTTP2_ERR_WOULDBLOCK;
    s.wbuf_.append(data, length);
    return static_cast<ssize_t>(length);
  }

  static int send_data(nghttp2_session *, nghttp2_frame *frame, const uint8_t *framehd,
                       size_t length, nghttp2_data_source *, void *user_data) {
    H2Session &s = of(user_data);
    if (s.wbuf_.size() >= s.limits_.write_batch) return NGHTTP2_ERR_WOULDBLOCK;
    auto stream = s.find(frame->hd.stream_id);
    if (!stream) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    size_t padlen = frame->data.padlen;
    size_t at = s.wbuf_.size();
    size_t pad = padlen > 1 ? padlen - 1 : 0;
    s.wbuf_.resize(at + 9 + (padlen > 0 ? 1 : 0) + length + pad);
    std::memcpy(s.wbuf_.data() + at, framehd, 9);
    at += 9;
    if (padlen > 0) s.wbuf_[at++] = static_cast<uint8_t>(padlen - 1);
    stream->take(s.wbuf_.data() + at, length);
    std::memset(s.wbuf_.data() + at + length, 0, pad);
    return 0;
  }

  static ssize_t read_body(nghttp2_session *, int32_t stream_id, uint8_t *, size_t length,
                           uint32_t *data_flags, nghttp2_data_source *, void *user_data) {
    H2Session &s = of(user_data);
    auto stream = s.find(stream_id);
    if (!stream) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    bool last = false;
    ssize_t n = stream->ready_to_send(length, &last);
    if (n < 0) return NGHTTP2_ERR_DEFERRED;
    *data_flags |= NGHTTP2_DATA_FLAG_NO_COPY;
    if (last) *data_flags |= NGHTTP2_DATA_FLAG_EOF;
    return n;
  }

  static int begin_headers(nghttp2_session *, const nghttp2_frame *frame, void *user_data) {
    H2Session &s = of(user_data);
    if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_REQUEST &&
        s.role_ == Role::kServer) {
      s.requests_[frame->hd.stream_id] = H2Request{};
    }
    return 0;
  }

  static int on_header(nghttp2_session *, const nghttp2_frame *frame, const uint8_t *name,
                       size_t namelen, const uint8_t *value, size_t valuelen, uint8_t,
                       void *user_data) {
    H2Session &s = of(user_data);
    if (frame->hd.type != NGHTTP2_HEADERS) return 0;
    std::string_view n = view(name, namelen);
    std::string_view v = view(value, valuelen);
    if (s.role_ == Role::kServer) {
      auto it = s.requests_.find(frame->hd.stream_id);
      if (it == s.requests_.end()) return 0;
      H2Request &r = it->second;
      if (n == ":method") r.method = v;
      if (n == ":authority") r.authority = v;
      if (n == ":scheme") r.scheme = v;
      if (n == ":path") r.path = v;
      if (n == ":protocol") r.protocol = v;
      if (n == kConnectTimeoutHeader) r.connect_timeout = v;
    } else if (n == ":status") {
      int status = 0;
      for (char c : v) status = c >= '0' && c <= '9' ? status * 10 + (c - '0') : -1000;
      s.statuses_[frame->hd.stream_id] = status < 0 ? 0 : status;
    }
    return 0;
  }

  static int frame_recv(nghttp2_session *, const nghttp2_frame *frame, void *user_data) {
    H2Session &s = of(user_data);
    int32_t id = frame->hd.stream_id;
    bool end = (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
    if (frame->hd.type == NGHTTP2_HEADERS) {
      if (s.role_ == Role::kServer && frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
        auto it = s.requests_.find(id);
        if (it != s.requests_.end()) {
          H2Request request = std::move(it->second);
          s.requests_.erase(it);
          if (s.hooks_.on_request) s.hooks_.on_request(id, request);
        }
      } else if (s.role_ == Role::kClient && frame->headers.cat == NGHTTP2_HCAT_RESPONSE) {
        int status = 0;
        if (auto it = s.statuses_.find(id); it != s.statuses_.end()) {
          status = it->second;
          s.statuses_.erase(it);
        }
        if (auto stream = s.find(id)) stream->on_response(status);
      }
    }
    if (end && (frame->hd.type == NGHTTP2_HEADERS || frame->hd.type == NGHTTP2_DATA)) {
      if (auto stream = s.find(id)) stream->on_remote_end();
    }
    if (frame->hd.type == NGHTTP2_SETTINGS && !(frame->hd.flags & NGHTTP2_FLAG_ACK) &&
        s.role_ == Role::kClient) {
      s.give_back_unsendable();
    }
    return 0;
  }

  static int frame_send(nghttp2_session *, const nghttp2_frame *frame, void *user_data) {
    H2Session &s = of(user_data);
    if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
      s.unsent_.erase(frame->hd.stream_id);
    }
    // A server never refuses a stream itself (it answers a status): these come from nghttp2
    // holding the peer to the limits and the protocol.
    if (s.role_ == Role::kServer && s.hooks_.on_refused) {
      if (frame->hd.type == NGHTTP2_RST_STREAM &&
          frame->rst_stream.error_code == NGHTTP2_REFUSED_STREAM) {
        s.hooks_.on_refused("stream_limit");
      } else if (frame->hd.type == NGHTTP2_GOAWAY && frame->goaway.error_code != NGHTTP2_NO_ERROR) {
        std::string reason = std::string("h2_") + nghttp2_http2_strerror(frame->goaway.error_code);
        std::transform(reason.begin(), reason.end(), reason.begin(),
                       [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
        s.hooks_.on_refused(reason);
      }
    }
    return 0;
  }

  static int data_chunk(nghttp2_session *session, uint8_t, int32_t stream_id, const uint8_t *data,
                        size_t len, void *user_data) {
    H2Session &s = of(user_data);
    if (auto stream = s.find(stream_id)) {
      stream->on_data(data, len);
    } else {
      nghttp2_session_consume(session, stream_id, len);
    }
    return 0;
  }

  static int stream_close(nghttp2_session *, int32_t stream_id, uint32_t error_code,
                          void *user_data) {
    H2Session &s = of(user_data);
    s.requests_.erase(stream_id);
    s.statuses_.erase(stream_id);
    s.unsent_.erase(stream_id);
    auto it = s.streams_.find(stream_id);
    if (it == s.streams_.end()) return 0;
    std::shared_ptr<H2Stream> stream = std::move(it->second);
    s.streams_.erase(it);
    stream->on_closed(error_code);
    if (s.streams_.empty()) s.arm_idle_timer();
    if (s.hooks_.on_stream_closed) {
      asio::post(s.tls_->socket().get_executor(),
                 [self = s.shared_from_this(), left = s.streams_.size()]() {
                   if (self->hooks_.on_stream_closed) self->hooks_.on_stream_closed(left);
                 });
    }
    return 0;
  }
};

H2Session::H2Session(std::shared_ptr<TlsChannel> tls, Role role, const TunnelLimits &limits,
                     std::chrono::milliseconds idle_timeout, Hooks hooks)
    : tls_(std::move(tls)),
      role_(role),
      limits_(limits),
      idle_timeout_(idle_timeout),
      hooks_(std::move(hooks)),
      rbuf_(limits.tls_read_buffer),
      idle_timer_(tls_->socket().get_executor()),
      close_timer_(tls_->socket().get_executor()) {
  nghttp2_session_callbacks *cbs = nullptr;
  nghttp2_option *opt = nullptr;
  if (nghttp2_session_callbacks_new(&cbs) != 0 || nghttp2_option_new(&opt) != 0) {
    nghttp2_session_callbacks_del(cbs);
    throw std::runtime_error("h2: out of memory");
  }
  nghttp2_session_callbacks_set_send_callback(cbs, &Callbacks::send);
  nghttp2_session_callbacks_set_send_data_callback(cbs, &Callbacks::send_data);
  nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, &Callbacks::begin_headers);
  nghttp2_session_callbacks_set_on_header_callback(cbs, &Callbacks::on_header);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, &Callbacks::frame_recv);
  nghttp2_session_callbacks_set_on_frame_send_callback(cbs, &Callbacks::frame_send);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, &Callbacks::data_chunk);
  nghttp2_session_callbacks_set_on_stream_close_callback(cbs, &Callbacks::stream_close);
  // Windows reopen only for bytes written out (consume()): end-to-end backpressure.
  nghttp2_option_set_no_auto_window_update(opt, 1);
  nghttp2_option_set_peer_max_concurrent_streams(opt, limits_.max_concurrent_streams);
  int rv = role_ == Role::kClient ? nghttp2_session_client_new2(&session_, cbs, this, opt)
                                  : nghttp2_session_server_new2(&session_, cbs, this, opt);
  nghttp2_session_callbacks_del(cbs);
  nghttp2_option_del(opt);
  if (rv != 0) throw std::runtime_error(std::string("h2: ") + nghttp2_strerror(rv));
}

H2Session::~H2Session() {
  nghttp2_session_del(session_);
}

void H2Session::start() {
  std::vector<nghttp2_settings_entry> settings{
      {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, limits_.max_concurrent_streams},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, limits_.stream_window},
  };
  if (role_ == Role::kClient) settings.push_back({NGHTTP2_SETTINGS_ENABLE_PUSH, 0});
  nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, settings.data(), settings.size());
  nghttp2_session_set_local_window_size(session_, NGHTTP2_FLAG_NONE, 0,
                                        static_cast<int32_t>(limits_.connection_window));
  arm_idle_timer();
  read_loop();
  flush();
}

bool H2Session::accepting_streams() const {
  return state_ == State::kOpen && nghttp2_session_check_request_allowed(session_) != 0;
}

uint32_t H2Session::peer_max_streams() const {
  return nghttp2_session_get_remote_settings(session_, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
}

std::shared_ptr<H2Stream> H2Session::find(int32_t stream_id) const {
  auto it = streams_.find(stream_id);
  return it == streams_.end() ? nullptr : it->second;
}

int32_t H2Session::submit_connect(const std::string &authority, std::shared_ptr<H2Stream> stream,
                                  uint32_t connect_timeout_ms) {
  if (state_ != State::kOpen) return -1;
  const std::string timeout = std::to_string(connect_timeout_ms);
  nghttp2_nv nva[] = {header(":method", "CONNECT"), header(":authority", authority),
                      header(kConnectTimeoutHeader, timeout)};
  nghttp2_data_provider body{};
  body.read_callback = &Callbacks::read_body;
  int32_t id = nghttp2_submit_request(session_, nullptr, nva, connect_timeout_ms != 0 ? 3 : 2,
                                      &body, nullptr);
  if (id < 0) return -1;
  streams_[id] = std::move(stream);
  unsent_.insert(id);
  idle_timer_.cancel();
  flush();
  return id;
}

void H2Session::give_back_unsendable() {
  // Requests submitted before the peer's SETTINGS said how many streams it takes: nghttp2 holds
  // those over the limit until a stream ends, which for a tunnel may be never. They are
  // cancelled here and handed back (REFUSED_STREAM: the stream retries elsewhere).
  uint32_t limit = peer_max_streams();
  size_t sent = streams_.size() - unsent_.size();
  size_t room = sent >= limit ? 0 : limit - sent;
  if (unsent_.size() <= room) return;
  std::vector<int32_t> ids(unsent_.begin(), unsent_.end());
  std::sort(ids.begin(), ids.end());  // nghttp2 sends them in this order: the first `room` go
  for (size_t i = room; i < ids.size(); ++i) {
    int32_t id = ids[i];
    spdlog::debug("tunnel stream={} not sent: the peer takes {} streams", id, limit);
    nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, id, NGHTTP2_REFUSED_STREAM);
    unsent_.erase(id);
    auto it = streams_.find(id);
    if (it == streams_.end()) continue;
    std::shared_ptr<H2Stream> stream = std::move(it->second);
    streams_.erase(it);
    stream->on_closed(NGHTTP2_REFUSED_STREAM);
  }
}

void H2Session::attach(int32_t stream_id, std::shared_ptr<H2Stream> stream) {
  streams_[stream_id] = std::move(stream);
  idle_timer_.cancel();
}

void H2Session::submit_response(int32_t stream_id, int status, bool with_body) {
  if (state_ != State::kOpen) return;
  std::string code = std::to_string(status);
  nghttp2_nv nva[] = {header(":status", code)};
  nghttp2_data_provider body{};
  body.read_callback = &Callbacks::read_body;
  nghttp2_submit_response(session_, stream_id, nva, 1, with_body ? &body : nullptr);
  flush();
}

void H2Session::resume_send(int32_t stream_id) {
  if (state_ != State::kOpen) return;
  if (nghttp2_session_resume_data(session_, stream_id) == 0) flush();
}

void H2Session::consume(int32_t stream_id, size_t n) {
  if (state_ != State::kOpen || n == 0) return;
  nghttp2_session_consume(session_, stream_id, n);
  flush();
}

void H2Session::reset_stream(int32_t stream_id, uint32_t error_code) {
  if (state_ != State::kOpen) return;
  nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, stream_id, error_code);
  flush();
}

void H2Session::abandon(int32_t stream_id, uint32_t error_code) {
  auto it = streams_.find(stream_id);
  if (it == streams_.end()) return;
  streams_.erase(it);
  statuses_.erase(stream_id);
  unsent_.erase(stream_id);  // counted with streams_ (give_back_unsendable)
  if (state_ == State::kOpen) {
    nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, stream_id, error_code);
    flush();
  }
  if (streams_.empty()) arm_idle_timer();
  if (hooks_.on_stream_closed) {
    asio::post(tls_->socket().get_executor(),
               [self = shared_from_this(), left = streams_.size()]() {
                 if (self->hooks_.on_stream_closed) self->hooks_.on_stream_closed(left);
               });
  }
}

void H2Session::shutdown() {
  if (state_ != State::kOpen) return;
  nghttp2_session_terminate_session(session_, NGHTTP2_NO_ERROR);
  flush();
}

void H2Session::abort(const std::string &why) {
  if (state_ == State::kClosed) return;
  state_ = State::kClosed;
  idle_timer_.cancel();
  close_timer_.cancel();
  tls_->close();
  lose_streams();
  notify_closed(why);
}

void H2Session::notify_closed(const std::string &why) {
  if (!hooks_.on_closed) return;
  // Posted: the owner may be inside a call to this session.
  asio::post(tls_->socket().get_executor(),
             [on_closed = std::move(hooks_.on_closed), why]() { on_closed(why); });
  hooks_.on_closed = nullptr;
}

void H2Session::fail_later(const std::string &why) {
  asio::post(tls_->socket().get_executor(),
             [self = shared_from_this(), why]() { self->abort(why); });
}

void H2Session::lose_streams() {
  auto streams = std::move(streams_);
  streams_.clear();
  for (auto &[id, stream] : streams) stream->on_closed(kConnectionLost);
}

void H2Session::read_loop() {
  auto self = shared_from_this();
  tls_->async_read_some(
      asio::buffer(rbuf_.data(), rbuf_.size()), [this, self](const std::error_code &ec, size_t n) {
        if (state_ == State::kClosed) return;
        if (state_ == State::kClosing) {
          // Waiting for the peer's end of TLS; what it still sends is not read any more.
          if (ec) {
            abort("closed");
          } else {
            read_loop();
          }
          return;
        }
        if (ec) {
          abort(ec == asio::error::eof
                    ? "peer closed the connection"
                    : "read: " +
                          (tls_->error_detail().empty() ? ec.message() : tls_->error_detail()));
          return;
        }
        busy_ = true;
        ssize_t rv = nghttp2_session_mem_recv(session_, rbuf_.data(), n);
        busy_ = false;
        if (rv < 0) {
          abort(std::string("h2: ") + nghttp2_strerror(static_cast<int>(rv)));
          return;
        }
        flush();
        if (state_ != State::kClosed) read_loop();
      });
}

void H2Session::flush() {
  if (busy_) {
    flush_again_ = true;
    return;
  }
  if (writing_ || state_ != State::kOpen) return;
  do {
    flush_again_ = false;
    busy_ = true;
    int rv = nghttp2_session_send(session_);
    busy_ = false;
    if (rv != 0) {
      fail_later(std::string("h2: ") + nghttp2_strerror(rv));
      return;
    }
  } while (flush_again_ && wbuf_.size() < limits_.write_batch);
  if (wbuf_.empty()) {
    if (!nghttp2_session_want_read(session_) && !nghttp2_session_want_write(session_)) {
      asio::post(tls_->socket().get_executor(),
                 [self = shared_from_this()]() { self->finish("h2 session ended"); });
    }
    return;
  }
  writing_ = true;
  auto self = shared_from_this();
  // The channel encrypts at once, so the frame buffer is free again; the completion says the
  // ciphertext reached the socket, which is what limits a connection's outgoing memory.
  tls_->async_write(
      asio::buffer(wbuf_.data(), wbuf_.size()), [this, self](const std::error_code &ec) {
        writing_ = false;
        if (state_ == State::kClosed) return;
        if (ec) {
          abort("write: " + (tls_->error_detail().empty() ? ec.message() : tls_->error_detail()));
          return;
        }
        flush();
      });
  wbuf_.clear();
}

void H2Session::finish(const std::string &why) {
  if (state_ != State::kOpen) return;
  state_ = State::kClosing;
  idle_timer_.cancel();
  lose_streams();
  tls_->shutdown();
  auto self = shared_from_this();
  close_timer_.expires_after(kCloseLinger);
  close_timer_.async_wait([this, self](const std::error_code &ec) {
    if (!ec) abort("closed");
  });
  notify_closed(why);
}

void H2Session::arm_idle_timer() {
  if (state_ != State::kOpen) return;
  if (!writing_ && wbuf_.empty()) {
    wbuf_.release();
    tls_->trim();
  }
  if (idle_timeout_.count() <= 0) return;
  auto self = shared_from_this();
  idle_timer_.expires_after(idle_timeout_);
  idle_timer_.async_wait([this, self](const std::error_code &ec) {
    if (!ec && streams_.empty()) shutdown();
  });
}

}  // namespace sockmesh::proxy
