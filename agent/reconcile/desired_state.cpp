#include "reconcile/desired_state.h"

#include <arpa/inet.h>
#include <netinet/in.h>

namespace sockmesh::reconcile {

std::string format_key(const ServiceKey& key) {
  in_addr addr{htonl(key.addr)};
  char text[INET_ADDRSTRLEN] = {};
  inet_ntop(AF_INET, &addr, text, sizeof(text));
  return std::string(text) + ":" + std::to_string(key.port) +
         (key.proto == IPPROTO_UDP ? "/UDP" : "/TCP");
}

}  // namespace sockmesh::reconcile
