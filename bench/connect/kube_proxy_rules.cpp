#include "kube_proxy_rules.h"

#include <fmt/format.h>

#include <iterator>

namespace sockmesh::bench {
namespace {

std::string svc_chain(int s) { return fmt::format("KUBE-SVC-{}", s); }
std::string sep_chain(int s, int j) { return fmt::format("KUBE-SEP-{}-{}", s, j); }

}  // namespace

std::string kube_proxy_rules(const ServicePlan& plan) {
  check_plan(plan);
  std::string out = "*nat\n:KUBE-SERVICES - [0:0]\n";
  auto sink = std::back_inserter(out);
  for (int s = 0; s < plan.services; s++) {
    fmt::format_to(sink, ":{} - [0:0]\n", svc_chain(s));
    for (int j = 0; j < plan.endpoints; j++) fmt::format_to(sink, ":{} - [0:0]\n", sep_chain(s, j));
  }
  out += "-A OUTPUT -j KUBE-SERVICES\n";
  for (int s = 0; s < plan.services; s++)
    fmt::format_to(sink, "-A KUBE-SERVICES -d {}/32 -p tcp -m tcp --dport {} -j {}\n",
                   to_string(vip_address(s)), kVipPort, svc_chain(s));
  for (int s = 0; s < plan.services; s++) {
    for (int j = 0; j < plan.endpoints; j++) {
      int left = plan.endpoints - j;
      if (left > 1)
        fmt::format_to(sink, "-A {} -m statistic --mode random --probability {:.10f} -j {}\n",
                       svc_chain(s), 1.0 / left, sep_chain(s, j));
      else
        fmt::format_to(sink, "-A {} -j {}\n", svc_chain(s), sep_chain(s, j));
    }
    for (int j = 0; j < plan.endpoints; j++)
      fmt::format_to(sink, "-A {} -p tcp -m tcp -j DNAT --to-destination {}:{}\n", sep_chain(s, j),
                     to_string(backend_address(plan, s, j)), kBackendPort);
  }
  out += "COMMIT\n";
  return out;
}

long kube_proxy_rule_count(const ServicePlan& plan) {
  return 1 + long(plan.services) * (1 + 2L * plan.endpoints);
}

}  // namespace sockmesh::bench
