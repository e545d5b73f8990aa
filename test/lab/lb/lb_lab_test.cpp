// The kernel load balancer with real sockets: two lab nodes, meshd on each, an unmodified HTTP
// client in a pod connecting to service VIPs.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "mesh_fixture.h"
#include "sockmesh/common/paths.h"
#include "sockmesh/lab/echo_server.h"
#include "sockmesh/v1/admin.grpc.pb.h"

namespace sockmesh::testing {
namespace {

// One lab for the suite: building it costs seconds.
class LbLabTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { mesh_ = new MeshLab(); }
  static void TearDownTestSuite() {
    delete mesh_;
    mesh_ = nullptr;
  }
  void TearDown() override {
    // Every test leaves node 1 on the default 80/20 config.
    if (mesh_->written_config(1) == mesh_->config_text({})) return;
    auto before = mesh_->status(1).config();
    mesh_->write_config(1, mesh_->config_text({}));
    auto after = mesh_->wait_generation(1, before.generation());
    ASSERT_TRUE(after.config().last_error().empty()) << after.config().last_error();
  }
  static MeshLab *mesh_;
};
MeshLab *LbLabTest::mesh_ = nullptr;

void expect_share(const ConnectTally &tally, const std::string &backend, double p, int n) {
  double sigma = std::sqrt(p * (1 - p) / n);
  auto it = tally.bodies.find(backend);
  double share = it == tally.bodies.end() ? 0.0 : double(it->second) / n;
  EXPECT_NEAR(share, p, 5 * sigma) << backend << " got " << share << " of " << n;
}

TEST_F(LbLabTest, CanarySplitFollowsWeightsAndPeerIsTheVip) {
  const int n = 4000;  // 5 sigma at p=0.2 is 3.2 points
  uint64_t balanced_before = mesh_->counter(1, "connect_balanced");
  auto tally = connect_many(mesh_->lab(), "client", "10.96.0.10", 80, n);
  EXPECT_EQ(tally.failures, 0) << tally.first_error;
  EXPECT_EQ(tally.wrong_peer, 0);
  expect_share(tally, "web-v1-a", 0.4, n);
  expect_share(tally, "web-v1-b", 0.4, n);
  expect_share(tally, "web-v2-a", 0.2, n);
  EXPECT_EQ(mesh_->counter(1, "connect_balanced") - balanced_before, uint64_t(n));
  EXPECT_GE(mesh_->counter(1, "peername_restored"), uint64_t(n));
}

TEST_F(LbLabTest, NonVipTrafficIsUntouched) {
  uint64_t balanced_before = mesh_->counter(1, "connect_balanced");
  uint64_t passthrough_before = mesh_->counter(1, "connect_passthrough");
  std::string ip = mesh_->lab().pod_ip("web-v2-a");
  auto tally = connect_many(mesh_->lab(), "client", ip, 8080, 200);
  EXPECT_EQ(tally.failures, 0) << tally.first_error;
  EXPECT_EQ(tally.wrong_peer, 0);
  EXPECT_EQ(tally.bodies["web-v2-a"], 200);
  EXPECT_EQ(mesh_->counter(1, "connect_balanced"), balanced_before);
  EXPECT_GE(mesh_->counter(1, "connect_passthrough") - passthrough_before, 200u);
}

// meshd probes the kernel at start and reports what it found; on this kernel every feature is
// there, so the refused connect of the next test is ECONNREFUSED (bpf_set_retval) and not EPERM.
TEST_F(LbLabTest, StatusListsTheProbedKernelFeatures) {
  const auto status = mesh_->status(1);
  // 18, 24 with M5's capture, 28 with M6's telemetry, 34 with M7's fast path, 39 with M8's
  // resilience, 42 with M9's agent inside the workload cgroup (docs/kernels.md)
  ASSERT_EQ(status.features_size(), 42);
  for (const auto &f : status.features()) {
    EXPECT_TRUE(f.present()) << f.name();
    EXPECT_FALSE(f.since().empty()) << f.name();
  }
  EXPECT_EQ(status.features(0).name(), "prog:cgroup_sock_addr");
  EXPECT_EQ(status.features(41).name(), "helper:bpf_set_retval");
  EXPECT_FALSE(status.features(41).required());
}

TEST_F(LbLabTest, VipWithoutBackendsRefusesAndIsCounted) {
  uint64_t before = mesh_->counter(1, "connect_no_backend");
  std::string out;
  int rc = mesh_->lab().call_in_pod(
      "client",
      [] {
        auto result = lab::http_fetch("10.96.0.11", 80);
        ::dprintf(STDOUT_FILENO, "%d", result.err);
        return 0;
      },
      &out);
  ASSERT_EQ(rc, 0);
  EXPECT_EQ(out, std::to_string(ECONNREFUSED));
  EXPECT_EQ(mesh_->counter(1, "connect_no_backend") - before, 1u);
}

TEST_F(LbLabTest, ConfigChangeTakesEffectWithoutRestart) {
  pid_t agent = mesh_->agent_pid(1);
  auto before = mesh_->status(1);
  mesh_->write_config(1, mesh_->config_text({.v1 = 0, .v2 = 100}));
  auto after = mesh_->wait_generation(1, before.config().generation());
  EXPECT_EQ(after.pid(), agent);
  EXPECT_EQ(after.config().last_error(), "");
  auto tally = connect_many(mesh_->lab(), "client", "10.96.0.10", 80, 300);
  EXPECT_EQ(tally.failures, 0) << tally.first_error;
  EXPECT_EQ(tally.bodies["web-v2-a"], 300);
}

TEST_F(LbLabTest, InvalidUpdateIsRejectedWholeAndPreviousBackendsKeepServing) {
  // First a valid change to v2 only, so "previous state" is distinguishable from the default.
  auto before = mesh_->status(1).config().generation();
  mesh_->write_config(1, mesh_->config_text({.v1 = 0, .v2 = 100}));
  mesh_->wait_generation(1, before);
  // Then a file whose first service is fine and whose second is not: nothing of it may apply.
  std::string bad = mesh_->config_text({.v1 = 100, .v2 = 0});
  bad +=
      "---\napiVersion: sockmesh/v1\nkind: Service\nmetadata: {name: broken, namespace: demo}\n"
      "spec:\n  vips: [{address: 10.96.0.12, port: 70000}]\n";
  mesh_->write_config(1, bad);
  auto status = mesh_->wait_error(1);
  EXPECT_NE(status.config().last_error().find("service \"demo/broken\": spec.vips[0].port"),
            std::string::npos)
      << status.config().last_error();
  EXPECT_NE(status.config().last_error().find(mesh_->config_path(1)), std::string::npos);
  EXPECT_EQ(status.config().generation(), before + 1);
  auto tally = connect_many(mesh_->lab(), "client", "10.96.0.10", 80, 200);
  EXPECT_EQ(tally.failures, 0) << tally.first_error;
  EXPECT_EQ(tally.bodies["web-v2-a"], 200);
}

TEST_F(LbLabTest, ThousandUpdatesWhileConnectingLoseNoConnect) {
  char dir_tmpl[] = "/tmp/sockmesh-stop-XXXXXX";
  ASSERT_TRUE(mkdtemp(dir_tmpl));
  std::string ready = std::string(dir_tmpl) + "/ready", stop = std::string(dir_tmpl) + "/stop";
  // Everything that talks gRPC happens before the client forks or after it reported ready: a
  // fork while another thread holds an allocator or gRPC lock can leave the child stuck.
  uint64_t generation = mesh_->status(1).config().generation();
  const std::string texts[] = {mesh_->config_text({.v1 = 100, .v2 = 0}),
                               mesh_->config_text({.v1 = 0, .v2 = 100})};
  std::string out;
  std::thread client([&] {
    mesh_->lab().call_in_pod(
        "client",
        [&] {
          int ok = 0, failed = 0;
          std::string first_error;
          std::ofstream(ready).put('x');
          struct stat st;
          while (stat(stop.c_str(), &st) != 0) {
            auto result = lab::http_fetch("10.96.0.10", 80);
            if (result.err == 0 && !result.body.empty()) {
              ok++;
            } else if (failed++ == 0) {
              first_error = std::strerror(result.err);
            }
          }
          ::dprintf(STDOUT_FILENO, "%d %d %s", ok, failed, first_error.c_str());
          return 0;
        },
        &out);
  });
  struct stat st;
  for (int i = 0; i < 1000 && stat(ready.c_str(), &st) != 0; i++)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  bool started = stat(ready.c_str(), &st) == 0;
  // Alternate between two backend sets that share no backend; each update waits until applied.
  for (int i = 0; started && i < 1000; i++) {
    mesh_->write_config(1, texts[i % 2]);
    generation = mesh_->wait_generation(1, generation).config().generation();
  }
  std::ofstream(stop).put('x');
  // A client stuck before it started would never see the stop file: end it from outside.
  if (!started) std::ofstream(mesh_->lab().pod_cgroup("client") + "/cgroup.kill") << 1;
  client.join();
  std::filesystem::remove_all(dir_tmpl);
  ASSERT_TRUE(started) << "the client in the pod did not start within 10 s";
  int ok = 0, failed = 0;
  std::istringstream(out) >> ok >> failed;
  EXPECT_EQ(failed, 0) << out;
  EXPECT_GT(ok, 1000) << out;
  EXPECT_EQ(mesh_->status(1).config().last_error(), "");
}

TEST_F(LbLabTest, DualStackServiceSplitsIpv6LikeIpv4) {
  const int n = 2000;
  auto tally = connect_many(mesh_->lab(), "client", "fd00:96::a", 80, n);
  EXPECT_EQ(tally.failures, 0) << tally.first_error;
  EXPECT_EQ(tally.wrong_peer, 0);
  expect_share(tally, "web-v1-a", 0.4, n);
  expect_share(tally, "web-v1-b", 0.4, n);
  expect_share(tally, "web-v2-a", 0.2, n);
}

TEST_F(LbLabTest, UdpServiceAnswersFromTheVipInBothFamilies) {
  std::string out;
  int rc = mesh_->lab().call_in_pod(
      "client",
      [] {
        std::map<std::string, int> bodies;
        int bad_from = 0, failed = 0;
        for (int i = 0; i < 90; i++) {
          for (auto [ip, from] :
               {std::pair<std::string, std::string>{"10.96.0.53", "10.96.0.53:53"},
                {"fd00:96::35", "[fd00:96::35]:53"}}) {
            auto r = lab::udp_request(ip, 53);
            auto c = lab::udp_request_connected(ip, 53);
            failed += (r.err != 0) + (c.err != 0);
            bad_from += (r.from != from) + (c.from != from);
            bodies[r.body()]++;
          }
        }
        for (const auto &[body, count] : bodies)
          ::dprintf(STDOUT_FILENO, "%s=%d ", body.c_str(), count);
        ::dprintf(STDOUT_FILENO, "failed=%d bad_from=%d", failed, bad_from);
        return 0;
      },
      &out);
  ASSERT_EQ(rc, 0);
  EXPECT_NE(out.find("failed=0 bad_from=0"), std::string::npos) << out;
  // Round-robin per CPU over three endpoints: each gets a third of 180 datagrams, give or take
  // the cursors of two CPUs.
  for (const char *pod : {"web-v1-a", "web-v1-b", "web-v2-a"})
    EXPECT_NE(out.find(std::string(pod) + "="), std::string::npos) << out;
  EXPECT_GE(mesh_->counter(1, "sendmsg_balanced"), 180u);
  // recvmsg() is translated when the application asks for the source (recvfrom): the
  // unconnected requests; the connected ones read the peer with getpeername().
  EXPECT_GE(mesh_->counter(1, "recvmsg_restored"), 180u);
}

TEST_F(LbLabTest, MaglevServiceKeepsTheClientOnOneBackend) {
  auto tally = connect_many(mesh_->lab(), "client", "10.96.0.20", 80, 200);
  EXPECT_EQ(tally.failures, 0) << tally.first_error;
  EXPECT_EQ(tally.wrong_peer, 0);
  EXPECT_EQ(tally.bodies.size(), 1u);
}

TEST_F(LbLabTest, WatchServicesStreamsEveryAppliedChange) {
  auto channel = grpc::CreateChannel("unix:" + paths::admin_socket(mesh_->lab().node_name(1)),
                                     grpc::InsecureChannelCredentials());
  auto stub = v1::Admin::NewStub(channel);
  grpc::ClientContext context;
  auto stream = stub->WatchServices(&context, v1::ListServicesRequest());
  v1::ListServicesResponse first, second;
  ASSERT_TRUE(stream->Read(&first));
  EXPECT_EQ(first.services_size(), 4);  // web, empty, dns, sticky
  mesh_->write_config(1, mesh_->config_text({.v1 = 30, .v2 = 70}));
  ASSERT_TRUE(stream->Read(&second));
  EXPECT_EQ(second.generation(), first.generation() + 1);
  context.TryCancel();
  while (stream->Read(&second)) {
  }
  EXPECT_EQ(stream->Finish().error_code(), grpc::StatusCode::CANCELLED);
}

// A kernel without a required feature: meshd stops at start with the documented error and
// touches nothing (no pins). The probe's answer is overridden, as docs/kernels.md describes.
TEST(MeshdStart, MissingRequiredKernelFeatureIsAClearStartUpError) {
  const std::string node = "smfeat-" + std::to_string(getpid());
  const std::string cgroup = lab::cgroup2_mount() + "/" + node;
  ASSERT_EQ(::mkdir(cgroup.c_str(), 0755), 0) << std::strerror(errno);
  char tmpl[] = "/tmp/meshd-feature-test-XXXXXX";
  const std::string dir = ::mkdtemp(tmpl);
  { std::ofstream(dir + "/config.yaml") << "# no resources\n"; }
  const std::string command =
      "SOCKMESH_HIDE_FEATURES=attach:cgroup/getpeername4 " MESHD_BIN " --node " + node +
      " --cgroup " + cgroup + " --config " + dir + "/config.yaml 2>" + dir + "/stderr >/dev/null";
  const int rc = std::system(command.c_str());
  std::ifstream err_file(dir + "/stderr");
  std::stringstream err;
  err << err_file.rdbuf();
  EXPECT_TRUE(WIFEXITED(rc) && WEXITSTATUS(rc) == 1) << rc;
  EXPECT_NE(err.str().find("meshd: the kernel lacks attach:cgroup/getpeername4 (Linux 5.8+), which "
                           "sockmesh requires; see docs/kernels.md for the kernels it runs on\n"),
            std::string::npos)
      << err.str();
  EXPECT_FALSE(std::filesystem::exists(paths::pin_dir(node)));
  ::rmdir(cgroup.c_str());
  std::filesystem::remove_all(dir);
}

TEST(LbLabTeardown, DownLeavesNoNetnsCgroupPinOrProcess) {
  std::string run, node1, node2, cgroup;
  pid_t agent1, agent2;
  {
    MeshLab mesh({.v1 = 50, .v2 = 50});
    run = mesh.lab().run_id();
    node1 = mesh.lab().node_name(1);
    node2 = mesh.lab().node_name(2);
    cgroup = mesh.lab().workload_cgroup(1);
    agent1 = mesh.agent_pid(1);
    agent2 = mesh.agent_pid(2);
    ASSERT_TRUE(std::filesystem::exists(paths::pin_dir(node1) + "/link_connect4"));
    ASSERT_EQ(kill(agent1, 0), 0);
  }
  EXPECT_FALSE(std::filesystem::exists(paths::pin_dir(node1)));
  EXPECT_FALSE(std::filesystem::exists(paths::pin_dir(node2)));
  EXPECT_FALSE(std::filesystem::exists(paths::run_dir(node1)));
  EXPECT_FALSE(std::filesystem::exists(cgroup));
  EXPECT_FALSE(std::filesystem::exists("/run/netns/" + node1));
  EXPECT_FALSE(std::filesystem::exists("/run/netns/" + node2));
  EXPECT_NE(kill(agent1, 0), 0);
  EXPECT_NE(kill(agent2, 0), 0);
  for (const auto &entry : std::filesystem::directory_iterator("/run/netns"))
    EXPECT_EQ(entry.path().filename().string().rfind("sm" + run, 0), std::string::npos)
        << entry.path();
}

}  // namespace
}  // namespace sockmesh::testing
