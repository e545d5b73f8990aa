#include "fake_controlplane.h"

#include <grpcpp/grpcpp.h>

#include <stdexcept>

#include "sockmesh/v1/controlplane.grpc.pb.h"

namespace sockmesh::cli::testing {

struct FakeControlPlane::Server final : v1::ControlPlane::Service {
  explicit Server(FakeControlPlane &owner) : owner(owner) {}

  grpc::Status Apply(grpc::ServerContext *, const v1::ApplyRequest *request,
                     v1::ApplyResponse *out) override {
    std::lock_guard lock(owner.mutex_);
    owner.applied_.push_back(*request);
    if (!owner.change_status.ok()) return owner.change_status;
    *out = owner.apply_response;
    return grpc::Status::OK;
  }
  grpc::Status Delete(grpc::ServerContext *, const v1::DeleteRequest *request,
                      v1::ApplyResponse *out) override {
    std::lock_guard lock(owner.mutex_);
    owner.deleted_.push_back(*request);
    if (!owner.change_status.ok()) return owner.change_status;
    *out = owner.apply_response;
    return grpc::Status::OK;
  }
  grpc::Status List(grpc::ServerContext *, const v1::ListRequest *request,
                    v1::ListResponse *out) override {
    out->set_version(owner.version);
    const std::string prefix = request->kind() + "/";
    for (const auto &resource : owner.resources) {
      if (request->kind().empty() || resource.name().starts_with(prefix))
        *out->add_resources() = resource;
    }
    return grpc::Status::OK;
  }
  grpc::Status GetStatus(grpc::ServerContext *, const v1::ControlPlaneStatusRequest *,
                         v1::ControlPlaneStatus *out) override {
    *out = owner.status;
    return grpc::Status::OK;
  }

  grpc::Status AddNode(grpc::ServerContext *, const v1::AddNodeRequest *request,
                       v1::AddNodeResponse *out) override {
    std::lock_guard lock(owner.mutex_);
    owner.add_node_requests.push_back(*request);
    if (request->node() == "Bad_Name")
      return {grpc::StatusCode::INVALID_ARGUMENT, "\"Bad_Name\" is not a valid node name"};
    *out = owner.added;
    return grpc::Status::OK;
  }

  grpc::Status ListIdentities(grpc::ServerContext *, const v1::ListIdentitiesRequest *request,
                              v1::ListIdentitiesResponse *out) override {
    *out = owner.identities;
    if (!request->node().empty()) {
      out->clear_certificates();
      for (const auto &c : owner.identities.certificates())
        if (c.node() == request->node()) *out->add_certificates() = c;
    }
    return grpc::Status::OK;
  }

  FakeControlPlane &owner;
  std::unique_ptr<grpc::Server> server;
};

FakeControlPlane::FakeControlPlane(const std::filesystem::path &socket_path)
    : server_(std::make_unique<Server>(*this)) {
  grpc::ServerBuilder builder;
  builder.AddListeningPort("unix:" + socket_path.string(), grpc::InsecureServerCredentials());
  builder.RegisterService(server_.get());
  server_->server = builder.BuildAndStart();
  if (!server_->server)
    throw std::runtime_error("fake control plane: cannot listen on " + socket_path.string());
}

FakeControlPlane::~FakeControlPlane() {
  server_->server->Shutdown();
}

std::vector<v1::ApplyRequest> FakeControlPlane::applied() const {
  std::lock_guard lock(mutex_);
  return applied_;
}

std::vector<v1::DeleteRequest> FakeControlPlane::deleted() const {
  std::lock_guard lock(mutex_);
  return deleted_;
}

}  // namespace sockmesh::cli::testing
