// The inbound end of the node-to-node tunnel (docs/tunnel.md): accepts mutual TLS 1.3 from other
// nodes' agents (the peer's SVID is verified inside the handshake; refusals are counted by
// pki::reason_name), then for each HTTP/2 CONNECT stream asks the Authorizer whether the peer's
// identity may reach the destination, connects to it and relays: 200 and the bytes, or 400
// (malformed request), 403 (denied), 502 (the destination refused or failed), 504 (it did not
// answer within connect_timeout, or the shorter time the client asked for in the
// sockmesh-connect-timeout-ms header, at most max_connect_timeout).
//
// Threading: every public function may be called from any thread. The work runs on a strand of
// the io_context; the Authorizer and the server_context source are called on it. An exception
// from the Authorizer denies (rule "authorizer_error"); one from server_context refuses the
// connection ("no_credential").
#pragma once

#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/tls_channel.h"
#include "proxy/tunnel_limits.h"
#include "proxy/tunnel_stats.h"
#include "sockmesh/pki/pki.h"

namespace sockmesh::proxy {

struct Decision {
  bool allow = false;
  std::string rule;    // the policy rule that decided (the denial counter's key)
  std::string reason;  // one line for the log
};
// May the verified `peer` (the source workload's identity) reach `destination`?
using Authorizer =
    std::function<Decision(const pki::SpiffeId &peer, const asio::ip::tcp::endpoint &destination)>;

// One accepted tunnel connection, for tests and the admin view.
struct InboundConnection {
  std::string peer;                // verified SPIFFE ID
  std::string peer_certificate;    // "sha256:<hex>" of the presented leaf (as pki prints it)
  asio::ip::tcp::endpoint remote;  // the peer agent's address
  uint64_t streams_total = 0;      // CONNECT requests received
  uint64_t streams_active = 0;
};

// "ip:port" or "[ip6]:port" (a CONNECT :authority); nullopt when it is anything else.
std::optional<asio::ip::tcp::endpoint> parse_authority(std::string_view authority);

// The value of the connect-timeout header (kConnectTimeoutHeader): 1 to 9 decimal digits, not
// 0; nullopt when it is anything else. The caller cuts it to its own limit.
std::optional<std::chrono::milliseconds> parse_connect_timeout(std::string_view value);

class TunnelServer {
 public:
  // Listens on `listen` (port 0: an ephemeral port, see local_endpoint()); throws
  // std::system_error when it cannot. `server_context` gives the node's current context
  // (pki::make_server_context) and is asked again for every accepted connection, so that a
  // rotated node certificate is used from the next connection on.
  // `inherited`: a listening socket handed over by the agent this one replaces
  // (agent/upgrade/handover.h), owned from here on and used instead of binding `listen`; the
  // connections waiting on it are accepted only from start_accepting() on (once the agent can
  // authorize them).
  TunnelServer(asio::io_context &io, const asio::ip::tcp::endpoint &listen,
               std::function<SslCtx()> server_context, Authorizer authorize,
               TunnelLimits limits = {}, int inherited = -1);
  // stop()s. The internals live on until the io_context has run what is queued, so it may go
  // from any thread; callbacks given to it may still run after (with streams reset).
  ~TunnelServer();
  TunnelServer(const TunnelServer &) = delete;
  TunnelServer &operator=(const TunnelServer &) = delete;

  asio::ip::tcp::endpoint local_endpoint() const;
  TunnelStats stats() const;
  std::vector<InboundConnection> connections() const;
  // Closes the listener, then resets every relayed connection (destination sockets get
  // SO_LINGER{1,0}) and closes every tunnel connection at once (the clients see it lost and
  // reset their applications). Asynchronous: done on the strand. Idempotent.
  void stop();
  // The listening socket, for handing it over to the next agent.
  int listener_fd() const;
  // Closes only the listener (this process's descriptor of it): the connections carry on, for an
  // upgrade's drain. Asynchronous: done on the strand.
  void stop_accepting();
  // For an inherited listener: starts accepting. Idempotent.
  void start_accepting();

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace sockmesh::proxy
