#include "state.h"

#include <spdlog/spdlog.h>

#include <algorithm>

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

State::State(Store &store) : store_(store) {
  StoredState stored = store_.load();
  view_.version = stored.version;
  view_.resources = std::make_shared<const Resources>(std::move(stored.resources));
}

View State::view() const {
  std::lock_guard lock(mu_);
  return view_;
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
      errors.push_back(at + ": body is empty (one of workload, service, node is required)");
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
  auto next = std::make_shared<Resources>(*view_.resources);
  Resources changed;
  uint32_t created = 0, configured = 0, unchanged = 0;
  for (auto &[name, resource] : incoming) {
    auto it = next->find(name);
    if (it == next->end()) {
      ++created;
    } else if (it->second.version() != resource.version()) {
      ++configured;
    } else {
      ++unchanged;
      continue;
    }
    changed.emplace(name, resource);
    (*next)[name] = resource;
  }
  if (errors.empty()) errors = resources::validate(resources::to_snapshot(*next));
  if (!errors.empty()) {
    spdlog::info("event=apply_refused errors={} first=\"{}\"", errors.size(), errors.front());
    return {grpc::StatusCode::INVALID_ARGUMENT, join_lines(errors)};
  }
  response->set_created(created);
  response->set_configured(configured);
  response->set_unchanged(unchanged);
  if (request.dry_run()) {
    response->set_version(std::to_string(view_.version));
    return grpc::Status::OK;
  }
  grpc::Status status = commit(std::move(next), changed, {});
  response->set_version(std::to_string(view_.version));
  if (!status.ok()) return status;
  spdlog::info("event=apply version={} created={} configured={} unchanged={}", view_.version,
               created, configured, unchanged);
  lock.unlock();
  if (!changed.empty()) notify();
  return status;
}

grpc::Status State::remove(const v1::DeleteRequest &request, v1::ApplyResponse *response) {
  std::unique_lock lock(mu_);
  auto next = std::make_shared<Resources>(*view_.resources);
  std::vector<std::string> unknown, removed;
  for (const auto &name : request.names()) {
    if (next->erase(name) > 0) {
      removed.push_back(name);
    } else if (std::find(removed.begin(), removed.end(), name) == removed.end()) {
      unknown.push_back("no resource \"" + name + "\"");
    }
  }
  if (!unknown.empty()) return {grpc::StatusCode::NOT_FOUND, join_lines(unknown)};
  auto errors = resources::validate(resources::to_snapshot(*next));
  if (!errors.empty()) {
    spdlog::info("event=delete_refused errors={} first=\"{}\"", errors.size(), errors.front());
    return {grpc::StatusCode::INVALID_ARGUMENT, join_lines(errors)};
  }
  grpc::Status status = commit(std::move(next), {}, removed);
  response->set_deleted(uint32_t(removed.size()));
  response->set_version(std::to_string(view_.version));
  if (!status.ok()) return status;
  spdlog::info("event=delete version={} deleted={}", view_.version, removed.size());
  lock.unlock();
  if (!removed.empty()) notify();
  return status;
}

grpc::Status State::commit(std::shared_ptr<Resources> next, const Resources &changed,
                           const std::vector<std::string> &removed) {
  if (changed.empty() && removed.empty()) return grpc::Status::OK;
  const uint64_t version = view_.version + 1;
  try {
    store_.write(changed, removed, version);
  } catch (const std::exception &e) {
    // Files written before the failure hold valid resources; the in-memory state and the version
    // stay as they were until the next successful write.
    spdlog::error("event=store_write_failed error=\"{}\"", e.what());
    return {grpc::StatusCode::INTERNAL, std::string("cannot store the change: ") + e.what()};
  }
  view_.version = version;
  view_.resources = std::move(next);
  return grpc::Status::OK;
}

grpc::Status State::list(const std::string &kind, v1::ListResponse *response) const {
  if (!kind.empty() && kind != "workload" && kind != "service" && kind != "node")
    return {grpc::StatusCode::INVALID_ARGUMENT,
            "unknown kind \"" + kind + "\" (one of workload, service, node, or empty for all)"};
  View v = view();
  response->set_version(std::to_string(v.version));
  for (const auto &[name, resource] : *v.resources)
    if (kind.empty() || kind_of(name) == kind) *response->add_resources() = resource;
  return grpc::Status::OK;
}

void State::status(v1::ControlPlaneStatus *status) const {
  View v = view();
  status->set_version(std::to_string(v.version));
  status->set_state_dir(store_.dir());
  status->set_resources(uint32_t(v.resources->size()));
  agents_.fill(status);
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
