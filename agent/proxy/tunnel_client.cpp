#include "proxy/tunnel_client.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <asio/strand.hpp>
#include <atomic>
#include <unordered_map>
#include <vector>

#include "proxy/h2_session.h"

namespace sockmesh::proxy {

namespace {

std::string endpoint_text(const asio::ip::tcp::endpoint &e) {
  if (e.address().is_v6()) return "[" + e.address().to_string() + "]:" + std::to_string(e.port());
  return e.address().to_string() + ":" + std::to_string(e.port());
}

}  // namespace

struct TunnelClient::Impl : std::enable_shared_from_this<TunnelClient::Impl> {
  using Strand = asio::strand<asio::io_context::executor_type>;

  // One pooled TLS connection to a node for one source identity and credential generation.
  struct Connection {
    Connection(Strand strand, std::string key, Peer node, uint64_t generation)
        : key(std::move(key)),
          node(std::move(node)),
          generation(generation),
          socket(strand),
          timer(strand) {}
    std::string key;
    Peer node;
    uint64_t generation;
    asio::ip::tcp::socket socket;  // while connecting
    std::shared_ptr<TlsChannel> tls;
    std::shared_ptr<H2Session> session;  // once the handshake and the peer check passed
    asio::steady_timer timer;            // connect + handshake deadline
    struct Waiting {
      std::shared_ptr<TunnelStream> stream;
      std::string authority;
      uint32_t connect_timeout_ms = 0;
      uint32_t attempt = 0;  // the stream's attempt it was placed for
    };
    std::vector<Waiting> waiting;  // streams that arrived before the session
    bool draining = false;         // its generation is old: no new streams, closed when idle
    bool gone = false;             // removed from the pool

    size_t load() const { return waiting.size() + (session ? session->streams() : 0); }
    bool usable() const { return !gone && !draining && (!session || session->accepting_streams()); }
  };
  using ConnectionPtr = std::shared_ptr<Connection>;

  Impl(asio::io_context &io, CredentialSource credentials, TunnelLimits limits)
      : strand(asio::make_strand(io)), credentials(std::move(credentials)), limits(limits) {}

  // One application connection's way to its destination, across attempts.
  struct Job {
    pki::SpiffeId source;
    Target target;  // the current attempt's
    OnAttempt on_attempt;
  };
  using JobPtr = std::shared_ptr<Job>;

  void carry(asio::ip::tcp::socket app, JobPtr job, std::function<void(const CarryResult &)> done) {
    bool app_open = app.is_open();
    auto stream = std::make_shared<TunnelStream>(std::move(app), limits, counters,
                                                 [done = std::move(done)](const StreamEnd &e) {
                                                   if (done) done(e);
                                                 });
    if (!app_open) {
      stream->fail("the application socket is not open");
      return;
    }
    if (stopped) {
      stream->fail("tunnel client stopped");
      return;
    }
    stream->start_reading();
    std::weak_ptr<Impl> weak = weak_from_this();
    stream->retry_if_refused([weak, job](const std::shared_ptr<TunnelStream> &stream) {
      auto self = weak.lock();
      if (!self || self->stopped) {
        stream->fail("tunnel client stopped");
        return;
      }
      self->place(stream, job);  // the same attempt, on another connection
    });
    if (job->on_attempt) {
      stream->watch_attempts(
          [weak, job](const std::shared_ptr<TunnelStream> &stream, const AttemptEnd &end) {
            auto self = weak.lock();
            if (!self) {
              stream->fail("tunnel client stopped");
              return;
            }
            self->attempt_ended(stream, job, end);
          });
    }
    start_attempt(stream, job);
  }

  void start_attempt(const std::shared_ptr<TunnelStream> &stream, const JobPtr &job) {
    if (job->target.connect_timeout.count() > 0)
      stream->attempt_deadline(std::chrono::steady_clock::now() + job->target.connect_timeout +
                               limits.attempt_margin);
    place(stream, job);
  }

  void attempt_ended(const std::shared_ptr<TunnelStream> &stream, const JobPtr &job,
                     AttemptEnd end) {
    if (end.connected) {
      if (!stopped) job->on_attempt(end);
      return;
    }
    if (stopped) {  // not the destination's failure: nobody is told
      stream->give_up(end);
      return;
    }
    std::optional<Target> next = job->on_attempt(end);
    if (!next || !end.retry_possible || stream->finished()) {
      stream->give_up(end);
      return;
    }
    job->target = std::move(*next);
    start_attempt(stream, job);
  }

