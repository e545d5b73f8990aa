#include "proxy/tls_channel.h"

#include <openssl/err.h>

#include <asio/error.hpp>
#include <asio/post.hpp>
#include <asio/write.hpp>
#include <stdexcept>

namespace sockmesh::proxy {

namespace {

std::string openssl_errors() {
  std::string out;
  while (unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out;
}

}  // namespace

TlsChannel::TlsChannel(asio::ip::tcp::socket socket, SSL_CTX *context, Role role,
                       size_t read_buffer)
    : socket_(std::move(socket)), in_(read_buffer) {
  ssl_ = SSL_new(context);
  rbio_ = BIO_new(BIO_s_mem());
  wbio_ = BIO_new(BIO_s_mem());
  if (ssl_ == nullptr || rbio_ == nullptr || wbio_ == nullptr) {
    BIO_free(rbio_);
    BIO_free(wbio_);
    SSL_free(ssl_);
    throw std::runtime_error("tls: cannot create a connection: " + openssl_errors());
  }
  // An empty memory BIO means "retry", not end of file.
  BIO_set_mem_eof_return(rbio_, -1);
  BIO_set_mem_eof_return(wbio_, -1);
  SSL_set_bio(ssl_, rbio_, wbio_);
  // OpenSSL's own record buffers go back to the heap whenever they are empty.
  SSL_set_mode(ssl_, SSL_MODE_RELEASE_BUFFERS);
  if (role == Role::kClient) {
    SSL_set_connect_state(ssl_);
  } else {
    SSL_set_accept_state(ssl_);
  }
}

TlsChannel::~TlsChannel() {
  SSL_free(ssl_);
}

bool TlsChannel::peer_sent_no_certificate() const {
  return ERR_GET_LIB(first_ssl_error_) == ERR_LIB_SSL &&
         ERR_GET_REASON(first_ssl_error_) == SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE;
}

std::string handshake_refusal(const TlsChannel &tls, const pki::Verified &peer) {
  // pki reports kNoCertificate whenever it judged nothing; only OpenSSL knows whether the peer
  // really sent an empty certificate message.
  if (peer.reject &&
      (*peer.reject != pki::Reject::kNoCertificate || tls.peer_sent_no_certificate())) {
    return std::string(pki::reason_name(*peer.reject));
  }
  return "handshake_failed";
}

std::error_code TlsChannel::ssl_failure(int ssl_error) {
  if (ssl_error == SSL_ERROR_ZERO_RETURN) return asio::error::eof;
  if (first_ssl_error_ == 0) first_ssl_error_ = ERR_peek_error();
  std::string errors = openssl_errors();
  error_detail_ = errors.empty() ? "SSL error " + std::to_string(ssl_error) : errors;
  return std::make_error_code(std::errc::protocol_error);
}

void TlsChannel::async_handshake(Handler handler) {
  handshake_step(std::move(handler));
}

void TlsChannel::handshake_step(Handler handler) {
  ERR_clear_error();
  int r = SSL_do_handshake(ssl_);
  int err = r == 1 ? SSL_ERROR_NONE : SSL_get_error(ssl_, r);
  if (err == SSL_ERROR_WANT_READ) {
    drain_output();
    auto self = shared_from_this();
    socket_.async_read_some(
        asio::buffer(in_.data(), in_.size()),
        [this, self, handler = std::move(handler)](const std::error_code &ec, size_t n) mutable {
          if (ec) {
            if (error_detail_.empty()) error_detail_ = "handshake: " + ec.message();
            handler(ec);
            return;
          }
          BIO_write(rbio_, in_.data(), static_cast<int>(n));
          handshake_step(std::move(handler));
        });
    return;
  }
  std::error_code failure;
  if (err != SSL_ERROR_NONE) failure = ssl_failure(err);
  // Finished, session tickets or the alert go out before the handshake completes.
  write_waiters_.push_back([handler = std::move(handler), failure](const std::error_code &ec) {
    handler(failure ? failure : ec);
  });
  drain_output();
}

void TlsChannel::async_read_some(asio::mutable_buffer into, ReadHandler handler) {
  read_step(into, std::move(handler));
}

void TlsChannel::read_step(asio::mutable_buffer into, ReadHandler handler) {
  // First whatever OpenSSL can decrypt from ciphertext already received.
  auto *dst = static_cast<uint8_t *>(into.data());
  size_t got = 0;
  std::error_code failure;
  while (got < into.size()) {
    ERR_clear_error();
    int r = SSL_read(ssl_, dst + got, static_cast<int>(into.size() - got));
    if (r > 0) {
      got += static_cast<size_t>(r);
      continue;
    }
    int err = SSL_get_error(ssl_, r);
    if (err != SSL_ERROR_WANT_READ) failure = ssl_failure(err);
    break;
  }
  drain_output();  // post-handshake messages (key updates) may need an answer
  auto self = shared_from_this();
  if (got > 0 || failure) {
    // A failure after data is found again by the next read (OpenSSL keeps its state).
    asio::post(socket_.get_executor(), [self, handler = std::move(handler), got, failure]() {
      handler(got > 0 ? std::error_code() : failure, got);
    });
    return;
  }
  socket_.async_read_some(asio::buffer(in_.data(), in_.size()),
                          [this, self, into, handler = std::move(handler)](
                              const std::error_code &ec, size_t n) mutable {
                            if (ec) {
                              handler(ec, 0);
                              return;
                            }
                            BIO_write(rbio_, in_.data(), static_cast<int>(n));
                            read_step(into, std::move(handler));
                          });
}

void TlsChannel::async_write(asio::const_buffer data, Handler handler) {
  if (!write_error_ && data.size() > 0) {
    ERR_clear_error();
    int r = SSL_write(ssl_, data.data(), static_cast<int>(data.size()));
    if (r <= 0) write_error_ = ssl_failure(SSL_get_error(ssl_, r));
  }
  write_waiters_.push_back(std::move(handler));
  drain_output();
}

void TlsChannel::shutdown() {
  if (!socket_.is_open()) return;
  ERR_clear_error();
  SSL_shutdown(ssl_);
  ERR_clear_error();
  shutdown_after_write_ = true;
  drain_output();
}

void TlsChannel::close() {
  std::error_code ignored;
  socket_.close(ignored);
}

void TlsChannel::trim() {
  if (socket_writing_ || !out_.empty()) return;
  out_.release();
  sending_.release();
}

void TlsChannel::drain_output() {
  size_t pending = BIO_ctrl_pending(wbio_);
  if (pending > 0) {
    size_t old = out_.size();
    out_.resize(old + pending);
    int n = BIO_read(wbio_, out_.data() + old, static_cast<int>(pending));
    out_.resize(old + static_cast<size_t>(n > 0 ? n : 0));
  }
  write_out();
}

void TlsChannel::write_out() {
  if (socket_writing_) return;
  if (out_.empty() || write_error_ || !socket_.is_open()) {
    out_.clear();
    if (!write_waiters_.empty()) {
      std::error_code ec = write_error_;
      if (!ec && !socket_.is_open()) ec = asio::error::operation_aborted;
      asio::post(socket_.get_executor(), [waiters = std::move(write_waiters_), ec]() {
        for (const Handler &w : waiters) w(ec);
      });
      write_waiters_.clear();
    }
    if (shutdown_after_write_) {
      shutdown_after_write_ = false;
      std::error_code ignored;
      socket_.shutdown(asio::socket_base::shutdown_send, ignored);
    }
    return;
  }
  sending_.swap(out_);
  socket_writing_ = true;
  auto self = shared_from_this();
  asio::async_write(socket_, asio::buffer(sending_.data(), sending_.size()),
                    [this, self](const std::error_code &ec, size_t) {
                      socket_writing_ = false;
                      sending_.clear();
                      if (ec && !write_error_) write_error_ = ec;
                      write_out();
                    });
}

}  // namespace sockmesh::proxy
