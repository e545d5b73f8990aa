// What the access log's and the traffic report's tests share: addresses and tuples in the kernel's
// layout, and the agent's names for the workload numbers and VIPs they use.
#pragma once

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>

#include "sockmesh/telemetry.h"
#include "telemetry/names.h"

namespace sockmesh::telemetry::testing {

inline void ip4(uint32_t out[4], const char *text) {
  out[0] = out[1] = out[2] = out[3] = 0;
  ASSERT_EQ(inet_pton(AF_INET, text, out), 1) << text;
}

inline void ip6(uint32_t out[4], const char *text) {
  ASSERT_EQ(inet_pton(AF_INET6, text, out), 1) << text;
}

// A TCP tuple of `family` (AF_INET or AF_INET6); a null vip or backend stays zero.
inline sm_traffic_key tcp_key(int family, const char *vip, uint16_t vip_port, const char *backend,
                              uint16_t backend_port, uint32_t src_workload, uint32_t dst_workload) {
  sm_traffic_key key{};
  auto address = family == AF_INET6 ? ip6 : ip4;
  if (vip) address(key.vip, vip);
  key.vip_port = htons(vip_port);
  if (backend) address(key.backend, backend);
  key.backend_port = htons(backend_port);
  key.family = uint8_t(family);
  key.proto = IPPROTO_TCP;
  key.src_workload = src_workload;
  key.dst_workload = dst_workload;
  return key;
}

// Workloads 3 (demo/client) and 4 (demo/server) with identities, 5 (files/web) without; the
// VIPs 10.96.0.10:80 and [fd00:96::10]:80 of demo/server and demo/server6.
inline Names names() {
  Names n;
  n.service_by_vip["10.96.0.10:80/tcp"] = "demo/server";
  n.service_by_vip["[fd00:96::10]:80/tcp"] = "demo/server6";
  n.workloads[3] = {"demo/client", "spiffe://cluster.local/ns/demo/sa/client"};
  n.workloads[4] = {"demo/server", "spiffe://cluster.local/ns/demo/sa/server"};
  n.workloads[5] = {"files/web", ""};  // file mode: no identities
  return n;
}

}  // namespace sockmesh::telemetry::testing
