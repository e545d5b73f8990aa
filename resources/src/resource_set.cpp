#include "sockmesh/resources/resource_set.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>

#include <cstdint>

#include "sockmesh/resources/names.h"

namespace sockmesh::resources {
namespace {

constexpr uint64_t kFnvOffsetBasis = 0xcbf29ce484222325ULL;
constexpr uint64_t kFnvPrime = 0x100000001b3ULL;

uint64_t fnv1a(const std::string &bytes) {
  uint64_t hash = kFnvOffsetBasis;
  for (unsigned char c : bytes) {
    hash ^= c;
    hash *= kFnvPrime;
  }
  return hash;
}

std::string deterministic_bytes(const google::protobuf::Message &message) {
  std::string out;
  {
    google::protobuf::io::StringOutputStream stream(&out);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    message.SerializeToCodedStream(&coded);
  }
  return out;
}

template <typename Body>
v1::Resource make(const Body &body, Body *(v1::Resource::*mutable_body)()) {
  v1::Resource resource;
  *(resource.*mutable_body)() = body;
  resource.set_name(resource_name(resource));
  resource.set_version(content_version(resource));
  return resource;
}

}  // namespace

std::string resource_name(const v1::Resource &resource) {
  switch (resource.body_case()) {
    case v1::Resource::kWorkload:
      return "workload/" + resource_id(resource.workload().metadata());
    case v1::Resource::kService:
      return "service/" + resource_id(resource.service().metadata());
    case v1::Resource::kNode:
      return "node/" + resource_id(resource.node().metadata());
    case v1::Resource::kAuthorizationPolicy:
      return "authorizationpolicy/" + resource_id(resource.authorization_policy().metadata());
    case v1::Resource::BODY_NOT_SET:
      break;
  }
  return "";
}

std::string content_version(const v1::Resource &resource) {
  // Only the body: name and version are derived from it.
  v1::Resource body = resource;
  body.clear_name();
  body.clear_version();
  static constexpr char kHex[] = "0123456789abcdef";
  uint64_t hash = fnv1a(deterministic_bytes(body));
  std::string text(16, '0');
  for (int i = 15; i >= 0; --i, hash >>= 4) text[size_t(i)] = kHex[hash & 0xf];
  return text;
}

std::map<std::string, v1::Resource> to_resources(const v1::Snapshot &snapshot) {
  std::map<std::string, v1::Resource> out;
  auto add = [&out](v1::Resource resource) {
    std::string name = resource.name();
    out.insert_or_assign(std::move(name), std::move(resource));
  };
  for (const auto &w : snapshot.workloads()) add(make(w, &v1::Resource::mutable_workload));
  for (const auto &s : snapshot.services()) add(make(s, &v1::Resource::mutable_service));
  for (const auto &n : snapshot.nodes()) add(make(n, &v1::Resource::mutable_node));
  for (const auto &p : snapshot.authorization_policies())
    add(make(p, &v1::Resource::mutable_authorization_policy));
  return out;
}

v1::Snapshot to_snapshot(const std::map<std::string, v1::Resource> &resources) {
  v1::Snapshot snapshot;
  for (const auto &[name, resource] : resources) {
    switch (resource.body_case()) {
      case v1::Resource::kWorkload:
        *snapshot.add_workloads() = resource.workload();
        break;
      case v1::Resource::kService:
        *snapshot.add_services() = resource.service();
        break;
      case v1::Resource::kNode:
        *snapshot.add_nodes() = resource.node();
        break;
      case v1::Resource::kAuthorizationPolicy:
        *snapshot.add_authorization_policies() = resource.authorization_policy();
        break;
      case v1::Resource::BODY_NOT_SET:
        break;
    }
  }
  return snapshot;
}

}  // namespace sockmesh::resources
