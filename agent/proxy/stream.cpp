#include "proxy/stream.h"

#include <nghttp2/nghttp2.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <algorithm>
#include <asio/error.hpp>
#include <asio/post.hpp>

namespace sockmesh::proxy {

const char *outcome_name(StreamEnd::Outcome outcome) {
  switch (outcome) {
    case StreamEnd::Outcome::kClosed:
      return "closed";
    case StreamEnd::Outcome::kReset:
      return "reset";
    case StreamEnd::Outcome::kRefused:
      return "refused";
    case StreamEnd::Outcome::kFailed:
      return "failed";
  }
  return "unknown";
}

TunnelStream::TunnelStream(asio::ip::tcp::socket socket, const TunnelLimits &limits,
                           TunnelCounters &counters, Done done)
    : socket_(std::move(socket)),
      limits_(limits),
      counters_(counters),
      done_(std::move(done)),
      up_(limits.read_chunk, &counters.buffer_memory),
      down_(limits.read_chunk, &counters.buffer_memory),
      response_timer_(socket_.get_executor()) {
  std::error_code ignored;
  if (socket_.is_open()) {
    socket_.set_option(asio::ip::tcp::no_delay(true), ignored);
    socket_.non_blocking(true, ignored);
  }
}

void TunnelStream::start_reading() {
  read_socket();
  watch_socket();
}

void TunnelStream::bind(std::shared_ptr<H2Session> session, int32_t id) {
  session_ = std::move(session);
  id_ = id;
}

void TunnelStream::expect_response_within(std::chrono::milliseconds timeout) {
  response_timer_.expires_after(timeout);
  response_timer_.async_wait(
      [self = shared_from_this(), attempt = attempt_](const std::error_code &ec) {
        // A handler queued before its attempt failed must not fail the next one.
        if (!ec && !self->established_ && self->attempt_ == attempt)
          self->fail_attempt("attempt_timeout", "no CONNECT response in time");
      });
}

void TunnelStream::attempt_deadline(std::chrono::steady_clock::time_point deadline) {
  has_deadline_ = true;
  deadline_ = deadline;
  rearm_deadline();
}

void TunnelStream::rearm_deadline() {
  if (!has_deadline_ || finished_) return;
  response_timer_.expires_at(deadline_);
  response_timer_.async_wait([self = shared_from_this(),
                              attempt = attempt_](const std::error_code &ec) {
    if (!ec && !self->established_ && self->attempt_ == attempt)
      self->fail_attempt("attempt_timeout", "no CONNECT response before the attempt's deadline");
  });
}

void TunnelStream::fail_attempt(const std::string &reason, const std::string &detail) {
  if (finished_) return;
  if (!attempt_hook_ || established_) {
    fail(detail);
    return;
  }
  attempt_failed(0, reason, detail);
}

void TunnelStream::attempt_failed(int status, const std::string &reason,
                                  const std::string &detail) {
  response_timer_.cancel();
  has_deadline_ = false;
  // The stream leaves the session at once: whatever that session still says about this id (its
  // close, late DATA) is not for the next attempt.
  if (session_ && !h2_closed_) session_->abandon(id_, NGHTTP2_CANCEL);
  session_.reset();
  id_ = -1;
  h2_closed_ = false;
  status_ = status;
  ++attempt_;
  // Nothing comes before a 200; a misbehaving peer's bytes are not the next destination's.
  counters_.buffered.sub(down_.clear());
  down_eof_ = false;
  AttemptEnd e;
  e.status = status;
  e.reason = reason;
  e.detail = detail;
  spdlog::debug("tunnel stream attempt failed status={} reason={} detail=\"{}\"", status, reason,
                detail);
  asio::post(socket_.get_executor(), [self = shared_from_this(), e]() mutable {
    e.retry_possible = !self->finished_;
    if (self->attempt_hook_) {
      self->attempt_hook_(self, e);
    } else {
      self->give_up(e);
    }
  });
}

void TunnelStream::give_up(const AttemptEnd &e) {
  if (finished_) return;
  status_ = e.status;
  discard();
  end(e.status != 0 ? StreamEnd::Outcome::kRefused : StreamEnd::Outcome::kFailed, e.detail);
}

void TunnelStream::connected(asio::ip::tcp::socket destination) {
  if (finished_) {
    // The client went away while the destination was being connected: pass the reset on.
    std::error_code ignored;
    destination.set_option(asio::socket_base::linger(true, 0), ignored);
    destination.close(ignored);
    return;
  }
  socket_ = std::move(destination);
  std::error_code ignored;
  socket_.set_option(asio::ip::tcp::no_delay(true), ignored);
  socket_.non_blocking(true, ignored);
  established_ = true;
  counters_.streams_opened++;
  status_ = 200;
  session_->submit_response(id_, 200, true);
  read_socket();
  watch_socket();
  write_socket();
}

void TunnelStream::refused(int status, const std::string &detail) {
  status_ = status;
  counters_.streams_refused++;
  discard();
  end(StreamEnd::Outcome::kRefused, detail);
}

void TunnelStream::fail(const std::string &detail) {
  if (finished_) return;
  discard();
  end(StreamEnd::Outcome::kFailed, detail);
  if (session_ && !h2_closed_) session_->reset_stream(id_, NGHTTP2_CANCEL);
}

void TunnelStream::on_response(int status) {
  if (finished_) return;
  status_ = status;
  counters_.response(status);
  response_timer_.cancel();
  if (status != 200) {
    counters_.streams_refused++;
    if (attempt_hook_ && (status == 502 || status == 503 || status == 504)) {
      // The destination refused or did not answer: another one may.
      attempt_failed(status, status == 504 ? "connect_timeout" : "connect_refused",
                     "CONNECT answered " + std::to_string(status));
      return;
    }
    discard();
    end(StreamEnd::Outcome::kRefused, "CONNECT answered " + std::to_string(status));
    if (!h2_closed_) session_->reset_stream(id_, NGHTTP2_CANCEL);
    return;
  }
  established_ = true;
  counters_.streams_opened++;
  if (attempt_hook_) {
    AttemptEnd e;
    e.connected = true;
    e.status = status;
    asio::post(socket_.get_executor(), [self = shared_from_this(), e]() {
      if (self->attempt_hook_) self->attempt_hook_(self, e);
    });
  }
  session_->resume_send(id_);
  read_socket();
  write_socket();
}

void TunnelStream::on_data(const uint8_t *data, size_t n) {
  if (discarding_ || finished_) {
    session_->consume(id_, n);
    return;
  }
  down_.append(data, n);
  counters_.buffered.add(n);
  schedule_write();
}

void TunnelStream::on_remote_end() {
  down_eof_ = true;
  schedule_write();
}

void TunnelStream::schedule_write() {
  // After the connection's current read is through nghttp2, so that the frames it held become
  // one socket write.
  if (writing_ || write_scheduled_) return;
  write_scheduled_ = true;
  asio::post(socket_.get_executor(), [self = shared_from_this()]() {
    self->write_scheduled_ = false;
    self->write_socket();
  });
}

void TunnelStream::on_closed(uint32_t error_code) {
  h2_closed_ = true;
  response_timer_.cancel();
  if (finished_) return;
  if (error_code == NGHTTP2_REFUSED_STREAM && !established_ && retry_) {
    // Nothing was sent yet (no DATA before the 200): the stream may start over elsewhere.
    Retry retry = std::move(retry_);
    retry_ = nullptr;
    session_.reset();
    id_ = -1;
    h2_closed_ = false;
    counters_.streams_retried++;
    asio::post(socket_.get_executor(), [self = shared_from_this(), retry = std::move(retry)]() {
      if (!self->finished_) retry(self);
    });
    return;
  }
  if (error_code == NGHTTP2_NO_ERROR && up_ended_ && down_eof_) {
    maybe_finish();
    return;
  }
  if (!established_ && attempt_hook_) {
    // Before the response: nothing of the destination reached the application, another
    // destination may take it. session_ no longer knows the stream (h2_closed_).
    attempt_failed(0, "tunnel",
                   error_code == kConnectionLost
                       ? "tunnel connection lost before the CONNECT response"
                       : "stream reset by the peer before its response (HTTP/2 error " +
                             std::to_string(error_code) + ")");
    return;
  }
  discard();
  counters_.streams_reset++;
  end(StreamEnd::Outcome::kReset,
      error_code == kConnectionLost
          ? "tunnel connection lost"
          : "stream reset by the peer (HTTP/2 error " + std::to_string(error_code) + ")");
}

ssize_t TunnelStream::ready_to_send(size_t max, bool *last) {
  if (!established_ || discarding_) return -1;
  if (up_.empty()) {
    if (!up_eof_) return -1;
    *last = true;
    up_ended_ = true;
    return 0;
  }
  size_t n = std::min(max, up_.size());
  if (up_eof_ && n == up_.size()) {
    *last = true;
    up_ended_ = true;
  }
  return static_cast<ssize_t>(n);
}

void TunnelStream::take(uint8_t *out, size_t n) {
  up_.take(out, n);
  counters_.buffered.sub(n);
  read_socket();
}

void TunnelStream::read_socket() {
  if (reading_ || up_eof_ || discarding_ || finished_ || !socket_.is_open()) return;
  size_t held = up_.size();
  if (held >= limits_.stream_send_buffer) return;  // take() reads on
  reading_ = true;
  auto self = shared_from_this();
  if (socket_drained_) {
    // The last read emptied the socket: wait for bytes without holding buffers for them, so
    // that an idle connection costs no memory, then read what is there.
    socket_.async_wait(asio::socket_base::wait_read, [self](const std::error_code &ec) {
      TunnelStream &s = *self;
      s.reading_ = false;
      if (ec || s.discarding_ || s.finished_) {
        s.on_read(ec, 0, 0);
        return;
      }
      size_t room = s.limits_.stream_send_buffer - s.up_.size();
      std::error_code read_ec;
      size_t n = s.socket_.read_some(s.up_.prepare(room), read_ec);  // the socket is non-blocking
      if (read_ec == asio::error::would_block) {
        s.up_.commit(0);
        s.read_socket();
        return;
      }
      s.on_read(read_ec, n, room);
    });
    return;
  }
  size_t room = limits_.stream_send_buffer - held;
  socket_.async_read_some(up_.prepare(room), [self, room](const std::error_code &ec, size_t n) {
    self->reading_ = false;
    self->on_read(ec, n, room);
  });
}

void TunnelStream::on_read(const std::error_code &ec, size_t n, size_t asked) {
  if (discarding_ || finished_) {
    up_.commit(0);
    return;
  }
  up_.commit(n);
  socket_drained_ = n < asked;
  counters_.buffered.add(n);
  counters_.bytes_to_tunnel += n;
  bytes_up_ += n;
  if (ec == asio::error::eof) {
    up_eof_ = true;
  } else if (ec) {
    discard();
    counters_.streams_reset++;
    end(StreamEnd::Outcome::kReset, "local socket read: " + ec.message());
    if (session_ && !h2_closed_) session_->reset_stream(id_, NGHTTP2_CONNECT_ERROR);
    return;
  }
  if (session_ && established_) session_->resume_send(id_);
  read_socket();
}

void TunnelStream::write_socket() {
  if (writing_ || !established_ || discarding_ || finished_) return;
  if (down_.empty()) {
    if (down_eof_ && !down_shut_) {
      down_shut_ = true;
      std::error_code ignored;
      socket_.shutdown(asio::socket_base::shutdown_send, ignored);
    }
    maybe_finish();
    return;
  }
  writing_ = true;
  socket_.async_write_some(down_.front(limits_.stream_window),
                           [self = shared_from_this()](const std::error_code &ec, size_t n) {
                             TunnelStream &s = *self;
                             s.writing_ = false;
                             if (s.discarding_) {
                               s.discard();  // what discard() left for this write's end
                               return;
                             }
                             s.down_.consume(n);
                             s.counters_.buffered.sub(n);
                             s.counters_.bytes_from_tunnel += n;
                             s.bytes_down_ += n;
                             s.session_->consume(s.id_, n);
                             if (ec) {
                               s.discard();
                               s.counters_.streams_reset++;
                               s.end(StreamEnd::Outcome::kReset,
                                     "local socket write: " + ec.message());
                               if (!s.h2_closed_)
                                 s.session_->reset_stream(s.id_, NGHTTP2_CONNECT_ERROR);
                               return;
                             }
                             s.write_socket();
                           });
}

void TunnelStream::watch_socket() {
  // A reset must be seen even when nothing reads or writes the socket: after its EOF, or while
  // reading is paused (buffer full) and nothing comes the other way. Armed once; a completion
  // without error is a hang-up (both directions shut), after which the stream ends anyway.
  if (watching_ || finished_ || !socket_.is_open()) return;
  watching_ = true;
  socket_.async_wait(
      asio::socket_base::wait_error, [self = shared_from_this()](const std::error_code &ec) {
        TunnelStream &s = *self;
        s.watching_ = false;
        if (ec || s.finished_ || !s.socket_.is_open()) return;
        int so_error = 0;
        socklen_t len = sizeof so_error;
        if (getsockopt(s.socket_.native_handle(), SOL_SOCKET, SO_ERROR, &so_error, &len) != 0 ||
            so_error == 0) {
          return;  // a hang-up: both directions are shut, nothing to pass on
        }
        s.discard();
        s.counters_.streams_reset++;
        s.end(StreamEnd::Outcome::kReset,
              "local socket: " + std::error_code(so_error, std::system_category()).message());
        if (s.session_ && !s.h2_closed_) {
          s.session_->reset_stream(s.id_, NGHTTP2_CONNECT_ERROR);
        }
      });
}

void TunnelStream::maybe_finish() {
  if (finished_ || !h2_closed_ || writing_ || !down_.empty() || !down_shut_) return;
  std::error_code ignored;
  socket_.close(ignored);
  counters_.streams_closed++;
  end(StreamEnd::Outcome::kClosed, "");
}

void TunnelStream::discard() {
  discarding_ = true;
  response_timer_.cancel();
  reset_socket();
  size_t up = up_.clear();
  counters_.buffered.sub(up);
  if (writing_) return;  // the write's completion discards the rest
  size_t down = down_.clear();
  counters_.buffered.sub(down);
  if (session_ && down > 0) session_->consume(id_, down);
}

void TunnelStream::reset_socket() {
  if (!socket_.is_open()) return;
  std::error_code ignored;
  socket_.set_option(asio::socket_base::linger(true, 0), ignored);
  socket_.close(ignored);
}

void TunnelStream::end(StreamEnd::Outcome outcome, const std::string &detail) {
  if (finished_) return;
  finished_ = true;
  response_timer_.cancel();
  StreamEnd e;
  e.outcome = outcome;
  e.status = status_;
  e.detail = detail;
  e.bytes_to_tunnel = bytes_up_;
  e.bytes_from_tunnel = bytes_down_;
  spdlog::debug("tunnel stream={} outcome={} status={} to_tunnel={} from_tunnel={} detail=\"{}\"",
                id_, outcome_name(outcome), status_, bytes_up_, bytes_down_, detail);
  if (done_) {
    Done done = std::move(done_);
    done_ = nullptr;
    done(e);
  }
}

}  // namespace sockmesh::proxy
