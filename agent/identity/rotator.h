// Keeps the node's certificate and its workloads' SVIDs fresh: a thread that wakes when the next
// renewal is due (half a certificate's lifetime) or when the set of local workloads changes, and
// retries failures with capped exponential backoff (1 s .. 30 s) — a failed renewal has the other
// half of the lifetime to succeed.
#pragma once

#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "identity/identity_client.h"
#include "identity/node_identity.h"
#include "identity/workload_identities.h"

namespace sockmesh::identity {

class Rotator {
 public:
  // Called (on the rotator's thread) after the node certificate was renewed.
  using NodeRenewed = std::function<void(const NodeIdentity &)>;

  Rotator(std::string controlplane, std::string identity_dir, NodeIdentity node, NodeRenewed renewed);
  ~Rotator();  // stop()s

  // The workloads placed on this node now; wakes the thread to issue SVIDs for new identities.
  void set_workloads(std::vector<LocalWorkload> workloads);
  WorkloadIdentities &workloads() { return *workloads_; }
  const WorkloadIdentities &workloads() const { return *workloads_; }
  NodeIdentity node() const;
  // Until the first SVID round succeeded (or the deadline passed): for tests and the demo.
  bool wait_ready(std::chrono::milliseconds limit);
  // "ok", or the last failure's message.
  std::string last_error() const;
  void stop();

 private:
  void run();
  ChannelSecurity security() const;  // mu_ held

  std::string controlplane_;
  std::string identity_dir_;
  NodeRenewed renewed_;
  mutable std::mutex mu_;
  std::condition_variable wake_;
  NodeIdentity node_;
  std::unique_ptr<WorkloadIdentities> workloads_;
  std::unique_ptr<IdentityClient> client_;  // rebuilt when the node certificate changes
  bool dirty_ = true;
  bool stopping_ = false;
  bool ready_ = false;
  std::string last_error_ = "ok";
  std::thread thread_;
};

}  // namespace sockmesh::identity
