#include "loader/features.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <set>
#include <stdexcept>

namespace sockmesh::loader {
namespace {

// Raw instructions: the probes are a handful of them, not worth an object file each.
bpf_insn mov64_imm(uint8_t reg, int32_t imm) {
  bpf_insn insn{};
  insn.code = BPF_ALU64 | BPF_MOV | BPF_K;
  insn.dst_reg = reg & 0xf;
  insn.imm = imm;
  return insn;
}

bpf_insn call(int32_t helper) {
  bpf_insn insn{};
  insn.code = BPF_JMP | BPF_CALL;
  insn.imm = helper;
  return insn;
}

bpf_insn exit_insn() {
  bpf_insn insn{};
  insn.code = BPF_JMP | BPF_EXIT;
  return insn;
}

// Loads `insns` as a program of `type` for `attach`. Returns the verifier's log through *log when
// given. true when the kernel accepted it.
bool load_prog(bpf_prog_type type, bpf_attach_type attach, const std::vector<bpf_insn> &insns,
               std::string *log = nullptr) {
  static thread_local char buf[16384];
  buf[0] = '\0';
  LIBBPF_OPTS(bpf_prog_load_opts, opts, .expected_attach_type = attach);
  if (log) {
    opts.log_buf = buf;
    opts.log_size = sizeof buf;
    opts.log_level = 1;
  }
  int fd = bpf_prog_load(type, "sm_probe", "GPL", insns.data(), insns.size(), &opts);
  if (log) *log = buf;
  if (fd < 0) {
    // Without the privilege to load programs every probe would fail: that is not a kernel
    // without features, and saying so would send the operator after the wrong problem.
    if (errno == EPERM)
      throw std::runtime_error(
          "cannot probe the kernel's BPF features: loading a program was refused (EPERM); meshd "
          "needs root (CAP_BPF, CAP_NET_ADMIN, CAP_SYS_ADMIN)");
    return false;
  }
  ::close(fd);
  return true;
}

bool load_sock_addr(bpf_attach_type attach, const std::vector<bpf_insn> &insns,
                    std::string *log = nullptr) {
  return load_prog(BPF_PROG_TYPE_CGROUP_SOCK_ADDR, attach, insns, log);
}

// A program that returns 1 (allow) is accepted for every attach type the kernel knows.
bool has_attach(bpf_attach_type attach) {
  return load_sock_addr(attach, {mov64_imm(BPF_REG_0, 1), exit_insn()});
}

// A program of `type` (sock_ops, cgroup sockopt) that returns 1 (ok) loads on every kernel that
// has the type and, for a cgroup sockopt program, the attach type.
bool has_prog(bpf_prog_type type, bpf_attach_type attach) {
  return load_prog(type, attach, {mov64_imm(BPF_REG_0, 1), exit_insn()});
}

// A helper the kernel does not offer to the program type is refused with "unknown func",
// "invalid func" (an id it does not know) or "program of this type cannot use helper" before its
// arguments are checked; zero arguments that are
// wrong for it fail later, with another message. That is libbpf's own helper probe, done with
// the attach type our programs use (sock_addr programs cannot load without one).
bool has_helper_in(bpf_prog_type type, bpf_attach_type attach, int helper) {
  std::vector<bpf_insn> insns;
  for (uint8_t r = BPF_REG_1; r <= BPF_REG_5; ++r) insns.push_back(mov64_imm(r, 0));
  insns.push_back(call(helper));
  insns.push_back(mov64_imm(BPF_REG_0, 1));
  insns.push_back(exit_insn());
  std::string log;
  if (load_prog(type, attach, insns, &log)) return true;
  if (log.empty()) return false;  // refused before the verifier ran: no such program type at all
  return log.find("unknown func") == std::string::npos &&
         log.find("invalid func") == std::string::npos &&
         log.find("program of this type cannot use helper") == std::string::npos;
}

bool has_helper(int helper) {
  return has_helper_in(BPF_PROG_TYPE_CGROUP_SOCK_ADDR, BPF_CGROUP_INET4_CONNECT, helper);
}

bool sock_ops_has_helper(int helper) {
  return has_helper_in(BPF_PROG_TYPE_SOCK_OPS, BPF_CGROUP_SOCK_OPS, helper);
}

bool sk_msg_has_helper(int helper) {
  return has_helper_in(BPF_PROG_TYPE_SK_MSG, BPF_SK_MSG_VERDICT, helper);
}

bool sock_release_has_helper(int helper) {
  return has_helper_in(BPF_PROG_TYPE_CGROUP_SOCK, BPF_CGROUP_INET_SOCK_RELEASE, helper);
}

bool sock_create_has_helper(int helper) {
  return has_helper_in(BPF_PROG_TYPE_CGROUP_SOCK, BPF_CGROUP_INET_SOCK_CREATE, helper);
}

bool getsockopt_has_helper(int helper) {
  return has_helper_in(BPF_PROG_TYPE_CGROUP_SOCKOPT, BPF_CGROUP_GETSOCKOPT, helper);
}

}  // namespace

bool sock_addr_has_helper(int id) {
  return has_helper(id);
}

namespace {

bool has_map(bpf_map_type type) {
  return libbpf_probe_bpf_map_type(type, nullptr) == 1;
}

// BPF_F_INNER_MAP lets inner maps of one outer map differ in max_entries (a Maglev service's map is
// larger than a random one's).
bool has_inner_map_flag() {
  LIBBPF_OPTS(bpf_map_create_opts, opts, .map_flags = BPF_F_INNER_MAP);
  int fd = bpf_map_create(BPF_MAP_TYPE_ARRAY, "sm_probe", 4, 4, 1, &opts);
  if (fd < 0) return false;
  ::close(fd);
  return true;
}

constexpr const char *kWithoutFastPath =
    "no same-node fast path: same-node traffic goes through TCP/IP (meshctl fastpath says why)";

Feature required(std::string name, std::string since) {
  return {std::move(name), std::move(since), true, "", false};
}

Feature optional(std::string name, std::string since, std::string without) {
  return {std::move(name), std::move(since), false, std::move(without), false};
}

}  // namespace

std::vector<FeatureProbe> feature_table() {
  return {
      {required("prog:cgroup_sock_addr", "4.17"),
       [] { return has_attach(BPF_CGROUP_INET4_CONNECT); }},
      {required("attach:cgroup/connect4", "4.17"),
       [] { return has_attach(BPF_CGROUP_INET4_CONNECT); }},
      {required("attach:cgroup/connect6", "4.17"),
       [] { return has_attach(BPF_CGROUP_INET6_CONNECT); }},
      {required("attach:cgroup/sendmsg4", "4.18"),
       [] { return has_attach(BPF_CGROUP_UDP4_SENDMSG); }},
      {required("attach:cgroup/sendmsg6", "4.18"),
       [] { return has_attach(BPF_CGROUP_UDP6_SENDMSG); }},
      {required("attach:cgroup/recvmsg4", "5.2"),
       [] { return has_attach(BPF_CGROUP_UDP4_RECVMSG); }},
      {required("attach:cgroup/recvmsg6", "5.2"),
       [] { return has_attach(BPF_CGROUP_UDP6_RECVMSG); }},
      {required("attach:cgroup/getpeername4", "5.8"),
       [] { return has_attach(BPF_CGROUP_INET4_GETPEERNAME); }},
      {required("attach:cgroup/getpeername6", "5.8"),
       [] { return has_attach(BPF_CGROUP_INET6_GETPEERNAME); }},
      {required("map:array_of_maps", "4.12"), [] { return has_map(BPF_MAP_TYPE_ARRAY_OF_MAPS); }},
      {required("map:flag:BPF_F_INNER_MAP", "5.10"), [] { return has_inner_map_flag(); }},
      {required("map:sk_storage", "5.2"), [] { return has_map(BPF_MAP_TYPE_SK_STORAGE); }},
      {required("map:lru_hash", "4.10"), [] { return has_map(BPF_MAP_TYPE_LRU_HASH); }},
      {required("map:percpu_array", "4.6"), [] { return has_map(BPF_MAP_TYPE_PERCPU_ARRAY); }},
      {required("helper:bpf_sk_storage_get", "5.8"),
       [] { return has_helper(BPF_FUNC_sk_storage_get); }},
      {required("helper:bpf_get_socket_cookie", "5.8"),
       [] { return has_helper(BPF_FUNC_get_socket_cookie); }},
      {required("helper:bpf_get_current_cgroup_id", "5.8"),
       [] { return has_helper(BPF_FUNC_get_current_cgroup_id); }},
      // Capture (bpf/capture.bpf.c, lib/capture.h).
      {required("helper:bpf_get_current_ancestor_cgroup_id", "5.7"),
       [] { return has_helper(BPF_FUNC_get_current_ancestor_cgroup_id); }},
      {required("attach:sockops", "4.13"),
       [] { return has_prog(BPF_PROG_TYPE_SOCK_OPS, BPF_CGROUP_SOCK_OPS); }},
      {required("attach:cgroup/getsockopt", "5.3"),
       [] { return has_prog(BPF_PROG_TYPE_CGROUP_SOCKOPT, BPF_CGROUP_GETSOCKOPT); }},
      {required("helper:sockops:bpf_sk_storage_get", "6.1"),
       [] { return sock_ops_has_helper(BPF_FUNC_sk_storage_get); }},
      {required("helper:sockops:bpf_sock_ops_cb_flags_set", "4.16"),
       [] { return sock_ops_has_helper(BPF_FUNC_sock_ops_cb_flags_set); }},
      {required("helper:getsockopt:bpf_sk_storage_get", "5.3"),
       [] { return getsockopt_has_helper(BPF_FUNC_sk_storage_get); }},
      // Telemetry (bpf/lib/telemetry.h): per-tuple counters, connection events, FIN detection.
      {required("map:percpu_hash", "4.6"), [] { return has_map(BPF_MAP_TYPE_PERCPU_HASH); }},
      {required("map:ringbuf", "5.8"), [] { return has_map(BPF_MAP_TYPE_RINGBUF); }},
      {required("helper:sockops:bpf_ringbuf_reserve", "5.8"),
       [] { return sock_ops_has_helper(BPF_FUNC_ringbuf_reserve); }},
      {required("helper:sockops:bpf_skc_to_tcp_sock", "5.9"),
       [] { return sock_ops_has_helper(BPF_FUNC_skc_to_tcp_sock); }},
      // The same-node fast path (docs/fastpath.md): without any of these it is off.
      {required("map:sockhash", "4.18"), [] { return has_map(BPF_MAP_TYPE_SOCKHASH); }},
      {optional("prog:sk_msg", "4.17", kWithoutFastPath),
       [] { return has_prog(BPF_PROG_TYPE_SK_MSG, BPF_SK_MSG_VERDICT); }},
      {optional("helper:sk_msg:bpf_msg_redirect_hash", "4.18", kWithoutFastPath),
       [] { return sk_msg_has_helper(BPF_FUNC_msg_redirect_hash); }},
      {optional("helper:sk_msg:bpf_sk_storage_get", "5.15", kWithoutFastPath),
       [] { return sk_msg_has_helper(BPF_FUNC_sk_storage_get); }},
      {optional("helper:sockops:bpf_sock_hash_update", "4.18", kWithoutFastPath),
       [] { return sock_ops_has_helper(BPF_FUNC_sock_hash_update); }},
      {optional("helper:sockops:bpf_get_netns_cookie", "5.15", kWithoutFastPath),
       [] { return sock_ops_has_helper(BPF_FUNC_get_netns_cookie); }},
      // Resilience (docs/resilience.md): charges given back when a socket is let go, bounded
      // loops over a service's backends. (Its atomic instructions need 5.12, below the floor.)
      {required("attach:cgroup/sock_release", "5.9"),
       [] { return has_prog(BPF_PROG_TYPE_CGROUP_SOCK, BPF_CGROUP_INET_SOCK_RELEASE); }},
      {required("helper:sock_release:bpf_sk_storage_get", "6.1"),
       [] { return sock_release_has_helper(BPF_FUNC_sk_storage_get); }},
      {required("helper:bpf_loop", "5.17"), [] { return has_helper(BPF_FUNC_loop); }},
      {required("attach:cgroup/setsockopt", "5.3"),
       [] { return has_prog(BPF_PROG_TYPE_CGROUP_SOCKOPT, BPF_CGROUP_SETSOCKOPT); }},
      {required("helper:sockops:bpf_loop", "5.17"),
       [] { return sock_ops_has_helper(BPF_FUNC_loop); }},
      // The agent inside the workload cgroup (docs/datapath.md): its sockets marked at creation.
      {required("attach:cgroup/sock_create", "4.10"),
       [] { return has_prog(BPF_PROG_TYPE_CGROUP_SOCK, BPF_CGROUP_INET_SOCK_CREATE); }},
      {required("helper:sock_create:bpf_get_current_cgroup_id", "5.7"),
       [] { return sock_create_has_helper(BPF_FUNC_get_current_cgroup_id); }},
      {required("helper:sock_create:bpf_sk_storage_get", "6.1"),
       [] { return sock_create_has_helper(BPF_FUNC_sk_storage_get); }},
      {optional("helper:bpf_set_retval", "5.18",
                "a connect() or sendto() to a VIP with no usable endpoint fails with EPERM instead "
                "of ECONNREFUSED"),
       [] { return has_helper(BPF_FUNC_set_retval); }},
  };
}

std::vector<Feature> probe_features() {
  std::vector<Feature> out;
  for (auto &entry : feature_table()) {
    entry.feature.present = entry.probe();
    out.push_back(std::move(entry.feature));
  }
  return out;
}

void hide_features(std::vector<Feature> &features, const std::string &names) {
  std::set<std::string> hidden;
  size_t start = 0;
  while (start <= names.size()) {
    size_t comma = names.find(',', start);
    if (comma == std::string::npos) comma = names.size();
    std::string name = names.substr(start, comma - start);
    if (!name.empty()) hidden.insert(name);
    start = comma + 1;
  }
  for (const auto &name : hidden) {
    bool found = false;
    for (auto &f : features) {
      if (f.name != name) continue;
      f.present = false;
      found = true;
    }
    if (!found)
      throw std::runtime_error("SOCKMESH_HIDE_FEATURES: unknown feature \"" + name + "\"");
  }
}

std::string missing_required(const std::vector<Feature> &features) {
  std::string out;
  for (const auto &f : features) {
    if (!f.required || f.present) continue;
    if (!out.empty()) out += "\n";
    out += "the kernel lacks " + f.name + " (Linux " + f.since +
           "+), which sockmesh requires; see docs/kernels.md for the kernels it runs on";
  }
  return out;
}

bool has(const std::vector<Feature> &features, const std::string &name) {
  for (const auto &f : features)
    if (f.name == name) return f.present;
  return false;
}

std::vector<std::string> fast_path_missing(const std::vector<Feature> &features) {
  std::vector<std::string> out;
  for (const auto &f : features)
    if (!f.present && f.without == kWithoutFastPath) out.push_back(f.name);
  return out;
}

}  // namespace sockmesh::loader
