#include "admin/health_server.h"

#include <spdlog/spdlog.h>

#include <array>
#include <asio/buffer.hpp>
#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/read_until.hpp>
#include <asio/steady_timer.hpp>
#include <asio/write.hpp>
#include <optional>
#include <stdexcept>
#include <string_view>
#include <thread>
#include <utility>

#include "admin/admin_state.h"
#include "admin/health.h"

namespace sockmesh::admin {
namespace {

constexpr auto kAcceptRetry = std::chrono::milliseconds(100);

asio::ip::tcp::endpoint parse_address(const std::string &address) {
  const auto colon = address.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == address.size())
    throw std::runtime_error("health address \"" + address + "\" is not host:port");
  const std::string port = address.substr(colon + 1);
  if (port.find_first_not_of("0123456789") != std::string::npos || port.size() > 5 ||
      std::stoi(port) > 65535)
    throw std::runtime_error("health address \"" + address + "\" has no valid port");
  std::string host = address.substr(0, colon);
  const bool bracketed = host.size() >= 2 && host.front() == '[' && host.back() == ']';
  if (bracketed) host = host.substr(1, host.size() - 2);
  std::error_code ec;
  const auto ip = asio::ip::make_address(host, ec);
  if (ec || ip.is_v6() != bracketed)
    throw std::runtime_error("health address \"" + address +
                             "\" needs an IPv4 address or [IPv6] address as host");
  return {ip, static_cast<uint16_t>(std::stoi(port))};
}

std::string reason_phrase(int code) {
  switch (code) {
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 431:
      return "Request Header Fields Too Large";
    default:
      return "Service Unavailable";
  }
}

std::string response(int code, std::string_view content_type, const std::string &body,
                     bool allow_get = false) {
  std::string out = "HTTP/1.1 " + std::to_string(code) + " " + reason_phrase(code) + "\r\n";
  out += "Content-Type: ";
  out += content_type;
  out += "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
  if (allow_get) out += "Allow: GET\r\n";
  out += "Cache-Control: no-store\r\nConnection: close\r\n\r\n" + body;
  return out;
}

std::string text_response(int code, const std::string &line, bool allow_get = false) {
  return response(code, "text/plain; charset=utf-8", line + "\n", allow_get);
}

int64_t system_now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

struct HealthServer::Impl {
  struct Connection {
    Connection(Impl &impl, asio::ip::tcp::socket s)
        : impl(impl), socket(std::move(s)), timer(impl.io) {
      ++impl.open;
    }
    ~Connection() { --impl.open; }
    Impl &impl;
    asio::ip::tcp::socket socket;
    asio::steady_timer timer;
    std::string request;
    std::string answer;
    std::array<char, 512> drain{};
  };
  using ConnectionPtr = std::shared_ptr<Connection>;

  Impl(HealthOptions opts, AdminState &state)
      : opts(std::move(opts)),
        state(state),
        acceptor(io),
        retry_timer(io),
        work(asio::make_work_guard(io)) {}

  void listen(const asio::ip::tcp::endpoint &endpoint) {
    std::error_code ec;
    acceptor.open(endpoint.protocol(), ec);
    if (!ec) acceptor.set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) acceptor.bind(endpoint, ec);
    if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
    if (ec)
      throw std::runtime_error("cannot serve health probes on " + opts.address + ": " +
                               ec.message() + " (choose another --health-address, or \"off\")");
    bound = acceptor.local_endpoint().port();
  }

  void accept() {
    acceptor.async_accept([this](const std::error_code &ec, asio::ip::tcp::socket socket) {
      if (ec == asio::error::operation_aborted) return;
      if (ec) {
        // Out of file descriptors, say: try again shortly rather than spin.
        spdlog::warn("event=health_accept_failed error=\"{}\"", ec.message());
        retry_timer.expires_after(kAcceptRetry);
        retry_timer.async_wait([this](const std::error_code &ec) {
          if (!ec) accept();
        });
        return;
      }
      if (open < opts.max_connections)
        start(std::make_shared<Connection>(*this, std::move(socket)));
      accept();
    });
  }

