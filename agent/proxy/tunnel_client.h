// The outbound end of the node-to-node tunnel (docs/tunnel.md): carries an application's TCP
// connection to the destination node's agent as one HTTP/2 CONNECT stream over a pooled mutual
// TLS 1.3 connection per (source identity, destination node), presenting the source workload's
// SVID. A new connection is made only when there is none for that pair, the one there is full
// (max concurrent streams), or the source's credential changed (rotation: new streams go on a
// new connection with the new certificate; streams on the old one run to their end, then it is
// closed).
//
// Threading: every public function may be called from any thread. The work runs on a strand of
// the io_context; `done` callbacks and the CredentialSource are called on it. `done` must not
// throw (it may run inside nghttp2's callbacks); an exception from the CredentialSource counts as
// no credential.
#pragma once

#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "proxy/stream.h"
#include "proxy/tls_channel.h"
#include "proxy/tunnel_limits.h"
#include "proxy/tunnel_stats.h"
#include "sockmesh/pki/pki.h"

namespace sockmesh::proxy {

// The credential a source identity presents.
struct Credentialed {
  SslCtx context;           // pki::make_client_context(<the source's SVID>, bundle, trust domain)
  uint64_t generation = 0;  // changes whenever the credential does (SVID rotated)
};
// The current credential of a source identity; nullptr when the node holds none for it (the
// connection is then reset: CarryResult kFailed).
using CredentialSource =
    std::function<std::shared_ptr<const Credentialed>(const pki::SpiffeId &source)>;

// A destination node's agent.
struct Peer {
  asio::ip::tcp::endpoint address;  // its inbound tunnel listener
  pki::SpiffeId id;                 // what it must present: pki::SpiffeId::node(td, name)
};

// How a carried connection ended (outcome, CONNECT status, byte counts, detail).
using CarryResult = StreamEnd;

// One attempt at a destination: through which node, to what, and how long the connect may take.
struct Target {
  Peer node;
  std::string destination;  // "ip:port" or "[ip6]:port", what the inbound agent connects to
  // Sent as the sockmesh-connect-timeout-ms header (the inbound agent cuts it to its
  // max_connect_timeout), and this end fails the attempt when no response came
  // connect_timeout + TunnelLimits::attempt_margin after the attempt started (the tunnel's dial
  // included). 0: no header (the peer's own connect_timeout), response_timeout from the CONNECT.
  std::chrono::milliseconds connect_timeout{0};
};

// Told how each attempt ended (on the strand; must not throw). After a failed one (a 502, 503 or
// 504, no response in time, the tunnel to the node failed or was lost before the response) with
// `retry_possible`, the Target it returns is tried next with the bytes the application wrote so
// far; std::nullopt ends the connection as that attempt ended (reset). Its return is ignored
// for a connected attempt. Not told about attempts ended by the application, stop() or a missing
// credential.
using OnAttempt = std::function<std::optional<Target>(const AttemptEnd &)>;

class TunnelClient {
 public:
  TunnelClient(asio::io_context &io, CredentialSource credentials, TunnelLimits limits = {});
  // stop()s. The internals live on until the io_context has run what is queued, so it may go
  // from any thread; callbacks given to it may still run after (with streams reset).
  ~TunnelClient();
  TunnelClient(const TunnelClient &) = delete;
  TunnelClient &operator=(const TunnelClient &) = delete;

  // Carries `app` to `destination` ("ip:port" or "[ip6]:port", what the inbound agent connects
  // to) through `node`, as `source`. The socket is owned by the tunnel from here; it is reset
  // (SO_LINGER{1,0}) when the tunnel cannot carry it, the CONNECT is refused (403: denied, 502:
  // the destination refused, 504: it did not answer), or either side resets. `done` is called
  // once, on the tunnel's strand.
  void carry(asio::ip::tcp::socket app, const pki::SpiffeId &source, const Peer &node,
             std::string destination, std::function<void(const CarryResult &)> done);
  // The same with retries: `first` is tried first, then what `on_attempt` returns after each
  // failed attempt (docs/tunnel.md, "Connect timeout and retries").
  void carry(asio::ip::tcp::socket app, const pki::SpiffeId &source, Target first,
             OnAttempt on_attempt, std::function<void(const CarryResult &)> done);

  // Pooled connections (being dialled, in use, or draining after a rotation).
  size_t connections() const;
  TunnelStats stats() const;
  // Resets every carried connection and closes every tunnel connection; later carry() calls
  // fail. Asynchronous: done on the strand. Idempotent.
  void stop();

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace sockmesh::proxy
