// The agent's gRPC client of meshcp's Identity service and the TLS settings of its channels to
// meshcp (Discovery and Identity). gRPC stays in identity_client.cpp.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "sockmesh/v1/identity.pb.h"

namespace sockmesh::identity {

// How the agent's channels to meshcp are secured: meshcp's CA, and the node's key and certificate
// (empty before the node joined: only JoinNode can be called then).
struct ChannelSecurity {
  std::string bundle_pem;
  std::string key_pem;
  std::string certificate_pem;
};

class IdentityClient {
 public:
  IdentityClient(const std::string &controlplane, const ChannelSecurity &security);
  ~IdentityClient();

  // Each throws std::runtime_error with meshcp's answer ("meshcp refused ...: <message>").
  v1::JoinNodeResponse join(const v1::JoinNodeRequest &request);
  v1::SignWorkloadsResponse sign(const v1::SignWorkloadsRequest &request);
  v1::JoinNodeResponse renew_node(const v1::RenewNodeRequest &request);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace sockmesh::identity
