#include "server.h"

#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server_builder.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <stdexcept>

#include "agent_tls.h"
#include "sockmesh/common/message_limits.h"

namespace sockmesh::controlplane {

void prepare_socket_dir(const std::string &socket_path) {
  const std::string dir = std::filesystem::path(socket_path).parent_path().string();
  if (!dir.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec) throw std::runtime_error("cannot create " + dir + ": " + ec.message());
    if (::chmod(dir.c_str(), 0700) != 0)
      throw std::runtime_error("chmod " + dir + ": " + std::strerror(errno));
  }
  if (::unlink(socket_path.c_str()) != 0 && errno != ENOENT)
    throw std::runtime_error("cannot remove stale " + socket_path + ": " + std::strerror(errno));
}

Servers::Servers(State &state, IdentityAuthority &authority, const std::vector<std::string> &listen,
                 const std::string &api_socket)
    : state_(state),
      discovery_(state, authority.ca().trust_domain()),
      api_(state, authority),
      identity_(authority) {
  grpc::ServerBuilder discovery;
  const auto credentials = agent_server_credentials(authority);
  for (const auto &address : listen) {
    if (address.starts_with("unix:")) prepare_socket_dir(address.substr(5));
    discovery.AddListeningPort(address, credentials);
  }
  discovery.RegisterService(&discovery_);
  discovery.RegisterService(&identity_);
  discovery_server_ = discovery.BuildAndStart();
  if (!discovery_server_)
    throw std::runtime_error("cannot listen for agents on the given --listen");

  prepare_socket_dir(api_socket);
  grpc::ServerBuilder api;
  api.AddListeningPort("unix:" + api_socket, grpc::InsecureServerCredentials());
  api.SetMaxReceiveMessageSize(kMaxMessageBytes);  // an Apply of a whole large mesh
  api.RegisterService(&api_);
  const mode_t old_mask = ::umask(0177);  // the socket is created 0600
  api_server_ = api.BuildAndStart();
  ::umask(old_mask);
  if (!api_server_) throw std::runtime_error("cannot listen on the API socket " + api_socket);
  ::chmod(api_socket.c_str(), 0600);
}

void Servers::shutdown() {
  state_.stop();
  const auto deadline = std::chrono::system_clock::now() + std::chrono::seconds(2);
  if (discovery_server_) discovery_server_->Shutdown(deadline);
  if (api_server_) api_server_->Shutdown(deadline);
  discovery_server_.reset();
  api_server_.reset();
}

Servers::~Servers() {
  shutdown();
}

}  // namespace sockmesh::controlplane
