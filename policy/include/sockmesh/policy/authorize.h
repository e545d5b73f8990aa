// L4 authorization: whether a peer may connect to a workload on a port, decided from the mesh's
// AuthorizationPolicy resources with Istio's semantics (docs/config.md, "AuthorizationPolicy"):
//
//  1. DENY policies first: a connection that any rule of a DENY policy selecting the workload
//     matches is denied;
//  2. then, when ALLOW policies select the workload, a connection is allowed only if some rule of
//     one of them matches;
//  3. when none does, it is allowed.
//
// A policy selects the workloads of its namespace that carry its selector's labels (all of them
// without a selector); a policy in the root namespace (sockmesh-system) selects in every
// namespace. Within a rule every field given must match, within a field any value. Policies are
// expected to have passed resources::validate().
//
// PolicyIndex is the compiled form for repeated decisions (the agent's per-connection check):
// select() once per destination workload, evaluate() per connection without allocating, explain()
// only when a human reads the answer. decide() does all three.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "sockmesh/v1/resources.pb.h"

namespace sockmesh::policy {

// Policies in this namespace apply to the workloads of every namespace (Istio's root namespace).
inline constexpr std::string_view kRootNamespace = "sockmesh-system";
// The trust domain a principal written "cluster.local/..." stands for when the mesh has another
// one (Istio's rule), and meshctl's default.
inline constexpr std::string_view kDefaultTrustDomain = "cluster.local";

enum class Action { kAllow, kDeny };

// "ALLOW", "DENY".
std::string_view action_name(Action action);

// Who opens the connection: the SPIFFE ID of the peer's certificate, or no identity at all.
class Source {
 public:
  // A peer without a certificate: it matches no principal and no namespace.
  static Source unauthenticated();
  // "spiffe://<trust-domain>/<path>" or Istio's principal form "<trust-domain>/<path>"; nullopt
  // when it is not a SPIFFE ID (no trust domain or path, another scheme, a '*').
  static std::optional<Source> parse(std::string_view spiffe_id);
  // spiffe://<trust_domain>/ns/<ns>/sa/<service_account>.
  static Source workload(std::string_view trust_domain, std::string_view ns,
                         std::string_view service_account);

  bool authenticated() const { return !principal_.empty(); }
  // Istio's principal: the SPIFFE ID without "spiffe://"; "" when unauthenticated.
  const std::string &principal() const { return principal_; }
  // The namespace of the ID's "/ns/<namespace>/" segment; "" when it has none.
  std::string_view namespace_() const;
  // "spiffe://cluster.local/ns/demo/sa/client"; "" when unauthenticated.
  std::string spiffe_id() const;
  // spiffe_id(), or "an unauthenticated peer".
  std::string describe() const;

 private:
  std::string principal_;
  size_t ns_at_ = 0;
  size_t ns_size_ = 0;
};

using Labels = std::map<std::string, std::string, std::less<>>;

// The workload a connection goes to.
struct Destination {
  std::string namespace_;
  Labels labels;
  std::string name;  // for explanations only ("workload demo/web"); may be empty

