#include "agents.h"

#include <chrono>

namespace sockmesh::controlplane {
namespace {

int64_t now_unix_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

void set_holds(v1::AgentView *view, const VersionMap &holds) {
  view->mutable_resource_versions()->clear();
  for (const auto &[name, version] : holds) (*view->mutable_resource_versions())[name] = version;
}

}  // namespace

Agents::Agent &Agents::agent(const std::string &node) {
  Agent &a = agents_[node];
  a.view.set_node(node);
  return a;
}

void Agents::connected(const std::string &node, const VersionMap &holds) {
  std::lock_guard lock(mu_);
  Agent &a = agent(node);
  ++a.streams;
  ++counters_.streams;
  a.view.set_connected(true);
  a.view.set_connected_unix_ms(now_unix_ms());
  set_holds(&a.view, holds);
}

void Agents::disconnected(const std::string &node) {
  std::lock_guard lock(mu_);
  Agent &a = agent(node);
  if (a.streams > 0) --a.streams;
  a.view.set_connected(a.streams > 0);
}

void Agents::acked(const std::string &node, const std::string &version, const VersionMap &set,
                   const std::vector<std::string> &unset) {
  std::lock_guard lock(mu_);
  Agent &a = agent(node);
  ++counters_.acks;
  a.view.set_acked_version(version);
  a.view.clear_nacked_version();
  a.view.clear_last_nack();
  a.view.set_last_ack_unix_ms(now_unix_ms());
  auto &held = *a.view.mutable_resource_versions();
  for (const auto &name : unset) held.erase(name);
  for (const auto &[name, v] : set) held[name] = v;
}

void Agents::nacked(const std::string &node, const std::string &version,
                    const v1::ErrorDetail &detail) {
  std::lock_guard lock(mu_);
  Agent &a = agent(node);
  ++counters_.nacks;
  a.view.set_nacked_version(version);
  *a.view.mutable_last_nack() = detail;
}

void Agents::pushed(size_t resources, size_t removed) {
  std::lock_guard lock(mu_);
  ++counters_.pushes;
  counters_.pushed_resources += resources;
  counters_.pushed_removals += removed;
}

Agents::Counters Agents::counters() const {
  std::lock_guard lock(mu_);
  return counters_;
}

void Agents::fill(v1::ControlPlaneStatus *status) const {
  std::lock_guard lock(mu_);
  for (const auto &[node, a] : agents_) *status->add_agents() = a.view;
}

}  // namespace sockmesh::controlplane
