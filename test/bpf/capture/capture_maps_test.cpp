// reconcile::CaptureMaps against the real kernel maps: whole-set syncs that write only what
// differs, validation before any write, adoption of what an earlier agent wrote.
#include "capture_fixture.h"

namespace sockmesh {
namespace {

using reconcile::CapturedWorkload;
using reconcile::MeshEndpoint;

class CaptureMapsTest : public CaptureTest {
 protected:
  std::map<uint64_t, std::pair<uint32_t, uint32_t>> kernel_workloads() {
    std::map<uint64_t, std::pair<uint32_t, uint32_t>> out;
    uint64_t key = 0, next = 0;
    const void *prev = nullptr;
    while (bpf_map_get_next_key(datapath_->workloads_fd(), prev, &next) == 0) {
      key = next;
      prev = &key;
      sm_workload value{};
      EXPECT_EQ(bpf_map_lookup_elem(datapath_->workloads_fd(), &key, &value), 0);
      out[key] = {value.id, value.flags};
    }
    return out;
  }

  // "ip workload node flags" per entry, sorted.
  std::vector<std::string> kernel_endpoints() {
    std::vector<std::string> out;
    sm_ip_key key{}, next{};
    const void *prev = nullptr;
    while (bpf_map_get_next_key(datapath_->endpoints_fd(), prev, &next) == 0) {
      key = next;
      prev = &key;
      sm_endpoint value{};
      EXPECT_EQ(bpf_map_lookup_elem(datapath_->endpoints_fd(), &key, &value), 0);
      char text[INET6_ADDRSTRLEN] = {};
      inet_ntop(key.family == SM_AF_INET6 ? AF_INET6 : AF_INET, key.addr, text, sizeof(text));
      if (key.family == SM_AF_INET) EXPECT_EQ(key.addr[1] | key.addr[2] | key.addr[3], 0u);
      out.push_back(std::string(text) + " " + std::to_string(value.workload_id) + " " +
                    std::to_string(value.node_id) + " " + std::to_string(value.flags));
    }
    std::sort(out.begin(), out.end());
    return out;
  }
};

TEST_F(CaptureMapsTest, WorkloadSyncWritesOnlyDifferences) {
  auto s = capture_->sync_workloads({{101, 1, true}, {102, 2, false}, {103, 3, true}});
  EXPECT_EQ(s.written, 3u);
  EXPECT_EQ(s.removed, 0u);
  s = capture_->sync_workloads({{103, 3, true}, {101, 1, true}, {102, 2, false}});  // any order
  EXPECT_EQ(s.written, 0u);
  EXPECT_EQ(s.unchanged, 3u);
  s = capture_->sync_workloads({{101, 1, false}, {103, 3, true}, {104, 4, true}});
  EXPECT_EQ(s.written, 2u);  // 101 changed, 104 new
  EXPECT_EQ(s.removed, 1u);  // 102
  EXPECT_EQ(s.unchanged, 1u);
  EXPECT_EQ(kernel_workloads(),
            (std::map<uint64_t, std::pair<uint32_t, uint32_t>>{
                {101, {1, 0}}, {103, {3, SM_WL_CAPTURED}}, {104, {4, SM_WL_CAPTURED}}}));
  EXPECT_EQ(capture_->workloads(), 3u);
  s = capture_->sync_workloads({});
  EXPECT_EQ(s.removed, 3u);
  EXPECT_TRUE(kernel_workloads().empty());
}

TEST_F(CaptureMapsTest, EndpointSyncWritesOnlyDifferencesAndStoresMappedAsIpv4) {
  auto s = capture_->sync_endpoints({{parse_ip("10.78.2.5"), 7, 2, true},
                                     {parse_ip("fd00:78::5"), 7, 2, true},
                                     {parse_ip("10.78.1.9"), 4, 1, false}});
  EXPECT_EQ(s.written, 3u);
  EXPECT_EQ(kernel_endpoints(),
            (std::vector<std::string>{"10.78.1.9 4 1 0", "10.78.2.5 7 2 1", "fd00:78::5 7 2 1"}));
  // The IPv4-mapped form is the same key as the IPv4 address.
  s = capture_->sync_endpoints({{parse_ip("::ffff:10.78.2.5"), 7, 2, true},
                                {parse_ip("fd00:78::5"), 7, 2, true},
                                {parse_ip("10.78.1.9"), 4, 1, false}});
  EXPECT_EQ(s.written, 0u);
  EXPECT_EQ(s.unchanged, 3u);
  // The workload moved to this node.
  s = capture_->sync_endpoints(
      {{parse_ip("10.78.2.5"), 7, 1, false}, {parse_ip("10.78.1.9"), 4, 1, false}});
  EXPECT_EQ(s.written, 1u);
  EXPECT_EQ(s.removed, 1u);
  EXPECT_EQ(s.unchanged, 1u);
  EXPECT_EQ(kernel_endpoints(), (std::vector<std::string>{"10.78.1.9 4 1 0", "10.78.2.5 7 1 0"}));
}

TEST_F(CaptureMapsTest, InvalidInputWritesNothing) {
  capture_->sync_workloads({{101, 1, true}});
  capture_->sync_endpoints({{parse_ip("10.78.2.5"), 7, 2, true}});
  EXPECT_THROW(capture_->sync_workloads({{102, 2, true}, {0, 3, true}}), std::invalid_argument);
  EXPECT_THROW(capture_->sync_workloads({{102, 0, true}}), std::invalid_argument);
  try {
    capture_->sync_workloads({{102, 2, true}, {102, 3, false}});
    ADD_FAILURE() << "a cgroup given twice was accepted";
  } catch (const std::invalid_argument &e) {
    EXPECT_STREQ(e.what(), "cgroup 102 given for workloads 2 and 3");
  }
  try {
    capture_->sync_endpoints(
        {{parse_ip("10.78.3.3"), 8, 2, true}, {parse_ip("10.78.3.3"), 9, 2, true}});
    ADD_FAILURE() << "an address given twice was accepted";
  } catch (const std::invalid_argument &e) {
    EXPECT_STREQ(e.what(), "endpoint address 10.78.3.3 given twice (workloads 8 and 9)");
  }
  EXPECT_THROW(capture_->sync_endpoints({{parse_ip("10.78.3.3"), 8, 2, true},
                                         {parse_ip("::ffff:10.78.3.3"), 8, 2, true}}),
               std::invalid_argument);
  EXPECT_THROW(capture_->sync_endpoints({{reconcile::IpAddress{}, 8, 2, true}}),
               std::invalid_argument);
  EXPECT_EQ(kernel_workloads(),
            (std::map<uint64_t, std::pair<uint32_t, uint32_t>>{{101, {1, SM_WL_CAPTURED}}}));
  EXPECT_EQ(kernel_endpoints(), (std::vector<std::string>{"10.78.2.5 7 2 1"}));
}

TEST_F(CaptureMapsTest, ARestartedAgentAdoptsWhatIsThere) {
  capture_->sync_workloads({{101, 1, true}, {102, 2, false}});
  capture_->sync_endpoints(
      {{parse_ip("10.78.2.5"), 7, 2, true}, {parse_ip("fd00:78::5"), 7, 2, true}});
  agent_listens();
  close_datapath();  // the agent exits; the pinned maps keep their contents
  open_datapath();
  EXPECT_EQ(capture_->workloads(), 2u);
  EXPECT_EQ(capture_->endpoints(), 2u);
  auto w = capture_->sync_workloads({{101, 1, true}, {102, 2, false}});
  EXPECT_EQ(w.unchanged, 2u);
  EXPECT_EQ(w.written + w.removed, 0u);
  auto e = capture_->sync_endpoints(
      {{parse_ip("10.78.2.5"), 7, 2, true}, {parse_ip("fd00:78::5"), 7, 2, true}});
  EXPECT_EQ(e.unchanged, 2u);
  EXPECT_EQ(e.written + e.removed, 0u);
  EXPECT_TRUE(capture_->agent().capture_on);
}

TEST_F(CaptureMapsTest, AgentListenerRoundTripAndValidation) {
  EXPECT_EQ(capture_->agent(), reconcile::AgentListener{});  // a new node: capture off
  reconcile::AgentListener agent;
  agent.ipv4 = reconcile::ListenAddress{parse_ip("10.77.0.1"), 15001};
  agent.ipv6 = reconcile::ListenAddress{parse_ip("fd00:77::1"), 15006};
  agent.capture_on = true;
  capture_->set_agent(agent);
  EXPECT_EQ(capture_->agent(), agent);
  uint32_t zero = 0;
  sm_agent_config raw{};
  ASSERT_EQ(bpf_map_lookup_elem(datapath_->agent_config_fd(), &zero, &raw), 0);
  EXPECT_EQ(raw.flags, uint32_t(SM_AGENT_CAPTURE_ON));
  EXPECT_EQ(raw.port4, htons(15001));
  EXPECT_EQ(raw.port6, htons(15006));
  EXPECT_EQ(hex(&raw.addr4, 4), "0a4d0001");

  auto bad = agent;
  bad.ipv4->addr = parse_ip("fd00::1");
  EXPECT_THROW(capture_->set_agent(bad), std::invalid_argument);
  bad = agent;
  bad.ipv6->port = 0;
  EXPECT_THROW(capture_->set_agent(bad), std::invalid_argument);
  bad = reconcile::AgentListener{};
  bad.capture_on = true;
  try {
    capture_->set_agent(bad);
    ADD_FAILURE() << "capture on without a listener was accepted";
  } catch (const std::invalid_argument &e) {
    EXPECT_STREQ(e.what(), "capture on needs an agent listener (ipv4, ipv6 or both)");
  }
  EXPECT_EQ(capture_->agent(), agent);  // unchanged by the refused ones

  agent.capture_on = false;  // the agent stops listening: off, listener kept
  capture_->set_agent(agent);
  EXPECT_EQ(capture_->agent(), agent);
}

TEST_F(CaptureMapsTest, CgroupIdIsTheDirectorysInode) {
  struct stat st {};
  ASSERT_EQ(stat(cg_.client.c_str(), &st), 0);
  EXPECT_EQ(reconcile::CaptureMaps::cgroup_id_of(cg_.client), uint64_t(st.st_ino));
  EXPECT_THROW(reconcile::CaptureMaps::cgroup_id_of(cg_.client + "/nope"), std::runtime_error);
}

}  // namespace
}  // namespace sockmesh
