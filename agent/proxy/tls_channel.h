// One TLS connection over a TCP socket. OpenSSL runs on memory BIOs and this class moves the
// ciphertext, so that the caller decides how much is written per syscall and nothing of Asio's
// SSL layer touches the contexts' ex_data (the pki library owns those). Not thread-safe: every
// call and every completion runs on the socket's executor (the tunnel's strand).
#pragma once

#include <openssl/ssl.h>

#include <asio/ip/tcp.hpp>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <system_error>
#include <vector>

#include "proxy/byte_queue.h"
#include "sockmesh/pki/pki.h"

namespace sockmesh::proxy {

// An SSL_CTX made by pki::make_client_context / make_server_context, shared: a connection keeps
// its SSL (which holds its own reference to the context) after a rotation replaced it.
using SslCtx = std::shared_ptr<SSL_CTX>;

// From pki's owning pointer (pki::SslCtxPtr) to a shared one.
template <typename Owning>
SslCtx share_context(Owning owning) {
  return SslCtx(std::move(owning));
}

class TlsChannel : public std::enable_shared_from_this<TlsChannel> {
 public:
  enum class Role { kClient, kServer };
  using Handler = std::function<void(const std::error_code &)>;
  using ReadHandler = std::function<void(const std::error_code &, size_t)>;

  // The socket is connected; `read_buffer` bytes are read from it at once. Always owned by a
  // shared_ptr: pending operations keep the channel alive.
  TlsChannel(asio::ip::tcp::socket socket, SSL_CTX *context, Role role, size_t read_buffer);
  ~TlsChannel();
  TlsChannel(const TlsChannel &) = delete;
  TlsChannel &operator=(const TlsChannel &) = delete;

  SSL *ssl() const { return ssl_; }
  asio::ip::tcp::socket &socket() { return socket_; }
  // OpenSSL's words for the last failure (empty when none).
  const std::string &error_detail() const { return error_detail_; }
  // The TLS layer failed because the peer sent no certificate (as opposed to failing before it
  // got that far, or the connection breaking).
  bool peer_sent_no_certificate() const;

  // Completes with an error when the handshake fails (after sending the alert, if any).
  void async_handshake(Handler handler);
  // Decrypts into `into` as much as is available (at least one byte); asio::error::eof when the
  // peer closed (close_notify or TCP FIN).
  void async_read_some(asio::mutable_buffer into, ReadHandler handler);
  // Encrypts all of `data` and completes when the socket took the ciphertext. One at a time.
  void async_write(asio::const_buffer data, Handler handler);
  // Sends close_notify and shuts the TCP send side once pending ciphertext is written.
  void shutdown();
  // Closes the socket now; pending operations complete with operation_aborted.
  void close();
  // Gives back the memory of the write buffers when nothing is being written (an idle
  // connection); they grow again with the next write.
  void trim();

 private:
  void handshake_step(Handler handler);
  void read_step(asio::mutable_buffer into, ReadHandler handler);
  // Moves what OpenSSL wrote into the write BIO to out_, and starts writing it.
  void drain_output();
  void write_out();
  std::error_code ssl_failure(int ssl_error);

  asio::ip::tcp::socket socket_;
  SSL *ssl_ = nullptr;
  BIO *rbio_ = nullptr;  // ciphertext from the socket, read by OpenSSL (owned by ssl_)
  BIO *wbio_ = nullptr;  // ciphertext written by OpenSSL, for the socket (owned by ssl_)
  Bytes in_;             // socket read buffer
  Bytes out_;            // ciphertext waiting for the socket
  Bytes sending_;        // ciphertext being written
  bool socket_writing_ = false;
  bool shutdown_after_write_ = false;
  std::vector<Handler> write_waiters_;  // complete when out_ is written
  std::error_code write_error_;
  std::string error_detail_;
  unsigned long first_ssl_error_ = 0;  // OpenSSL's code of the first TLS failure
};

// Why a handshake failed, as the tunnel's refusal counters name it: pki::reason_name of the
// verdict on the peer's certificate, or "handshake_failed" when the handshake failed before or
// apart from judging a certificate (no TLS at all, no ALPN h2, a connection that broke).
std::string handshake_refusal(const TlsChannel &tls, const pki::Verified &peer);

}  // namespace sockmesh::proxy
