// The Discovery stream in process: meshcp's servers on temp unix sockets, agents as client streams.
#include <grpcpp/create_channel.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdio>
#include <memory>
#include <random>
#include <set>

#include "fixture.h"
#include "server.h"
#include "sockmesh/v1/controlplane.grpc.pb.h"
#include "sockmesh/v1/discovery.grpc.pb.h"
#include "state.h"
#include "store.h"
#include "test_identity.h"

namespace sockmesh::controlplane {
namespace {

using testing::kMesh;
using testing::request_of;
using testing::TempDir;
using Agent = grpc::ClientReaderWriter<v1::DiscoveryRequest, v1::DiscoveryResponse>;

std::set<std::string> names_of(const v1::DiscoveryResponse &response) {
  std::set<std::string> names;
  for (const auto &r : response.resources()) names.insert(r.name());
  return names;
}

class DiscoveryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = std::make_unique<Store>(dir_.path() + "/state");
    state_ = std::make_unique<State>(*store_);
    v1::ApplyResponse response;
    ASSERT_TRUE(state_->apply(request_of(kMesh), &response).ok());
    xds_ = "unix:" + dir_.path() + "/run/xds.sock";
    identity_ = std::make_unique<testing::TestIdentity>(dir_.path(), *state_);
    servers_ = std::make_unique<Servers>(*state_, identity_->authority(), std::vector<std::string>{xds_},
                                         dir_.path() + "/run/api/api.sock");
    api_ = v1::ControlPlane::NewStub(grpc::CreateChannel(
        "unix:" + dir_.path() + "/run/api/api.sock", grpc::InsecureChannelCredentials()));
  }

  void TearDown() override { servers_.reset(); }

  struct Stream {
    std::unique_ptr<grpc::ClientContext> context = std::make_unique<grpc::ClientContext>();
    std::unique_ptr<Agent> agent;
  };

  // A stream as the agent of `node` (authenticated as `as`, by default the same node).
  Stream open(const std::string &node, const VersionMap &holds = {}, std::string as = "") {
    if (as.empty()) as = node.empty() ? "n1" : node;
    auto &stub = stubs_[as];
    if (!stub) stub = v1::Discovery::NewStub(testing::TestIdentity::channel(xds_, identity_->join(as)));
    Stream s;
    s.agent = stub->Stream(s.context.get());
    v1::DiscoveryRequest hello;
    hello.set_node(node);
    for (const auto &[name, version] : holds)
      (*hello.mutable_initial_resource_versions())[name] = version;
    EXPECT_TRUE(s.agent->Write(hello));
    return s;
  }

  static v1::DiscoveryResponse next(Stream &s) {
    v1::DiscoveryResponse response;
    EXPECT_TRUE(s.agent->Read(&response));
    return response;
  }

  static void ack(Stream &s, const v1::DiscoveryResponse &response) {
    v1::DiscoveryRequest request;
    request.set_response_nonce(response.nonce());
    request.set_version_info(response.system_version_info());
    EXPECT_TRUE(s.agent->Write(request));
  }

  void change_web_weight(uint32_t weight) {
    v1::ApplyRequest request;
    v1::Resource web = state_->view().resources->at("service/demo/web");
    web.mutable_service()->mutable_endpoints(0)->set_weight(weight);
    *request.add_resources() = web;
    grpc::ClientContext context;
    v1::ApplyResponse response;
    ASSERT_TRUE(api_->Apply(&context, request, &response).ok());
  }

  v1::AgentView agent_view(const std::string &node) {
    // Acks are processed asynchronously: wait until the expected state shows.
    grpc::ClientContext context;
    v1::ControlPlaneStatus status;
    EXPECT_TRUE(api_->GetStatus(&context, {}, &status).ok());
    for (const auto &a : status.agents())
      if (a.node() == node) return a;
    return {};
  }

