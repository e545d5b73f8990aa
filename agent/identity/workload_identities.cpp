#include "identity/workload_identities.h"

#include <spdlog/spdlog.h>

#include <stdexcept>

namespace sockmesh::identity {

WorkloadIdentities::WorkloadIdentities(Signer signer, pki::Clock clock)
    : signer_(std::move(signer)), clock_(std::move(clock)) {}

void WorkloadIdentities::set_workloads(std::vector<LocalWorkload> workloads) {
  std::lock_guard lock(mu_);
  std::map<std::string, LocalWorkload> wanted;
  for (auto &w : workloads) {
    const std::string key = w.id.str();
    // Keep the workload the SVID was requested for while it is still here: renewals then name
    // the same workload.
    auto held = held_.find(key);
    if (wanted.count(key) && !(held != held_.end() && held->second.workload == w.name)) continue;
    wanted[key] = std::move(w);
  }
  for (auto it = held_.begin(); it != held_.end();)
    it = wanted.count(it->first) ? std::next(it) : held_.erase(it);
  wanted_ = std::move(wanted);
}

pki::TimePoint WorkloadIdentities::refresh() {
  const auto now = clock_();
  v1::SignWorkloadsRequest request;
  std::map<std::string, pki::PrivateKey> keys;  // workload -> the key its CSR is for
  std::map<std::string, std::string> ids;       // workload -> SPIFFE ID
  {
    std::lock_guard lock(mu_);
    for (const auto &[id, workload] : wanted_) {
      auto held = held_.find(id);
      if (held != held_.end() && held->second.renew_at > now) continue;
      auto key = pki::PrivateKey::generate();
      auto *csr = request.add_csrs();
      csr->set_workload(workload.name);
      csr->set_csr_pem(pki::make_csr(key, workload.id));
      keys.emplace(workload.name, std::move(key));
      ids[workload.name] = id;
    }
  }
  if (request.csrs_size() > 0) {
    const auto response = signer_(request);  // outside the lock: a network call
    std::map<std::string, Svid> issued;
    for (const auto &svid : response.svids()) {
      auto key = keys.find(svid.workload());
      if (key == keys.end()) throw std::runtime_error("meshcp answered an SVID for " + svid.workload() + ", which was not asked for");
      auto chain = pki::Certificate::chain_from_pem(svid.certificate_pem());
      if (chain.empty()) throw std::runtime_error("meshcp answered an empty SVID for " + svid.workload());
      const auto got = chain.front().spiffe_id();
      if (!got || got->str() != ids[svid.workload()])
        throw std::runtime_error("meshcp answered an SVID for another identity than " + ids[svid.workload()]);
      Svid s{{key->second, chain}, svid.workload(), 0, chain.front().not_after(), pki::renew_at(chain.front())};
      issued.emplace(ids[svid.workload()], std::move(s));
    }
    std::lock_guard lock(mu_);
    for (auto &[id, svid] : issued) {
      if (!wanted_.count(id)) continue;  // the workload left meanwhile
      svid.generation = ++generations_[id];
      spdlog::info("event=svid_issued id={} workload={} generation={} expires_in_s={}", id, svid.workload,
                   svid.generation,
                   std::chrono::duration_cast<std::chrono::seconds>(svid.not_after - now).count());
      held_.insert_or_assign(id, std::move(svid));
    }
    if (!response.trust_bundle_pem().empty()) bundle_pem_ = response.trust_bundle_pem();
  }
  std::lock_guard lock(mu_);
  pki::TimePoint next = pki::TimePoint::max();
  for (const auto &[id, workload] : wanted_) {
    auto held = held_.find(id);
    next = std::min(next, held == held_.end() ? now : held->second.renew_at);
  }
  return next;
}

std::optional<Svid> WorkloadIdentities::current(const pki::SpiffeId &id) const {
  std::lock_guard lock(mu_);
  auto it = held_.find(id.str());
  if (it == held_.end()) return std::nullopt;
  return it->second;
}

std::vector<std::pair<std::string, Svid>> WorkloadIdentities::all() const {
  std::lock_guard lock(mu_);
  return {held_.begin(), held_.end()};
}

std::string WorkloadIdentities::bundle_pem() const {
  std::lock_guard lock(mu_);
  return bundle_pem_;
}

}  // namespace sockmesh::identity
