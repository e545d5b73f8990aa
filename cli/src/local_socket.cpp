#include "sockmesh/cli/local_socket.h"

#include <fmt/format.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "sockmesh/cli/error.h"

namespace sockmesh::cli {

std::string socket_error_reason(const LocalSocket &socket, int error) {
  switch (error) {
    case ENOENT:
      return fmt::format("no such socket (is {} running?)", socket.daemon);
    case EACCES:
    case EPERM:
      return fmt::format("permission denied (the {} is root-only: run meshctl as root)",
                         socket.role);
    default:
      return std::strerror(error);
  }
}

void check_local_socket(const LocalSocket &socket) {
  // access() also fails with EACCES when a parent directory may not be searched, which is how a
  // non-root caller meets /run/sockmesh (0700).
  if (::access(socket.path.c_str(), R_OK | W_OK) == 0) return;
  const int error = errno;
  throw CliError(
      fmt::format("cannot reach {}: {}", socket.describe, socket_error_reason(socket, error)));
}

}  // namespace sockmesh::cli