  template <typename Pred>
  v1::AgentView wait_for(const std::string &node, Pred pred) {
    for (int i = 0; i < 500; ++i) {
      v1::AgentView view = agent_view(node);
      if (pred(view)) return view;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ADD_FAILURE() << "agent " << node << " never reached the expected state";
    return agent_view(node);
  }

  TempDir dir_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<State> state_;
  std::unique_ptr<Servers> servers_;
  std::string xds_;
  std::unique_ptr<testing::TestIdentity> identity_;
  std::map<std::string, std::unique_ptr<v1::Discovery::Stub>> stubs_;
  std::unique_ptr<v1::ControlPlane::Stub> api_;
};

TEST_F(DiscoveryTest, FirstPushHasWhatTheNodeNeedsAndApplyPushesOnlyTheChange) {
  Stream s = open("n1");
  v1::DiscoveryResponse first = next(s);
  EXPECT_EQ(first.system_version_info(), "1");
  EXPECT_FALSE(first.nonce().empty());
  EXPECT_EQ(names_of(first),
            (std::set<std::string>{"node/default/n1", "node/default/n2", "service/demo/db",
                                   "service/demo/web", "workload/demo/db", "workload/demo/tool",
                                   "workload/demo/web-a", "workload/demo/web-b"}));
  ack(s, first);
  v1::AgentView view = wait_for("n1", [](const auto &v) { return v.acked_version() == "1"; });
  EXPECT_TRUE(view.connected());
  EXPECT_EQ(view.resource_versions_size(), 8);

  change_web_weight(80);
  v1::DiscoveryResponse second = next(s);
  EXPECT_EQ(second.system_version_info(), "2");
  EXPECT_NE(second.nonce(), first.nonce());
  EXPECT_EQ(names_of(second), std::set<std::string>{"service/demo/web"});
  EXPECT_EQ(second.resources(0).service().endpoints(0).weight(), 80u);
  EXPECT_EQ(second.removed_resources_size(), 0);
  ack(s, second);
  view = wait_for("n1", [](const auto &v) { return v.acked_version() == "2"; });
  EXPECT_EQ(view.resource_versions().at("service/demo/web"),
            state_->view().resources->at("service/demo/web").version());
}

TEST_F(DiscoveryTest, ResyncWithCurrentVersionsSendsNothingButTheVersion) {
  VersionMap holds;
  {
    Stream s = open("n2");
    v1::DiscoveryResponse first = next(s);
    for (const auto &r : first.resources()) holds[r.name()] = r.version();
    s.context->TryCancel();
  }
  Stream again = open("n2", holds);
  v1::DiscoveryResponse resync = next(again);
  EXPECT_EQ(resync.resources_size(), 0);
  EXPECT_EQ(resync.removed_resources_size(), 0);
  EXPECT_EQ(resync.system_version_info(), "1");
  ack(again, resync);
  wait_for("n2", [](const auto &v) { return v.acked_version() == "1" && v.connected(); });
}

TEST_F(DiscoveryTest, ResyncSendsRemovedNamesAndChangedResources) {
  VersionMap holds = {{"service/demo/gone", "x"}, {"service/demo/web", "old"}};
  Stream s = open("n1", holds);
  v1::DiscoveryResponse first = next(s);
  EXPECT_EQ(first.removed_resources_size(), 1);
  EXPECT_EQ(first.removed_resources(0), "service/demo/gone");
  EXPECT_EQ(first.resources_size(), 8);  // everything (node_filter.h)
}

TEST_F(DiscoveryTest, NackIsRecordedAndTheNextChangePushesFromTheAckedSet) {
  Stream s = open("n1");
  v1::DiscoveryResponse first = next(s);
  ack(s, first);
  change_web_weight(80);
  v1::DiscoveryResponse second = next(s);
  v1::DiscoveryRequest nack;
  nack.set_response_nonce(second.nonce());
  nack.set_version_info("1");
  nack.mutable_error_detail()->set_resource("service/demo/web");
  nack.mutable_error_detail()->set_field("spec.endpoints[0].weight");
  nack.mutable_error_detail()->set_message("refused by the test");
  ASSERT_TRUE(s.agent->Write(nack));
  v1::AgentView view = wait_for("n1", [](const auto &v) { return v.nacked_version() == "2"; });
  EXPECT_EQ(view.acked_version(), "1");
  EXPECT_EQ(view.last_nack().field(), "spec.endpoints[0].weight");

  // The next change: web again (the agent never took 80), plus the new change to db.
  v1::ApplyRequest request;
  v1::Resource db = state_->view().resources->at("service/demo/db");
  db.mutable_service()->mutable_endpoints(0)->set_port(5433);
  *request.add_resources() = db;
  v1::ApplyResponse response;
  ASSERT_TRUE(state_->apply(request, &response).ok());
  v1::DiscoveryResponse third = next(s);
  EXPECT_EQ(third.system_version_info(), "3");
  EXPECT_EQ(names_of(third), (std::set<std::string>{"service/demo/db", "service/demo/web"}));
  ack(s, third);
  view = wait_for("n1", [](const auto &v) { return v.acked_version() == "3"; });
  EXPECT_FALSE(view.has_last_nack());
  EXPECT_EQ(view.nacked_version(), "");
}

// Answers that are not for the push in flight (an unknown nonce, a NACK of an earlier push, the
// same ACK twice) change nothing: the agent's recorded versions follow only the right answers, and
// the pushes go on.
TEST_F(DiscoveryTest, AnswersOutOfOrderAreIgnored) {
  Stream s = open("n1");
  v1::DiscoveryResponse first = next(s);
  v1::DiscoveryRequest stray;
  stray.set_response_nonce("not-a-nonce-we-sent");
  stray.set_version_info("1");
  ASSERT_TRUE(s.agent->Write(stray));
  v1::DiscoveryRequest stale_nack = stray;
  stale_nack.set_response_nonce(std::to_string(std::stoull(first.nonce()) + 1000));
  stale_nack.mutable_error_detail()->set_message("for a push that never was");
  ASSERT_TRUE(s.agent->Write(stale_nack));
  ack(s, first);
  v1::AgentView view = wait_for("n1", [](const auto &v) { return v.acked_version() == "1"; });
  EXPECT_EQ(view.nacked_version(), "");
  EXPECT_FALSE(view.has_last_nack());
  ack(s, first);  // the same ACK again
  change_web_weight(80);
  v1::DiscoveryResponse second = next(s);
  EXPECT_EQ(second.system_version_info(), "2");
  v1::DiscoveryRequest old_nack;  // a NACK naming the first push, answered already
  old_nack.set_response_nonce(first.nonce());
  old_nack.mutable_error_detail()->set_message("too late");
  ASSERT_TRUE(s.agent->Write(old_nack));
  ack(s, second);
  view = wait_for("n1", [](const auto &v) { return v.acked_version() == "2"; });
  EXPECT_EQ(view.nacked_version(), "");
  EXPECT_FALSE(view.has_last_nack());
}

// Bytes that are not TLS on the agents' socket (a port scan, a confused client): the connection is
// dropped within the handshake and the stream serves the next agent as before.
TEST_F(DiscoveryTest, GarbageOnTheAgentsSocketIsDroppedAndAgentsStillConnect) {
  std::mt19937 random(11);
  std::string garbage(64 << 10, '\0');
  for (auto &c : garbage) c = char(random());
  for (int i = 0; i < 3; ++i) {
    const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    const std::string path = xds_.substr(std::string("unix:").size());
    std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path.c_str());
    if (connect(fd, reinterpret_cast<sockaddr *>(&addr), sizeof addr) != 0) {
      close(fd);
      FAIL() << "connect " << path;
    }
    (void)!write(fd, garbage.data(), garbage.size());
    pollfd p{fd, POLLIN, 0};
    bool closed = false;
    char buf[4096];
    while (!closed && poll(&p, 1, 5000) > 0) closed = read(fd, buf, sizeof buf) <= 0;
    EXPECT_TRUE(closed) << "connection " << i << " still open after 5 s";
    close(fd);
  }
  Stream s = open("n1");
  EXPECT_EQ(next(s).system_version_info(), "1");
}

