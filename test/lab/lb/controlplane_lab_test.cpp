// meshcp with a meshd per node (control-plane mode), real connects from a pod: a change applied
// once is in force everywhere and ACKed; bad changes are refused whole; the data path outlives the
// control plane; a restarted agent serves its last-known-good state; only root may apply.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <thread>

#include "helm_style_ca.h"
#include "mesh_fixture.h"
#include "sockmesh/common/paths.h"
#include "sockmesh/resources/load.h"
#include "sockmesh/resources/resource_set.h"

namespace sockmesh::testing {
namespace {

class ControlPlaneLabTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { mesh_ = new MeshLab({}, Source::kControlPlane); }
  static void TearDownTestSuite() {
    delete mesh_;
    mesh_ = nullptr;
  }
  static MeshLab *mesh_;
};
MeshLab *ControlPlaneLabTest::mesh_ = nullptr;

double share(const ConnectTally &tally, const std::string &backend, int n) {
  auto it = tally.bodies.find(backend);
  return it == tally.bodies.end() ? 0.0 : double(it->second) / n;
}

TEST_F(ControlPlaneLabTest, ApplyIsInForceOnEveryAgentAndAcked) {
  uint64_t before = mesh_->status(1).config().generation();
  ASSERT_TRUE(mesh_->apply(mesh_->config_text({.v1 = 30, .v2 = 70})).ok());
  std::string version = mesh_->wait_all_acked();
  for (int node = 1; node <= 2; node++) {
    auto status = mesh_->status(node).config();
    EXPECT_EQ(status.system_version(), version) << node;
    EXPECT_EQ(status.stream_state(), "connected") << node;
    EXPECT_EQ(status.source(), "controlplane:" + mesh_->controlplane_target());
  }
  EXPECT_GT(mesh_->status(1).config().generation(), before);
  const int n = 2000;
  auto tally = connect_many(mesh_->lab(), "client", "10.96.0.10", 80, n);
  EXPECT_EQ(tally.failures, 0) << tally.first_error;
  EXPECT_NEAR(share(tally, "web-v2-a", n), 0.7, 5 * std::sqrt(0.21 / n));
}

// Each bad change: a mutation of the valid state, and the line meshcp must refuse it with.
struct BadChange {
  const char *what;
  std::function<void(v1::Snapshot &)> mutate;
  std::string error;
};

TEST_F(ControlPlaneLabTest, BadChangesAreRefusedWholeAndNothingIsApplied) {
  ASSERT_TRUE(mesh_->apply(mesh_->config_text({.v1 = 100, .v2 = 0})).ok());
  std::string version = mesh_->wait_all_acked();
  uint64_t generation = mesh_->status(1).config().generation();

  auto loaded = resources::load_yaml_string(mesh_->config_text({.v1 = 50, .v2 = 50}), "t.yaml");
  ASSERT_TRUE(loaded.ok());
  auto web = [](v1::Snapshot &s) -> v1::Service & { return *s.mutable_services(0); };
  const std::vector<BadChange> changes = {
      {"vip port 0", [&](auto &s) { web(s).mutable_vips(0)->set_port(0); }, "spec.vips[0].port"},
      {"endpoint port too big", [&](auto &s) { web(s).mutable_endpoints(0)->set_port(70000); },
       "spec.endpoints[0].port"},
      {"unknown workload", [&](auto &s) { web(s).mutable_endpoints(0)->set_workload("ghost"); },
       "spec.endpoints[0].workload"},
      {"duplicate VIP",
       [&](auto &s) { s.mutable_services(1)->mutable_vips(0)->set_address("10.96.0.10"); },
       "10.96.0.10:80/TCP"},
      {"all weights zero",
       [&](auto &s) {
         for (auto &e : *web(s).mutable_endpoints()) e.set_weight(0);
       },
       "weight"},
      {"resilience setting out of range",
       [&](auto &s) { web(s).mutable_outlier_detection()->set_max_ejection_percent(101); },
       "maxEjectionPercent"},
      {"bad workload address",
       [&](auto &s) { s.mutable_workloads(0)->set_addresses(0, "10.78.1.300"); },
       "spec.addresses[0]"},
      {"address used twice",
       [&](auto &s) { s.mutable_workloads(1)->set_addresses(0, s.workloads(0).addresses(0)); },
       "spec.addresses[0]"},
      {"Maglev table not prime",
       [&](auto &s) {
         web(s).set_lb_policy(v1::LB_POLICY_MAGLEV);
         web(s).mutable_maglev()->set_table_size(4096);
       },
       "spec.maglev.tableSize"},
      {"too many endpoints",
       [&](auto &s) {
         for (int i = 0; i < 70; i++) *web(s).add_endpoints() = web(s).endpoints(0);
       },
       "at most 64 endpoints"},
      {"invalid name", [&](auto &s) { web(s).mutable_metadata()->set_name("Web_Bad"); },
       "metadata.name"},
  };
  for (const auto &change : changes) {
    v1::Snapshot snapshot = loaded.snapshot;
    change.mutate(snapshot);
    std::vector<v1::Resource> resources;
    for (const auto &[name, resource] : resources::to_resources(snapshot))
      resources.push_back(resource);
    auto result = mesh_->apply_resources(resources);
    EXPECT_EQ(result.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << change.what;
    EXPECT_NE(result.error_message().find(change.error), std::string::npos)
        << change.what << ": " << result.error_message();
  }
  // Nothing of any of them reached any agent, and the previous state still serves.
  EXPECT_EQ(mesh_->controlplane_status().version(), version);
  for (int node = 1; node <= 2; node++)
    EXPECT_EQ(mesh_->status(node).config().system_version(), version) << node;
  EXPECT_EQ(mesh_->status(1).config().generation(), generation);
  auto tally = connect_many(mesh_->lab(), "client", "10.96.0.10", 80, 200);
  EXPECT_EQ(tally.failures, 0) << tally.first_error;
  EXPECT_EQ(tally.bodies["web-v2-a"], 0);
}

// A service deleted and applied again takes the agents' change path (only that service is
// checked, translated and written), and the kernel follows: the VIP stops being balanced, then
// balances again.
TEST_F(ControlPlaneLabTest, ServiceDeletedAndReappliedTakesTheChangePath) {
  ASSERT_TRUE(mesh_->apply(mesh_->config_text({.v1 = 80, .v2 = 20})).ok());
  mesh_->wait_all_acked();
  const auto before = mesh_->status(1).config();

  ASSERT_TRUE(mesh_->remove({"service/demo/web"}).ok());
  mesh_->wait_all_acked();
  auto after = mesh_->status(1).config();
  EXPECT_EQ(after.services(), before.services() - 1);
  EXPECT_EQ(after.map_writes() - before.map_writes(), 4u);  // two VIP ports: unbind + clear each
  const std::string removed_line = "generation=" + std::to_string(after.generation()) + " ";
  const std::string log = mesh_->agent_log(1);
  const size_t at = log.find(removed_line);
  ASSERT_NE(at, std::string::npos) << log;
  EXPECT_NE(log.substr(at, log.find('\n', at) - at).find("removed=2 unchanged=0 duration_us="),
            std::string::npos);
  EXPECT_NE(log.substr(at, log.find('\n', at) - at).find("path=change"), std::string::npos);
  auto gone = connect_many(mesh_->lab(), "client", "10.96.0.10", 80, 20);
  EXPECT_EQ(gone.failures, 20);  // not a VIP any more: the lab's unreachable VIP range

  ASSERT_TRUE(mesh_->apply(mesh_->config_text({.v1 = 80, .v2 = 20})).ok());
  mesh_->wait_all_acked();
  after = mesh_->status(1).config();
  EXPECT_EQ(after.services(), before.services());
  EXPECT_NE(mesh_->agent_log(1).find("generation=" + std::to_string(after.generation()) +
                                     " services=" + std::to_string(before.services())),
            std::string::npos);
  auto back = connect_many(mesh_->lab(), "client", "10.96.0.10", 80, 200);
  EXPECT_EQ(back.failures, 0) << back.first_error;
  EXPECT_EQ(back.bodies.size(), 3u);
}

TEST_F(ControlPlaneLabTest, DataPathOutlivesTheControlPlaneAndResyncWritesNothing) {
  ASSERT_TRUE(mesh_->apply(mesh_->config_text({.v1 = 80, .v2 = 20})).ok());
  std::string version = mesh_->wait_all_acked();
  uint64_t writes[3] = {0, mesh_->status(1).config().map_writes(),
                        mesh_->status(2).config().map_writes()};

  mesh_->kill_controlplane();
  auto tally = connect_many(mesh_->lab(), "client", "10.96.0.10", 80, 300);
  EXPECT_EQ(tally.failures, 0) << tally.first_error;
  EXPECT_EQ(tally.bodies.size(), 3u);

  mesh_->start_controlplane();
  EXPECT_EQ(mesh_->wait_all_acked(), version);  // the store survived; agents resynced
  for (int node = 1; node <= 2; node++) {
    EXPECT_EQ(mesh_->status(node).config().map_writes(), writes[node]) << "node " << node;
    EXPECT_EQ(mesh_->status(node).config().stream_state(), "connected");
  }
}

TEST_F(ControlPlaneLabTest, AgentRestartedWhileControlPlaneIsDownServesLastKnownGood) {
  ASSERT_TRUE(mesh_->apply(mesh_->config_text({.v1 = 0, .v2 = 100})).ok());
  std::string version = mesh_->wait_all_acked();
  mesh_->kill_controlplane();
  mesh_->stop_agent(1);
  // Remove node 1's data path entirely: only the persisted state can bring it back.
  std::string out;
  ASSERT_EQ(mesh_->lab().run_in_node(
                1, {MESHD_BIN, "uninstall", "--node", mesh_->lab().node_name(1)}, &out),
            0)
      << out;
  mesh_->start_agent(1);
  auto status = mesh_->wait_generation(1, 0);
  EXPECT_EQ(status.config().system_version(), version);
  EXPECT_EQ(status.config().services(), 4u);
  auto tally = connect_many(mesh_->lab(), "client", "10.96.0.10", 80, 200);
  EXPECT_EQ(tally.failures, 0) << tally.first_error;
  EXPECT_EQ(tally.bodies["web-v2-a"], 200);
  mesh_->start_controlplane();
  EXPECT_EQ(mesh_->wait_all_acked(), version);
}

// M10's bad-input matrix through `meshctl apply -f` against the real meshcp: each input is refused
// whole with its resource and field named (meshctl checks what it can before sending, meshcp what
// needs the store: the workload a service names), the control plane's version stays, and the
// agents go on serving the previous config.
TEST_F(ControlPlaneLabTest, BadInputIsRefusedWithItsResourceAndFieldAndTheMeshServesOn) {
  ASSERT_TRUE(mesh_->apply(mesh_->config_text({.v1 = 100, .v2 = 0})).ok());
  const std::string version = mesh_->wait_all_acked();
  const std::string service =
      "apiVersion: sockmesh/v1\nkind: Service\nmetadata: {name: web, namespace: demo}\n";
  std::string many;  // 65 endpoints: one more than a service's backend set holds
  for (int i = 0; i < 65; ++i)
    many += "apiVersion: sockmesh/v1\nkind: Workload\nmetadata: {name: w" + std::to_string(i) +
            ", namespace: demo}\nspec: {node: " + mesh_->lab().node_name(1) +
            ", addresses: [10.79.0." + std::to_string(i + 1) + "]}\n---\n";
  many += service + "spec:\n  vips: [{address: 10.96.0.10, port: 80}]\n  endpoints:\n";
  for (int i = 0; i < 65; ++i) many += "    - {workload: w" + std::to_string(i) + ", port: 8080}\n";
  struct Case {
    std::string name, input, error;  // {file}: the input's path
  };
  const std::vector<Case> cases = {
      {"malformed", service + "spec: {vips: [{address: 10.96.0.10, port: 80}\n",
       "meshctl: {file} is invalid:\n{file}:5: malformed YAML: end of sequence flow not found\n"},
      {"wrong-type", service + "spec: {vips: [{address: 10.96.0.10, port: eighty}]}\n",
       "meshctl: {file} is invalid:\n{file}:4: service \"demo/web\": spec.vips[0].port: must be an "
       "integer, got \"eighty\"\n"},
      {"unknown-field", service + "spec: {vips: [{address: 10.96.0.10, port: 80}], colour: blue}\n",
       "meshctl: {file} is invalid:\n{file}:4: service \"demo/web\": spec.colour: unknown field\n"},
      {"out-of-range", service + "spec: {vips: [{address: 10.96.0.10, port: 70000}]}\n",
       "meshctl: {file} is invalid:\n{file}:4: service \"demo/web\": spec.vips[0].port: must be "
       "between 1 and 65535, got 70000\n"},
      {"missing-reference",
       service + "spec:\n  vips: [{address: 10.96.0.10, port: 80}]\n  endpoints: [{workload: "
                 "nobody, port: "
                 "8080}]\n",
       "meshctl: the control plane refused the change; nothing was applied:\n  service "
       "\"demo/web\": "
       "spec.endpoints[0].workload: unknown workload \"nobody\" in namespace \"demo\"\n"},
      {"beyond-capacity", many,
       "meshctl: {file} is invalid:\n{file}:331: service \"demo/web\": spec.endpoints: at most 64 "
       "endpoints per service, got 65\n"},
  };
  for (const auto &c : cases) {
    const std::string file = mesh_->dir() + "/bad-" + c.name + ".yaml";
    std::ofstream(file) << c.input;
    std::string expected = c.error;
    for (size_t at; (at = expected.find("{file}")) != std::string::npos;)
      expected.replace(at, 6, file);
    std::string out;  // stdout and stderr: all of it is the error
    const int rc =
        mesh_->lab().run_in_node(1,
                                 {"sh", "-c", "exec \"$0\" \"$@\" 2>&1", MESHCTL_BIN,
                                  "--controlplane=" + mesh_->api_socket(), "apply", "-f", file},
                                 &out);
    EXPECT_EQ(rc, 1) << c.name;
    EXPECT_EQ(out, expected) << c.name;
  }
  EXPECT_EQ(mesh_->controlplane_status().version(), version);
  auto tally = connect_many(mesh_->lab(), "client", "10.96.0.10", 80, 100);
  EXPECT_EQ(tally.failures, 0) << tally.first_error;
  EXPECT_EQ(tally.bodies["web-v2-a"], 0) << "the refused inputs changed the split";
}

TEST_F(ControlPlaneLabTest, OnlyRootCanReachTheApiSocket) {
  auto status = mesh_->controlplane_status();
  std::string socket_path =
      status.state_dir().substr(0, status.state_dir().rfind('/')) + "/api.sock";
  const int err = connect_as_nobody(socket_path, SOCK_STREAM);
  EXPECT_EQ(err, EACCES) << std::strerror(err);
}

// The Helm chart's bootstrap (a DaemonSet cannot run `meshctl node add` per node): meshcp runs
// with the chart's CA (genCAWithKey: CN only, no URI SAN, SEC1 key) and the cluster's bootstrap
// token from a file; every meshd gets the same --join-token-file and --ca-cert-file. Both nodes
// get their node certificate and SVIDs, and a restarted agent keeps its identity.
class ClusterTokenLabTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/sockmesh-join-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    files_ = tmpl;
    const auto ca = make_helm_style_ca();
    std::ofstream(files_ + "/tls.crt") << ca.cert_pem;
    std::ofstream(files_ + "/tls.key") << ca.key_pem;
    std::ofstream(files_ + "/token") << "r4nd0mAlphaNumFromTheChartsSecret42\n";
  }
  void TearDown() override { std::filesystem::remove_all(files_); }
  std::string files_;
};

