// meshd's kernel feature probe against the running kernel (also inside the vmtests guests, where
// the kernel is Debian 12's 6.1: every feature the data path uses must be found there too).
#include "loader/features.h"

#include <gtest/gtest.h>
#include <linux/bpf.h>

#include <set>
#include <stdexcept>

namespace sockmesh::loader {
namespace {

std::set<std::string> names(const std::vector<Feature> &features, bool present) {
  std::set<std::string> out;
  for (const auto &f : features)
    if (f.present == present) out.insert(f.name);
  return out;
}

// The floor is 6.1 (docs/kernels.md): on it and on anything newer, every probe succeeds.
TEST(KernelFeatures, EveryFeatureIsPresentOnTheFloorAndAbove) {
  const auto features = probe_features();
  EXPECT_EQ(names(features, false), std::set<std::string>{});
  EXPECT_EQ(names(features, true),
            (std::set<std::string>{"prog:cgroup_sock_addr",
                                   "attach:cgroup/connect4",
                                   "attach:cgroup/connect6",
                                   "attach:cgroup/sendmsg4",
                                   "attach:cgroup/sendmsg6",
                                   "attach:cgroup/recvmsg4",
                                   "attach:cgroup/recvmsg6",
                                   "attach:cgroup/getpeername4",
                                   "attach:cgroup/getpeername6",
                                   "map:array_of_maps",
                                   "map:flag:BPF_F_INNER_MAP",
                                   "map:sk_storage",
                                   "map:lru_hash",
                                   "map:percpu_array",
                                   "map:percpu_hash",
                                   "map:ringbuf",
                                   "helper:sockops:bpf_ringbuf_reserve",
                                   "helper:sockops:bpf_skc_to_tcp_sock",
                                   "helper:bpf_sk_storage_get",
                                   "helper:bpf_get_socket_cookie",
                                   "helper:bpf_get_current_cgroup_id",
                                   "helper:bpf_set_retval",
                                   "helper:bpf_get_current_ancestor_cgroup_id",
                                   "attach:sockops",
                                   "attach:cgroup/getsockopt",
                                   "helper:sockops:bpf_sk_storage_get",
                                   "helper:sockops:bpf_sock_ops_cb_flags_set",
                                   "helper:getsockopt:bpf_sk_storage_get",
                                   "map:sockhash",
                                   "prog:sk_msg",
                                   "helper:sk_msg:bpf_msg_redirect_hash",
                                   "helper:sk_msg:bpf_sk_storage_get",
                                   "helper:sockops:bpf_sock_hash_update",
                                   "helper:sockops:bpf_get_netns_cookie",
                                   "attach:cgroup/sock_release",
                                   "helper:sock_release:bpf_sk_storage_get",
                                   "helper:bpf_loop",
                                   "attach:cgroup/setsockopt",
                                   "helper:sockops:bpf_loop",
                                   "attach:cgroup/sock_create",
                                   "helper:sock_create:bpf_get_current_cgroup_id",
                                   "helper:sock_create:bpf_sk_storage_get"}));
  EXPECT_EQ(missing_required(features), "");
  EXPECT_TRUE(has(features, "helper:bpf_set_retval"));
  EXPECT_EQ(fast_path_missing(features), std::vector<std::string>{});
}

// The helper probe must be able to say "absent": a helper sock_addr programs never get.
TEST(KernelFeatures, HelperProbeTellsPresentFromAbsent) {
  EXPECT_TRUE(sock_addr_has_helper(BPF_FUNC_get_prandom_u32));
  EXPECT_FALSE(sock_addr_has_helper(BPF_FUNC_xdp_adjust_head));  // XDP's own
  EXPECT_FALSE(sock_addr_has_helper(100000));                    // no such helper at all
}

TEST(KernelFeatures, HiddenRequiredFeatureIsTheStartUpError) {
  auto features = probe_features();
  hide_features(features, "attach:cgroup/getpeername4,map:flag:BPF_F_INNER_MAP");
  EXPECT_EQ(missing_required(features),
            "the kernel lacks attach:cgroup/getpeername4 (Linux 5.8+), which sockmesh requires; "
            "see docs/kernels.md for the kernels it runs on\n"
            "the kernel lacks map:flag:BPF_F_INNER_MAP (Linux 5.10+), which sockmesh requires; "
            "see docs/kernels.md for the kernels it runs on");
  hide_features(features, "");
  EXPECT_THROW(
      {
        try {
          hide_features(features, "helper:bpf_typo");
        } catch (const std::runtime_error &e) {
          EXPECT_STREQ(e.what(), "SOCKMESH_HIDE_FEATURES: unknown feature \"helper:bpf_typo\"");
          throw;
        }
      },
      std::runtime_error);
}

// Without any one of its features the fast path is off (meshctl fastpath names them), and meshd
// still starts.
TEST(KernelFeatures, TheFastPathNamesWhatItLacks) {
  auto features = probe_features();
  hide_features(features, "prog:sk_msg,helper:sockops:bpf_get_netns_cookie");
  EXPECT_EQ(missing_required(features), "");
  EXPECT_EQ(fast_path_missing(features),
            (std::vector<std::string>{"prog:sk_msg", "helper:sockops:bpf_get_netns_cookie"}));
}

TEST(KernelFeatures, AnAbsentOptionalFeatureIsNotAStartUpError) {
  auto features = probe_features();
  hide_features(features, "helper:bpf_set_retval");
  EXPECT_EQ(missing_required(features), "");
  EXPECT_FALSE(has(features, "helper:bpf_set_retval"));
  EXPECT_FALSE(has(features, "no:such:feature"));
}

}  // namespace
}  // namespace sockmesh::loader
