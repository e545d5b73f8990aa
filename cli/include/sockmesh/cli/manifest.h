// The resources `apply -f` and `delete` name: YAML files (docs/config.md) loaded with the
// resources library, and the control plane's resource names ("service/demo/web").
#pragma once

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "sockmesh/v1/discovery.pb.h"

namespace sockmesh::cli {

// The files behind -f: a file as given; a directory's *.yaml and *.yml files, sorted by name, its
// subdirectories not entered. Throws CliError when a path does not exist or a directory holds no
// YAML file.
std::vector<std::filesystem::path> manifest_files(const std::vector<std::string> &paths);

// Loads and validates each file on its own (resources::load_yaml_file, the checks of
// docs/config.md). Returns each file's nodes, workloads, services, then authorization policies in
// file order, file after file, named (resources::resource_name) and without a version (meshcp
// assigns it). Throws CliError "<FILE> is invalid:" followed by every error line as the library
// wrote it when any file is invalid, and when two files define the same resource.
std::vector<v1::Resource> load_manifests(const std::vector<std::filesystem::path> &files);

// The name `delete KIND NAME` means. kind: workload, service, node, authorizationpolicy (or their
// plurals, "svc", "policy", "policies"); name: "NAMESPACE/NAME", or "NAME" in `ns` ("default"
// when empty). Throws CliError on an unknown kind or a malformed name.
std::string named_resource(std::string_view kind, std::string_view name, std::string_view ns);

}  // namespace sockmesh::cli