  static Destination of(const v1::Workload &workload);
};

// What decided.
enum class Basis {
  kDenyRule,       // a rule of a DENY policy matched: denied
  kAllowRule,      // a rule of an ALLOW policy matched: allowed
  kNoAllowPolicy,  // no DENY rule matched and no ALLOW policy selects the workload: allowed
  kNoAllowRule,    // ALLOW policies select the workload but none of their rules matched: denied
};

struct Decision {
  bool allowed = true;
  // The deciding policy's action; for the defaults, their effect (ALLOW for kNoAllowPolicy, DENY
  // for kNoAllowRule).
  Action action = Action::kAllow;
  Basis basis = Basis::kNoAllowPolicy;
  std::string policy;  // "namespace/name" of the deciding policy; "" for a default
  int rule = -1;       // index of the deciding rule in the policy's spec.rules; -1 for a default
  // "DENY demo/deny-legacy rules[1]", "ALLOW demo/web-from-client rules[0]",
  // "default allow (no ALLOW policy selects the workload)" or
  // "default deny (ALLOW policies select the workload but none matched)".
  std::string decided_by;
  // One line for a human, e.g. "rules[0] of ALLOW policy demo/web-from-client matches
  // spiffe://cluster.local/ns/demo/sa/client on port 8080".
  std::string explanation;
};

class PolicyIndex {
 public:
  // No policies: everything is allowed.
  PolicyIndex();
  ~PolicyIndex();
  PolicyIndex(const PolicyIndex &);
  PolicyIndex(PolicyIndex &&) noexcept;
  PolicyIndex &operator=(const PolicyIndex &);
  PolicyIndex &operator=(PolicyIndex &&) noexcept;

  // Compiles the policies (any range of v1::AuthorizationPolicy: a vector, a repeated field).
  // trust_domain is the mesh's: principals written with the trust domain "cluster.local" stand for
  // it, as in Istio.
  template <typename Policies>
  static PolicyIndex build(const Policies &policies,
                           std::string_view trust_domain = kDefaultTrustDomain,
                           std::string_view root_namespace = kRootNamespace) {
    PolicyIndex index(trust_domain, root_namespace);
    for (const v1::AuthorizationPolicy &policy : policies) index.add(policy);
    index.finish();
    return index;
  }

  // The policies that select a workload, DENY and ALLOW apart, each in the index's order
  // (namespace, then name): indexes into this index, valid while it lives.
  struct Selection {
    std::vector<uint32_t> deny;
    std::vector<uint32_t> allow;
  };
  Selection select(std::string_view ns, const Labels &labels) const;
  Selection select(const Destination &destination) const {
    return select(destination.namespace_, destination.labels);
  }

  // The decision without its words: the deciding policy (an index) and rule, -1 for a default.
  struct Verdict {
    bool allowed = true;
    Basis basis = Basis::kNoAllowPolicy;
    int32_t policy = -1;
    int32_t rule = -1;
  };
  // The first matching DENY rule, else the first matching ALLOW rule, in selection order (rules in
  // their order within a policy). Allocates nothing.
  Verdict evaluate(const Selection &selection, const Source &source, uint32_t port) const noexcept;
  Decision explain(const Verdict &verdict, const Selection &selection, const Source &source,
                   const Destination &destination, uint32_t port) const;
  Decision decide(const Source &source, const Destination &destination, uint32_t port) const;
  // The ports the rules of the selected policies name (sorted, unique). evaluate() gives every
  // other port the same verdict as port 0, which no rule can name: what the kernel's per-port
  // decisions are compiled from (agent/reconcile/policy_maps.h).
  std::vector<uint32_t> ports(const Selection &selection) const;

  size_t size() const;
  const std::string &policy_id(uint32_t index) const;  // "namespace/name"
  Action policy_action(uint32_t index) const;
  const std::string &trust_domain() const { return trust_domain_; }
  const std::string &root_namespace() const { return root_namespace_; }

 private:
  struct Compiled;
  PolicyIndex(std::string_view trust_domain, std::string_view root_namespace);
  void add(const v1::AuthorizationPolicy &policy);
  void finish();
  bool selects(const Compiled &policy, const Labels &labels) const;

  std::string trust_domain_;
  std::string root_namespace_;
  std::vector<Compiled> policies_;
  std::map<std::string, std::vector<uint32_t>, std::less<>> by_namespace_;
};

// PolicyIndex::build(policies, trust_domain).decide(source, destination, port), for one decision.
Decision authorize(const std::vector<v1::AuthorizationPolicy> &policies, const Source &source,
                   const Destination &destination, uint32_t port,
                   std::string_view trust_domain = kDefaultTrustDomain);

}  // namespace sockmesh::policy
