// gRPC channels from the agent to meshcp: TLS against meshcp's CA, with the node certificate when
// the node has one. Include only where a channel is made (gRPC headers are slow to parse).
#pragma once

#include <grpcpp/channel.h>
#include <grpcpp/support/channel_arguments.h>

#include <memory>
#include <string>

#include "identity/identity_client.h"

namespace sockmesh::identity {

// The name meshcp's serving certificate carries (controlplane/agent_tls.h).
inline constexpr const char *kControlPlaneTlsName = "meshcp";

std::shared_ptr<grpc::Channel> secure_channel(const std::string &target, const ChannelSecurity &security,
                                              grpc::ChannelArguments args = {});

}  // namespace sockmesh::identity
