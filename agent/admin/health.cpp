#include "admin/health.h"

#include <nlohmann/json.hpp>

namespace sockmesh::admin {
namespace {

std::string seconds_text(int64_t ms) {
  return std::to_string(ms / 1000) + " s";
}

std::string first_line(const std::string &text) {
  return text.substr(0, text.find('\n'));
}

HealthCheck programs_attached(const v1::AgentStatus &status) {
  HealthCheck check{kProgramsAttached, false, ""};
  if (status.programs().empty()) {
    check.detail = "no programs loaded";
    return check;
  }
  std::string problems;
  for (const auto &p : status.programs()) {
    const char *problem = p.id() == 0 ? "not loaded" : !p.attached() ? "detached" : nullptr;
    if (!problem) continue;
    if (!problems.empty()) problems += ", ";
    problems += p.name() + " (" + p.attach_type() + ") " + problem;
  }
  check.ok = problems.empty();
  check.detail = check.ok ? std::to_string(status.programs_size()) + " programs attached"
                          : problems + " (a restart of meshd attaches them again)";
  return check;
}

HealthCheck config_applied(const v1::ConfigStatus &config, int64_t now_unix_ms) {
  HealthCheck check{kConfigApplied, false, ""};
  check.ok = config.generation() > 0 && config.applied_unix_ms() > 0;
  if (check.ok) {
    check.detail = "generation " + std::to_string(config.generation()) + " applied " +
                   seconds_text(now_unix_ms - config.applied_unix_ms()) + " ago";
  } else {
    check.detail = "no config applied yet";
    if (!config.last_error().empty())
      check.detail += "; last refused: " + first_line(config.last_error());
  }
  return check;
}

HealthCheck controlplane_stream(const v1::ConfigStatus &config) {
  HealthCheck check{kControlPlaneStream, config.stream_state() == "connected", ""};
  const std::string target = config.source().substr(std::string("controlplane:").size());
  check.detail = check.ok ? "connected to " + target
                          : "stream to " + target + " is " +
                                (config.stream_state().empty() ? std::string("not started")
                                                               : config.stream_state());
  return check;
}

HealthCheck node_certificate(const v1::MeshStatus &mesh, int64_t now_unix_ms) {
  HealthCheck check{kNodeCertificate, false, ""};
  const int64_t not_after = mesh.node_certificate_not_after_unix_ms();
  if (not_after <= 0) {
    check.detail = "no node certificate";
  } else if (not_after <= now_unix_ms) {
    check.detail = "expired " + seconds_text(now_unix_ms - not_after) + " ago";
  } else {
    check.ok = true;
    check.detail = "valid for " + seconds_text(not_after - now_unix_ms) + " more";
  }
  if (!mesh.identity_error().empty() && mesh.identity_error() != "ok")
    check.detail += "; last renewal: " + first_line(mesh.identity_error());
  return check;
}

}  // namespace

Health evaluate_health(const v1::AgentStatus &status, int64_t now_unix_ms) {
  Health health;
  health.checks.push_back(programs_attached(status));
  health.checks.push_back(config_applied(status.config(), now_unix_ms));
  if (status.config().source().starts_with("controlplane:")) {
    health.checks.push_back(controlplane_stream(status.config()));
    health.checks.push_back(node_certificate(status.mesh(), now_unix_ms));
  }
  health.live = health.checks.front().ok;
  health.ready = true;
  for (const auto &check : health.checks) health.ready = health.ready && check.ok;
  return health;
}

std::string health_json(const Health &health, bool ready) {
  nlohmann::ordered_json checks = nlohmann::ordered_json::array();
  for (const auto &check : health.checks) {
    if (!ready && check.name != kProgramsAttached && check.name != kStatusRead) continue;
    checks.push_back(
        nlohmann::ordered_json{{"name", check.name}, {"ok", check.ok}, {"detail", check.detail}});
  }
  nlohmann::ordered_json body = {{"status", (ready ? health.ready : health.live) ? "ok" : "fail"},
                                 {"checks", std::move(checks)}};
  // Replaces what is not UTF-8 (a detail quoting a peer's text) instead of throwing.
  return body.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

}  // namespace sockmesh::admin
