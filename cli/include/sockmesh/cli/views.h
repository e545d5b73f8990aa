// What each command shows, built from the admin API's messages: the order (and filter) every output
// format shares, then one table builder per resource. -o json|yaml print the ordered messages
// themselves (output.h).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "sockmesh/cli/table.h"
#include "sockmesh/v1/admin.pb.h"

namespace sockmesh::cli {

// "RANDOM", "ROUND_ROBIN", ...; UNSPECIFIED shows as RANDOM, which is what the agent applies.
std::string lb_policy_name(v1::LbPolicy policy);

// "RANDOM", or "MAGLEV(4093)" when the agent reports a Maglev table of that many entries.
std::string service_policy(const v1::ServiceView &service);

// "10.96.0.10:80/TCP", "[fd00:96::a]:80/UDP"; an unspecified protocol shows as TCP, the default.
std::string format_vip(const v1::VirtualAddress &vip);

// `meshctl status`: agent, config, programs, maps, counters. now_unix_ms dates uptime and ages.
std::string render_status(const v1::AgentStatus &status, std::int64_t now_unix_ms);

// The services sorted by namespace/name; generation unchanged.
v1::ListServicesResponse services_in_order(const v1::ListServicesResponse &services);

// NAMESPACE NAME VIPS POLICY ENDPOINTS, one row per service in the order given. POLICY is
// "MAGLEV(4093)" when the service has a Maglev table.
Table services_table(const v1::ListServicesResponse &services);

// Selects the endpoints of one service: "NAMESPACE/NAME", or "NAME" in any namespace.
struct ServiceFilter {
  std::optional<std::string> ns;
  std::string name;

  static ServiceFilter parse(std::string_view text);  // throws CliError on a malformed filter
  bool matches(std::string_view ns, std::string_view name) const;
  std::string describe() const;  // `service "web/api"` or `service "api" (any namespace)`
};

// The endpoints of the filter's services (all without one), sorted by service namespace/name, then
// workload, address, port.
v1::ListEndpointsResponse endpoints_in_order(const v1::ListEndpointsResponse &endpoints,
                                             const std::optional<ServiceFilter> &filter);

// SERVICE ENDPOINT ADDRESS SUBSET WEIGHT SHARE, one row per endpoint in the order given.
Table endpoints_table(const v1::ListEndpointsResponse &endpoints);

}  // namespace sockmesh::cli