TEST_F(DiscoveryTest, DeletePushesRemovedNames) {
  Stream s = open("n1");
  ack(s, next(s));
  grpc::ClientContext context;
  v1::DeleteRequest request;
  request.add_names("service/demo/db");
  request.add_names("workload/demo/db");
  v1::ApplyResponse response;
  ASSERT_TRUE(api_->Delete(&context, request, &response).ok());
  v1::DiscoveryResponse push = next(s);
  EXPECT_EQ(push.resources_size(), 0);
  EXPECT_EQ(std::set<std::string>(push.removed_resources().begin(), push.removed_resources().end()),
            (std::set<std::string>{"service/demo/db", "workload/demo/db"}));
}

// Every agent holds every workload (captured connects to any pod are tunnelled to its node).
TEST_F(DiscoveryTest, ChangesOfOtherNodesWorkloadsAreSent) {
  Stream s = open("n1");
  ack(s, next(s));
  v1::ApplyRequest request;
  v1::Resource tool = state_->view().resources->at("workload/demo/tool");
  (*tool.mutable_workload()->mutable_metadata()->mutable_labels())["x"] = "y";
  *request.add_resources() = tool;
  v1::ApplyResponse response;
  ASSERT_TRUE(state_->apply(request, &response).ok());
  v1::DiscoveryResponse push = next(s);
  EXPECT_EQ(push.system_version_info(), "2");
  ASSERT_EQ(push.resources_size(), 1);
  EXPECT_EQ(push.resources(0).name(), "workload/demo/tool");
}

