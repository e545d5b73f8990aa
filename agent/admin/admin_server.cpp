#include "admin/admin_server.h"

#include <grpcpp/grpcpp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <stdexcept>

#include "sockmesh/v1/admin.grpc.pb.h"

namespace sockmesh::admin {
namespace {

class AdminService final : public v1::Admin::Service {
 public:
  explicit AdminService(AdminState &state) : state_(state) {}

  grpc::Status GetStatus(grpc::ServerContext *, const v1::GetStatusRequest *,
                         v1::AgentStatus *reply) override {
    return guarded([&] { *reply = state_.status(); });
  }
  grpc::Status ListServices(grpc::ServerContext *, const v1::ListServicesRequest *,
                            v1::ListServicesResponse *reply) override {
    return guarded([&] { *reply = state_.services(); });
  }
  grpc::Status WatchServices(grpc::ServerContext *context, const v1::ListServicesRequest *,
                             grpc::ServerWriter<v1::ListServicesResponse> *writer) override {
    try {
      while (!context->IsCancelled()) {
        v1::ListServicesResponse services = state_.services();
        if (!writer->Write(services)) break;  // the client went away
        // Wake up now and then to notice a cancelled client even when nothing changes.
        while (!context->IsCancelled() &&
               !state_.wait_for_change(services.generation(), std::chrono::milliseconds(500))) {
        }
      }
      return grpc::Status::OK;
    } catch (const std::exception &e) {
      return grpc::Status(grpc::StatusCode::INTERNAL, e.what());
    }
  }
  grpc::Status ListEndpoints(grpc::ServerContext *, const v1::ListEndpointsRequest *,
                             v1::ListEndpointsResponse *reply) override {
    return guarded([&] { *reply = state_.endpoints(); });
  }
  grpc::Status GetTraffic(grpc::ServerContext *, const v1::GetTrafficRequest *,
                          v1::TrafficReport *reply) override {
    return guarded([&] { *reply = state_.traffic(); });
  }
  grpc::Status ListMaps(grpc::ServerContext *, const v1::ListMapsRequest *,
                        v1::ListMapsResponse *reply) override {
    return guarded([&] { *reply = state_.maps(); });
  }
  grpc::Status GetFastPath(grpc::ServerContext *, const v1::GetFastPathRequest *,
                           v1::FastPathReport *reply) override {
    return guarded([&] { *reply = state_.fast_path(); });
  }
  grpc::Status DumpMap(grpc::ServerContext *, const v1::DumpMapRequest *request,
                       v1::DumpMapResponse *reply) override {
    return guarded_lookup([&] { *reply = state_.dump_map(request->name(), request->limit()); });
  }
  grpc::Status GetResilience(grpc::ServerContext *, const v1::GetResilienceRequest *request,
                             v1::ResilienceReport *reply) override {
    return guarded_lookup(
        [&] { *reply = state_.resilience(request->namespace_(), request->name()); });
  }

 private:
  template <typename Fn>
  grpc::Status guarded(Fn fn) {
    try {
      fn();
      return grpc::Status::OK;
    } catch (const std::exception &e) {
      return grpc::Status(grpc::StatusCode::INTERNAL, e.what());
    }
  }
  // For calls whose request names something (a map, a service): std::out_of_range is a name the
  // agent does not hold, NOT_FOUND with its message.
  template <typename Fn>
  grpc::Status guarded_lookup(Fn fn) {
    try {
      fn();
      return grpc::Status::OK;
    } catch (const std::out_of_range &e) {
      return grpc::Status(grpc::StatusCode::NOT_FOUND, e.what());
    } catch (const std::exception &e) {
      return grpc::Status(grpc::StatusCode::INTERNAL, e.what());
    }
  }

  AdminState &state_;
};

void prepare_socket_dir(const std::string &socket_path) {
  std::string dir = socket_path.substr(0, socket_path.rfind('/'));
  std::string partial;
  for (size_t pos = 1; pos != std::string::npos;) {
    pos = dir.find('/', pos + 1);
    partial = dir.substr(0, pos);
    if (mkdir(partial.c_str(), 0700) != 0 && errno != EEXIST)
      throw std::runtime_error("mkdir " + partial + ": " + std::strerror(errno));
  }
  if (chmod(dir.c_str(), 0700) != 0)
    throw std::runtime_error("chmod " + dir + ": " + std::strerror(errno));
  if (unlink(socket_path.c_str()) != 0 && errno != ENOENT)
    throw std::runtime_error("remove stale " + socket_path + ": " + std::strerror(errno));
}

}  // namespace

struct AdminServer::Impl {
  explicit Impl(AdminState &state) : service(state) {}
  AdminService service;
  std::unique_ptr<grpc::Server> server;
  std::string socket_path;
};

AdminServer::AdminServer(const std::string &socket_path, AdminState &state)
    : impl_(std::make_unique<Impl>(state)) {
  prepare_socket_dir(socket_path);
  impl_->socket_path = socket_path;
  grpc::ServerBuilder builder;
  builder.AddListeningPort("unix:" + socket_path, grpc::InsecureServerCredentials());
  builder.RegisterService(&impl_->service);
  impl_->server = builder.BuildAndStart();
  if (!impl_->server) throw std::runtime_error("cannot serve the admin API on " + socket_path);
  chmod(socket_path.c_str(), 0600);
}

AdminServer::~AdminServer() {
  if (impl_->server)
    impl_->server->Shutdown(std::chrono::system_clock::now() + std::chrono::milliseconds(500));
  if (!impl_->socket_path.empty()) unlink(impl_->socket_path.c_str());
}

void AdminServer::release_path() {
  unlink(impl_->socket_path.c_str());
  impl_->socket_path.clear();
}

}  // namespace sockmesh::admin
