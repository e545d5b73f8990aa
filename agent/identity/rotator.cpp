#include "identity/rotator.h"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace sockmesh::identity {
namespace {

constexpr auto kFirstBackoff = std::chrono::seconds(1);
constexpr auto kMaxBackoff = std::chrono::seconds(30);

}  // namespace

Rotator::Rotator(std::string controlplane, std::string identity_dir, NodeIdentity node, NodeRenewed renewed)
    : controlplane_(std::move(controlplane)),
      identity_dir_(std::move(identity_dir)),
      renewed_(std::move(renewed)),
      node_(std::move(node)) {
  client_ = std::make_unique<IdentityClient>(controlplane_, security());
  workloads_ = std::make_unique<WorkloadIdentities>(
      [this](const v1::SignWorkloadsRequest &request) {
        IdentityClient *client;
        {
          std::lock_guard lock(mu_);
          client = client_.get();  // replaced only on this thread
        }
        return client->sign(request);
      },
      pki::system_clock());
  thread_ = std::thread([this] { run(); });
}

Rotator::~Rotator() { stop(); }

void Rotator::stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

ChannelSecurity Rotator::security() const {
  return {node_.bundle_pem, node_.key.pem(), node_.certificate_pem};
}

void Rotator::set_workloads(std::vector<LocalWorkload> workloads) {
  workloads_->set_workloads(std::move(workloads));
  {
    std::lock_guard lock(mu_);
    dirty_ = true;
  }
  wake_.notify_all();
}

NodeIdentity Rotator::node() const {
  std::lock_guard lock(mu_);
  return node_;
}

bool Rotator::wait_ready(std::chrono::milliseconds limit) {
  std::unique_lock lock(mu_);
  return wake_.wait_for(lock, limit, [&] { return ready_ || stopping_; }) && ready_;
}

std::string Rotator::last_error() const {
  std::lock_guard lock(mu_);
  return last_error_;
}

void Rotator::run() {
  auto backoff = std::chrono::milliseconds(kFirstBackoff);
  std::unique_lock lock(mu_);
  while (!stopping_) {
    dirty_ = false;
    const auto node_cert = pki::Certificate::from_pem(node_.certificate_pem);
    std::string error;
    pki::TimePoint next = pki::TimePoint::max();
    lock.unlock();
    try {
      if (pki::renew_at(node_cert) <= std::chrono::system_clock::now()) {
        NodeIdentity renewed = node();
        renewed.key = pki::PrivateKey::generate();
        v1::RenewNodeRequest request;
        request.set_csr_pem(pki::make_csr(renewed.key, *node_cert.spiffe_id()));
        const auto response = client_->renew_node(request);
        renewed.certificate_pem = response.certificate_pem();
        if (!response.trust_bundle_pem().empty()) renewed.bundle_pem = response.trust_bundle_pem();
        renewed.save(identity_dir_);
        {
          std::lock_guard relock(mu_);
          node_ = renewed;
          client_ = std::make_unique<IdentityClient>(controlplane_, security());
        }
        spdlog::info("event=node_certificate_renewed node={}", renewed.node);
        if (renewed_) renewed_(renewed);
      }
      next = std::min(workloads_->refresh(), pki::renew_at(pki::Certificate::from_pem(node().certificate_pem)));
    } catch (const std::exception &e) {
      error = e.what();
    }
    lock.lock();
    auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(next - std::chrono::system_clock::now());
    if (!error.empty()) {
      if (last_error_ != error) spdlog::warn("event=identity_refresh_failed retry_in_ms={} reason=\"{}\"", backoff.count(), error);
      last_error_ = error;
      wait = backoff;
      backoff = std::min<std::chrono::milliseconds>(backoff * 2, kMaxBackoff);
    } else {
      last_error_ = "ok";
      backoff = kFirstBackoff;
      if (!ready_) {
        ready_ = true;
        wake_.notify_all();
      }
    }
    wait = std::clamp(wait, std::chrono::milliseconds(0), std::chrono::milliseconds(std::chrono::hours(1)));
    wake_.wait_for(lock, wait, [&] { return stopping_ || dirty_; });
  }
}

}  // namespace sockmesh::identity
