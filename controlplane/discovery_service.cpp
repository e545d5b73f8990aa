#include "discovery_service.h"

#include <spdlog/spdlog.h>

#include <atomic>
#include <mutex>
#include <optional>

#include "agent_tls.h"
#include "node_filter.h"

namespace sockmesh::controlplane {
namespace {

std::atomic<uint64_t> next_nonce{1};

// One agent's stream. At most one push is in flight: the next one is computed from what the agent
// ACKed, so it never depends on a push whose fate is unknown.
//
// Locking: State calls state_changed()/stopping() under its subscriber lock; the reactions take
// mu_; Finish() is called without mu_ held because gRPC may run OnDone() inside it.
class Stream final : public grpc::ServerBidiReactor<v1::DiscoveryRequest, v1::DiscoveryResponse>,
                     public Subscriber {
 public:
  // peer: the node of the caller's verified certificate (nullopt: none, the stream is refused).
  Stream(State &state, std::optional<std::string> peer) : state_(state), peer_(std::move(peer)) {
    if (!peer_) {
      finishing_ = true;
      Finish(grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                          "the discovery stream needs a node certificate (join first with meshd --join-token)"));
      return;
    }
    state_.subscribe(this);
    StartRead(&request_);
  }

  void OnReadDone(bool ok) override {
    std::optional<grpc::Status> end;
    {
      std::lock_guard lock(mu_);
      if (!ok) {
        end = grpc::Status::OK;  // the agent closed its side, or the call is gone
      } else if (node_.empty()) {
        end = begin();
      } else {
        answer();
      }
      if (!end && !finishing_) {
        StartRead(&request_);
        push_if_due();
      }
    }
    if (end) finish(*end);
  }

  void OnWriteDone(bool ok) override {
    {
      std::lock_guard lock(mu_);
      writing_ = false;
      if (ok) return;
    }
    finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "write failed"));
  }

  void OnCancel() override { finish(grpc::Status::CANCELLED); }

  void OnDone() override {
    if (peer_) state_.unsubscribe(this);
    { std::lock_guard lock(mu_); }  // lets a reaction still inside mu_ leave it
    if (!node_.empty()) {
      state_.agents().disconnected(node_);
      spdlog::info("event=agent_disconnected node={}", node_);
    }
    delete this;
  }

  void state_changed() override {
    std::lock_guard lock(mu_);
    push_if_due();
  }

  void stopping() override {
    finish_async(grpc::Status(grpc::StatusCode::UNAVAILABLE, "meshcp is stopping"));
  }

 private:
  struct InFlight {
    std::string nonce;
    uint64_t version = 0;
    VersionMap set;  // what the agent holds once it ACKs: holds_ with these versions...
    std::vector<std::string> unset;  // ...and without these
  };

  // First request (mu_ held): who the agent is and what it holds.
  std::optional<grpc::Status> begin() {
    if (request_.node().empty())
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          "the first request must name the node (DiscoveryRequest.node)");
    if (request_.node() != *peer_)
      return grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                          "the stream names node \"" + request_.node() +
                              "\" but the node certificate is for \"" + *peer_ + "\"");
    node_ = request_.node();
    holds_.insert(request_.initial_resource_versions().begin(),
                  request_.initial_resource_versions().end());
    state_.agents().connected(node_, holds_);
    spdlog::info("event=agent_connected node={} holds={}", node_, holds_.size());
    return std::nullopt;
  }

  // An ACK or NACK of the push in flight (mu_ held); anything else is stale and ignored.
  void answer() {
    if (!in_flight_ || request_.response_nonce() != in_flight_->nonce) {
      spdlog::debug("event=stale_answer node={} nonce={}", node_, request_.response_nonce());
      return;
    }
    const std::string version = std::to_string(in_flight_->version);
    if (request_.has_error_detail()) {
      const auto &d = request_.error_detail();
      state_.agents().nacked(node_, version, d);
      spdlog::warn("event=nack node={} version={} resource={} field={} message=\"{}\"", node_,
                   version, d.resource(), d.field(), d.message());
    } else {
      for (const auto &name : in_flight_->unset) holds_.erase(name);
      for (const auto &[name, v] : in_flight_->set) holds_[name] = v;
      holds_version_ = in_flight_->version;
      state_.agents().acked(node_, version, in_flight_->set, in_flight_->unset);
      spdlog::info("event=ack node={} version={}", node_, version);
    }
    in_flight_.reset();
  }

  // Sends the difference between the state and what the agent holds, once per state version
  // (mu_ held). A NACKed version is not sent again; the next version is.
  void push_if_due() {
    if (node_.empty() || finishing_ || writing_ || in_flight_) return;
    if (pushed_version_ && *pushed_version_ == state_.version()) return;
    // What changed since the agent's ACKed version (the whole comparison when that is not known).
    Push push = state_.push_for(node_, holds_, holds_version_);
    if (pushed_version_ && *pushed_version_ == push.version) return;
    response_.Clear();
    for (auto &resource : push.resources) *response_.add_resources() = std::move(resource);
    for (auto &name : push.removed) response_.add_removed_resources(std::move(name));
    InFlight flight;
    flight.version = push.version;
    flight.nonce = std::to_string(next_nonce.fetch_add(1));
    flight.set = std::move(push.set);
    flight.unset = std::move(push.unset);
    response_.set_system_version_info(std::to_string(push.version));
    response_.set_nonce(flight.nonce);
    spdlog::info("event=push node={} version={} nonce={} resources={} removed={}", node_,
                 push.version, flight.nonce, response_.resources_size(),
                 response_.removed_resources_size());
    state_.agents().pushed(size_t(response_.resources_size()),
                           size_t(response_.removed_resources_size()));
    pushed_version_ = push.version;
    in_flight_ = std::move(flight);
    writing_ = true;
    StartWrite(&response_);
  }

  void finish_async(grpc::Status status) {
    {
      std::lock_guard lock(mu_);
      if (finishing_) return;
      finishing_ = true;
    }
    Finish(std::move(status));
  }

  void finish(grpc::Status status) { finish_async(std::move(status)); }

  State &state_;
  const std::optional<std::string> peer_;
  std::mutex mu_;
  v1::DiscoveryRequest request_;
  v1::DiscoveryResponse response_;  // lives until OnWriteDone
  std::string node_;
  VersionMap holds_;  // what the agent holds: its initial versions, then its last ACKed set
  std::optional<uint64_t> holds_version_;  // the state version holds_ is the node's need at
  std::optional<InFlight> in_flight_;
  std::optional<uint64_t> pushed_version_;
  bool writing_ = false;
  bool finishing_ = false;
};

}  // namespace

grpc::ServerBidiReactor<v1::DiscoveryRequest, v1::DiscoveryResponse> *DiscoveryService::Stream(
    grpc::CallbackServerContext *context) {
  const auto auth = context->auth_context();
  return new controlplane::Stream(state_, auth ? peer_node(*auth, trust_domain_) : std::nullopt);
}

}  // namespace sockmesh::controlplane
