#include "xds/discovery_client.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <google/protobuf/wire_format_lite.h>
#include <grpcpp/grpcpp.h>
#include <spdlog/spdlog.h>

#include <condition_variable>
#include <map>
#include <random>

#include "identity/channel_credentials.h"
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

DiscoveryClient::DiscoveryClient(std::string target, std::string node,
                                 identity::ChannelSecurity security, KnownGood held, ApplyFn apply)
    : target_(std::move(target)),
      node_(std::move(node)),
      security_(std::move(security)),
      apply_(std::move(apply)),
      held_(std::move(held)),
      impl_(std::make_unique<Impl>()) {
  status_.system_version = held_.system_version;
  thread_ = std::thread([this] { run(); });
}

DiscoveryClient::~DiscoveryClient() {
  stop();
}

void DiscoveryClient::stop() {
  stopping_ = true;
  {
    std::lock_guard lock(impl_->mu);
    if (impl_->context) impl_->context->TryCancel();
  }
  impl_->wake.notify_all();
  if (thread_.joinable()) thread_.join();
}

void DiscoveryClient::with_held(const std::function<void(const KnownGood &)> &fn) const {
  std::lock_guard lock(held_mu_);
  fn(held_);
}

// The last-known-good file's format (LastKnownGood::serialize), from the resources' wire bytes
// kept beside them: only what changed since the last call is serialized, the rest is a copy.
std::string DiscoveryClient::serialize_held() const {
  using google::protobuf::internal::WireFormatLite;
  std::lock_guard lock(held_mu_);
  if (held_wire_.size() != held_.resources.size()) {
    for (const auto &[name, resource] : held_.resources)
      if (!held_wire_.count(name)) held_wire_[name] = resource.SerializeAsString();
  }
  size_t total = held_.system_version.size() + 16;
  for (const auto &[name, bytes] : held_wire_) total += bytes.size() + 16;
  std::string out;
  out.reserve(total);
  {
    google::protobuf::io::StringOutputStream raw(&out);
    google::protobuf::io::CodedOutputStream coded(&raw);
    WireFormatLite::WriteString(v1::DiscoveryResponse::kSystemVersionInfoFieldNumber,
                                held_.system_version, &coded);
    for (const auto &[name, bytes] : held_wire_) {
      coded.WriteTag(WireFormatLite::MakeTag(v1::DiscoveryResponse::kResourcesFieldNumber,
                                             WireFormatLite::WIRETYPE_LENGTH_DELIMITED));
      coded.WriteVarint32(uint32_t(bytes.size()));
      coded.WriteRaw(bytes.data(), int(bytes.size()));
    }
  }
  return out;
}

void DiscoveryClient::set_security(identity::ChannelSecurity security) {
  std::lock_guard lock(mu_);
  security_ = std::move(security);
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
  identity::ChannelSecurity security;
  {
    std::lock_guard lock(mu_);
    security = security_;
  }
  auto channel = identity::secure_channel(target_, security, args);
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
  {
    std::lock_guard lock(held_mu_);
    hello.set_version_info(held_.system_version);
    for (const auto &[name, resource] : held_.resources)
      (*hello.mutable_initial_resource_versions())[name] = resource.version();
  }
  v1::DiscoveryResponse push;
  if (stream->Write(hello)) {
    while (stream->Read(&push)) {
      {
        std::lock_guard lock(mu_);
        status_.state = "connected";
      }
      v1::DiscoveryRequest answer;
      answer.set_node(node_);
      answer.set_response_nonce(push.nonce());
      std::optional<v1::ErrorDetail> refused;
      {
        // The push is applied to the held state in place, with what it replaced kept aside: a
        // copy of the whole state per push would cost O(state) (110,000 resources at 10,000
        // services x 10 endpoints) for a one-resource change. A NACK puts the kept values back.
        std::lock_guard held_lock(held_mu_);
        Delta delta;
        std::map<std::string, std::optional<v1::Resource>> previous;
        for (auto &resource : *push.mutable_resources()) {
          std::string name = resource.name();
          auto it = held_.resources.find(name);
          if (!previous.count(name))
            previous[name] = it == held_.resources.end()
                                 ? std::nullopt
                                 : std::optional<v1::Resource>(std::move(it->second));
          held_.resources[name] = std::move(resource);
          delta.changed.push_back(std::move(name));
        }
        for (const auto &name : push.removed_resources()) {
          auto it = held_.resources.find(name);
          if (it == held_.resources.end()) continue;
          if (!previous.count(name)) previous[name] = std::move(it->second);
          held_.resources.erase(it);
          delta.removed.push_back(name);
        }
        const std::string held_version = held_.system_version;
        held_.system_version = push.system_version_info();

        refused = apply_(held_, delta);
        if (refused) {
          for (auto &[name, value] : previous) {
            if (value)
              held_.resources[name] = std::move(*value);
            else
              held_.resources.erase(name);
          }
          held_.system_version = held_version;
        } else {
          // Serialized again by the next serialize_held(), off the stream's path.
          for (const auto *names : {&delta.removed, &delta.changed})
            for (const auto &name : *names) held_wire_.erase(name);
        }
        answer.set_version_info(held_.system_version);
      }
      if (refused) {
        *answer.mutable_error_detail() = *refused;
        std::lock_guard lock(mu_);
        status_.last_nack = refused->message();
      } else {
        std::lock_guard lock(mu_);
        status_.system_version = answer.version_info();
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
