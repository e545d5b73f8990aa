#include "xds/discovery_client.h"

#include <grpcpp/grpcpp.h>
#include <spdlog/spdlog.h>

#include <condition_variable>
#include <random>

#include "sockmesh/common/message_limits.h"
#include "sockmesh/v1/discovery.grpc.pb.h"

namespace sockmesh::xds {
namespace {

using namespace std::chrono_literals;

constexpr auto kFirstBackoff = 100ms;
constexpr auto kMaxBackoff = 5s;
// A stream that lived this long resets the backoff: the next failure is a new incident.
constexpr auto kHealthyStream = 10s;

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

struct DiscoveryClient::Impl {
  std::mutex mu;
  std::condition_variable wake;
  grpc::ClientContext *context = nullptr;  // the live stream's, for cancelling it on stop
};

DiscoveryClient::DiscoveryClient(std::string target, std::string node, KnownGood held,
                                 ApplyFn apply)
    : target_(std::move(target)),
      node_(std::move(node)),
      apply_(std::move(apply)),
      held_(std::move(held)),
      impl_(std::make_unique<Impl>()) {
  status_.system_version = held_.system_version;
  thread_ = std::thread([this] { run(); });
}

DiscoveryClient::~DiscoveryClient() {
  stopping_ = true;
  {
    std::lock_guard lock(impl_->mu);
    if (impl_->context) impl_->context->TryCancel();
  }
  impl_->wake.notify_all();
  if (thread_.joinable()) thread_.join();
}

StreamStatus DiscoveryClient::status() const {
  std::lock_guard lock(mu_);
  return status_;
}

void DiscoveryClient::run() {
  std::mt19937 jitter(std::random_device{}());
  auto backoff = std::chrono::milliseconds(kFirstBackoff);
  while (!stopping_) {
    {
      std::lock_guard lock(mu_);
      status_.state = "connecting";
    }
    auto started = std::chrono::steady_clock::now();
    stream_once();
    if (stopping_) break;
    if (std::chrono::steady_clock::now() - started > kHealthyStream) backoff = kFirstBackoff;
    // Full jitter: agents restarted together do not reconnect in lockstep.
    auto wait = std::chrono::milliseconds(
        std::uniform_int_distribution<int64_t>(backoff.count() / 2, backoff.count())(jitter));
    {
      std::lock_guard lock(mu_);
      status_.state = "backoff";
    }
    std::unique_lock lock(impl_->mu);
    impl_->wake.wait_for(lock, wait, [&] { return stopping_.load(); });
    backoff = std::min<std::chrono::milliseconds>(backoff * 2, kMaxBackoff);
  }
  std::lock_guard lock(mu_);
  status_.state = "stopped";
}

void DiscoveryClient::stream_once() {
  grpc::ChannelArguments args;
  // The first push carries the node's whole state (~12 MB at 10,000 services x 10 endpoints).
  args.SetMaxReceiveMessageSize(kMaxMessageBytes);
  auto channel = grpc::CreateCustomChannel(target_, grpc::InsecureChannelCredentials(), args);
  auto stub = v1::Discovery::NewStub(channel);
  grpc::ClientContext context;
  {
    std::lock_guard lock(impl_->mu);
    if (stopping_) return;
    impl_->context = &context;
  }
  auto stream = stub->Stream(&context);

  v1::DiscoveryRequest hello;
  hello.set_node(node_);
  hello.set_version_info(held_.system_version);
  for (const auto &[name, resource] : held_.resources)
    (*hello.mutable_initial_resource_versions())[name] = resource.version();
  v1::DiscoveryResponse push;
  if (stream->Write(hello)) {
    while (stream->Read(&push)) {
      {
        std::lock_guard lock(mu_);
        status_.state = "connected";
      }
      KnownGood candidate = held_;
      candidate.system_version = push.system_version_info();
      for (const auto &resource : push.resources()) candidate.resources[resource.name()] = resource;
      for (const auto &name : push.removed_resources()) candidate.resources.erase(name);

      v1::DiscoveryRequest answer;
      answer.set_node(node_);
      answer.set_response_nonce(push.nonce());
      std::optional<v1::ErrorDetail> refused = apply_(candidate);
      if (refused) {
        *answer.mutable_error_detail() = *refused;
        answer.set_version_info(held_.system_version);
        std::lock_guard lock(mu_);
        status_.last_nack = refused->message();
      } else {
        held_ = std::move(candidate);
        answer.set_version_info(held_.system_version);
        std::lock_guard lock(mu_);
        status_.system_version = held_.system_version;
        status_.last_nack.clear();
        status_.last_ack_unix_ms = now_ms();
      }
      spdlog::info("event=xds_{} version={} resources={} removed={} nonce={}",
                   refused ? "nack" : "ack", push.system_version_info(), push.resources_size(),
                   push.removed_resources_size(), push.nonce());
      if (!stream->Write(answer)) break;
    }
  }
  stream->WritesDone();
  grpc::Status status = stream->Finish();
  {
    std::lock_guard lock(impl_->mu);
    impl_->context = nullptr;
  }
  if (!stopping_)
    spdlog::warn("event=xds_stream_ended target={} code={} reason=\"{}\" action=reconnect", target_,
                 int(status.error_code()), status.error_message());
}

}  // namespace sockmesh::xds
