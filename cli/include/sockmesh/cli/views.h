// What each command shows, built from the admin API's messages. One builder per resource, so that
// other output formats (-o json|yaml) and resources slot in beside the tables.
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

// "10.96.0.10:80/TCP"; an unspecified protocol shows as TCP, the default.
std::string format_vip(const v1::VirtualAddress& vip);

// `meshctl status`: agent, config, programs, maps, counters. now_unix_ms dates uptime and ages.
std::string render_status(const v1::AgentStatus& status, std::int64_t now_unix_ms);

// NAMESPACE NAME VIPS POLICY ENDPOINTS, sorted by namespace/name.
Table services_table(const v1::ListServicesResponse& services);

// Selects the endpoints of one service: "NAMESPACE/NAME", or "NAME" in any namespace.
struct ServiceFilter {
  std::optional<std::string> ns;
  std::string name;

  static ServiceFilter parse(std::string_view text);  // throws CliError on a malformed filter
  bool matches(std::string_view ns, std::string_view name) const;
  std::string describe() const;  // `service "web/api"` or `service "api" (any namespace)`
};

// SERVICE ENDPOINT ADDRESS SUBSET WEIGHT SHARE, sorted by service namespace/name, then endpoint.
Table endpoints_table(const v1::ListEndpointsResponse& endpoints,
                      const std::optional<ServiceFilter>& filter);

}  // namespace sockmesh::cli
