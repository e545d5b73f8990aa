#include "telemetry/map_decode.h"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <netinet/in.h>

#include <cstring>
#include <optional>
#include <vector>

#include "sockmesh/capture_maps.h"
#include "sockmesh/counters.h"
#include "sockmesh/lb_maps.h"
#include "sockmesh/policy.h"
#include "sockmesh/telemetry.h"
#include "telemetry/datapath_counters.h"

namespace sockmesh::telemetry {
namespace {

// Layouts declared in bpf/lib/maps.h (BPF side only, it includes vmlinux.h); mirrored here.
struct OrigDst {
  std::uint32_t addr[4];
  std::uint32_t port;  // network order in the low 16 bits
  std::uint32_t family;
};
static_assert(sizeof(OrigDst) == 24);
struct ReverseKey {
  std::uint64_t cookie;
  std::uint32_t addr[4];
  std::uint32_t port;  // network order in the low 16 bits
  std::uint32_t family;
};
static_assert(sizeof(ReverseKey) == 32);

// The bytes as a T when they are exactly one T.
template <typename T>
std::optional<T> as(std::span<const std::uint8_t> bytes) {
  if (bytes.size() != sizeof(T)) return std::nullopt;
  T out;
  std::memcpy(&out, bytes.data(), sizeof(T));
  return out;
}

// The per-CPU copies of a T (each padded to 8 bytes), when the value holds exactly `cpus` of them.
template <typename T>
std::optional<std::vector<T>> per_cpu(const RawEntry &entry) {
  constexpr std::size_t stride = (sizeof(T) + 7) / 8 * 8;
  if (entry.cpus == 0 || entry.value.size() != stride * entry.cpus) return std::nullopt;
  std::vector<T> out(entry.cpus);
  for (unsigned cpu = 0; cpu < entry.cpus; ++cpu)
    std::memcpy(&out[cpu], entry.value.data() + cpu * stride, sizeof(T));
  return out;
}

std::string proto_text(unsigned proto) {
  if (proto == IPPROTO_TCP) return "tcp";
  if (proto == IPPROTO_UDP) return "udp";
  return fmt::format("proto {}", proto);
}

std::string flags_suffix(std::uint32_t flags) {
  return flags == 0 ? "" : fmt::format(", flags {:#x}", flags);
}

// "demo/client", "#3" (a number the agent has no name for), "unknown" (0).
std::string workload_name(std::uint32_t id, const Names &names) {
  return workload_of(id, names).id;
}

// "n2 (#2)", "#2 (not known to the agent)".
std::string node_text(std::uint32_t id, const Names &names) {
  if (auto it = names.nodes.find(id); it != names.nodes.end())
    return fmt::format("{} (#{})", it->second, id);
  return fmt::format("#{} (not known to the agent)", id);
}

// "slot 3 (demo/web 10.96.0.10:80/tcp)", or "slot 3".
std::string slot_text(std::uint32_t slot, const Names &names) {
  if (auto it = names.service_by_slot.find(slot); it != names.service_by_slot.end())
    return fmt::format("slot {} ({})", slot, it->second);
  return fmt::format("slot {}", slot);
}

// "rule 7 (DENY demo/deny-legacy rules[1])", or "rule 7".
std::string rule_text(std::uint32_t rule, const Names &names) {
  if (auto it = names.policy_rules.find(rule); it != names.policy_rules.end())
    return fmt::format("rule {} ({})", rule, it->second);
  return fmt::format("rule {}", rule);
}

std::string u32_key(std::span<const std::uint8_t> key) {
  auto k = as<std::uint32_t>(key);
  return k ? std::to_string(*k) : hex_text(key);
}

std::string policy_name(std::uint32_t policy) {
  switch (policy) {
    case SM_LB_RANDOM:
      return "RANDOM";
    case SM_LB_ROUND_ROBIN:
      return "ROUND_ROBIN";
    case SM_LB_MAGLEV:
      return "MAGLEV";
    default:
      return fmt::format("POLICY({})", policy);
  }
}

std::string backend_set_text(const sm_backend_set &set) {
  std::string policy = policy_name(set.policy);
  if (set.policy == SM_LB_MAGLEV) policy += fmt::format("({})", set.maglev_size);
  const std::uint32_t count = std::min<std::uint32_t>(set.count, SM_MAX_BACKENDS);
  if (count == 0) return policy + ", no backends";
  std::vector<std::string> backends;
  std::uint32_t previous = 0;
  for (std::uint32_t i = 0; i < count; ++i) {
    const sm_backend &b = set.backends[i];
    backends.push_back(fmt::format("{} weight {}", endpoint_text(b.addr, b.port, b.family),
                                   b.weight_cum - previous));
    previous = b.weight_cum;
  }
  const std::string usable = set.total_weight == 0 ? " (none usable)" : "";
  return fmt::format("{}, {} backend{}{}: {}", policy, count, count == 1 ? "" : "s", usable,
                     fmt::join(backends, ", "));
}

std::string capture_info_text(const sm_capture_info &info, const Names &names) {
  return fmt::format("{} → {} on {}: to {}, backend {}", workload_text(info.src_workload, names),
                     workload_text(info.dst_workload, names), node_text(info.dst_node, names),
                     endpoint_text(info.orig.addr, info.orig.port, info.orig.family),
                     endpoint_text(info.backend.addr, info.backend.port, info.backend.family));
}

std::string traffic_key_text(const sm_traffic_key &k, const Names &names) {
  std::string text = fmt::format("{} → {}", workload_name(k.src_workload, names),
                                 workload_name(k.dst_workload, names));
  if (address_given(k.vip, k.vip_port)) {
    const std::string vip = vip_text(k.vip, k.vip_port, k.proto, k.family);
    if (auto it = names.service_by_vip.find(vip); it != names.service_by_vip.end())
      text += fmt::format(" via {} {}", it->second, vip);
    else
      text += fmt::format(" via {}", vip);
  }
  if (!address_given(k.backend, k.backend_port))
    text += " backend none";
  else
    text += " backend " + endpoint_text(k.backend, k.backend_port, k.family);
  return text;
}

std::string traffic_value_text(const std::vector<sm_traffic_value> &cpus) {
  sm_traffic_value sum{};
  for (const auto &v : cpus) {
    sum.balanced += v.balanced;
    sum.captured += v.captured;
    sum.no_backend += v.no_backend;
    sum.denied += v.denied;
    sum.opened += v.opened;
    sum.failed += v.failed;
    sum.closed += v.closed;
    sum.reset += v.reset;
    sum.bytes_sent += v.bytes_sent;
    sum.bytes_received += v.bytes_received;
    sum.fastpath_bytes_sent += v.fastpath_bytes_sent;
    sum.fastpath_bytes_received += v.fastpath_bytes_received;
    sum.retransmits += v.retransmits;
    sum.srtt_samples += v.srtt_samples;
    sum.srtt_us_sum += v.srtt_us_sum;
  }
  const std::pair<const char *, std::uint64_t> fields[] = {
      {"balanced", sum.balanced},
      {"captured", sum.captured},
      {"no_backend", sum.no_backend},
      {"denied", sum.denied},
      {"opened", sum.opened},
      {"failed", sum.failed},
      {"closed", sum.closed},
      {"active", sum.opened >= sum.closed ? sum.opened - sum.closed : 0},
      {"reset", sum.reset},
      {"bytes_sent", sum.bytes_sent},
      {"bytes_received", sum.bytes_received},
      {"fastpath_bytes_sent", sum.fastpath_bytes_sent},
      {"fastpath_bytes_received", sum.fastpath_bytes_received},
      {"retransmits", sum.retransmits},
      {"srtt_avg_us", sum.srtt_samples == 0 ? 0 : sum.srtt_us_sum / sum.srtt_samples},
  };
  std::vector<std::string> parts;
  for (const auto &[name, value] : fields) {
    if (value != 0) parts.push_back(fmt::format("{}={}", name, value));
  }
  return parts.empty() ? "all zero" : fmt::format("{}", fmt::join(parts, " "));
}

std::string telemetry_config_text(const sm_telemetry_config &c) {
  std::string text;
  if (!(c.flags & SM_TELEMETRY_EVENTS)) {
    text = "events off";
  } else if (c.sample_below == 0xffffffffu) {
    text = "events on, all connections";
  } else {
    text = fmt::format("events on, sampling {:.4g}% of connections",
                       static_cast<double>(c.sample_below) / 4294967296.0 * 100.0);
  }
  return text + fmt::format(", epoch {}", c.epoch) + flags_suffix(c.flags & ~SM_TELEMETRY_EVENTS);
}

std::string agent_config_text(const sm_agent_config &c) {
  const std::uint32_t v4[4] = {c.addr4, 0, 0, 0};
  return fmt::format("capture {}, IPv4 listener {}, IPv6 listener {}{}",
                     (c.flags & SM_AGENT_CAPTURE_ON) ? "on" : "off",
                     c.port4 == 0 ? "none" : endpoint_text(v4, c.port4, SM_AF_INET),
                     c.port6 == 0 ? "none" : endpoint_text(c.addr6, c.port6, SM_AF_INET6),
                     flags_suffix(c.flags & ~SM_AGENT_CAPTURE_ON));
}

// The per-CPU u64s of a counter map, summed.
std::optional<std::uint64_t> summed(const RawEntry &entry) {
  auto values = per_cpu<std::uint64_t>(entry);
  if (!values) return std::nullopt;
  std::uint64_t sum = 0;
  for (auto v : *values) sum += v;
  return sum;
}

// Unknown layout: hex; per-CPU values one copy per CPU.
EntryText hex_entry(const RawEntry &entry) {
  if (entry.cpus == 0 || entry.value.size() % entry.cpus != 0)
    return {hex_text(entry.key), hex_text(entry.value)};
  const std::size_t stride = entry.value.size() / entry.cpus;
  std::vector<std::string> parts;
  for (unsigned cpu = 0; cpu < entry.cpus; ++cpu)
    parts.push_back(
        fmt::format("cpu{}: {}", cpu, hex_text(entry.value.subspan(cpu * stride, stride))));
  return {hex_text(entry.key), fmt::format("{}", fmt::join(parts, " | "))};
}

std::optional<EntryText> decode_known(std::string_view map, const RawEntry &e, const Names &names) {
  if (map == "sm_services") {
    auto k = as<sm_service_key>(e.key);
    auto v = as<sm_service_value>(e.value);
    if (!k || !v) return std::nullopt;
    std::string key = vip_text(k->addr, k->port, k->proto, k->family);
    std::string value = fmt::format("slot {}", v->set_slot);
    if (auto it = names.service_by_vip.find(key); it != names.service_by_vip.end())
      value += fmt::format(" ({})", it->second);
    return EntryText{std::move(key), value + flags_suffix(v->flags)};
  }
  if (map == "sm_backend_sets") {
    auto k = as<std::uint32_t>(e.key);
    auto id = as<std::uint32_t>(e.value);
    if (!k || !id) return std::nullopt;
    auto set = as<sm_backend_set>(e.inner);
    return EntryText{slot_text(*k, names),
                     set ? fmt::format("inner map {}: {}", *id, backend_set_text(*set))
                         : fmt::format("inner map {} (not readable)", *id)};
  }
  if (map == "sm_rr_cursors") {
    auto k = as<std::uint32_t>(e.key);
    auto cursors = per_cpu<std::uint32_t>(e);
    if (!k || !cursors) return std::nullopt;
    std::vector<std::string> parts;
    for (unsigned cpu = 0; cpu < cursors->size(); ++cpu) {
      if ((*cursors)[cpu] != 0) parts.push_back(fmt::format("cpu{} {}", cpu, (*cursors)[cpu]));
    }
    return EntryText{slot_text(*k, names),
                     parts.empty() ? "0" : fmt::format("{}", fmt::join(parts, ", "))};
  }
  if (map == "sm_udp_reverse") {
    auto k = as<ReverseKey>(e.key);
    auto v = as<OrigDst>(e.value);
    if (!k || !v) return std::nullopt;
    const auto port = static_cast<std::uint16_t>(v->port & 0xffff);
    std::string value = "VIP " + endpoint_text(v->addr, port, v->family);
    if (auto it = names.service_by_vip.find(vip_text(v->addr, port, IPPROTO_UDP, v->family));
        it != names.service_by_vip.end())
      value += fmt::format(" ({})", it->second);
    return EntryText{
        fmt::format(
            "socket {}, backend {}", k->cookie,
            endpoint_text(k->addr, static_cast<std::uint16_t>(k->port & 0xffff), k->family)),
        std::move(value)};
  }
  if (map == "sm_workloads") {
    auto k = as<std::uint64_t>(e.key);
    auto v = as<sm_workload>(e.value);
    if (!k || !v) return std::nullopt;
    return EntryText{fmt::format("cgroup {}", *k),
                     fmt::format("{} {}{}", workload_text(v->id, names),
                                 (v->flags & SM_WL_CAPTURED) ? "captured" : "not captured",
                                 flags_suffix(v->flags & ~SM_WL_CAPTURED))};
  }
  if (map == "sm_endpoints") {
    auto k = as<sm_ip_key>(e.key);
    auto v = as<sm_endpoint>(e.value);
    if (!k || !v) return std::nullopt;
    return EntryText{
        address_text(k->addr, k->family),
        fmt::format("{} on {}, {}{}", workload_text(v->workload_id, names),
                    node_text(v->node_id, names), (v->flags & SM_EP_REMOTE) ? "remote" : "local",
                    flags_suffix(v->flags & ~SM_EP_REMOTE))};
  }
  if (map == "sm_agent") {
    auto v = as<sm_agent_config>(e.value);
    if (!v || !as<std::uint32_t>(e.key)) return std::nullopt;
    return EntryText{u32_key(e.key), agent_config_text(*v)};
  }
  if (map == "sm_capture_flows") {
    auto k = as<sm_flow_key>(e.key);
    auto v = as<sm_capture_info>(e.value);
    if (!k || !v) return std::nullopt;
    return EntryText{
        fmt::format("client {} → agent {}", endpoint_text(k->client, k->client_port, k->family),
                    endpoint_text(k->agent, k->agent_port, k->family)),
        capture_info_text(*v, names)};
  }
  if (map == "sm_policy") {
    auto k = as<sm_policy_key>(e.key);
    auto v = as<sm_policy_value>(e.value);
    if (!k || !v) return std::nullopt;
    std::string key =
        fmt::format("{} → {} port {}", workload_text(k->src, names), workload_text(k->dst, names),
                    k->port == SM_POLICY_ANY_PORT ? std::string("*") : std::to_string(k->port));
    std::string value = v->verdict == SM_POLICY_ALLOW
                            ? std::string("ALLOW")
                            : fmt::format("DENY, counted in {}", rule_text(v->rule, names));
    return EntryText{std::move(key), std::move(value)};
  }
  if (map == "sm_policy_denials") {
    auto k = as<std::uint32_t>(e.key);
    auto sum = summed(e);
    if (!k || !sum) return std::nullopt;
    return EntryText{rule_text(*k, names), std::to_string(*sum)};
  }
  if (map == "sm_counters") {
    auto k = as<std::uint32_t>(e.key);
    auto sum = summed(e);
    if (!k || !sum) return std::nullopt;
    return EntryText{*k < SM_CNT__MAX ? counter_name(*k) : fmt::format("counter {}", *k),
                     std::to_string(*sum)};
  }
  if (map == "sm_traffic") {
    auto k = as<sm_traffic_key>(e.key);
    auto v = per_cpu<sm_traffic_value>(e);
    if (!k || !v) return std::nullopt;
    return EntryText{traffic_key_text(*k, names), traffic_value_text(*v)};
  }
  if (map == "sm_telemetry") {
    auto v = as<sm_telemetry_config>(e.value);
    if (!v || !as<std::uint32_t>(e.key)) return std::nullopt;
    return EntryText{u32_key(e.key), telemetry_config_text(*v)};
  }
  return std::nullopt;
}

bool ends_with(std::string_view text, std::string_view suffix) {
  return text.size() >= suffix.size() && text.substr(text.size() - suffix.size()) == suffix;
}

}  // namespace

EntryText decode_entry(std::string_view map, const RawEntry &entry, const Names &names) {
  if (auto text = decode_known(map, entry, names)) return *text;
  return hex_entry(entry);
}

std::string map_holds(std::string_view map) {
  struct Known {
    std::string_view name, holds;
  };
  static constexpr Known kKnown[] = {
      {"sm_services", "service VIP:port/proto → backend-set slot"},
      {"sm_backend_sets", "slot → the service's backends, weights and Maglev table (inner map)"},
      {"sm_orig_dst_store", "per socket: the VIP a balanced connect() asked for (getpeername)"},
      {"sm_rr_cursors", "slot → round-robin cursor, per CPU"},
      {"sm_udp_reverse", "UDP (socket, backend) → VIP, so that replies come from the VIP"},
      {"sm_workloads", "cgroup id → this node's workload (number, captured)"},
      {"sm_endpoints", "mesh workload address → workload and node"},
      {"sm_agent", "the agent's outbound listener for captured connections"},
      {"sm_capture_store", "per client socket: the capture record of a captured connect()"},
      {"sm_capture_flows", "capture records between the client's SYN and the agent's accept"},
      {"sm_capture_accepted", "per agent socket: the capture record getsockopt() answers"},
      {"sm_policy", "(source, destination, port) → same-node authorization verdict"},
      {"sm_policy_denials", "policy rule → connects it denied, per CPU"},
      {"sm_counters", "data-path counters, per CPU"},
      {"sm_traffic", "(VIP, backend, source, destination) → traffic counters, per CPU"},
      {"sm_telemetry", "access-log sampling and the agent's epoch"},
      {"sm_events", "connection events for the access log (ring buffer)"},
      {"sm_conn_store", "per client socket: the connection's traffic record"},
  };
  for (const auto &known : kKnown) {
    if (known.name == map) return std::string(known.holds);
  }
  if (ends_with(map, ".rodata")) return "the programs' read-only settings";
  if (ends_with(map, ".bss") || ends_with(map, ".data")) return "the programs' global variables";
  return "";
}

std::string not_listable_reason(std::string_view map, std::string_view type,
                                std::uint32_t max_entries) {
  if (type == "sk_storage") {
    return fmt::format(
        "{} is socket-local storage: each entry lives on a socket and goes with it, and the "
        "kernel offers no way to list them from user space (bpftool cannot either)",
        map);
  }
  if (type == "ringbuf") {
    return fmt::format(
        "{} is a ring buffer of {} bytes: its records are events that the agent consumes as they "
        "come, not entries to list",
        map, max_entries);
  }
  return "";
}

std::string address_text(const std::uint32_t addr[4], unsigned family) {
  char buf[INET6_ADDRSTRLEN] = {};
  if (family == SM_AF_INET) return inet_ntop(AF_INET, addr, buf, sizeof(buf));
  if (family == SM_AF_INET6) return inet_ntop(AF_INET6, addr, buf, sizeof(buf));
  return fmt::format("family {}", family);
}

std::string endpoint_text(const std::uint32_t addr[4], std::uint16_t port_net, unsigned family) {
  const std::string address = address_text(addr, family);
  if (family == SM_AF_INET6) return fmt::format("[{}]:{}", address, ntohs(port_net));
  return fmt::format("{}:{}", address, ntohs(port_net));
}

std::string vip_text(const std::uint32_t addr[4], std::uint16_t port_net, unsigned proto,
                     unsigned family) {
  return endpoint_text(addr, port_net, family) + "/" + proto_text(proto);
}

bool address_given(const std::uint32_t addr[4], std::uint16_t port_net) {
  return addr[0] != 0 || addr[1] != 0 || addr[2] != 0 || addr[3] != 0 || port_net != 0;
}

WorkloadName workload_of(std::uint32_t id, const Names &names) {
  if (id == 0) return {"unknown", ""};
  if (auto it = names.workloads.find(id); it != names.workloads.end()) return it->second;
  return {fmt::format("#{}", id), ""};
}

std::string service_of(const std::string &vip, const Names &names) {
  auto it = names.service_by_vip.find(vip);
  return it != names.service_by_vip.end() ? it->second : "unknown";
}

std::string workload_text(std::uint32_t id, const Names &names) {
  if (id == 0) return "unknown";
  if (auto it = names.workloads.find(id); it != names.workloads.end())
    return fmt::format("{} (#{})", it->second.id, id);
  return fmt::format("#{} (not known to the agent)", id);
}

std::string hex_text(std::span<const std::uint8_t> bytes) {
  std::string out;
  out.reserve(bytes.size() * 3);
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    if (i > 0) out += ' ';
    out += fmt::format("{:02x}", bytes[i]);
  }
  return out;
}

}  // namespace sockmesh::telemetry
