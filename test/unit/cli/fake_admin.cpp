#include "fake_admin.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <stdexcept>
#include <thread>

#include "sockmesh/v1/admin.grpc.pb.h"

namespace sockmesh::cli::testing {

struct FakeAdmin::Server final : v1::Admin::Service {
  explicit Server(FakeAdmin &owner) : owner(owner) {}

  grpc::Status GetStatus(grpc::ServerContext *, const v1::GetStatusRequest *,
                         v1::AgentStatus *out) override {
    std::this_thread::sleep_for(owner.status_delay);
    *out = owner.status;
    return grpc::Status::OK;
  }
  grpc::Status ListServices(grpc::ServerContext *, const v1::ListServicesRequest *,
                            v1::ListServicesResponse *out) override {
    *out = owner.services;
    return grpc::Status::OK;
  }
  grpc::Status ListEndpoints(grpc::ServerContext *, const v1::ListEndpointsRequest *,
                             v1::ListEndpointsResponse *out) override {
    *out = owner.endpoints;
    return grpc::Status::OK;
  }

  grpc::Status GetTraffic(grpc::ServerContext *, const v1::GetTrafficRequest *,
                          v1::TrafficReport *out) override {
    std::lock_guard lock(owner.mutex_);
    if (owner.traffic.empty()) return grpc::Status::OK;
    *out = owner.traffic[std::min(owner.traffic_served_, owner.traffic.size() - 1)];
    ++owner.traffic_served_;
    return grpc::Status::OK;
  }
  grpc::Status ListMaps(grpc::ServerContext *, const v1::ListMapsRequest *,
                        v1::ListMapsResponse *out) override {
    *out = owner.maps;
    return grpc::Status::OK;
  }
  grpc::Status GetFastPath(grpc::ServerContext *, const v1::GetFastPathRequest *,
                           v1::FastPathReport *out) override {
    if (!owner.fast_path_error.ok()) return owner.fast_path_error;
    *out = owner.fast_path;
    return grpc::Status::OK;
  }
  grpc::Status GetResilience(grpc::ServerContext *, const v1::GetResilienceRequest *request,
                             v1::ResilienceReport *out) override {
    std::lock_guard lock(owner.mutex_);
    owner.resilience_requests.push_back(*request);
    if (!owner.resilience_error.ok()) return owner.resilience_error;
    *out = owner.resilience;
    if (request->name().empty()) return grpc::Status::OK;
    const auto selected = [&](const std::string &ns, const std::string &name) {
      return name == request->name() &&
             (request->namespace_().empty() || ns == request->namespace_());
    };
    out->clear_services();
    out->clear_untracked_services();
    for (const auto &s : owner.resilience.services())
      if (selected(s.namespace_(), s.name())) *out->add_services() = s;
    for (const auto &u : owner.resilience.untracked_services()) {
      const auto slash = u.find('/');
      if (selected(u.substr(0, slash), u.substr(slash + 1))) out->add_untracked_services(u);
    }
    if (out->services().empty() && out->untracked_services().empty())
      return grpc::Status(grpc::StatusCode::NOT_FOUND, "service not found");
    return grpc::Status::OK;
  }
  grpc::Status DumpMap(grpc::ServerContext *, const v1::DumpMapRequest *request,
                       v1::DumpMapResponse *out) override {
    std::lock_guard lock(owner.mutex_);
    owner.dump_requests.push_back(*request);
    const auto it = owner.dumps.find(request->name());
    if (it == owner.dumps.end()) {
      return grpc::Status(
          grpc::StatusCode::NOT_FOUND,
          "no map " + request->name() + " on this node; `meshctl bpf maps` lists them");
    }
    *out = it->second;
    return grpc::Status::OK;
  }

  grpc::Status WatchServices(grpc::ServerContext *context, const v1::ListServicesRequest *,
                             grpc::ServerWriter<v1::ListServicesResponse> *writer) override {
    for (const auto &update : owner.watch_updates) writer->Write(update);
    if (!owner.watch_holds_open) return owner.watch_end;
    while (!context->IsCancelled()) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    return grpc::Status::CANCELLED;
  }

  FakeAdmin &owner;
  std::unique_ptr<grpc::Server> server;
};

FakeAdmin::FakeAdmin(const std::filesystem::path &socket_path)
    : server_(std::make_unique<Server>(*this)) {
  grpc::ServerBuilder builder;
  builder.AddListeningPort("unix:" + socket_path.string(), grpc::InsecureServerCredentials());
  builder.RegisterService(server_.get());
  server_->server = builder.BuildAndStart();
  if (!server_->server)
    throw std::runtime_error("fake admin: cannot listen on " + socket_path.string());
}

int FakeAdmin::traffic_calls() const {
  std::lock_guard lock(mutex_);
  return static_cast<int>(traffic_served_);
}

FakeAdmin::~FakeAdmin() {
  server_->server->Shutdown();
}

}  // namespace sockmesh::cli::testing
