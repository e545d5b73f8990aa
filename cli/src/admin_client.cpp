#include "sockmesh/cli/admin_client.h"

#include <fmt/format.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "rpc.h"
#include "sockmesh/cli/error.h"
#include "sockmesh/v1/admin.grpc.pb.h"

namespace sockmesh::cli {
namespace {

// A stream has no deadline of its own: this cancels it when its first answer takes longer than
// timeout.
class FirstAnswerDeadline {
 public:
  FirstAnswerDeadline(grpc::ClientContext &context, std::chrono::milliseconds timeout)
      : timer_([this, &context, timeout](std::stop_token answered) {
          std::mutex mutex;
          std::unique_lock lock(mutex);
          std::condition_variable_any().wait_for(lock, answered, timeout, [] { return false; });
          if (answered.stop_requested()) return;
          expired_ = true;
          context.TryCancel();
        }) {}

  void answered() {
    timer_.request_stop();
    if (timer_.joinable()) timer_.join();
  }
  bool expired() const { return expired_; }

 private:
  std::atomic<bool> expired_ = false;
  std::jthread timer_;
};

}  // namespace

struct AdminClient::Impl {
  rpc::Peer peer;
  std::unique_ptr<v1::Admin::Stub> stub;
};

AdminClient::AdminClient(AdminTarget target, std::chrono::milliseconds timeout,
                         std::stop_token interrupted) {
  rpc::Peer peer{.socket = {.path = target.socket_path,
                            .describe = target.describe(),
                            .daemon = "meshd",
                            .role = "admin socket"},
                 .timeout = timeout,
                 .interrupted = std::move(interrupted)};
  auto channel = rpc::local_channel(peer.socket);
  impl_ =
      std::make_unique<Impl>(Impl{.peer = std::move(peer), .stub = v1::Admin::NewStub(channel)});
}

AdminClient::~AdminClient() = default;

v1::AgentStatus AdminClient::get_status() {
  return rpc::call(impl_->peer, *impl_->stub, "GetStatus", &v1::Admin::Stub::GetStatus);
}

v1::ListServicesResponse AdminClient::list_services() {
  return rpc::call(impl_->peer, *impl_->stub, "ListServices", &v1::Admin::Stub::ListServices);
}

v1::ListEndpointsResponse AdminClient::list_endpoints() {
  return rpc::call(impl_->peer, *impl_->stub, "ListEndpoints", &v1::Admin::Stub::ListEndpoints);
}

v1::TrafficReport AdminClient::get_traffic() {
  return rpc::call(impl_->peer, *impl_->stub, "GetTraffic", &v1::Admin::Stub::GetTraffic);
}

v1::ListMapsResponse AdminClient::list_maps() {
  return rpc::call(impl_->peer, *impl_->stub, "ListMaps", &v1::Admin::Stub::ListMaps);
}

v1::FastPathReport AdminClient::get_fast_path() {
  v1::FastPathReport response;
  const grpc::Status status = rpc::invoke(impl_->peer, *impl_->stub, &v1::Admin::Stub::GetFastPath,
                                          v1::GetFastPathRequest(), response);
  if (status.ok()) return response;
  // An agent from before the fast path (M7) has no such call: say so rather than "unimplemented".
  if (status.error_code() == grpc::StatusCode::UNIMPLEMENTED &&
      !impl_->peer.interrupted.stop_requested())
    throw CliError(
        fmt::format("{} does not serve GetFastPath: its meshd predates the fast path "
                    "(upgrade meshd to the version of this meshctl)",
                    impl_->peer.socket.describe));
  rpc::fail(impl_->peer, "GetFastPath", status);
}

v1::DumpMapResponse AdminClient::dump_map(const std::string &name, std::uint32_t limit) {
  v1::DumpMapRequest request;
  request.set_name(name);
  request.set_limit(limit);
  v1::DumpMapResponse response;
  const grpc::Status status =
      rpc::invoke(impl_->peer, *impl_->stub, &v1::Admin::Stub::DumpMap, request, response);
  if (status.ok()) return response;
  // The agent's message names the map and what lists them: it is the whole error.
  if (status.error_code() == grpc::StatusCode::NOT_FOUND &&
      !impl_->peer.interrupted.stop_requested())
    throw CliError(status.error_message().empty()
                       ? fmt::format("no map {} on {}", name, impl_->peer.socket.describe)
                       : rpc::one_line(status.error_message()));
  rpc::fail(impl_->peer, "DumpMap", status);
}

v1::ResilienceReport AdminClient::get_resilience(const std::string &ns, const std::string &name) {
  v1::GetResilienceRequest request;
  request.set_namespace_(ns);
  request.set_name(name);
  v1::ResilienceReport response;
  const grpc::Status status =
      rpc::invoke(impl_->peer, *impl_->stub, &v1::Admin::Stub::GetResilience, request, response);
  if (status.ok()) return response;
  if (!impl_->peer.interrupted.stop_requested()) {
    const std::string &agent = impl_->peer.socket.describe;
    if (status.error_code() == grpc::StatusCode::NOT_FOUND) {
      const std::string service = ns.empty() ? fmt::format("service \"{}\" (any namespace)", name)
                                             : fmt::format("service \"{}/{}\"", ns, name);
      throw CliError(
          fmt::format("{} not found on {} (`meshctl get services` lists the services it applied)",
                      service, agent));
    }
    // An agent from before resilience at connect() (M8) has no such call.
    if (status.error_code() == grpc::StatusCode::UNIMPLEMENTED)
      throw CliError(
          fmt::format("{} does not serve GetResilience: its meshd predates resilience "
                      "(upgrade meshd to the version of this meshctl)",
                      agent));
  }
  rpc::fail(impl_->peer, "GetResilience", status);
}

void AdminClient::watch_services(
    const std::function<void(const v1::ListServicesResponse &)> &on_update) {
  grpc::ClientContext context;
  std::stop_callback on_interrupt(impl_->peer.interrupted, [&] { context.TryCancel(); });
  FirstAnswerDeadline deadline(context, impl_->peer.timeout);
  auto stream = impl_->stub->WatchServices(&context, v1::ListServicesRequest());
  bool answered = false;
  for (v1::ListServicesResponse update; stream->Read(&update);) {
    deadline.answered();
    answered = true;
    on_update(update);
  }
  const grpc::Status status = stream->Finish();
  if (impl_->peer.interrupted.stop_requested()) return;
  if (deadline.expired())
    rpc::fail(impl_->peer, "WatchServices", grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED, ""));
  if (!answered) rpc::fail(impl_->peer, "WatchServices", status);
  throw CliError(fmt::format("{} closed the watch: {}", impl_->peer.socket.describe,
                             status.ok() ? "no reason given" : rpc::status_text(status)));
}

}  // namespace sockmesh::cli
