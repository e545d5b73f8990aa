// meshcp's desired state: the resources, their state version, and who to wake when they change.
// Apply and Delete are validated whole (resources::validate on the resulting snapshot) and either
// stored and pushed, or refused with nothing changed.
#pragma once

#include <grpcpp/support/status.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>

#include "agents.h"
#include "sockmesh/v1/controlplane.pb.h"
#include "store.h"

namespace sockmesh::controlplane {

// One consistent view of the state: never changes once taken.
struct View {
  uint64_t version = 0;
  std::shared_ptr<const Resources> resources;
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
  Agents &agents() { return agents_; }

  void subscribe(Subscriber *s);
  void unsubscribe(Subscriber *s);
  // Tells every subscriber, now and later, that meshcp is stopping.
  void stop();

 private:
  // Stores `next` when something changed (mu_ held; subscribers are told after mu_ is released,
  // since they read the view).
  grpc::Status commit(std::shared_ptr<Resources> next, const Resources &changed,
                      const std::vector<std::string> &removed);
  void notify();
  void tell_subscribers(void (Subscriber::*what)());

  Store &store_;
  mutable std::mutex mu_;
  View view_;
  Agents agents_;

  // Recursive: a subscriber told to stop may end its stream, and gRPC may then unsubscribe it on
  // this same thread.
  std::recursive_mutex subscribers_mu_;
  std::set<Subscriber *> subscribers_;
  bool stopping_ = false;
};

}  // namespace sockmesh::controlplane
