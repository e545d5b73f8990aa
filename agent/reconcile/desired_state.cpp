#include "reconcile/desired_state.h"

#include <arpa/inet.h>
#include <netinet/in.h>

namespace sockmesh::reconcile {

std::string format_ipv4(uint32_t host_order) {
  in_addr addr{htonl(host_order)};
  char text[INET_ADDRSTRLEN] = {};
  inet_ntop(AF_INET, &addr, text, sizeof(text));
  return text;
}

std::string format_key(const ServiceKey &key) {
  return format_ipv4(key.addr) + ":" + std::to_string(key.port) +
         (key.proto == IPPROTO_UDP ? "/UDP" : "/TCP");
}

}  // namespace sockmesh::reconcile
