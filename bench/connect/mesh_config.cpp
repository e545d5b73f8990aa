#include "mesh_config.h"

#include <fmt/format.h>

#include <iterator>

namespace sockmesh::bench {

std::string mesh_config_yaml(const ServicePlan &plan, const std::string &node,
                             const MeshConfigOptions &options) {
  check_plan(plan);
  const std::string &prefix = options.prefix;
  std::string out;
  auto sink = std::back_inserter(out);
  for (int s = 0; s < plan.services; s++)
    for (int j = 0; j < plan.endpoints; j++)
      fmt::format_to(sink,
                     "---\n{{apiVersion: sockmesh/v1, kind: Workload, metadata: {{name: {}{}}}, "
                     "spec: {{node: {}, addresses: [{}]}}}}\n",
                     prefix, workload_name(s, j), node, to_string(backend_address(plan, s, j)));
  for (int s = 0; s < plan.services; s++) {
    fmt::format_to(
        sink,
        "---\n{{apiVersion: sockmesh/v1, kind: Service, metadata: {{name: {}{}}}, spec: {{"
        "vips: [{{address: {}, port: {}}}], endpoints: [",
        prefix, service_name(s), to_string(vip_address(s)), kVipPort);
    for (int j = 0; j < plan.endpoints; j++)
      fmt::format_to(sink, "{}{{workload: {}{}, port: {}}}", j ? ", " : "", prefix,
                     workload_name(s, j), options.backend_port);
    out += "]";
    if (options.spec) {
      std::string more = options.spec(s);
      if (!more.empty()) out += ", " + more;
    }
    out += "}}\n";
  }
  return out;
}

}  // namespace sockmesh::bench