TEST_F(ClusterTokenLabTest, NodesJoinWithTheClusterTokenFileAndTheCaCertificateFile) {
  const std::vector<std::string> meshcp = {
      "--ca-cert",         files_ + "/tls.crt",      "--ca-key",
      files_ + "/tls.key", "--bootstrap-token-file", files_ + "/token"};
  const std::vector<std::string> join = {"--join-token-file", files_ + "/token", "--ca-cert-file",
                                         files_ + "/tls.crt"};
  MeshLab mesh({}, Source::kControlPlane, {}, meshcp, {{1, join}, {2, join}});
  auto &lab = mesh.lab();
  // web-v1-a runs on node 1, web-v1-b and web-v2-a (one service account) on node 2.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  for (int node = 1; node <= 2; ++node) {
    v1::AgentStatus status = mesh.status(node);
    while (status.mesh().svids_size() < 1 && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      status = mesh.status(node);
    }
    EXPECT_EQ(status.mesh().trust_domain(), "cluster.local") << node;
    EXPECT_EQ(status.mesh().node_spiffe_id(),
              "spiffe://cluster.local/sockmesh/node/" + lab.node_name(node));
    EXPECT_GT(status.mesh().node_certificate_not_after_unix_ms(), 0);
    ASSERT_EQ(status.mesh().svids_size(), 1)
        << "node " << node << ": " << status.mesh().identity_error();
    EXPECT_EQ(status.mesh().svids(0).spiffe_id(), "spiffe://cluster.local/ns/demo/sa/web");
    EXPECT_EQ(status.mesh().identity_error(), "ok");
  }
  mesh.wait_all_acked();
  std::ifstream log(mesh.dir() + "/meshcp.log");
  const std::string meshcp_log((std::istreambuf_iterator<char>(log)),
                               std::istreambuf_iterator<char>());
  for (int node = 1; node <= 2; ++node)
    EXPECT_NE(
        meshcp_log.find("event=node_joined node=" + lab.node_name(node) + " method=cluster_token"),
        std::string::npos)
        << meshcp_log;
  EXPECT_EQ(meshcp_log.find("event=identity_refused"), std::string::npos) << meshcp_log;

  // A restart with the same (always mounted) files keeps the node's identity: no second join.
  const auto before = mesh.status(2).mesh().node_certificate_not_after_unix_ms();
  mesh.stop_agent(2);
  mesh.start_agent(2);
  mesh.wait_all_acked();
  EXPECT_EQ(mesh.status(2).mesh().node_certificate_not_after_unix_ms(), before);
  EXPECT_NE(mesh.agent_log(2).find("event=node_identity_kept"), std::string::npos)
      << mesh.agent_log(2);
}

