// What the authorization commands show (docs/meshctl.md): `get policies`, `describe workload` and
// `check`, built from meshcp's List answers and decided with the policy library (policy/).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "sockmesh/cli/table.h"
#include "sockmesh/v1/authorization.pb.h"
#include "sockmesh/v1/controlplane.pb.h"

namespace sockmesh::cli {

// "app=web,tier=front" (sorted by key), or "-" when the policy selects its whole namespace (the
// whole mesh in the root namespace).
std::string format_selector(const v1::AuthorizationPolicy &policy);

// NAMESPACE NAME ACTION SELECTOR RULES, one row per policy in the order given.
Table policies_table(const v1::ListResponse &policies);

// `meshctl describe workload`: node, addresses, SPIFFE ID (in trust_domain), labels, capture,
// cgroup, the services that name it as an endpoint and the policies that select it.
std::string render_workload(const v1::Resource &workload, const v1::ListResponse &services,
                            const v1::ListResponse &policies, std::string_view trust_domain);

// `meshctl check SRC DST:PORT`: what is wrong with the arguments as written (a usage error), or
// nothing. SRC: NAMESPACE/NAME or workload/NAMESPACE/NAME (a workload), a SPIFFE ID (spiffe://...,
// or Istio's form with the trust domain first), or "unauthenticated". DST:
// [workload/|service/]NAMESPACE/NAME:PORT.
std::optional<std::string> check_usage_error(std::string_view source, std::string_view destination);

// Decides `check` for arguments check_usage_error() accepted. A workload destination is decided at
// PORT; a service's PORT must be one of its VIP ports, and each endpoint is decided at its own
// port. Throws CliError when meshcp does not hold what the arguments name.
v1::AuthorizationCheck check_access(std::string_view source, std::string_view destination,
                                    std::string_view trust_domain,
                                    const v1::ListResponse &workloads,
                                    const v1::ListResponse &services,
                                    const v1::ListResponse &policies);

// The table form of a check: "allowed: ..." or "denied: ..." and what decided, or a service's
// summary line and one row per endpoint.
std::string render_check(const v1::AuthorizationCheck &check);

}  // namespace sockmesh::cli
