// meshd's discovery client against the real meshcp servers in process.
#include "xds/discovery_client.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <thread>

#include "server.h"
#include "sockmesh/resources/resource_set.h"
#include "state.h"
#include "store.h"

namespace sockmesh::xds {
namespace {

v1::Resource workload(const std::string &name, const std::string &node, int labels) {
  v1::Resource r;
  auto *w = r.mutable_workload();
  w->mutable_metadata()->set_name(name);
  w->mutable_metadata()->set_namespace_("demo");
  w->set_service_account("sa");
  w->set_node(node);
  w->add_addresses("10.78.1.10");
  auto &l = *w->mutable_metadata()->mutable_labels();
  for (int i = 0; i < labels; ++i) l["label-" + std::to_string(i)] = std::string(80, 'x');
  r.set_name(resources::resource_name(r));
  return r;
}

// The first push carries a node's whole state, ~12 MB at 10,000 services x 10 endpoints: more
// than gRPC's default 4 MiB receive limit, which made the agent reconnect forever.
TEST(DiscoveryClientTest, ReceivesAPushLargerThanGrpcsDefaultLimit) {
  char tmpl[] = "/tmp/meshd-xds-test-XXXXXX";
  const std::string dir = ::mkdtemp(tmpl);
  {
    controlplane::Store store(dir + "/state");
    controlplane::State state(store);
    v1::ApplyRequest request;
    *request.add_resources() = workload("big", "n1", 60000);
    ASSERT_GT(request.ByteSizeLong(), 5u << 20);
    v1::ApplyResponse response;
    ASSERT_TRUE(state.apply(request, &response).ok());
    const std::string xds = "unix:" + dir + "/xds.sock";
    controlplane::Servers servers(state, {xds}, dir + "/api/api.sock");

    std::mutex mu;
    std::condition_variable applied;
    size_t labels = 0;
    DiscoveryClient client(xds, "n1", {}, [&](const KnownGood &candidate) {
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
    for (int i = 0; i < 200 && client.status().system_version != response.version(); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    EXPECT_EQ(client.status().system_version, response.version());
    EXPECT_EQ(client.status().state, "connected");
    servers.shutdown();
  }
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace sockmesh::xds