// meshcp and meshd refuse bad token and CA files at start, each with one line.
TEST_F(ClusterTokenLabTest, BadFilesStopMeshcpAndMeshdWithOneLine) {
  auto run = [](const std::string &command) {
    std::string out;
    FILE *pipe = popen((command + " 2>&1").c_str(), "r");
    char buffer[512];
    while (pipe && fgets(buffer, sizeof buffer, pipe)) out += buffer;
    const int status = pipe ? pclose(pipe) : -1;
    return std::pair{WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
  };
  std::ofstream(files_ + "/short") << "abc\n";
  const std::string meshcp = std::string(MESHCP_BIN) + " --state-dir " + files_ +
                             "/state --api-socket " + files_ + "/api.sock --listen unix:" + files_ +
                             "/xds.sock --metrics-address off";
  EXPECT_EQ(run(meshcp + " --bootstrap-token-file " + files_ + "/short"),
            std::pair(1, "meshcp: --bootstrap-token-file " + files_ +
                             "/short: the token has 3 characters, at least 32 are needed\n"));
  EXPECT_EQ(run(meshcp + " --bootstrap-token-file " + files_ + "/missing"),
            std::pair(1, "meshcp: --bootstrap-token-file " + files_ +
                             "/missing: cannot read: No such file or directory\n"));
  const std::string meshd = std::string(MESHD_BIN) +
                            " --node n1 --cgroup /nonexistent --controlplane unix:" + files_ +
                            "/xds.sock --state-dir " + files_ + "/n1";
  EXPECT_EQ(run(meshd + " --join-token smt1.x --join-token-file " + files_ + "/token"),
            std::pair(1, std::string("meshd: give --join-token or --join-token-file, not both\n")));
  EXPECT_EQ(
      run(meshd + " --join-token-file " + files_ + "/token --ca-cert-file " + files_ + "/tls.key"),
      std::pair(1, "meshd: --ca-cert-file " + files_ +
                       "/tls.key: not a PEM certificate (no -----BEGIN CERTIFICATE----- block)\n"));
  // The fingerprint meshd pins is the certificate's SHA-256 as openssl prints it ("sha256
  // Fingerprint=AB:CD:..."), lowercase without colons.
  std::string fingerprint =
      run("openssl x509 -noout -fingerprint -sha256 -in " + files_ + "/tls.crt").second;
  fingerprint = fingerprint.substr(fingerprint.find('=') + 1);
  std::erase_if(fingerprint, [](char c) { return c == ':' || c == '\n'; });
  std::transform(fingerprint.begin(), fingerprint.end(), fingerprint.begin(), ::tolower);
  ASSERT_EQ(fingerprint.size(), 64u) << fingerprint;
  EXPECT_EQ(
      run(meshd + " --join-token-file " + files_ + "/token --ca-cert-file " + files_ +
          "/tls.crt --ca-cert-hash sha256:" + std::string(64, '0')),
      std::pair(1, "meshd: --ca-cert-file " + files_ + "/tls.crt is the CA sha256:" + fingerprint +
                       ", not the --ca-cert-hash sha256:" + std::string(64, '0') +
                       ": give one of them, or the same CA\n"));
}

}  // namespace
}  // namespace sockmesh::testing
