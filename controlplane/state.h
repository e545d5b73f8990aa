// meshcp's desired state: the resources, their state version, and who to wake when they change.
// Apply and Delete are validated (every rule of resources::validate, on the state they would
// make) and either stored and pushed, or refused with nothing changed.
//
// Cost: a change that only adds, changes or removes Services — an operator's usual change — is
// checked and turned into each agent's push with work proportional to the change (the services,
// the workloads they name, indexes of the VIPs in use and of the workloads services name, a log
// of recent changes); AuthorizationPolicies, which name nothing, may be part of it and are checked
// alone. Other changes are validated on the whole state.
#pragma once

#include <grpcpp/support/status.h>

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "agents.h"
#include "sockmesh/v1/controlplane.pb.h"
#include "store.h"

namespace sockmesh::controlplane {

// One consistent view of the state: never changes once taken.
struct View {
  uint64_t version = 0;
  std::shared_ptr<const Resources> resources;
};

// One agent's push: what differs between what it holds and what its node needs now.
struct Push {
  uint64_t version = 0;
  std::vector<v1::Resource> resources;  // added or changed
  std::vector<std::string> removed;
  VersionMap set;                  // what the agent holds once it ACKs: these versions...
  std::vector<std::string> unset;  // ...and not these names
};

// Told about state changes and shutdown (the discovery streams).
class Subscriber {
 public:
  virtual ~Subscriber() = default;
  virtual void state_changed() = 0;
  virtual void stopping() = 0;
};

class State {
 public:
  // Loads the store (throws what Store::load throws).
  explicit State(Store &store);

  // INVALID_ARGUMENT: the error lines joined by "\n"; on success, the counts and the new version
  // (the version is bumped only when something changed).
  grpc::Status apply(const v1::ApplyRequest &request, v1::ApplyResponse *response);
  // NOT_FOUND naming every unknown name; INVALID_ARGUMENT when the rest would be invalid.
  grpc::Status remove(const v1::DeleteRequest &request, v1::ApplyResponse *response);
  // kind "workload", "service", "node" or "" (all). INVALID_ARGUMENT for another kind.
  grpc::Status list(const std::string &kind, v1::ListResponse *response) const;
  void status(v1::ControlPlaneStatus *status) const;

  View view() const;
  uint64_t version() const;
  Agents &agents() { return agents_; }
  const Agents &agents() const { return agents_; }
  // Resources in the state by kind ("workload", "service", "node", "authorizationpolicy").
  std::map<std::string, uint64_t> resources_by_kind() const;
  // Apply and Delete requests since start, by (operation "apply"|"delete", result "applied"|
  // "unchanged"|"refused"|"failed"); dry runs are not counted.
  std::map<std::pair<std::string, std::string>, uint64_t> changes() const;

  // The push for the agent of `node` that holds `holds`, which was the node's whole need at state
  // version `holds_version` (nullopt: not known, e.g. what a connecting agent reports).
  Push push_for(const std::string &node, const VersionMap &holds,
                std::optional<uint64_t> holds_version) const;

  void subscribe(Subscriber *s);
  void unsubscribe(Subscriber *s);
  // Tells every subscriber, now and later, that meshcp is stopping.
  void stop();

 private:
  // Every rule the state would break after the change (mu_ held).
  std::vector<std::string> check(const Resources &changed, const std::vector<std::string> &removed);
  std::vector<std::string> check_services(const Resources &changed,
                                          const std::vector<std::string> &removed);
  // Stores the change and makes it the state (mu_ held; subscribers are told after mu_ is
  // released, since they read the state).
  grpc::Status commit(const Resources &changed, const std::vector<std::string> &removed);
  // The indexes, from scratch or for one resource entering (+1) or leaving (-1) the state.
  void rebuild_indexes();
  void index(const v1::Resource &resource, int sign);
  bool named(const std::string &name) const;
  void notify();
  void tell_subscribers(void (Subscriber::*what)());

  Store &store_;
  mutable std::mutex mu_;
  uint64_t version_ = 0;
  // Shared with views: changed in place only while no view holds it, else copied first.
  std::shared_ptr<Resources> resources_;
  std::map<std::string, std::string> vip_owner_;  // resources::vip_identity -> service name
  std::map<std::string, int> named_;              // workload name -> endpoints naming it
  // Recent changes: every name whose content, presence or need by a node may differ from the
  // version before (a service's change names the workloads it named before and after).
  struct Change {
    uint64_t version;
    std::vector<std::string> names;
  };
  std::deque<Change> log_;
  std::map<std::pair<std::string, std::string>, uint64_t> changes_;  // mu_
  Agents agents_;

  // Recursive: a subscriber told to stop may end its stream, and gRPC may then unsubscribe it on
  // this same thread.
  std::recursive_mutex subscribers_mu_;
  std::set<Subscriber *> subscribers_;
  bool stopping_ = false;
};

}  // namespace sockmesh::controlplane
