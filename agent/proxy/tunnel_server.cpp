#include "proxy/tunnel_server.h"

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <asio/strand.hpp>
#include <map>
#include <mutex>
#include <unordered_map>

#include "proxy/h2_session.h"
#include "proxy/stream.h"

namespace sockmesh::proxy {

namespace {

std::string endpoint_text(const asio::ip::tcp::endpoint &e) {
  if (e.address().is_v6()) return "[" + e.address().to_string() + "]:" + std::to_string(e.port());
  return e.address().to_string() + ":" + std::to_string(e.port());
}

std::string peer_certificate_sha256(const SSL *ssl) {
  X509 *cert = SSL_get0_peer_certificate(ssl);
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (cert == nullptr || X509_digest(cert, EVP_sha256(), md, &len) != 1) return "";
  static const char *hex = "0123456789abcdef";
  std::string out = "sha256:";
  for (unsigned int i = 0; i < len; ++i) {
    out += hex[md[i] >> 4];
    out += hex[md[i] & 0xf];
  }
  return out;
}

// After a failed accept (out of descriptors, ...), before accepting again.
constexpr std::chrono::milliseconds kAcceptRetry{100};

}  // namespace

std::optional<asio::ip::tcp::endpoint> parse_authority(std::string_view authority) {
  std::string_view host;
  std::string_view port;
  bool bracketed = !authority.empty() && authority.front() == '[';
  if (bracketed) {
    size_t close = authority.find(']');
    if (close == std::string_view::npos || close + 1 >= authority.size() ||
        authority[close + 1] != ':') {
      return std::nullopt;
    }
    host = authority.substr(1, close - 1);
    port = authority.substr(close + 2);
  } else {
    size_t colon = authority.rfind(':');
    if (colon == std::string_view::npos) return std::nullopt;
    host = authority.substr(0, colon);
    port = authority.substr(colon + 1);
    if (host.find(':') != std::string_view::npos) return std::nullopt;  // IPv6 needs brackets
  }
  if (port.empty() || port.size() > 5) return std::nullopt;
  unsigned long number = 0;
  for (char c : port) {
    if (c < '0' || c > '9') return std::nullopt;
    number = number * 10 + static_cast<unsigned long>(c - '0');
  }
  if (number == 0 || number > 65535) return std::nullopt;
  std::error_code ec;
  asio::ip::address address = asio::ip::make_address(std::string(host), ec);
  if (ec || address.is_v6() != bracketed) return std::nullopt;
  return asio::ip::tcp::endpoint(address, static_cast<uint16_t>(number));
}

std::optional<std::chrono::milliseconds> parse_connect_timeout(std::string_view value) {
  if (value.empty() || value.size() > 9) return std::nullopt;
  uint64_t ms = 0;
  for (char c : value) {
    if (c < '0' || c > '9') return std::nullopt;
    ms = ms * 10 + static_cast<uint64_t>(c - '0');
  }
  if (ms == 0) return std::nullopt;
  return std::chrono::milliseconds(ms);
}

struct TunnelServer::Impl : std::enable_shared_from_this<TunnelServer::Impl> {
  using Strand = asio::strand<asio::io_context::executor_type>;

  struct Connection {
    explicit Connection(Strand strand) : timer(strand) {}
    uint64_t serial = 0;
    asio::ip::tcp::endpoint remote;
    std::shared_ptr<TlsChannel> tls;
    std::shared_ptr<H2Session> session;
    pki::SpiffeId peer;
    asio::steady_timer timer;  // handshake deadline
    bool gone = false;
  };
  using ConnectionPtr = std::shared_ptr<Connection>;

  Impl(asio::io_context &io, const asio::ip::tcp::endpoint &listen,
       std::function<SslCtx()> server_context, Authorizer authorize, TunnelLimits limits,
       int inherited)
      : strand(asio::make_strand(io)),
        acceptor(strand),
        retry_timer(strand),
        server_context(std::move(server_context)),
        authorize(std::move(authorize)),
        limits(limits) {
    if (inherited >= 0) {
      acceptor.assign(listen.protocol(), inherited);
    } else {
      acceptor.open(listen.protocol());
      acceptor.set_option(asio::socket_base::reuse_address(true));
      acceptor.bind(listen);
      acceptor.listen(asio::socket_base::max_listen_connections);
    }
    bound = acceptor.local_endpoint();
    listener_fd = acceptor.native_handle();
  }

