// SPIFFE ID parsing and construction (SPIFFE-ID spec, section 2): the mesh compares these strings
// for authorization, so anything ambiguous (case, dot segments, ports, escapes) is refused rather
// than normalized.

#include "internal.h"
#include "sockmesh/pki/pki.h"

namespace sockmesh::pki {
namespace {

constexpr std::string_view kScheme = "spiffe://";
constexpr size_t kMaxIdBytes = 2048;

bool td_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_';
}
bool path_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '-' || c == '_';
}

// "/a/b": each segment non-empty, of path characters, and not "." or "..". A trailing '/' makes
// an empty last segment and is refused too.
bool valid_path(std::string_view path) {
  if (path.size() < 2 || path[0] != '/') return false;
  size_t pos = 1;
  while (true) {
    size_t end = path.find('/', pos);
    std::string_view seg = path.substr(pos, end == std::string_view::npos ? end : end - pos);
    if (seg.empty() || seg == "." || seg == "..") return false;
    for (char c : seg)
      if (!path_char(c)) return false;
    if (end == std::string_view::npos) return true;
    pos = end + 1;
  }
}

std::vector<std::string_view> segments(std::string_view path) {
  std::vector<std::string_view> out;
  size_t pos = 1;
  while (pos <= path.size()) {
    size_t end = path.find('/', pos);
    if (end == std::string_view::npos) end = path.size();
    out.push_back(path.substr(pos, end - pos));
    pos = end + 1;
  }
  return out;
}

SpiffeId build(std::string_view trust_domain, std::string path) {
  std::string uri = std::string(kScheme) + std::string(trust_domain) + path;
  auto id = SpiffeId::parse(uri);
  if (!id) throw PkiError("not a valid SPIFFE ID: " + uri);
  return *id;
}

}  // namespace

namespace detail {

bool valid_trust_domain(std::string_view td) {
  if (td.empty()) return false;
  for (char c : td)
    if (!td_char(c)) return false;
  return true;
}

std::optional<std::string> parse_trust_domain_uri(std::string_view uri) {
  if (!uri.starts_with(kScheme) || uri.size() > kMaxIdBytes) return std::nullopt;
  std::string_view td = uri.substr(kScheme.size());
  if (!valid_trust_domain(td)) return std::nullopt;  // also refuses any '/', ':', '@', '?', '#'
  return std::string(td);
}

}  // namespace detail

std::optional<SpiffeId> SpiffeId::parse(std::string_view uri) {
  // Scheme must be exactly lowercase "spiffe://" (spec: normalized form); the trust domain ends at
  // the first '/', and any ':' (port), '@' (userinfo), '?' or '#' is outside both alphabets.
  if (uri.size() > kMaxIdBytes || !uri.starts_with(kScheme)) return std::nullopt;
  std::string_view rest = uri.substr(kScheme.size());
  size_t slash = rest.find('/');
  if (slash == std::string_view::npos) return std::nullopt;  // no path: a trust domain, not an ID
  std::string_view td = rest.substr(0, slash);
  std::string_view path = rest.substr(slash);
  if (!detail::valid_trust_domain(td) || !valid_path(path)) return std::nullopt;
  return SpiffeId{std::string(td), std::string(path)};
}

SpiffeId SpiffeId::workload(std::string_view trust_domain, std::string_view ns,
                            std::string_view sa) {
  return build(trust_domain, "/ns/" + std::string(ns) + "/sa/" + std::string(sa));
}

SpiffeId SpiffeId::node(std::string_view trust_domain, std::string_view node_name) {
  return build(trust_domain, "/sockmesh/node/" + std::string(node_name));
}

std::string SpiffeId::str() const {
  return std::string(kScheme) + trust_domain + path;
}

std::string SpiffeId::ns() const {
  auto segs = segments(path);
  if (segs.size() != 4 || segs[0] != "ns" || segs[2] != "sa") return {};
  return std::string(segs[1]);
}

std::string SpiffeId::service_account() const {
  auto segs = segments(path);
  if (segs.size() != 4 || segs[0] != "ns" || segs[2] != "sa") return {};
  return std::string(segs[3]);
}

std::string SpiffeId::node_name() const {
  auto segs = segments(path);
  if (segs.size() != 3 || segs[0] != "sockmesh" || segs[1] != "node") return {};
  return std::string(segs[2]);
}

}  // namespace sockmesh::pki