  // Puts the stream on a pooled connection for (source, node) of the source's current
  // credential, or on a new one.
  void place(const std::shared_ptr<TunnelStream> &stream, const JobPtr &job) {
    const pki::SpiffeId &source = job->source;
    const Peer &node = job->target.node;
    std::shared_ptr<const Credentialed> credential;
    try {
      credential = credentials(source);
    } catch (const std::exception &e) {
      spdlog::warn("tunnel client credential source failed source={} error=\"{}\"", source.str(),
                   e.what());
    }
    if (!credential || !credential->context) {
      stream->fail("no credential for " + source.str());
      return;
    }
    std::string key = source.str() + " " + endpoint_text(node.address) + " " + node.id.str();
    std::vector<ConnectionPtr> &siblings = pool[key];
    ConnectionPtr target;
    for (const ConnectionPtr &c : siblings) {
      if (c->generation != credential->generation) {
        drain(c);
      } else if (!target && c->usable() && c->load() < capacity(*c)) {
        target = c;
      }
    }
    if (target) {
      counters.pool_hits++;
    } else {
      counters.pool_misses++;
      target = dial(key, node, *credential);
      pool[key].push_back(target);
    }
    const uint32_t timeout_ms = static_cast<uint32_t>(job->target.connect_timeout.count());
    if (target->session) {
      submit(target, stream, job->target.destination, timeout_ms);
    } else {
      target->waiting.push_back({stream, job->target.destination, timeout_ms, stream->attempt()});
    }
  }

  uint32_t capacity(const Connection &c) const {
    uint32_t peer = c.session ? c.session->peer_max_streams() : limits.max_concurrent_streams;
    return std::min(peer, limits.max_concurrent_streams);
  }

  ConnectionPtr dial(const std::string &key, const Peer &node, const Credentialed &credential) {
    auto c = std::make_shared<Connection>(strand, key, node, credential.generation);
    connection_count++;
    std::weak_ptr<Impl> weak = weak_from_this();
    c->timer.expires_after(limits.connect_timeout + limits.handshake_timeout);
    c->timer.async_wait([weak, c](const std::error_code &ec) {
      auto self = weak.lock();
      if (ec || !self || c->session || c->gone) return;
      self->fail_connection(c, "connecting to " + endpoint_text(c->node.address) + " timed out");
    });
    SslCtx context = credential.context;
    c->socket.async_connect(node.address, [weak, c, context](const std::error_code &ec) {
      auto self = weak.lock();
      if (!self || c->gone) return;
      if (ec) {
        self->fail_connection(c,
                              "connect to " + endpoint_text(c->node.address) + ": " + ec.message());
        return;
      }
      std::error_code ignored;
      c->socket.set_option(asio::ip::tcp::no_delay(true), ignored);
      try {
        c->tls =
            std::make_shared<TlsChannel>(std::move(c->socket), context.get(),
                                         TlsChannel::Role::kClient, self->limits.tls_read_buffer);
      } catch (const std::exception &e) {
        self->fail_connection(c, e.what());
        return;
      }
      c->tls->async_handshake([weak, c](const std::error_code &ec) {
        if (auto self = weak.lock()) self->handshaken(c, ec);
      });
    });
    return c;
  }

  void handshaken(const ConnectionPtr &c, const std::error_code &ec) {
    if (c->gone) return;
    c->timer.cancel();
    pki::Verified peer = pki::peer_of(c->tls->ssl());
    std::string where = endpoint_text(c->node.address);
    if (ec || !peer.ok()) {
      std::string reason = handshake_refusal(*c->tls, peer);
      counters.handshakes_failed++;
      counters.refused(reason);
      std::string detail = peer.detail.empty() ? c->tls->error_detail() : peer.detail;
      fail_connection(c, "TLS handshake with " + where + " failed: " + reason +
                             (detail.empty() ? "" : " (" + detail + ")"));
      return;
    }
    if (!(*peer.id == c->node.id)) {
      counters.handshakes_failed++;
      counters.refused("peer_id_mismatch");
      fail_connection(
          c, "node at " + where + " is " + peer.id->str() + ", expected " + c->node.id.str());
      return;
    }
    counters.connections_opened++;
    std::weak_ptr<Impl> weak = weak_from_this();
    std::weak_ptr<Connection> weak_c = c;
    H2Session::Hooks hooks;
    hooks.on_stream_closed = [weak, weak_c](size_t) {
      auto self = weak.lock();
      auto conn = weak_c.lock();
      if (self && conn) self->maybe_close(conn);
    };
    hooks.on_closed = [weak, weak_c](const std::string &why) {
      auto self = weak.lock();
      auto conn = weak_c.lock();
      if (!self || !conn) return;
      self->counters.connections_closed++;
      spdlog::debug("tunnel client connection closed node={} why=\"{}\"",
                    endpoint_text(conn->node.address), why);
      self->remove(conn);
    };
    try {
      c->session = std::make_shared<H2Session>(c->tls, H2Session::Role::kClient, limits,
                                               limits.idle_timeout, std::move(hooks));
    } catch (const std::exception &e) {
      fail_connection(c, e.what());
      return;
    }
    c->session->start();
    spdlog::debug("tunnel client connection opened node={} peer={} generation={}", where,
                  peer.id->str(), c->generation);
    auto waiting = std::move(c->waiting);
    c->waiting.clear();
    for (auto &w : waiting)
      if (w.stream->attempt() == w.attempt)  // not given up on meanwhile (deadline)
        submit(c, w.stream, w.authority, w.connect_timeout_ms);
    maybe_close(c);
  }

