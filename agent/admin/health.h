// meshd's health as Kubernetes probes see it (docs/metrics.md, "Health probes"), decided from the
// AgentStatus the admin API serves (`meshctl status`): one source of truth. Pure: no I/O, the time
// is given.
//
// live:  every data-path program is loaded and attached (programs_attached). Never depends on the
//        control plane: an outage must not restart every agent (the kernel keeps serving).
// ready: live, the config applied at least once (config_applied), and in control-plane mode the
//        discovery stream connected (controlplane_stream) and the node certificate unexpired
//        (node_certificate). File mode has neither of the last two checks.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "sockmesh/v1/admin.pb.h"

namespace sockmesh::admin {

struct HealthCheck {
  std::string name;  // "programs_attached", "config_applied", "controlplane_stream", ...
  bool ok = false;
  std::string detail;  // one line: what was found
};

struct Health {
  bool live = false;
  bool ready = false;
  // In this order: programs_attached, config_applied, then in control-plane mode
  // controlplane_stream and node_certificate.
  std::vector<HealthCheck> checks;
};

// The checks' names.
inline constexpr const char *kProgramsAttached = "programs_attached";
inline constexpr const char *kConfigApplied = "config_applied";
inline constexpr const char *kControlPlaneStream = "controlplane_stream";
inline constexpr const char *kNodeCertificate = "node_certificate";
// Not evaluate_health's: the HTTP server's when the agent's status could not be read. Both probes
// fail with it.
inline constexpr const char *kStatusRead = "status";

// `now_unix_ms`: the time the node certificate is compared with.
Health evaluate_health(const v1::AgentStatus &status, int64_t now_unix_ms);

// The body of /healthz/live (ready false: the checks liveness depends on, programs_attached and
// status) or /healthz/ready (ready true: every check), one line of JSON:
// {"status":"ok"|"fail","checks":[{"name":"...","ok":true|false,"detail":"..."},...]}
std::string health_json(const Health &health, bool ready);

}  // namespace sockmesh::admin
