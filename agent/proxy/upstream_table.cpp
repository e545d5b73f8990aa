#include "proxy/upstream_table.h"

#include <netinet/in.h>

#include <algorithm>

#include "sockmesh/v1/resources.pb.h"

namespace sockmesh::proxy {

std::shared_ptr<const UpstreamTable> upstream_table_of(
    const reconcile::DesiredState &desired,
    const google::protobuf::RepeatedPtrField<v1::Service> &services) {
  std::map<std::string, const v1::UpstreamConnect *> settings;  // "namespace/name"
  for (const auto &s : services)
    settings[s.metadata().namespace_() + "/" + s.metadata().name()] = &s.upstream_connect();
  auto table = std::make_shared<UpstreamTable>();
  for (const auto &[key, service] : desired) {
    if (key.proto != IPPROTO_TCP) continue;
    auto entry = std::make_shared<UpstreamService>();
    entry->service = service.service;
    if (auto it = settings.find(service.service); it != settings.end()) {
      const v1::UpstreamConnect &u = *it->second;
      if (u.timeout_ms() != 0)
        entry->connect_timeout =
            std::min(std::chrono::milliseconds(u.timeout_ms()), kMaxUpstreamTimeout);
      if (u.has_retries()) entry->retries = std::min(u.retries(), kMaxUpstreamRetries);
    }
    entry->backends.reserve(service.backends.size());
    for (const auto &b : service.backends)
      entry->backends.push_back({reconcile::format_ip(b.addr), b.port, b.weight, b.workload});
    table->emplace(key, std::move(entry));
  }
  return table;
}

}  // namespace sockmesh::proxy