  void submit(const ConnectionPtr &c, const std::shared_ptr<TunnelStream> &stream,
              const std::string &authority, uint32_t connect_timeout_ms) {
    if (stream->finished()) return;  // the application reset it while it waited
    int32_t id = c->session->submit_connect(authority, stream, connect_timeout_ms);
    if (id < 0) {
      stream->fail_attempt("tunnel", "tunnel connection is closing");
      return;
    }
    stream->bind(c->session, id);
    if (stream->has_attempt_deadline()) {
      stream->rearm_deadline();  // the attempt's, from its start (a REFUSED_STREAM cancelled it)
    } else {
      stream->expect_response_within(limits.response_timeout);
    }
  }

  // A connection that failed before carrying anything: its waiting streams' attempts fail
  // (stop(): the streams are reset).
  void fail_connection(const ConnectionPtr &c, const std::string &detail, bool final = false) {
    spdlog::debug("tunnel client connection failed node={} detail=\"{}\"",
                  endpoint_text(c->node.address), detail);
    c->timer.cancel();
    std::error_code ignored;
    c->socket.close(ignored);
    if (c->tls) c->tls->close();
    auto waiting = std::move(c->waiting);
    c->waiting.clear();
    remove(c);
    for (auto &w : waiting) {
      if (w.stream->attempt() != w.attempt) continue;  // gone on to another attempt
      if (final) {
        w.stream->fail(detail);
      } else {
        w.stream->fail_attempt("tunnel", detail);
      }
    }
  }

  void drain(const ConnectionPtr &c) {
    if (c->draining || c->gone) return;
    c->draining = true;
    maybe_close(c);
  }

  // A draining connection closes when its last stream ended (an idle current one closes after
  // idle_timeout, by its session).
  void maybe_close(const ConnectionPtr &c) {
    if (c->draining && c->session && c->load() == 0) c->session->shutdown();
  }

  void remove(const ConnectionPtr &c) {
    if (c->gone) return;
    c->gone = true;
    connection_count--;
    auto it = pool.find(c->key);
    if (it == pool.end()) return;
    auto &list = it->second;
    list.erase(std::remove(list.begin(), list.end(), c), list.end());
    if (list.empty()) pool.erase(it);
  }

  void stop() {
    if (stopped) return;
    stopped = true;
    auto all = std::move(pool);
    pool.clear();
    for (auto &[key, list] : all) {
      for (const ConnectionPtr &c : list) {
        if (c->session) {
          c->session->abort("tunnel client stopped");
          if (!c->gone) {
            c->gone = true;
            connection_count--;
          }
        } else {
          fail_connection(c, "tunnel client stopped", true);
        }
      }
    }
  }

  Strand strand;
  CredentialSource credentials;
  TunnelLimits limits;
  TunnelCounters counters;
  std::unordered_map<std::string, std::vector<ConnectionPtr>> pool;
  std::atomic<size_t> connection_count{0};
  bool stopped = false;
};

TunnelClient::TunnelClient(asio::io_context &io, CredentialSource credentials, TunnelLimits limits)
    : impl_(std::make_shared<Impl>(io, std::move(credentials), limits)) {}

TunnelClient::~TunnelClient() {
  stop();
}

void TunnelClient::carry(asio::ip::tcp::socket app, const pki::SpiffeId &source, const Peer &node,
                         std::string destination, std::function<void(const CarryResult &)> done) {
  carry(std::move(app), source, Target{node, std::move(destination)}, {}, std::move(done));
}

void TunnelClient::carry(asio::ip::tcp::socket app, const pki::SpiffeId &source, Target first,
                         OnAttempt on_attempt, std::function<void(const CarryResult &)> done) {
  // The socket moves onto the strand, so that its completions are serialised with the rest.
  asio::ip::tcp::socket mine(impl_->strand);
  std::error_code ec;
  if (app.is_open()) {
    auto protocol = app.local_endpoint(ec).protocol();
    if (!ec) {
      auto fd = app.release(ec);
      if (!ec) mine.assign(protocol, fd, ec);
    }
  }
  auto job =
      std::make_shared<Impl::Job>(Impl::Job{source, std::move(first), std::move(on_attempt)});
  asio::post(impl_->strand,
             [impl = impl_, mine = std::move(mine), job, done = std::move(done)]() mutable {
               impl->carry(std::move(mine), job, std::move(done));
             });
}

size_t TunnelClient::connections() const {
  return impl_->connection_count.load();
}

TunnelStats TunnelClient::stats() const {
  return impl_->counters.snapshot();
}

void TunnelClient::stop() {
  asio::post(impl_->strand, [impl = impl_]() { impl->stop(); });
}

}  // namespace sockmesh::proxy
