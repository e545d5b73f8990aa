// An in-process control plane (meshcp's ControlPlane API) on a unix socket, for meshctl's tests:
// fixed answers, and a record of the changes it was asked for.
#pragma once

#include <grpcpp/support/status.h>

#include <filesystem>
#include <memory>
#include <mutex>
#include <vector>

#include "sockmesh/v1/controlplane.pb.h"

namespace sockmesh::cli::testing {

class FakeControlPlane {
 public:
  // Serves until destroyed; the socket is created at socket_path.
  explicit FakeControlPlane(const std::filesystem::path &socket_path);
  ~FakeControlPlane();

  // What meshcp holds: List answers those of the requested kind (all for an empty kind), in this
  // order, with this version.
  std::vector<v1::Resource> resources;
  std::string version = "7";
  v1::ControlPlaneStatus status;
  // Apply and Delete answer apply_response, or fail with change_status when it is not OK.
  v1::ApplyResponse apply_response;
  grpc::Status change_status;
  // AddNode answers added (its token names the node it was asked for); ListIdentities answers
  // identities.
  v1::AddNodeResponse added;
  v1::ListIdentitiesResponse identities;
  std::vector<v1::AddNodeRequest> add_node_requests;

  // What meshctl asked for.
  std::vector<v1::ApplyRequest> applied() const;
  std::vector<v1::DeleteRequest> deleted() const;

 private:
  struct Server;
  std::unique_ptr<Server> server_;
  mutable std::mutex mutex_;
  std::vector<v1::ApplyRequest> applied_;
  std::vector<v1::DeleteRequest> deleted_;
};

}  // namespace sockmesh::cli::testing
