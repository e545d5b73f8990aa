#include "sockmesh/cli/admin_client.h"

#include <fmt/format.h>
#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <system_error>
#include <thread>

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
void check_socket(const AdminTarget &target) {
  std::error_code ec;
  if (!std::filesystem::exists(target.socket_path, ec)) {
    throw CliError(
        fmt::format("cannot reach {}: no such socket (is meshd running?)", target.describe()));
  }
  if (::access(target.socket_path.c_str(), R_OK | W_OK) != 0) {
    throw CliError(
        fmt::format("cannot reach {}: permission denied (the admin socket is root-only: run "
                    "meshctl as root)",
                    target.describe()));
  }
}

std::string status_text(const grpc::Status &status) {
  return fmt::format("{} (gRPC status {})", one_line(status.error_message()),
                     static_cast<int>(status.error_code()));
}

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
  AdminTarget target;
  std::chrono::milliseconds timeout;
  std::stop_token interrupted;
  std::unique_ptr<v1::Admin::Stub> stub;

  template <typename Response, typename Request, typename Method>
  Response call(std::string_view rpc, Method method) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + timeout);
    std::stop_callback on_interrupt(interrupted, [&] { context.TryCancel(); });
    Request request;
    Response response;
    const grpc::Status status = ((*stub).*method)(&context, request, &response);
    if (status.ok()) return response;
    fail(rpc, status);
  }

  // Throws what a failed call means to the operator.
  [[noreturn]] void fail(std::string_view rpc, const grpc::Status &status) const {
    if (interrupted.stop_requested()) throw Interrupted();
    switch (status.error_code()) {
      case grpc::StatusCode::UNAVAILABLE:
        throw CliError(fmt::format("cannot reach {}: {} (is meshd running?)", target.describe(),
                                   one_line(status.error_message())));
      case grpc::StatusCode::DEADLINE_EXCEEDED:
        throw CliError(fmt::format("{} did not answer {} within {} (raise --timeout?)",
                                   target.describe(), rpc, seconds(timeout)));
      default:
        throw CliError(
            fmt::format("{} failed {}: {}", target.describe(), rpc, status_text(status)));
    }
  }
};

AdminClient::AdminClient(AdminTarget target, std::chrono::milliseconds timeout,
                         std::stop_token interrupted) {
  check_socket(target);
  grpc::ChannelArguments args;
  // The socket is local: an http_proxy in the environment must not apply to it.
  args.SetInt(GRPC_ARG_ENABLE_HTTP_PROXY, 0);
  auto channel = grpc::CreateCustomChannel("unix:" + target.socket_path.string(),
                                           grpc::InsecureChannelCredentials(), args);
  impl_ = std::make_unique<Impl>(Impl{.target = std::move(target),
                                      .timeout = timeout,
                                      .interrupted = std::move(interrupted),
                                      .stub = v1::Admin::NewStub(channel)});
}

AdminClient::~AdminClient() = default;

v1::AgentStatus AdminClient::get_status() {
  return impl_->call<v1::AgentStatus, v1::GetStatusRequest>("GetStatus",
                                                            &v1::Admin::Stub::GetStatus);
}

v1::ListServicesResponse AdminClient::list_services() {
  return impl_->call<v1::ListServicesResponse, v1::ListServicesRequest>(
      "ListServices", &v1::Admin::Stub::ListServices);
}

v1::ListEndpointsResponse AdminClient::list_endpoints() {
  return impl_->call<v1::ListEndpointsResponse, v1::ListEndpointsRequest>(
      "ListEndpoints", &v1::Admin::Stub::ListEndpoints);
}

void AdminClient::watch_services(
    const std::function<void(const v1::ListServicesResponse &)> &on_update) {
  grpc::ClientContext context;
  std::stop_callback on_interrupt(impl_->interrupted, [&] { context.TryCancel(); });
  FirstAnswerDeadline deadline(context, impl_->timeout);
  auto stream = impl_->stub->WatchServices(&context, v1::ListServicesRequest());
  bool answered = false;
  for (v1::ListServicesResponse update; stream->Read(&update);) {
    deadline.answered();
    answered = true;
    on_update(update);
  }
  const grpc::Status status = stream->Finish();
  if (impl_->interrupted.stop_requested()) return;
  if (deadline.expired())
    impl_->fail("WatchServices", grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED, ""));
  if (!answered) impl_->fail("WatchServices", status);
  throw CliError(fmt::format("{} closed the watch: {}", impl_->target.describe(),
                             status.ok() ? "no reason given" : status_text(status)));
}

}  // namespace sockmesh::cli
