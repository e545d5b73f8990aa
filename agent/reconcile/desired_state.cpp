#include "reconcile/desired_state.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstring>
#include <stdexcept>

namespace sockmesh::reconcile {

IpAddress parse_ip(const std::string& text) {
  IpAddress addr;
  if (inet_pton(AF_INET, text.c_str(), addr.bytes.data()) == 1) {
    addr.family = AF_INET;
  } else if (inet_pton(AF_INET6, text.c_str(), addr.bytes.data()) == 1) {
    addr.family = AF_INET6;
  } else {
    throw std::invalid_argument("not an IP address: \"" + text + "\"");
  }
  return addr;
}

std::string format_ip(const IpAddress& addr) {
  char text[INET6_ADDRSTRLEN] = {};
  inet_ntop(addr.family == AF_INET6 ? AF_INET6 : AF_INET, addr.bytes.data(), text, sizeof(text));
  return text;
}

std::string format_endpoint(const IpAddress& addr, uint16_t port) {
  std::string ip = format_ip(addr);
  return (addr.family == AF_INET6 ? "[" + ip + "]" : ip) + ":" + std::to_string(port);
}

std::string format_key(const ServiceKey& key) {
  return format_endpoint(key.addr, key.port) + (key.proto == IPPROTO_UDP ? "/UDP" : "/TCP");
}

uint64_t service_id_of(const std::string& service) {
  uint64_t hash = 14695981039346656037ull;  // FNV-1a 64
  for (unsigned char c : service) {
    hash ^= c;
    hash *= 1099511628211ull;
  }
  return hash ? hash : 1;
}

}  // namespace sockmesh::reconcile
