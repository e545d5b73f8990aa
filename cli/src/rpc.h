// What the gRPC clients (admin_client.cpp, controlplane_client.cpp) share: a channel to a local
// socket, deadlines and Ctrl-C on unary calls, and what a failed call means to the operator.
// Private to cli/src: gRPC's headers are slow to parse and nothing else needs them.
#pragma once

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <memory>
#include <stop_token>
#include <string>
#include <string_view>

#include "sockmesh/cli/local_socket.h"

namespace sockmesh::cli::rpc {

// A server on a local socket and how long meshctl waits for it.
struct Peer {
  LocalSocket socket;
  std::chrono::milliseconds timeout;
  std::stop_token interrupted;
};

// Checks the socket (check_local_socket), then opens an insecure channel to it.
std::shared_ptr<grpc::Channel> local_channel(const LocalSocket &socket);

// gRPC messages may span lines; the operator gets exactly one line.
std::string one_line(std::string text);

// "<message> (gRPC status <code>)".
std::string status_text(const grpc::Status &status);

// "5s", "0.2s".
std::string seconds(std::chrono::milliseconds timeout);

// Throws what a failed call means to the operator: Interrupted after Ctrl-C, else CliError naming
// the peer, the call and the reason.
[[noreturn]] void fail(const Peer &peer, std::string_view method, const grpc::Status &status);

// One unary call bounded by the peer's timeout and cancelled on interrupt; the status as is.
template <typename Stub, typename Request, typename Response>
grpc::Status invoke(const Peer &peer, Stub &stub,
                    grpc::Status (Stub::*method)(grpc::ClientContext *, const Request &,
                                                 Response *),
                    const Request &request, Response &response) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + peer.timeout);
  std::stop_callback on_interrupt(peer.interrupted, [&] { context.TryCancel(); });
  return (stub.*method)(&context, request, &response);
}

// invoke(), throwing fail() unless the call succeeded.
template <typename Response, typename Stub, typename Request>
Response call(const Peer &peer, Stub &stub, std::string_view name,
              grpc::Status (Stub::*method)(grpc::ClientContext *, const Request &, Response *),
              const Request &request = {}) {
  Response response;
  const grpc::Status status = invoke(peer, stub, method, request, response);
  if (!status.ok()) fail(peer, name, status);
  return response;
}

}  // namespace sockmesh::cli::rpc
