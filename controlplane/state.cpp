#include "state.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "node_filter.h"
#include "sockmesh/lb_maps.h"
#include "sockmesh/resources/resource_set.h"
#include "sockmesh/resources/validate.h"

namespace sockmesh::controlplane {
namespace {

std::string join_lines(const std::vector<std::string> &lines) {
  std::string text;
  for (const auto &line : lines) text += (text.empty() ? "" : "\n") + line;
  return text;
}

std::string kind_of(const std::string &name) {
  return name.substr(0, name.find('/'));
}

}  // namespace

namespace {

constexpr std::string_view kServicePrefix = "service/";
// Versions the change log reaches back: an agent further behind gets a full comparison.
constexpr size_t kLogDepth = 1024;

bool is_service(const std::string &name) {
  return name.starts_with(kServicePrefix);
}

// Authorization policies name no other resource and no other resource names them: a change of
// policies is checked on those policies alone.
bool is_policy(const std::string &name) {
  return name.starts_with("authorizationpolicy/");
}

std::string workload_name(const v1::Service &service, const v1::Endpoint &endpoint) {
  return "workload/" + service.metadata().namespace_() + "/" + endpoint.workload();
}

std::string service_id(const v1::Service &service) {
  return service.metadata().namespace_() + "/" + service.metadata().name();
}

}  // namespace

State::State(Store &store) : store_(store) {
  StoredState stored = store_.load();
  version_ = stored.version;
  resources_ = std::make_shared<Resources>(std::move(stored.resources));
  rebuild_indexes();
}

View State::view() const {
  std::lock_guard lock(mu_);
  return {version_, resources_};
}

uint64_t State::version() const {
  std::lock_guard lock(mu_);
  return version_;
}

void State::rebuild_indexes() {
  vip_owner_.clear();
  named_.clear();
  for (const auto &[name, resource] : *resources_) index(resource, +1);
}

void State::index(const v1::Resource &resource, int sign) {
  if (!resource.has_service()) return;
  const v1::Service &service = resource.service();
  for (const auto &vip : service.vips()) {
    const std::string id = resources::vip_identity(vip);
    if (id.empty()) continue;
    if (sign > 0)
      vip_owner_[id] = resource.name();
    else if (auto it = vip_owner_.find(id); it != vip_owner_.end() && it->second == resource.name())
      vip_owner_.erase(it);
  }
  for (const auto &endpoint : service.endpoints()) {
    auto &count = named_[workload_name(service, endpoint)];
    count += sign;
    if (count <= 0) named_.erase(workload_name(service, endpoint));
  }
}

bool State::named(const std::string &name) const {
  auto it = named_.find(name);
  return it != named_.end() && it->second > 0;
}

std::vector<std::string> State::check(const Resources &changed,
                                      const std::vector<std::string> &removed) {
  bool services_or_policies = true;
  for (const auto &[name, resource] : changed)
    services_or_policies &= is_service(name) || is_policy(name);
  for (const auto &name : removed) services_or_policies &= is_service(name) || is_policy(name);
  if (services_or_policies) {
    Resources services;
    v1::Snapshot policies;
    std::vector<std::string> removed_services;
    for (const auto &[name, resource] : changed) {
      if (is_policy(name))
        *policies.add_authorization_policies() = resource.authorization_policy();
      else
        services.emplace(name, resource);
    }
    for (const auto &name : removed)
      if (is_service(name)) removed_services.push_back(name);
    std::vector<std::string> errors;
    if (!services.empty() || !removed_services.empty())
      errors = check_services(services, removed_services);
    for (auto &error : resources::validate(policies)) errors.push_back(std::move(error));
    return errors;
  }
  Resources next = *resources_;
  for (const auto &name : removed) next.erase(name);
  for (const auto &[name, resource] : changed) next[name] = resource;
  return resources::validate(resources::to_snapshot(next));
}

// Services alone: removing one never breaks a rule; the changed ones, with the workloads they
// name, make a mesh of their own that must pass every rule, and what ties them to the services
// left alone (a VIP port used once, the mesh's VIP limit) is checked against vip_owner_.
std::vector<std::string> State::check_services(const Resources &changed,
                                               const std::vector<std::string> &removed) {
  v1::Snapshot part;
  std::set<std::string> touched(removed.begin(), removed.end());
  std::set<std::string> workloads;
  for (const auto &[name, resource] : changed) {
    touched.insert(name);
    const v1::Service &service = resource.service();
    *part.add_services() = service;
    for (const auto &endpoint : service.endpoints()) {
      const std::string workload = workload_name(service, endpoint);
      if (!workloads.insert(workload).second) continue;
      auto it = resources_->find(workload);
      if (it != resources_->end()) *part.add_workloads() = it->second.workload();
    }
  }
  std::vector<std::string> errors = resources::validate(part);
  if (!errors.empty()) return errors;

  size_t total = vip_owner_.size();
  for (const auto &name : touched) {
    auto it = resources_->find(name);
    if (it == resources_->end()) continue;
    for (const auto &vip : it->second.service().vips())
      if (!resources::vip_identity(vip).empty()) --total;
  }
  size_t vips = total;
  for (const auto &[name, resource] : changed) total += size_t(resource.service().vips_size());
  for (const auto &[name, resource] : changed) {
    const v1::Service &service = resource.service();
    for (int i = 0; i < service.vips_size(); ++i) {
      const v1::VirtualAddress &vip = service.vips(i);
      const std::string path =
          "service \"" + service_id(service) + "\": spec.vips[" + std::to_string(i) + "]: ";
      if (++vips == SM_MAX_SERVICES + 1)
        errors.push_back(path + "too many VIPs: at most " + std::to_string(SM_MAX_SERVICES) +
                         " in the mesh, got " + std::to_string(total));
      auto owner = vip_owner_.find(resources::vip_identity(vip));
      if (owner == vip_owner_.end() || touched.count(owner->second)) continue;
      const v1::Service &other = resources_->at(owner->second).service();
      std::string theirs;
      for (const auto &v : other.vips())
        if (resources::vip_identity(v) == owner->first) theirs = v.address();
      errors.push_back(path + resources::vip_text(vip) + " is already used by service \"" +
                       service_id(other) + "\"" +
                       (theirs == vip.address() ? "" : " (written " + theirs + " there)"));
    }
  }
  return errors;
}

grpc::Status State::apply(const v1::ApplyRequest &request, v1::ApplyResponse *response) {
  std::vector<std::string> errors;
  Resources incoming;
  std::map<std::string, int> first_index;
  for (int i = 0; i < request.resources_size(); ++i) {
    v1::Resource resource = request.resources(i);
    const std::string at = "resources[" + std::to_string(i) + "]";
    const std::string name = resources::resource_name(resource);
    if (name.empty()) {
      errors.push_back(at +
                       ": body is empty (one of workload, service, node, authorizationPolicy is "
                       "required)");
      continue;
    }
    if (!resource.name().empty() && resource.name() != name) {
      errors.push_back(at + ": name \"" + resource.name() + "\" does not match its body (\"" +
                       name + "\")");
      continue;
    }
    if (auto [it, inserted] = first_index.emplace(name, i); !inserted) {
      errors.push_back(at + ": " + name + " is given twice (also resources[" +
                       std::to_string(it->second) + "])");
      continue;
    }
    resource.set_name(name);
    resource.set_version(resources::content_version(resource));
    incoming.emplace(name, std::move(resource));
  }
  std::unique_lock lock(mu_);
  Resources changed;
  uint32_t created = 0, configured = 0, unchanged = 0;
  for (auto &[name, resource] : incoming) {
    auto it = resources_->find(name);
    if (it == resources_->end()) {
      ++created;
    } else if (it->second.version() != resource.version()) {
      ++configured;
    } else {
      ++unchanged;
      continue;
    }
    changed.emplace(name, std::move(resource));
  }
  if (errors.empty()) errors = check(changed, {});
  if (!errors.empty()) {
    if (!request.dry_run()) ++changes_[{"apply", "refused"}];
    spdlog::info("event=apply_refused errors={} first=\"{}\"", errors.size(), errors.front());
    return {grpc::StatusCode::INVALID_ARGUMENT, join_lines(errors)};
  }
  response->set_created(created);
  response->set_configured(configured);
  response->set_unchanged(unchanged);
  if (request.dry_run()) {
    response->set_version(std::to_string(version_));
    return grpc::Status::OK;
  }
  grpc::Status status = commit(changed, {});
  response->set_version(std::to_string(version_));
  ++changes_[{"apply", !status.ok() ? "failed" : changed.empty() ? "unchanged" : "applied"}];
  if (!status.ok()) return status;
  spdlog::info("event=apply version={} created={} configured={} unchanged={}", version_, created,
               configured, unchanged);
  lock.unlock();
  if (!changed.empty()) notify();
  return status;
}

grpc::Status State::remove(const v1::DeleteRequest &request, v1::ApplyResponse *response) {
  std::unique_lock lock(mu_);
  std::vector<std::string> unknown, removed;
  for (const auto &name : request.names()) {
    if (std::find(removed.begin(), removed.end(), name) != removed.end()) continue;
    if (resources_->contains(name)) {
      removed.push_back(name);
    } else {
      unknown.push_back("no resource \"" + name + "\"");
    }
  }
  if (!unknown.empty()) {
    ++changes_[{"delete", "refused"}];
    return {grpc::StatusCode::NOT_FOUND, join_lines(unknown)};
  }
  auto errors = check({}, removed);
  if (!errors.empty()) {
    ++changes_[{"delete", "refused"}];
    spdlog::info("event=delete_refused errors={} first=\"{}\"", errors.size(), errors.front());
    return {grpc::StatusCode::INVALID_ARGUMENT, join_lines(errors)};
  }
  grpc::Status status = commit({}, removed);
  response->set_deleted(uint32_t(removed.size()));
  response->set_version(std::to_string(version_));
  ++changes_[{"delete", status.ok() ? "applied" : "failed"}];
  if (!status.ok()) return status;
  spdlog::info("event=delete version={} deleted={}", version_, removed.size());
  lock.unlock();
  if (!removed.empty()) notify();
  return status;
}

grpc::Status State::commit(const Resources &changed, const std::vector<std::string> &removed) {
  if (changed.empty() && removed.empty()) return grpc::Status::OK;
  const uint64_t version = version_ + 1;
  try {
    store_.write(changed, removed, version);
  } catch (const std::exception &e) {
    // Files written before the failure hold valid resources; the in-memory state and the version
    // stay as they were until the next successful write.
    spdlog::error("event=store_write_failed error=\"{}\"", e.what());
    return {grpc::StatusCode::INTERNAL, std::string("cannot store the change: ") + e.what()};
  }
  // A view taken earlier keeps the state it was taken at.
  if (resources_.use_count() > 1) resources_ = std::make_shared<Resources>(*resources_);
  Change change{version, {}};
  auto leave = [&](const std::string &name) {
    auto it = resources_->find(name);
    if (it == resources_->end()) return;
    if (it->second.has_service())
      for (const auto &endpoint : it->second.service().endpoints())
        change.names.push_back(workload_name(it->second.service(), endpoint));
    index(it->second, -1);
  };
  for (const auto &name : removed) {
    leave(name);
    resources_->erase(name);
    change.names.push_back(name);
  }
  for (const auto &[name, resource] : changed) {
    leave(name);
    (*resources_)[name] = resource;
    index(resource, +1);
    if (resource.has_service())
      for (const auto &endpoint : resource.service().endpoints())
        change.names.push_back(workload_name(resource.service(), endpoint));
    change.names.push_back(name);
  }
  version_ = version;
  log_.push_back(std::move(change));
  while (log_.size() > kLogDepth) log_.pop_front();
  return grpc::Status::OK;
}

Push State::push_for(const std::string &node, const VersionMap &holds,
                     std::optional<uint64_t> holds_version) const {
  std::lock_guard lock(mu_);
  Push push;
  push.version = version_;
  auto consider = [&](const std::string &name) {
    auto it = resources_->find(name);
    const bool wanted = it != resources_->end() && wanted_by_node(it->second, named(name), node);
    auto held = holds.find(name);
    if (wanted) {
      if (held != holds.end() && held->second == it->second.version()) return;
      push.resources.push_back(it->second);
      push.set[name] = it->second.version();
    } else if (held != holds.end()) {
      push.removed.push_back(name);
      push.unset.push_back(name);
    }
  };
  const bool covered =
      holds_version && *holds_version <= version_ &&
      (*holds_version == version_ || (!log_.empty() && log_.front().version <= *holds_version + 1));
  if (covered) {
    std::set<std::string> names;
    for (auto it = log_.rbegin(); it != log_.rend() && it->version > *holds_version; ++it)
      names.insert(it->names.begin(), it->names.end());
    for (const auto &name : names) consider(name);
  } else {
    for (const auto &[name, resource] : *resources_) consider(name);
    for (const auto &[name, version] : holds)
      if (!resources_->contains(name)) consider(name);
  }
  return push;
}

grpc::Status State::list(const std::string &kind, v1::ListResponse *response) const {
  if (!kind.empty() && kind != "workload" && kind != "service" && kind != "node" &&
      kind != "authorizationpolicy")
    return {grpc::StatusCode::INVALID_ARGUMENT,
            "unknown kind \"" + kind +
                "\" (one of workload, service, node, authorizationpolicy, or empty for all)"};
  View v = view();
  response->set_version(std::to_string(v.version));
  for (const auto &[name, resource] : *v.resources)
    if (kind.empty() || kind_of(name) == kind) *response->add_resources() = resource;
  return grpc::Status::OK;
}

void State::status(v1::ControlPlaneStatus *status) const {
  {
    std::lock_guard lock(mu_);
    status->set_version(std::to_string(version_));
    status->set_resources(uint32_t(resources_->size()));
  }
  status->set_state_dir(store_.dir());
  agents_.fill(status);
}

std::map<std::string, uint64_t> State::resources_by_kind() const {
  const View v = view();
  std::map<std::string, uint64_t> out;
  for (const auto &[name, resource] : *v.resources) ++out[kind_of(name)];
  return out;
}

std::map<std::pair<std::string, std::string>, uint64_t> State::changes() const {
  std::lock_guard lock(mu_);
  return changes_;
}

void State::subscribe(Subscriber *s) {
  std::lock_guard lock(subscribers_mu_);
  subscribers_.insert(s);
  if (stopping_) s->stopping();
}

void State::unsubscribe(Subscriber *s) {
  std::lock_guard lock(subscribers_mu_);
  subscribers_.erase(s);
}

void State::notify() {
  tell_subscribers(&Subscriber::state_changed);
}

void State::stop() {
  std::lock_guard lock(subscribers_mu_);
  stopping_ = true;
  tell_subscribers(&Subscriber::stopping);
}

void State::tell_subscribers(void (Subscriber::*what)()) {
  std::lock_guard lock(subscribers_mu_);
  // A copy: telling one may remove it (and only it) from the set.
  const std::set<Subscriber *> all = subscribers_;
  for (Subscriber *s : all)
    if (subscribers_.contains(s)) (s->*what)();
}

}  // namespace sockmesh::controlplane
