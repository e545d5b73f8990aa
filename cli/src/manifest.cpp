#include "sockmesh/cli/manifest.h"

#include <fmt/format.h>

#include <algorithm>
#include <iostream>
#include <map>
#include <sstream>
#include <system_error>

#include "sockmesh/cli/error.h"
#include "sockmesh/resources/load.h"
#include "sockmesh/resources/resource_set.h"

namespace sockmesh::cli {
namespace fs = std::filesystem;
namespace {

constexpr std::string_view kDefaultNamespace = "default";

bool is_yaml(const fs::path &path) {
  return path.extension() == ".yaml" || path.extension() == ".yml";
}

std::vector<fs::path> yaml_files_in(const fs::path &dir) {
  std::vector<fs::path> files;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    std::error_code type_ec;
    if (is_yaml(it->path()) && it->is_regular_file(type_ec)) files.push_back(it->path());
  }
  if (ec) throw CliError(fmt::format("-f {}: cannot list: {}", dir.string(), ec.message()));
  if (files.empty())
    throw CliError(fmt::format("-f {}: no *.yaml or *.yml file in this directory", dir.string()));
  std::sort(files.begin(), files.end());
  return files;
}

v1::Resource named(const auto &body, auto set_body) {
  v1::Resource resource;
  set_body(resource, body);
  resource.set_name(resources::resource_name(resource));
  return resource;
}

std::vector<v1::Resource> resources_of(const v1::Snapshot &snapshot) {
  std::vector<v1::Resource> resources;
  for (const auto &node : snapshot.nodes())
    resources.push_back(named(node, [](auto &r, const auto &b) { *r.mutable_node() = b; }));
  for (const auto &workload : snapshot.workloads())
    resources.push_back(named(workload, [](auto &r, const auto &b) { *r.mutable_workload() = b; }));
  for (const auto &service : snapshot.services())
    resources.push_back(named(service, [](auto &r, const auto &b) { *r.mutable_service() = b; }));
  for (const auto &policy : snapshot.authorization_policies()) {
    resources.push_back(
        named(policy, [](auto &r, const auto &b) { *r.mutable_authorization_policy() = b; }));
  }
  return resources;
}

std::string kind_of(std::string_view kind) {
  if (kind == "workload" || kind == "workloads") return "workload";
  if (kind == "service" || kind == "services" || kind == "svc") return "service";
  if (kind == "node" || kind == "nodes") return "node";
  if (kind == "authorizationpolicy" || kind == "authorizationpolicies" || kind == "policy" ||
      kind == "policies")
    return "authorizationpolicy";
  throw CliError(fmt::format(
      "unknown kind \"{}\": one of workload, service, node, authorizationpolicy", kind));
}

// `-f -`: the whole of standard input, named "-" in errors (file:line as for a file).
resources::LoadResult load_stdin() {
  std::ostringstream text;
  text << std::cin.rdbuf();
  if (std::cin.bad()) throw CliError("-f -: cannot read standard input");
  return resources::load_yaml_string(text.str(), "-", resources::Scope::kPartial);
}

}  // namespace

std::vector<fs::path> manifest_files(const std::vector<std::string> &paths) {
  std::vector<fs::path> files;
  for (const auto &text : paths) {
    if (text == "-") {  // standard input (kubectl exec -i ... meshctl apply -f - < mesh.yaml)
      // Read once: a second `-f -` would find it empty.
      if (std::find(files.begin(), files.end(), fs::path("-")) != files.end())
        throw CliError("-f -: standard input can be given once");
      files.emplace_back("-");
      continue;
    }
    const fs::path path(text);
    std::error_code ec;
    const auto status = fs::status(path, ec);
    if (status.type() == fs::file_type::not_found)
      throw CliError(fmt::format("-f {}: no such file or directory", text));
    if (ec) throw CliError(fmt::format("-f {}: {}", text, ec.message()));
    if (fs::is_directory(status)) {
      for (auto &file : yaml_files_in(path)) files.push_back(std::move(file));
    } else {
      files.push_back(path);
    }
  }
  return files;
}

std::vector<v1::Resource> load_manifests(const std::vector<fs::path> &files) {
  std::vector<std::string> invalid, errors;
  std::vector<v1::Resource> resources;
  std::map<std::string, fs::path> defined_in;
  for (const auto &file : files) {
    // A manifest is a change to meshcp's store: the workloads it names may already be there, and
    // meshcp checks references against the merged whole.
    auto loaded = file == "-"
                      ? load_stdin()
                      : resources::load_yaml_file(file.string(), resources::Scope::kPartial);
    if (!loaded.ok()) {
      invalid.push_back(file.string());
      errors.insert(errors.end(), loaded.errors.begin(), loaded.errors.end());
      continue;
    }
    for (auto &resource : resources_of(loaded.snapshot)) {
      const auto [at, inserted] = defined_in.emplace(resource.name(), file);
      // Within one file the library reports duplicates itself.
      if (!inserted) {
        throw CliError(fmt::format("{} is defined in both {} and {}", resource.name(),
                                   at->second.string(), file.string()));
      }
      resources.push_back(std::move(resource));
    }
  }
  if (invalid.empty()) return resources;
  throw CliError(fmt::format("{} {} invalid:\n{}", fmt::join(invalid, ", "),
                             invalid.size() == 1 ? "is" : "are", fmt::join(errors, "\n")));
}

std::string named_resource(std::string_view kind, std::string_view name, std::string_view ns) {
  const std::string resource_kind = kind_of(kind);
  const std::string_view given = name;
  std::string_view in_ns = ns.empty() ? kDefaultNamespace : ns;
  if (const auto slash = name.find('/'); slash != std::string_view::npos) {
    if (!ns.empty()) {
      throw CliError(fmt::format("{} \"{}\": give the namespace once, with -n or as NAMESPACE/NAME",
                                 resource_kind, given));
    }
    in_ns = name.substr(0, slash);
    name = name.substr(slash + 1);
  }
  if (in_ns.empty() || name.empty() || name.find('/') != std::string_view::npos) {
    throw CliError(fmt::format("{} \"{}\": give NAMESPACE/NAME or NAME", resource_kind, given));
  }
  return fmt::format("{}/{}/{}", resource_kind, in_ns, name);
}

}  // namespace sockmesh::cli
