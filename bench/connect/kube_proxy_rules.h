// The iptables baseline: the nat table kube-proxy's iptables mode writes for a service plan, as input
// for `iptables-restore --noflush` (docs/benchmarks.md "The iptables baseline").
//
// A baseline configuration: change it only in a commit of its own that says why (DESIGN.md
// "Benchmarks"), so that results before and after can be told apart.
#pragma once

#include <string>

#include "service_plan.h"

namespace sockmesh::bench {

// *nat with:
//   -A OUTPUT -j KUBE-SERVICES
//   per service s:  -A KUBE-SERVICES -d VIP/32 -p tcp -m tcp --dport 80 -j KUBE-SVC-<s>
//   per endpoint j: -A KUBE-SVC-<s> -m statistic --mode random --probability 1/(E-j) -j KUBE-SEP-<s>-<j>
//                   (the last one without the statistic match), probabilities with kube-proxy's 10
//                   decimals
//                   -A KUBE-SEP-<s>-<j> -p tcp -m tcp -j DNAT --to-destination BACKEND:8080
std::string kube_proxy_rules(const ServicePlan& plan);

// The number of rules (-A lines) kube_proxy_rules(plan) holds.
long kube_proxy_rule_count(const ServicePlan& plan);

}  // namespace sockmesh::bench
