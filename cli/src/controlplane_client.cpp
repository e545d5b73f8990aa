#include "sockmesh/cli/controlplane_client.h"

#include <fmt/format.h>

#include <sstream>

#include "rpc.h"
#include "sockmesh/cli/error.h"
#include "sockmesh/v1/controlplane.grpc.pb.h"

namespace sockmesh::cli {
namespace {

// meshcp puts one reason per line in a refusal's message.
[[noreturn]] void refused(std::string_view what, const grpc::Status &status) {
  std::string text(what);
  std::istringstream reasons(status.error_message());
  for (std::string line; std::getline(reasons, line);) {
    if (!line.empty()) text += "\n  " + line;
  }
  throw CliError(text);
}

bool is_refusal(const grpc::Status &status) {
  return status.error_code() == grpc::StatusCode::INVALID_ARGUMENT ||
         status.error_code() == grpc::StatusCode::FAILED_PRECONDITION;
}

}  // namespace

struct ControlPlaneClient::Impl {
  rpc::Peer peer;
  std::unique_ptr<v1::ControlPlane::Stub> stub;
};

ControlPlaneClient::ControlPlaneClient(std::filesystem::path socket,
                                       std::chrono::milliseconds timeout,
                                       std::stop_token interrupted) {
  rpc::Peer peer{.socket = {.path = socket,
                            .describe = fmt::format("the control plane at {}", socket.string()),
                            .daemon = "meshcp",
                            .role = "control-plane socket"},
                 .timeout = timeout,
                 .interrupted = std::move(interrupted)};
  auto channel = rpc::local_channel(peer.socket);
  impl_ = std::make_unique<Impl>(
      Impl{.peer = std::move(peer), .stub = v1::ControlPlane::NewStub(channel)});
}

ControlPlaneClient::~ControlPlaneClient() = default;

v1::ApplyResponse ControlPlaneClient::apply(const v1::ApplyRequest &request) {
  v1::ApplyResponse response;
  const auto status =
      rpc::invoke(impl_->peer, *impl_->stub, &v1::ControlPlane::Stub::Apply, request, response);
  if (status.ok()) return response;
  if (is_refusal(status) && !impl_->peer.interrupted.stop_requested())
    refused("the control plane refused the change; nothing was applied:", status);
  rpc::fail(impl_->peer, "Apply", status);
}

v1::ApplyResponse ControlPlaneClient::remove(const std::vector<std::string> &names) {
  v1::DeleteRequest request;
  for (const auto &name : names) request.add_names(name);
  v1::ApplyResponse response;
  const auto status =
      rpc::invoke(impl_->peer, *impl_->stub, &v1::ControlPlane::Stub::Delete, request, response);
  if (status.ok()) return response;
  if (is_refusal(status) && !impl_->peer.interrupted.stop_requested())
    refused("the control plane refused the deletion; nothing was deleted:", status);
  rpc::fail(impl_->peer, "Delete", status);
}

v1::ListResponse ControlPlaneClient::list(std::string_view kind) {
  v1::ListRequest request;
  request.set_kind(std::string(kind));
  return rpc::call(impl_->peer, *impl_->stub, "List", &v1::ControlPlane::Stub::List, request);
}

v1::ControlPlaneStatus ControlPlaneClient::get_status() {
  return rpc::call(impl_->peer, *impl_->stub, "GetStatus", &v1::ControlPlane::Stub::GetStatus);
}

v1::AddNodeResponse ControlPlaneClient::add_node(const std::string &node, std::int64_t ttl_seconds) {
  v1::AddNodeRequest request;
  request.set_node(node);
  request.set_ttl_seconds(ttl_seconds);
  v1::AddNodeResponse response;
  const auto status =
      rpc::invoke(impl_->peer, *impl_->stub, &v1::ControlPlane::Stub::AddNode, request, response);
  if (status.ok()) return response;
  if (status.error_code() == grpc::StatusCode::INVALID_ARGUMENT)
    throw CliError("the control plane refused: " + status.error_message());
  rpc::fail(impl_->peer, "AddNode", status);
}

v1::ListIdentitiesResponse ControlPlaneClient::list_identities(const std::string &node) {
  v1::ListIdentitiesRequest request;
  request.set_node(node);
  return rpc::call(impl_->peer, *impl_->stub, "ListIdentities",
                   &v1::ControlPlane::Stub::ListIdentities, request);
}

}  // namespace sockmesh::cli
