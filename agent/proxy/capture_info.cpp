#include "proxy/capture_info.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cerrno>
#include <cstring>

#include "sockmesh/capture_maps.h"

namespace sockmesh::proxy {
namespace {

CapturedAddress from_kernel(const sm_capture_addr &a) {
  CapturedAddress out;
  out.addr.family = a.family == SM_AF_INET6 ? AF_INET6 : AF_INET;
  std::memcpy(out.addr.bytes.data(), a.addr, a.family == SM_AF_INET6 ? 16 : 4);
  out.port = ntohs(a.port);
  return out;
}

void set_error(std::string *error, std::string text) {
  if (error) *error = std::move(text);
}

}  // namespace

std::string CapturedAddress::to_string() const {
  return reconcile::format_endpoint(addr, port);
}

sockaddr_storage CapturedAddress::sockaddr(socklen_t *len) const {
  sockaddr_storage out{};
  if (addr.family == AF_INET6) {
    auto &sin6 = reinterpret_cast<sockaddr_in6 &>(out);
    sin6.sin6_family = AF_INET6;
    std::memcpy(&sin6.sin6_addr, addr.bytes.data(), 16);
    sin6.sin6_port = htons(port);
    if (len) *len = sizeof(sin6);
  } else {
    auto &sin = reinterpret_cast<sockaddr_in &>(out);
    sin.sin_family = AF_INET;
    std::memcpy(&sin.sin_addr, addr.bytes.data(), 4);
    sin.sin_port = htons(port);
    if (len) *len = sizeof(sin);
  }
  return out;
}

std::optional<CaptureInfo> read_capture_info(int accepted_fd, std::string *error) {
  sm_capture_info record{};
  socklen_t len = sizeof(record);
  if (getsockopt(accepted_fd, SOL_IP, SM_SO_CAPTURE_INFO, &record, &len) != 0) {
    int err = errno;
    if (err == ENOPROTOOPT)
      set_error(error,
                "no capture record for this connection: it was not captured by sockmesh (a "
                "direct connect to the agent's listener?), or the capture programs are not "
                "attached to the agent's cgroup");
    else
      set_error(error, std::string("getsockopt(SM_SO_CAPTURE_INFO): ") + std::strerror(err));
    return std::nullopt;
  }
  if (len != sizeof(record)) {
    set_error(error, "capture record of " + std::to_string(len) + " bytes, expected " +
                         std::to_string(sizeof(record)) +
                         ": the kernel programs and meshd come from different builds");
    return std::nullopt;
  }
  CaptureInfo info;
  info.original = from_kernel(record.orig);
  info.backend = from_kernel(record.backend);
  info.src_workload = record.src_workload;
  info.dst_workload = record.dst_workload;
  info.dst_node = record.dst_node;
  return info;
}

}  // namespace sockmesh::proxy