  void accept() {
    accept_started = true;
    acceptor.async_accept(
        [self = shared_from_this()](const std::error_code &ec, asio::ip::tcp::socket socket) {
          if (self->stopped || !self->accepting) return;
          if (ec) {
            spdlog::warn("tunnel server accept failed error=\"{}\"", ec.message());
            self->retry_timer.expires_after(kAcceptRetry);
            self->retry_timer.async_wait([self](const std::error_code &ec) {
              if (!ec && !self->stopped && self->accepting) self->accept();
            });
            return;
          }
          self->accepted(std::move(socket));
          self->accept();
        });
  }

  void accepted(asio::ip::tcp::socket socket) {
    std::error_code ignored;
    if (connections.size() >= limits.max_inbound_connections) {
      counters.refused("too_many_connections");
      socket.close(ignored);
      return;
    }
    const auto peer = socket.remote_endpoint(ignored).address();
    if (per_peer[peer] >= limits.max_inbound_connections_per_peer) {
      counters.refused("peer_connection_limit");
      socket.close(ignored);
      return;
    }
    SslCtx context;
    try {
      if (server_context) context = server_context();
    } catch (const std::exception &e) {
      spdlog::warn("tunnel server context source failed error=\"{}\"", e.what());
    }
    if (!context) {
      counters.refused("no_credential");
      socket.close(ignored);
      return;
    }
    socket.set_option(asio::ip::tcp::no_delay(true), ignored);
    auto c = std::make_shared<Connection>(strand);
    c->serial = ++next_serial;
    c->remote = socket.remote_endpoint(ignored);
    try {
      c->tls = std::make_shared<TlsChannel>(std::move(socket), context.get(),
                                            TlsChannel::Role::kServer, limits.tls_read_buffer);
    } catch (const std::exception &e) {
      spdlog::warn("tunnel server cannot start TLS error=\"{}\"", e.what());
      return;
    }
    connections[c->serial] = c;
    ++per_peer[c->remote.address()];
    std::weak_ptr<Impl> weak = weak_from_this();
    c->timer.expires_after(limits.handshake_timeout);
    c->timer.async_wait([weak, c](const std::error_code &ec) {
      auto self = weak.lock();
      if (ec || !self || c->session || c->gone) return;
      self->counters.handshakes_failed++;
      self->counters.refused("handshake_timeout");
      self->drop(c);
    });
    c->tls->async_handshake([weak, c](const std::error_code &ec) {
      if (auto self = weak.lock()) self->handshaken(c, ec);
    });
  }

  void handshaken(const ConnectionPtr &c, const std::error_code &ec) {
    if (c->gone) return;
    c->timer.cancel();
    pki::Verified peer = pki::peer_of(c->tls->ssl());
    if (ec || !peer.ok()) {
      std::string reason = handshake_refusal(*c->tls, peer);
      counters.handshakes_failed++;
      counters.refused(reason);
      spdlog::debug("tunnel server refused peer={} reason={} detail=\"{}\"",
                    endpoint_text(c->remote), reason,
                    peer.detail.empty() ? c->tls->error_detail() : peer.detail);
      drop(c);
      return;
    }
    c->peer = *peer.id;
    counters.connections_opened++;
    {
      std::lock_guard lock(registry_mutex);
      InboundConnection &info = registry[c->serial];
      info.peer = c->peer.str();
      info.peer_certificate = peer_certificate_sha256(c->tls->ssl());
      info.remote = c->remote;
    }
    std::weak_ptr<Impl> weak = weak_from_this();
    std::weak_ptr<Connection> weak_c = c;
    H2Session::Hooks hooks;
    hooks.on_request = [weak, weak_c](int32_t id, const H2Request &request) {
      auto self = weak.lock();
      auto conn = weak_c.lock();
      if (self && conn) self->request(conn, id, request);
    };
    hooks.on_refused = [weak, weak_c](const std::string &reason) {
      auto self = weak.lock();
      auto conn = weak_c.lock();
      if (!self || !conn) return;
      self->counters.refused(reason);
      spdlog::debug("tunnel server refused peer={} reason={}", conn->peer.str(), reason);
    };
    hooks.on_closed = [weak, weak_c](const std::string &why) {
      auto self = weak.lock();
      auto conn = weak_c.lock();
      if (!self || !conn) return;
      self->counters.connections_closed++;
      spdlog::debug("tunnel server connection closed peer={} why=\"{}\"", conn->peer.str(), why);
      self->drop(conn, false);
    };
    try {
      c->session = std::make_shared<H2Session>(c->tls, H2Session::Role::kServer, limits,
                                               limits.inbound_idle_timeout, std::move(hooks));
    } catch (const std::exception &e) {
      spdlog::warn("tunnel server cannot start HTTP/2 error=\"{}\"", e.what());
      drop(c);
      return;
    }
    c->session->start();
  }