  void start(const ConnectionPtr &c) {
    c->timer.expires_after(opts.timeout);
    c->timer.async_wait([c](const std::error_code &ec) {
      if (ec) return;  // cancelled: answered and closed in time
      std::error_code ignored;
      c->socket.close(ignored);
    });
    asio::async_read_until(c->socket, asio::dynamic_buffer(c->request, opts.max_request_bytes),
                           "\r\n\r\n", [this, c](const std::error_code &ec, size_t) {
                             if (ec == asio::error::not_found) {
                               answer(c, text_response(431, "request header too large"));
                             } else if (!ec) {
                               answer(c, handle(c->request));
                             } else {
                               finish(c);
                             }
                           });
  }

  std::string handle(const std::string &request) {
    const std::string_view line(request.data(), request.find("\r\n"));
    const auto sp1 = line.find(' ');
    const auto sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
    if (sp2 == std::string_view::npos || sp1 == 0 || line.substr(sp2 + 1).rfind("HTTP/1.", 0) != 0)
      return text_response(400, "malformed request line");
    const std::string_view method = line.substr(0, sp1);
    std::string_view path = line.substr(sp1 + 1, sp2 - sp1 - 1);
    path = path.substr(0, path.find('?'));
    const bool live = path == "/healthz/live", ready = path == "/healthz/ready";
    if (!live && !ready)
      return text_response(404, "not found: GET /healthz/live or /healthz/ready");
    if (method != "GET") return text_response(405, "method not allowed: use GET", true);

    Health health;
    try {
      health =
          evaluate_health(state.status(), opts.now_unix_ms ? opts.now_unix_ms() : system_now_ms());
    } catch (const std::exception &e) {
      health.checks.push_back({kStatusRead, false, e.what()});
    }
    note(health);
    const bool ok = ready ? health.ready : health.live;
    return response(ok ? 200 : 503, "application/json", health_json(health, ready) + "\n");
  }

  // Logs every change of the answers (as the probes saw them), with what fails.
  void note(const Health &health) {
    const std::pair now{health.live, health.ready};
    if (last == now) return;
    last = now;
    std::string failing;
    for (const auto &check : health.checks)
      if (!check.ok) failing += (failing.empty() ? "" : ",") + check.name;
    if (health.ready)
      spdlog::info("event=health live=true ready=true");
    else
      spdlog::warn("event=health live={} ready=false failing={}", health.live, failing);
  }

  void answer(const ConnectionPtr &c, std::string text) {
    c->answer = std::move(text);
    asio::async_write(c->socket, asio::buffer(c->answer),
                      [this, c](const std::error_code &ec, size_t) {
                        if (ec) return finish(c);
                        // Half-close, then read to the client's end: closing with unread input
                        // would reset the connection, and a reset may destroy the answer before the
                        // client reads it.
                        std::error_code ignored;
                        c->socket.shutdown(asio::ip::tcp::socket::shutdown_send, ignored);
                        drain(c);
                      });
  }

  void drain(const ConnectionPtr &c) {
    c->socket.async_read_some(asio::buffer(c->drain), [this, c](const std::error_code &ec, size_t) {
      if (ec) return finish(c);
      drain(c);
    });
  }

  void finish(const ConnectionPtr &c) {
    std::error_code ignored;
    c->socket.close(ignored);
    c->timer.cancel();
  }

  // Destroyed last (the connections count themselves out as the io_context drops them).
  size_t open = 0;
  HealthOptions opts;
  AdminState &state;
  std::optional<std::pair<bool, bool>> last;  // live, ready at the last request
  int bound = 0;
  asio::io_context io;
  asio::ip::tcp::acceptor acceptor;
  asio::steady_timer retry_timer;
  asio::executor_work_guard<asio::io_context::executor_type> work;
  std::thread thread;
};

HealthServer::HealthServer(HealthOptions opts, AdminState &state)
    : impl_(std::make_unique<Impl>(std::move(opts), state)) {
  impl_->listen(parse_address(impl_->opts.address));
  impl_->accept();
  impl_->thread = std::thread([impl = impl_.get()] { impl->io.run(); });
}

HealthServer::~HealthServer() {
  impl_->io.stop();
  if (impl_->thread.joinable()) impl_->thread.join();
}

int HealthServer::port() const {
  return impl_->bound;
}

}  // namespace sockmesh::admin
