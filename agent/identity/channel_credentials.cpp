#include "identity/channel_credentials.h"

#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>

namespace sockmesh::identity {

std::shared_ptr<grpc::Channel> secure_channel(const std::string &target, const ChannelSecurity &security,
                                              grpc::ChannelArguments args) {
  grpc::SslCredentialsOptions tls;
  tls.pem_root_certs = security.bundle_pem;
  tls.pem_private_key = security.key_pem;
  tls.pem_cert_chain = security.certificate_pem;
  // meshcp is reached by a unix socket path or an address, not by its certificate's name.
  args.SetSslTargetNameOverride(kControlPlaneTlsName);
  return grpc::CreateCustomChannel(target, grpc::SslCredentials(tls), args);
}

}  // namespace sockmesh::identity
