// Per TCP VIP: the service behind it, how long the agent's connect to one of its backends may
// take and how many other backends it tries (Service.upstream_connect), and the backends. Built
// from the agent's applied state (the kernel's desired state and the Service resources) for
// NodeProxy, which retries failed connects of captured connections with it.
#pragma once

#include <google/protobuf/repeated_ptr_field.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "proxy/retry_choice.h"
#include "reconcile/desired_state.h"

namespace sockmesh::v1 {
class Service;
}

namespace sockmesh::proxy {

// Service.upstream_connect's defaults (resources.proto) and the bounds applied to what validation
// let through.
inline constexpr std::chrono::milliseconds kDefaultUpstreamTimeout{5000};
inline constexpr std::chrono::milliseconds kMaxUpstreamTimeout{600000};
inline constexpr uint32_t kDefaultUpstreamRetries = 2;
inline constexpr uint32_t kMaxUpstreamRetries = 10;

struct UpstreamService {
  std::string service;  // "namespace/name"
  std::chrono::milliseconds connect_timeout = kDefaultUpstreamTimeout;
  uint32_t retries = kDefaultUpstreamRetries;
  std::vector<UpstreamBackend> backends;  // the VIP's family, as the kernel has them
};

// By VIP (TCP only: the agent carries TCP).
using UpstreamTable = std::map<reconcile::ServiceKey, std::shared_ptr<const UpstreamService>>;

// `services` must hold the Service of every service `desired` names (a service missing there
// gets the defaults).
std::shared_ptr<const UpstreamTable> upstream_table_of(
    const reconcile::DesiredState &desired,
    const google::protobuf::RepeatedPtrField<v1::Service> &services);

}  // namespace sockmesh::proxy
