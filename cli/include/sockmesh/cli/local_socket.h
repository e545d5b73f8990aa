// The unix sockets meshctl calls: the node agents' admin sockets and the control plane's API
// socket. Both are root-only; this names the problem before gRPC reports it less clearly.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>

namespace sockmesh::cli {

// Who listens on a local socket, for messages.
struct LocalSocket {
  std::filesystem::path path;
  std::string describe;  // "the control plane at /run/sockmesh/meshcp/api.sock"
  std::string daemon;    // "meshcp": named in "(is meshcp running?)"
  std::string role;      // "control-plane socket": named in "(the <role> is root-only: ...)"
};

// The end of "cannot reach <describe>: <reason>" when opening the socket fails with errno
// `error`: "no such socket (is meshcp running?)", "permission denied (the control-plane socket is
// root-only: run meshctl as root)", else the system's message.
std::string socket_error_reason(const LocalSocket &socket, int error);

// Throws CliError "cannot reach <describe>: <reason>" when the socket does not exist or the caller
// may not open it.
void check_local_socket(const LocalSocket &socket);

}  // namespace sockmesh::cli
