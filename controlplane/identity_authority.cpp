#include "identity_authority.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <regex>

namespace sockmesh::controlplane {
namespace {

using Code = IdentityRefused::Code;

int64_t unix_seconds(pki::TimePoint t) {
  return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
}

bool valid_node_name(const std::string &node) {
  static const std::regex label("^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$");
  return std::regex_match(node, label);
}

}  // namespace

IdentityAuthority::IdentityAuthority(pki::CertificateAuthority ca, BootstrapTokens &tokens,
                                     const State &state, IdentityTtls ttls, pki::Clock clock)
    : ca_(std::move(ca)), tokens_(tokens), state_(state), ttls_(ttls), clock_(std::move(clock)) {}

void IdentityAuthority::refuse(Code code, const std::string &reason, const std::string &message) {
  {
    std::lock_guard lock(mu_);
    ++refusals_[reason];
  }
  spdlog::warn("event=identity_refused reason={} message=\"{}\"", reason, message);
  throw IdentityRefused(code, reason, message);
}

void IdentityAuthority::record(const std::string &node, const std::string &workload,
                               const pki::Certificate &cert) {
  v1::IssuedCertificate issued;
  issued.set_node(node);
  issued.set_workload(workload);
  if (auto id = cert.spiffe_id()) issued.set_spiffe_id(id->str());
  issued.set_serial(cert.serial_hex());
  issued.set_not_before_unix(unix_seconds(cert.not_before()));
  issued.set_not_after_unix(unix_seconds(cert.not_after()));
  std::lock_guard lock(mu_);
  issued_[{node, workload}] = std::move(issued);
  ++issued_by_kind_[workload.empty() ? "node" : "workload"];
}

v1::JoinNodeResponse IdentityAuthority::issue_node(const std::string &node,
                                                   const std::string &csr_pem) {
  pki::Csr csr;
  try {
    csr = pki::parse_csr(csr_pem);
  } catch (const pki::PkiError &e) {
    refuse(Code::kInvalidArgument, "bad_csr", fmt::format("node \"{}\": {}", node, e.what()));
  }
  pki::IssueOptions options;
  options.ttl = ttls_.node;
  const auto pem = ca_.issue(csr, pki::SpiffeId::node(ca_.trust_domain(), node), options, clock_());
  record(node, "", pki::Certificate::from_pem(pem));
  v1::JoinNodeResponse response;
  response.set_certificate_pem(pem);
  response.set_trust_bundle_pem(ca_.bundle_pem());
  response.set_trust_domain(ca_.trust_domain());
  spdlog::info("event=node_certificate node={} ttl_s={}", node, ttls_.node.count());
  return response;
}

v1::JoinNodeResponse IdentityAuthority::join(const v1::JoinNodeRequest &request) {
  if (!valid_node_name(request.node()))
    refuse(Code::kInvalidArgument, "bad_node_name",
           fmt::format("node \"{}\": not a valid node name", request.node()));
  BootstrapTokens::Method method{};
  try {
    method = tokens_.consume(request.node(), request.token());
  } catch (const TokenRefused &e) {
    refuse(Code::kUnauthenticated, "token_" + e.reason(),
           fmt::format("node \"{}\": {}", request.node(), e.what()));
  }
  auto response = issue_node(request.node(), request.csr_pem());
  const char *name = BootstrapTokens::method_name(method);
  {
    std::lock_guard lock(mu_);
    ++joins_[name];
  }
  // The cluster token joins any name: the log is where an operator sees which names used it.
  spdlog::info("event=node_joined node={} method={}", request.node(), name);
  return response;
}

v1::JoinNodeResponse IdentityAuthority::renew_node(const std::string &node,
                                                   const v1::RenewNodeRequest &request) {
  return issue_node(node, request.csr_pem());
}

v1::SignWorkloadsResponse IdentityAuthority::sign_workloads(
    const std::string &node, const v1::SignWorkloadsRequest &request) {
  const View view = state_.view();
  std::vector<std::pair<std::string, pki::Csr>> checked;
  // Checked whole before anything is issued: one refused workload refuses the request.
  for (const auto &item : request.csrs()) {
    const auto it = view.resources->find("workload/" + item.workload());
    if (it == view.resources->end() || !it->second.has_workload())
      refuse(Code::kNotFound, "unknown_workload",
             fmt::format("node \"{}\": no workload \"{}\"", node, item.workload()));
    const v1::Workload &workload = it->second.workload();
    if (workload.node() != node)
      refuse(Code::kPermissionDenied, "workload_on_other_node",
             fmt::format(
                 "node \"{}\" asked for the SVID of workload \"{}\", which runs on node \"{}\"",
                 node, item.workload(), workload.node()));
    pki::Csr csr;
    try {
      csr = pki::parse_csr(item.csr_pem());
    } catch (const pki::PkiError &e) {
      refuse(Code::kInvalidArgument, "bad_csr",
             fmt::format("workload \"{}\": {}", item.workload(), e.what()));
    }
    const std::string sa =
        workload.service_account().empty() ? "default" : workload.service_account();
    const auto id =
        pki::SpiffeId::workload(ca_.trust_domain(), workload.metadata().namespace_(), sa);
    if (!(csr.id == id))
      refuse(Code::kInvalidArgument, "csr_id_mismatch",
             fmt::format("workload \"{}\": the CSR asks for {}, the workload's identity is {}",
                         item.workload(), csr.id.str(), id.str()));
    checked.emplace_back(item.workload(), std::move(csr));
  }
  v1::SignWorkloadsResponse response;
  pki::IssueOptions options;
  options.ttl = ttls_.svid;
  const auto now = clock_();
  for (const auto &[name, csr] : checked) {
    const auto pem = ca_.issue(csr, csr.id, options, now);
    const auto cert = pki::Certificate::from_pem(pem);
    record(node, name, cert);
    auto *svid = response.add_svids();
    svid->set_workload(name);
    svid->set_spiffe_id(csr.id.str());
    svid->set_certificate_pem(pem);
    svid->set_not_after_unix(unix_seconds(cert.not_after()));
  }
  response.set_trust_bundle_pem(ca_.bundle_pem());
  spdlog::info("event=svids_issued node={} count={} ttl_s={}", node, checked.size(),
               ttls_.svid.count());
  return response;
}

v1::AddNodeResponse IdentityAuthority::add_node(const v1::AddNodeRequest &request) {
  if (!valid_node_name(request.node()))
    throw std::invalid_argument(
        fmt::format("\"{}\" is not a valid node name (lowercase letters, digits and '-', at most "
                    "63, starting and ending with a letter or digit)",
                    request.node()));
  const auto issued = tokens_.create(request.node(), std::chrono::seconds(request.ttl_seconds()));
  v1::AddNodeResponse response;
  response.set_token(issued.token);
  response.set_expires_unix(unix_seconds(issued.expires));
  response.set_ca_cert_hash(ca_cert_hash());
  response.set_trust_domain(ca_.trust_domain());
  spdlog::info("event=bootstrap_token node={} expires_unix={}", request.node(),
               response.expires_unix());
  return response;
}

v1::ListIdentitiesResponse IdentityAuthority::list(const v1::ListIdentitiesRequest &request) const {
  v1::ListIdentitiesResponse response;
  response.set_trust_domain(ca_.trust_domain());
  response.set_ca_cert_hash(ca_cert_hash());
  response.set_ca_not_after_unix(unix_seconds(ca_.certificate().not_after()));
  const int64_t now = unix_seconds(clock_());
  std::lock_guard lock(mu_);
  for (const auto &[key, issued] : issued_) {
    if (!request.node().empty() && key.first != request.node()) continue;
    if (issued.not_after_unix() <= now) continue;
    *response.add_certificates() = issued;
  }
  return response;
}

std::map<std::string, uint64_t> IdentityAuthority::refusals() const {
  std::lock_guard lock(mu_);
  return refusals_;
}

std::map<std::string, uint64_t> IdentityAuthority::issued() const {
  std::lock_guard lock(mu_);
  return issued_by_kind_;
}

std::map<std::string, uint64_t> IdentityAuthority::joins() const {
  std::lock_guard lock(mu_);
  return joins_;
}

}  // namespace sockmesh::controlplane
