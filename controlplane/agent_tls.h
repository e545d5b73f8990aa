// TLS on meshcp's listener for node agents: meshcp serves a certificate of its own CA (SPIFFE ID
// spiffe://<td>/sockmesh/controlplane, DNS name "meshcp", which agents check); agents present their
// node certificate, which gRPC verifies against the CA. A client without one can only call
// Identity.JoinNode.
#pragma once

#include <grpcpp/security/auth_context.h>
#include <grpcpp/security/server_credentials.h>

#include <memory>
#include <optional>
#include <string>

#include "identity_authority.h"

namespace sockmesh::controlplane {

// The name agents give gRPC as the server's host name (GRPC_SSL_TARGET_NAME_OVERRIDE_ARG).
inline constexpr const char *kControlPlaneTlsName = "meshcp";

// A fresh key and a serving certificate for it (valid one year; re-issued at every start).
std::shared_ptr<grpc::ServerCredentials> agent_server_credentials(const IdentityAuthority &authority);

// The node named by the verified client certificate of a call, or nullopt when the caller
// presented none (or one that is not a node certificate of this trust domain).
std::optional<std::string> peer_node(const grpc::AuthContext &auth, const std::string &trust_domain);

}  // namespace sockmesh::controlplane
