// The X.509-SVIDs of the workloads on this node: one per SPIFFE identity (namespace + service
// account) that has a workload here, each with its own key made here. refresh() asks meshcp's CA
// (through `Signer`) for what is missing and renews each SVID at half its lifetime, so a renewal
// that fails has the other half to succeed. A renewed SVID gets a new generation: the tunnel opens
// new connections with it while established ones keep the old one until they close.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "sockmesh/pki/pki.h"
#include "sockmesh/v1/identity.pb.h"

namespace sockmesh::identity {

struct LocalWorkload {
  std::string name;  // "<namespace>/<name>"
  pki::SpiffeId id;
};

struct Svid {
  pki::Credential credential;
  std::string workload;  // the workload it was requested for
  uint64_t generation = 0;
  pki::TimePoint not_after;
  pki::TimePoint renew_at;
};

class WorkloadIdentities {
 public:
  using Signer = std::function<v1::SignWorkloadsResponse(const v1::SignWorkloadsRequest &)>;

  WorkloadIdentities(Signer signer, pki::Clock clock);

  // The workloads placed on this node now. Identities without a workload any more are dropped.
  void set_workloads(std::vector<LocalWorkload> workloads);

  // Requests SVIDs for identities that have none, whose SVID is due for renewal or expired; one
  // request for all. Returns when the next renewal is due (TimePoint::max() when nothing is held).
  // Throws std::runtime_error when meshcp refuses or cannot be reached (nothing held changes).
  pki::TimePoint refresh();

  std::optional<Svid> current(const pki::SpiffeId &id) const;
  std::vector<std::pair<std::string, Svid>> all() const;  // by SPIFFE ID string
  // The trust bundle from the last answer (empty before one).
  std::string bundle_pem() const;

 private:
  Signer signer_;
  pki::Clock clock_;
  mutable std::mutex mu_;
  std::map<std::string, LocalWorkload> wanted_;  // SPIFFE ID -> one workload with that identity
  std::map<std::string, Svid> held_;             // SPIFFE ID -> its SVID
  std::map<std::string, uint64_t> generations_;  // survives drops, so a generation never repeats
  std::string bundle_pem_;
};

}  // namespace sockmesh::identity