  void request(const ConnectionPtr &c, int32_t id, const H2Request &request) {
    std::weak_ptr<Impl> weak = weak_from_this();
    uint64_t serial = c->serial;
    auto stream = std::make_shared<TunnelStream>(
        asio::ip::tcp::socket(strand), limits, counters, [weak, serial](const StreamEnd &) {
          auto self = weak.lock();
          if (!self) return;
          std::lock_guard lock(self->registry_mutex);
          auto it = self->registry.find(serial);
          if (it != self->registry.end() && it->second.streams_active > 0) {
            it->second.streams_active--;
          }
        });
    c->session->attach(id, stream);
    stream->bind(c->session, id);
    {
      std::lock_guard lock(registry_mutex);
      InboundConnection &info = registry[serial];
      info.streams_total++;
      info.streams_active++;
    }
    auto refuse = [&](int status, const std::string &detail) {
      counters.response(status);
      c->session->submit_response(id, status, false);
      stream->refused(status, detail);
    };
    if (request.method != "CONNECT" || !request.protocol.empty()) {
      refuse(400, "not a CONNECT request");
      return;
    }
    std::optional<asio::ip::tcp::endpoint> destination = parse_authority(request.authority);
    if (!destination) {
      refuse(400, "CONNECT authority \"" + request.authority + "\" is not ip:port");
      return;
    }
    // The client's connect timeout for this destination (the service's), cut to our limit.
    std::chrono::milliseconds timeout = limits.connect_timeout;
    if (!request.connect_timeout.empty()) {
      const auto asked = parse_connect_timeout(request.connect_timeout);
      if (!asked) {
        refuse(400, std::string(kConnectTimeoutHeader) + " \"" + request.connect_timeout +
                        "\" is not a number of milliseconds");
        return;
      }
      timeout = std::min(*asked, limits.max_connect_timeout);
    }
    // Called from inside nghttp2: nothing may be thrown through it.
    Decision decision{false, "no_authorizer", "no Authorizer"};
    try {
      if (authorize) decision = authorize(c->peer, *destination);
    } catch (const std::exception &e) {
      decision = Decision{false, "authorizer_error", e.what()};
    }
    if (!decision.allow) {
      counters.denied(decision.rule);
      spdlog::debug("tunnel server denied peer={} destination={} rule={} reason=\"{}\"",
                    c->peer.str(), request.authority, decision.rule, decision.reason);
      refuse(403, "denied by " + decision.rule + ": " + decision.reason);
      return;
    }
    connect_destination(c, id, stream, *destination, timeout);
  }

