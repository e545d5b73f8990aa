#include "rpc.h"

#include <fmt/format.h>

#include <algorithm>

#include "sockmesh/cli/error.h"
#include "sockmesh/common/message_limits.h"

namespace sockmesh::cli::rpc {

std::shared_ptr<grpc::Channel> local_channel(const LocalSocket &socket) {
  check_local_socket(socket);
  grpc::ChannelArguments args;
  // The socket is local: an http_proxy in the environment must not apply to it.
  args.SetInt(GRPC_ARG_ENABLE_HTTP_PROXY, 0);
  // `get workloads` of a large mesh, `get endpoints` of an agent with 10,000 services.
  args.SetMaxReceiveMessageSize(kMaxMessageBytes);
  return grpc::CreateCustomChannel("unix:" + socket.path.string(),
                                   grpc::InsecureChannelCredentials(), args);
}

std::string one_line(std::string text) {
  std::replace(text.begin(), text.end(), '\n', ' ');
  return text;
}

std::string status_text(const grpc::Status &status) {
  return fmt::format("{} (gRPC status {})", one_line(status.error_message()),
                     static_cast<int>(status.error_code()));
}

std::string seconds(std::chrono::milliseconds timeout) {
  return fmt::format("{:g}s", static_cast<double>(timeout.count()) / 1000.0);
}

void fail(const Peer &peer, std::string_view method, const grpc::Status &status) {
  if (peer.interrupted.stop_requested()) throw Interrupted();
  const std::string &who = peer.socket.describe;
  switch (status.error_code()) {
    case grpc::StatusCode::UNAVAILABLE:
      throw CliError(fmt::format("cannot reach {}: {} (is {} running?)", who,
                                 one_line(status.error_message()), peer.socket.daemon));
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      throw CliError(fmt::format("{} did not answer {} within {} (raise --timeout?)", who, method,
                                 seconds(peer.timeout)));
    case grpc::StatusCode::PERMISSION_DENIED:
    case grpc::StatusCode::UNAUTHENTICATED:
      throw CliError(
          fmt::format("{} refused {}: {} (run meshctl as root)", who, method, status_text(status)));
    default:
      throw CliError(fmt::format("{} failed {}: {}", who, method, status_text(status)));
  }
}

}  // namespace sockmesh::cli::rpc
