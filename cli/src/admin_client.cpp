#include "sockmesh/cli/admin_client.h"

#include <fmt/format.h>
#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <algorithm>
#include <system_error>

#include "sockmesh/cli/error.h"
#include "sockmesh/v1/admin.grpc.pb.h"

namespace sockmesh::cli {
namespace {

// gRPC messages may span lines; the operator gets exactly one line.
std::string one_line(std::string text) {
  std::replace(text.begin(), text.end(), '\n', ' ');
  return text;
}

std::string seconds(std::chrono::milliseconds timeout) {
  return fmt::format("{:g}s", static_cast<double>(timeout.count()) / 1000.0);
}

// Refuses early what gRPC would report less clearly: a missing socket, or one we may not open.
void check_socket(const AdminTarget& target) {
  std::error_code ec;
  if (!std::filesystem::exists(target.socket_path, ec)) {
    throw CliError(fmt::format("cannot reach {}: no such socket (is meshd running?)", target.describe()));
  }
  if (::access(target.socket_path.c_str(), R_OK | W_OK) != 0) {
    throw CliError(fmt::format("cannot reach {}: permission denied (the admin socket is root-only: run "
                               "meshctl as root)",
                               target.describe()));
  }
}

}  // namespace

struct AdminClient::Impl {
  AdminTarget target;
  std::chrono::milliseconds timeout;
  std::unique_ptr<v1::Admin::Stub> stub;

  template <typename Response, typename Request, typename Method>
  Response call(std::string_view rpc, Method method) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + timeout);
    Request request;
    Response response;
    const grpc::Status status = ((*stub).*method)(&context, request, &response);
    if (status.ok()) return response;
    switch (status.error_code()) {
      case grpc::StatusCode::UNAVAILABLE:
        throw CliError(fmt::format("cannot reach {}: {} (is meshd running?)", target.describe(),
                                   one_line(status.error_message())));
      case grpc::StatusCode::DEADLINE_EXCEEDED:
        throw CliError(fmt::format("{} did not answer {} within {} (raise --timeout?)", target.describe(), rpc,
                                   seconds(timeout)));
      default:
        throw CliError(fmt::format("{} failed {}: {} (gRPC status {})", target.describe(), rpc,
                                   one_line(status.error_message()), static_cast<int>(status.error_code())));
    }
  }
};

AdminClient::AdminClient(AdminTarget target, std::chrono::milliseconds timeout) {
  check_socket(target);
  grpc::ChannelArguments args;
  // The socket is local: an http_proxy in the environment must not apply to it.
  args.SetInt(GRPC_ARG_ENABLE_HTTP_PROXY, 0);
  auto channel = grpc::CreateCustomChannel("unix:" + target.socket_path.string(),
                                           grpc::InsecureChannelCredentials(), args);
  impl_ = std::make_unique<Impl>(Impl{.target = std::move(target),
                                      .timeout = timeout,
                                      .stub = v1::Admin::NewStub(channel)});
}

AdminClient::~AdminClient() = default;

v1::AgentStatus AdminClient::get_status() {
  return impl_->call<v1::AgentStatus, v1::GetStatusRequest>("GetStatus", &v1::Admin::Stub::GetStatus);
}

v1::ListServicesResponse AdminClient::list_services() {
  return impl_->call<v1::ListServicesResponse, v1::ListServicesRequest>("ListServices",
                                                                        &v1::Admin::Stub::ListServices);
}

v1::ListEndpointsResponse AdminClient::list_endpoints() {
  return impl_->call<v1::ListEndpointsResponse, v1::ListEndpointsRequest>("ListEndpoints",
                                                                          &v1::Admin::Stub::ListEndpoints);
}

}  // namespace sockmesh::cli