// A large mesh's Apply is bigger than gRPC's default 4 MiB limit: the API takes it whole.
TEST_F(DiscoveryTest, ApiAcceptsAnApplyLargerThanGrpcsDefaultLimit) {
  v1::ApplyRequest request;
  v1::Resource big = state_->view().resources->at("workload/demo/tool");
  auto &labels = *big.mutable_workload()->mutable_metadata()->mutable_labels();
  for (int i = 0; i < 60000; ++i) labels["label-" + std::to_string(i)] = std::string(80, 'x');
  *request.add_resources() = big;
  ASSERT_GT(request.ByteSizeLong(), 5u << 20);
  grpc::ClientContext context;
  v1::ApplyResponse response;
  const grpc::Status status = api_->Apply(&context, request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.configured(), 1u);
  EXPECT_EQ(state_->view().resources->at("workload/demo/tool").workload().metadata().labels_size(),
            60000);
}

TEST_F(DiscoveryTest, FirstRequestWithoutNodeIsRefused) {
  Stream s = open("");
  v1::DiscoveryResponse response;
  EXPECT_FALSE(s.agent->Read(&response));
  grpc::Status status = s.agent->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(status.error_message(), "the first request must name the node (DiscoveryRequest.node)");
}

TEST_F(DiscoveryTest, StreamNamingAnotherNodeThanItsCertificateIsRefused) {
  Stream s = open("n2", {}, "n1");
  v1::DiscoveryResponse response;
  EXPECT_FALSE(s.agent->Read(&response));
  grpc::Status status = s.agent->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(status.error_message(),
            "the stream names node \"n2\" but the node certificate is for \"n1\"");
}

TEST_F(DiscoveryTest, StreamWithoutNodeCertificateIsRefused) {
  auto credentials = identity_->join("n1");
  credentials.key_pem.clear();
  credentials.certificate_pem.clear();  // TLS to meshcp, but no client certificate
  auto stub = v1::Discovery::NewStub(testing::TestIdentity::channel(xds_, credentials));
  grpc::ClientContext context;
  auto agent = stub->Stream(&context);
  v1::DiscoveryRequest hello;
  hello.set_node("n1");
  agent->Write(hello);
  v1::DiscoveryResponse response;
  EXPECT_FALSE(agent->Read(&response));
  grpc::Status status = agent->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(status.error_message(),
            "the discovery stream needs a node certificate (join first with meshd --join-token)");
}

TEST_F(DiscoveryTest, StreamsEndWithUnavailableOnStop) {
  Stream s = open("n1");
  ack(s, next(s));
  wait_for("n1", [](const auto &v) { return v.acked_version() == "1"; });
  servers_->shutdown();
  v1::DiscoveryResponse response;
  EXPECT_FALSE(s.agent->Read(&response));
  grpc::Status status = s.agent->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(status.error_message(), "meshcp is stopping");
}

}  // namespace
}  // namespace sockmesh::controlplane
