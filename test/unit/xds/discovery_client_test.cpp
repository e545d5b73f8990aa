// meshd's discovery client against the real meshcp servers in process.
#include "xds/discovery_client.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <optional>
#include <set>
#include <thread>

#include "server.h"
#include "sockmesh/resources/resource_set.h"
#include "state.h"
#include "store.h"
#include "test_identity.h"

namespace sockmesh::xds {
namespace {

v1::Resource workload(const std::string &name, const std::string &node, int labels,
                      const std::string &address = "10.78.1.10") {
  v1::Resource r;
  auto *w = r.mutable_workload();
  w->mutable_metadata()->set_name(name);
  w->mutable_metadata()->set_namespace_("demo");
  w->set_service_account("sa");
  w->set_node(node);
  w->add_addresses(address);
  auto &l = *w->mutable_metadata()->mutable_labels();
  for (int i = 0; i < labels; ++i) l["label-" + std::to_string(i)] = std::string(80, 'x');
  r.set_name(resources::resource_name(r));
  return r;
}

// meshcp's state and servers in process, on a temp dir; the state is given before the servers
// start so that the agent's first push carries it.
class MeshcpInProcess {
 public:
  explicit MeshcpInProcess(const v1::ApplyRequest &initial)
      : dir_(make_dir()), store_(dir_ + "/state"), state_(store_) {
    v1::ApplyResponse response;
    const grpc::Status status = state_.apply(initial, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    version_ = response.version();
    identity_.emplace(dir_, state_);
    servers_.emplace(state_, identity_->authority(), std::vector<std::string>{xds()}, dir_ + "/api/api.sock");
  }
  ~MeshcpInProcess() {
    servers_->shutdown();
    servers_.reset();
    std::filesystem::remove_all(dir_);
  }
  std::string xds() const { return "unix:" + dir_ + "/xds.sock"; }
  controlplane::State &state() { return state_; }
  const std::string &initial_version() const { return version_; }
  // What an agent that joined as `node` holds.
  identity::ChannelSecurity security(const std::string &node) {
    const auto c = identity_->join(node);
    return {c.bundle_pem, c.key_pem, c.certificate_pem};
  }

 private:
  static std::string make_dir() {
    char tmpl[] = "/tmp/meshd-xds-test-XXXXXX";
    return ::mkdtemp(tmpl);
  }
  std::string dir_;
  controlplane::Store store_;
  controlplane::State state_;
  std::string version_;
  std::optional<controlplane::testing::TestIdentity> identity_;
  std::optional<controlplane::Servers> servers_;
};

// The first push carries a node's whole state, ~12 MB at 10,000 services x 10 endpoints: more
// than gRPC's default 4 MiB receive limit, which made the agent reconnect forever.
TEST(DiscoveryClientTest, ReceivesAPushLargerThanGrpcsDefaultLimit) {
  v1::ApplyRequest request;
  *request.add_resources() = workload("big", "n1", 60000);
  ASSERT_GT(request.ByteSizeLong(), 5u << 20);
  {
    MeshcpInProcess meshcp(request);
    const std::string xds = meshcp.xds();
    std::mutex mu;
    std::condition_variable applied;
    size_t labels = 0;
    DiscoveryClient client(xds, "n1", meshcp.security("n1"), {}, [&](const KnownGood &candidate, const Delta &) {
      std::lock_guard lock(mu);
      auto it = candidate.resources.find("workload/demo/big");
      if (it != candidate.resources.end())
        labels = size_t(it->second.workload().metadata().labels_size());
      applied.notify_all();
      return std::optional<v1::ErrorDetail>{};
    });
    {
      std::unique_lock lock(mu);
      EXPECT_TRUE(applied.wait_for(lock, std::chrono::seconds(20), [&] { return labels > 0; }));
      EXPECT_EQ(labels, 60000u);
    }
    for (int i = 0; i < 200 && client.status().system_version != meshcp.initial_version(); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    EXPECT_EQ(client.status().system_version, meshcp.initial_version());
    EXPECT_EQ(client.status().state, "connected");
    client.stop();
  }
}

// A push is applied to the held state in place (no copy of the whole state); a NACK puts back
// exactly what the push replaced, added or removed, and the delta names what changed.
TEST(DiscoveryClientTest, NackRestoresTheHeldStateAndTheDeltaNamesTheChange) {
  v1::ApplyRequest request;
  *request.add_resources() = workload("a", "n1", 1);
  *request.add_resources() = workload("b", "n1", 1, "10.78.1.11");
  {
    MeshcpInProcess meshcp(request);
    controlplane::State &state = meshcp.state();
    v1::ApplyResponse first;
    first.set_version(meshcp.initial_version());
    const std::string xds = meshcp.xds();
    std::mutex mu;
    std::vector<Delta> deltas;
    bool last_saw_change = false;  // the last push's candidate: a gone, b replaced, c added
    DiscoveryClient client(xds, "n1", meshcp.security("n1"), {}, [&](const KnownGood &candidate, const Delta &delta) {
      std::lock_guard lock(mu);
      deltas.push_back(delta);
      if (deltas.size() == 1) return std::optional<v1::ErrorDetail>{};
      auto b = candidate.resources.find("workload/demo/b");
      last_saw_change = candidate.resources.count("workload/demo/a") == 0 &&
                        b != candidate.resources.end() &&
                        b->second.workload().metadata().labels_size() == 3 &&
                        candidate.resources.count("workload/demo/c") == 1;
      v1::ErrorDetail refused;
      refused.set_message("no");
      return std::optional<v1::ErrorDetail>(refused);
    });
    auto wait_for = [&](size_t n) {
      for (int i = 0; i < 500; ++i) {
        {
          std::lock_guard lock(mu);
          if (deltas.size() >= n) return;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
      FAIL() << "no push " << n;
    };
    wait_for(1);
    for (int i = 0; i < 200 && client.status().system_version != first.version(); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));

    // One change: a removed, b replaced, c added.
    v1::DeleteRequest remove;
    remove.add_names("workload/demo/a");
    v1::ApplyResponse second;
    ASSERT_TRUE(state.remove(remove, &second).ok());
    v1::ApplyRequest change;
    *change.add_resources() = workload("b", "n1", 3, "10.78.1.11");
    *change.add_resources() = workload("c", "n1", 1, "10.78.1.12");
    ASSERT_TRUE(state.apply(change, &second).ok());
    for (int i = 0; i < 500; ++i) {
      {
        std::lock_guard lock(mu);
        if (last_saw_change) break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    for (int i = 0; i < 200 && client.status().last_nack.empty(); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    EXPECT_EQ(client.status().last_nack, "no");
    EXPECT_EQ(client.status().system_version, first.version());
    client.with_held([&](const KnownGood &held) {
      EXPECT_EQ(held.system_version, first.version());
      ASSERT_EQ(held.resources.size(), 2u);
      EXPECT_EQ(held.resources.at("workload/demo/a").workload().metadata().labels_size(), 1);
      EXPECT_EQ(held.resources.at("workload/demo/b").workload().metadata().labels_size(), 1);
    });
    // What the last-known-good writer would write: the ACKed state, not the refused one.
    v1::DiscoveryResponse file;
    ASSERT_TRUE(file.ParseFromString(client.serialize_held()));
    EXPECT_EQ(file.system_version_info(), first.version());
    ASSERT_EQ(file.resources_size(), 2);
    EXPECT_EQ(file.resources(0).name(), "workload/demo/a");
    EXPECT_EQ(file.resources(1).name(), "workload/demo/b");
    EXPECT_EQ(file.resources(1).workload().metadata().labels_size(), 1);
    std::lock_guard lock(mu);
    EXPECT_TRUE(last_saw_change);
    EXPECT_EQ(deltas[0].changed.size(), 2u);
    EXPECT_TRUE(deltas[0].removed.empty());
    // The pushes after the first carry whatever changed since the agent's ACKed state.
    const Delta &last = deltas.back();
    std::set<std::string> changed(last.changed.begin(), last.changed.end());
    EXPECT_TRUE(changed.count("workload/demo/b"));
    EXPECT_TRUE(changed.count("workload/demo/c"));
    EXPECT_EQ(last.removed, std::vector<std::string>{"workload/demo/a"});
    client.stop();
    client.stop();
  }
}

}  // namespace
}  // namespace sockmesh::xds