  void connect_destination(const ConnectionPtr &c, int32_t id,
                           const std::shared_ptr<TunnelStream> &stream,
                           const asio::ip::tcp::endpoint &destination,
                           std::chrono::milliseconds timeout) {
    auto socket = std::make_shared<asio::ip::tcp::socket>(strand);
    auto timer = std::make_shared<asio::steady_timer>(strand);
    auto timed_out = std::make_shared<bool>(false);
    timer->expires_after(timeout);
    timer->async_wait([socket, timed_out](const std::error_code &ec) {
      if (ec) return;
      *timed_out = true;
      std::error_code ignored;
      socket->close(ignored);
    });
    std::weak_ptr<Impl> weak = weak_from_this();
    socket->async_connect(destination, [weak, c, id, stream, socket, timer, timed_out,
                                        destination](const std::error_code &ec) {
      timer->cancel();
      auto self = weak.lock();
      if (!self || stream->finished()) {
        std::error_code ignored;
        socket->set_option(asio::socket_base::linger(true, 0), ignored);
        socket->close(ignored);
        if (!self) stream->fail("tunnel server stopped");
        return;
      }
      if (ec) {
        int status = *timed_out ? 504 : 502;
        self->counters.response(status);
        c->session->submit_response(id, status, false);
        stream->refused(status, "connect to " + endpoint_text(destination) + ": " +
                                    (*timed_out ? "timed out" : ec.message()));
        return;
      }
      self->counters.response(200);
      stream->connected(std::move(*socket));
    });
  }

  // Forgets a connection: closes it, or lets it finish closing (its session ended) unless `force`.
  void drop(const ConnectionPtr &c, bool force = true) {
    if (c->gone) return;
    c->gone = true;
    c->timer.cancel();
    if (c->session) {
      if (force || c->session->open()) c->session->abort("server stopped");
    } else {
      c->tls->close();
    }
    if (connections.erase(c->serial)) {
      auto it = per_peer.find(c->remote.address());
      if (it != per_peer.end() && --it->second == 0) per_peer.erase(it);
    }
    std::lock_guard lock(registry_mutex);
    registry.erase(c->serial);
  }

  void stop() {
    if (stopped) return;
    stopped = true;
    std::error_code ignored;
    acceptor.close(ignored);
    retry_timer.cancel();
    auto all = connections;
    for (auto &[serial, c] : all) drop(c);
  }

  Strand strand;
  asio::ip::tcp::acceptor acceptor;
  asio::steady_timer retry_timer;
  asio::ip::tcp::endpoint bound;
  std::function<SslCtx()> server_context;
  Authorizer authorize;
  TunnelLimits limits;
  TunnelCounters counters;
  std::unordered_map<uint64_t, ConnectionPtr> connections;  // accepted, handshaking or open
  std::map<asio::ip::address, size_t> per_peer;             // of connections, by peer address
  uint64_t next_serial = 0;
  bool stopped = false;
  bool accepting = true;  // false once the listener went to the next agent
  bool accept_started = false;
  int listener_fd = -1;
  mutable std::mutex registry_mutex;  // registry is read from other threads
  std::map<uint64_t, InboundConnection> registry;
};

TunnelServer::TunnelServer(asio::io_context &io, const asio::ip::tcp::endpoint &listen,
                           std::function<SslCtx()> server_context, Authorizer authorize,
                           TunnelLimits limits, int inherited)
    : impl_(std::make_shared<Impl>(io, listen, std::move(server_context), std::move(authorize),
                                   limits, inherited)) {
  if (inherited < 0) asio::post(impl_->strand, [impl = impl_]() { impl->accept(); });
}

void TunnelServer::start_accepting() {
  asio::post(impl_->strand, [impl = impl_]() {
    if (impl->accept_started || impl->stopped || !impl->accepting) return;
    impl->accept_started = true;
    impl->accept();
  });
}

TunnelServer::~TunnelServer() {
  stop();
}

int TunnelServer::listener_fd() const {
  return impl_->listener_fd;
}

void TunnelServer::stop_accepting() {
  asio::post(impl_->strand, [impl = impl_] {
    std::error_code ignored;
    impl->accepting = false;
    impl->acceptor.close(ignored);
    impl->retry_timer.cancel();
  });
}

asio::ip::tcp::endpoint TunnelServer::local_endpoint() const {
  return impl_->bound;
}

TunnelStats TunnelServer::stats() const {
  return impl_->counters.snapshot();
}

std::vector<InboundConnection> TunnelServer::connections() const {
  std::lock_guard lock(impl_->registry_mutex);
  std::vector<InboundConnection> out;
  for (const auto &[serial, info] : impl_->registry) out.push_back(info);
  return out;
}

void TunnelServer::stop() {
  asio::post(impl_->strand, [impl = impl_]() { impl->stop(); });
}

}  // namespace sockmesh::proxy
