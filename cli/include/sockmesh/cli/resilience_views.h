// What `meshctl resilience` and the resilience part of `meshctl describe service` show
// (docs/meshctl.md): the kernel's resilience state of one node agent, built from the admin API's
// GetResilience answer (ResilienceReport).
#pragma once

#include <string>

#include "sockmesh/cli/table.h"
#include "sockmesh/v1/admin.pb.h"

namespace sockmesh::cli {

// The report with its services sorted by namespace, then name, and its untracked services by
// name; each service's backends in the agent's order (IPv4 first, by workload, then port). Every
// output format shows this order.
v1::ResilienceReport resilience_in_order(const v1::ResilienceReport &report);

// One line, every setting named, "off" or "unlimited" when not set: "policy LEAST_CONNECTIONS,
// maxConnections 100, perBackend 10, outlier 5 failures / 30s..5m / 10%, rate 100/s burst 20,
// fault 12.5% ECONNRESET (scoped)".
std::string resilience_settings_text(const v1::ResilienceSettings &settings);

// "12:01:07Z (in 23.4s, #2)" for an ejected backend (UTC time of day it returns, the time left by
// the agent's clock, its ejections in a row), "-" otherwise.
std::string ejected_until_text(const v1::BackendResilience &backend);

// BACKEND WORKLOAD WEIGHT ACTIVE CONNECTS FAILURES IN A ROW EJECTED UNTIL EJECTIONS OVERFLOWS, one
// row per backend in the order given; a backend the kernel has no state for reads "untracked".
Table backend_resilience_table(const v1::ServiceResilience &service);

// The Settings, Active and Refused lines, then the backends' table (or "No backends.").
std::string render_service_resilience(const v1::ServiceResilience &service);

// `meshctl resilience`: the node, then one block per tracked service, then the untracked ones.
std::string render_resilience(const v1::ResilienceReport &report);

}  // namespace sockmesh::cli
