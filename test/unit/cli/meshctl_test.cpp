// meshctl end to end in-process: the real command line against a fake agent on a unix socket.
#include "sockmesh/cli/meshctl.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <sstream>
#include <stop_token>
#include <thread>

#include "fake_admin.h"
#include "meshctl_harness.h"
#include "sockmesh/cli/target.h"

namespace sockmesh::cli {
namespace {

namespace fs = std::filesystem;
using testing::kNow;
using testing::MeshctlHarness;
using testing::Result;

v1::AgentStatus sample_status() {
  v1::AgentStatus s;
  s.set_node("n1");
  s.set_version("0.1.0");
  s.set_pid(4242);
  s.set_started_unix_ms(kNow - 3'723'000);
  s.set_cgroup("/sys/fs/cgroup/unified/sockmesh");
  s.set_pin_dir("/sys/fs/bpf/sockmesh/n1");
  auto *c = s.mutable_config();
  c->set_source("file:/etc/sockmesh/config.yaml");
  c->set_generation(7);
  c->set_applied_unix_ms(kNow - 303'000);
  c->set_services(3);
  c->set_workloads(5);
  auto *p = s.add_programs();
  p->set_name("sm_connect4");
  p->set_attach_type("cgroup/connect4");
  p->set_id(42);
  p->set_link_id(7);
  p->set_attached(true);
  p = s.add_programs();
  p->set_name("sm_getpeername4");
  p->set_attach_type("cgroup/getpeername4");
  p->set_id(43);
  p->set_link_id(8);
  p->set_attached(true);
  p->set_kept(true);
  auto *m = s.add_maps();
  m->set_name("sm_services");
  m->set_id(10);
  m->set_type("hash");
  m->set_entries(4);
  m->set_max_entries(65536);
  m = s.add_maps();
  m->set_name("sm_backend_sets");
  m->set_id(11);
  m->set_type("array");
  m->set_entries(3);
  m->set_max_entries(1024);
  auto *k = s.add_counters();
  k->set_name("connect_balanced");
  k->set_value(1200);
  k = s.add_counters();
  k->set_name("connect_no_backend");
  k->set_value(0);
  auto *f = s.add_features();
  f->set_name("attach:cgroup/getpeername4");
  f->set_present(true);
  f->set_required(true);
  f->set_since("5.8");
  f = s.add_features();
  f->set_name("helper:bpf_set_retval");
  f->set_required(false);
  f->set_since("5.18");
  f->set_without("refused connects report EPERM");
  return s;
}

v1::ServiceView service(std::string ns, std::string name, v1::LbPolicy policy, std::uint32_t usable,
                        std::uint32_t listed) {
  v1::ServiceView s;
  s.set_namespace_(std::move(ns));
  s.set_name(std::move(name));
  s.set_lb_policy(policy);
  s.set_usable_endpoints(usable);
  s.set_endpoints(listed);
  return s;
}

void add_vip(v1::ServiceView &s, std::string address, std::uint32_t port, v1::Protocol protocol) {
  auto *vip = s.add_vips();
  vip->set_address(std::move(address));
  vip->set_port(port);
  vip->set_protocol(protocol);
}

// Deliberately unsorted: meshctl sorts by namespace/name.
v1::ListServicesResponse sample_services() {
  v1::ListServicesResponse r;
  r.set_generation(7);
  auto cart = service("shop", "cart", v1::LB_POLICY_MAGLEV, 1, 2);
  add_vip(cart, "10.96.0.20", 8080, v1::PROTOCOL_TCP);
  add_vip(cart, "10.96.0.20", 8081, v1::PROTOCOL_UDP);
  cart.add_slots(4);
  cart.add_slots(5);
  cart.set_maglev_table_size(4093);
  auto web = service("default", "web", v1::LB_POLICY_ROUND_ROBIN, 3, 3);
  add_vip(web, "10.96.0.10", 80, v1::PROTOCOL_TCP);
  add_vip(web, "fd00:96::a", 80, v1::PROTOCOL_TCP);
  auto api = service("default", "api", v1::LB_POLICY_UNSPECIFIED, 0, 0);
  add_vip(api, "fd00:96::1", 443, v1::PROTOCOL_UNSPECIFIED);
  *r.add_services() = cart;
  *r.add_services() = web;
  *r.add_services() = api;
  return r;
}

void add_endpoint(v1::ListEndpointsResponse &r, std::string ns, std::string svc,
                  std::string workload, std::string address, std::uint32_t port, std::string subset,
                  std::uint32_t weight, double share) {
  auto *e = r.add_endpoints();
  e->set_service_namespace(std::move(ns));
  e->set_service_name(std::move(svc));
  e->set_workload(std::move(workload));
  e->set_address(std::move(address));
  e->set_port(port);
  e->set_subset(std::move(subset));
  e->set_kernel_weight(weight);
  e->set_share_percent(share);
}

v1::ListEndpointsResponse sample_endpoints() {
  v1::ListEndpointsResponse r;
  add_endpoint(r, "shop", "cart", "cart-2", "10.78.2.11", 9000, "", 0, 0.0);
  add_endpoint(r, "default", "web", "web-v2", "10.78.1.12", 8080, "v2", 20, 20.0);
  add_endpoint(r, "default", "web", "web-v1-a", "10.78.1.10", 8080, "v1", 40, 40.0);
  add_endpoint(r, "shop", "cart", "cart-1", "10.78.2.10", 9000, "", 1, 100.0);
  add_endpoint(r, "default", "web", "web-v1-b", "10.78.2.13", 8080, "v1", 40, 40.0);
  return r;
}

// The sample services, then the next generation: cart gone, web down to one usable endpoint.
std::vector<v1::ListServicesResponse> sample_updates() {
  auto next = sample_services();
  next.set_generation(8);
  next.mutable_services()->DeleteSubrange(0, 1);
  next.mutable_services(0)->set_usable_endpoints(1);
  return {sample_services(), next};
}

class MeshctlTest : public MeshctlHarness {
 protected:
  void TearDown() override {
    agents_.clear();
    MeshctlHarness::TearDown();
  }

  // Starts a fake agent for node under the run root.
  testing::FakeAdmin &start_agent(const std::string &node) {
    fs::create_directories(env_.run_root / node);
    agents_.push_back(std::make_unique<testing::FakeAdmin>(env_.run_root / node / "admin.sock"));
    auto &agent = *agents_.back();
    agent.status = sample_status();
    agent.services = sample_services();
    agent.endpoints = sample_endpoints();
    return agent;
  }

  std::vector<std::unique_ptr<testing::FakeAdmin>> agents_;
};

const char *const kStatus =
    "Node:        n1\n"
    "Version:     0.1.0\n"
    "PID:         4242\n"
    "Uptime:      1h2m (since 2024-05-01 10:57:57 UTC)\n"
    "Cgroup:      /sys/fs/cgroup/unified/sockmesh\n"
    "Pin dir:     /sys/fs/bpf/sockmesh/n1\n"
    "\n"
    "Config:      file:/etc/sockmesh/config.yaml\n"
    "Generation:  7 (applied 2024-05-01 11:54:57 UTC, 5m3s ago)\n"
    "Resources:   3 services, 5 workloads\n"
    "\n"
    "Programs:\n"
    "NAME              ATTACH                PROG ID   LINK ID   STATE\n"
    "sm_connect4       cgroup/connect4       42        7         attached\n"
    "sm_getpeername4   cgroup/getpeername4   43        8         attached, kept\n"
    "\n"
    "Maps:\n"
    "NAME              TYPE    ENTRIES   MAX\n"
    "sm_services       hash    4         65536\n"
    "sm_backend_sets   array   3         1024\n"
    "\n"
    "Kernel features:\n"
    "NAME                         PRESENT                              NEEDED     SINCE\n"
    "attach:cgroup/getpeername4   yes                                  required   Linux 5.8\n"
    "helper:bpf_set_retval        no (refused connects report EPERM)   optional   Linux 5.18\n"
    "\n"
    "Counters:\n"
    "NAME                 VALUE\n"
    "connect_balanced     1200\n"
    "connect_no_backend   0\n";

TEST_F(MeshctlTest, StatusOfTheOnlyAgent) {
  start_agent("n1");
  const auto r = run({"status"});
  EXPECT_EQ(r.err, "");
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.out, kStatus);
}

TEST_F(MeshctlTest, StatusShowsARejectedConfig) {
  auto &agent = start_agent("n1");
  agent.status.mutable_config()->set_last_error("service \"web/ns\": weight must be > 0, got 0");
  agent.status.mutable_config()->set_last_error_unix_ms(kNow - 60'000);
  const auto r = run({"--node", "n1", "status"});
  EXPECT_EQ(r.code, 0);
  const std::string expected_config =
      "Resources:   3 services, 5 workloads\n"
      "Last error:  REJECTED at 2024-05-01 11:59:00 UTC, 1m ago; the previous config keeps "
      "serving:\n"
      "             service \"web/ns\": weight must be > 0, got 0\n"
      "\n"
      "Programs:\n";
  EXPECT_NE(r.out.find(expected_config), std::string::npos) << r.out;
}

TEST_F(MeshctlTest, StatusInControlPlaneMode) {
  auto &agent = start_agent("n1");
  auto *c = agent.status.mutable_config();
  c->set_source("controlplane:unix:/run/sockmesh/meshcp/discovery.sock");
  c->set_stream_state("connected");
  c->set_system_version("12");
  c->set_last_ack_unix_ms(kNow - 4'000);
  c->set_last_nack("service \"demo/web\": spec.vips[1].address: IPv6 is disabled on this node");
  const auto r = run({"status"});
  EXPECT_EQ(r.code, 0);
  const std::string expected_config =
      "\n"
      "Config:      controlplane:unix:/run/sockmesh/meshcp/discovery.sock\n"
      "Generation:  7 (applied 2024-05-01 11:54:57 UTC, 5m3s ago)\n"
      "Resources:   3 services, 5 workloads\n"
      "Stream:      connected, at version 12 (last ACK 2024-05-01 11:59:56 UTC, 4s ago)\n"
      "Last NACK:   service \"demo/web\": spec.vips[1].address: IPv6 is disabled on this node\n"
      "\n"
      "Programs:\n";
  EXPECT_NE(r.out.find(expected_config), std::string::npos) << r.out;

  c->set_stream_state("backoff");
  c->clear_system_version();
  c->clear_last_ack_unix_ms();
  c->clear_last_nack();
  EXPECT_NE(run({"status"})
                .out.find("Resources:   3 services, 5 workloads\n"
                          "Stream:      backoff\n\n"),
            std::string::npos);
}

TEST_F(MeshctlTest, StatusShowsTheMeshPart) {
  auto &agent = start_agent("n1");
  auto *m = agent.status.mutable_mesh();
  m->set_trust_domain("cluster.local");
  m->set_node_spiffe_id("spiffe://cluster.local/sockmesh/node/n1");
  m->set_node_certificate_not_after_unix_ms(kNow + 86'000'000);
  m->set_identity_error("ok");
  auto *svid = m->add_svids();
  svid->set_spiffe_id("spiffe://cluster.local/ns/demo/sa/client");
  svid->set_workload("demo/client");
  svid->set_generation(2);
  svid->set_serial("f92c1c64a87307601234");
  svid->set_not_after_unix_ms(kNow + 3'540'000);
  svid->set_renew_at_unix_ms(kNow + 1'740'000);
  m->set_captured_accepted(389);
  (*m->mutable_outbound_dropped())["no_svid"] = 1;
  auto *out = m->mutable_outbound();
  out->set_connections_opened(1);
  out->set_connections_active(1);
  out->set_streams_opened(389);
  out->set_streams_closed(388);
  out->set_streams_reset(1);
  out->set_bytes_to_tunnel(29000);
  out->set_bytes_from_tunnel(39435);
  auto *in = m->mutable_inbound();
  in->set_streams_refused(2);
  (*in->mutable_refusals())["unknown_ca"] = 3;
  (*in->mutable_denials())["default deny"] = 2;
  auto *peer = m->add_inbound_connections();
  peer->set_peer("spiffe://cluster.local/ns/demo/sa/web");
  peer->set_peer_certificate("sha256:0123456789abcdef0123456789");
  peer->set_remote("10.77.0.2:41234");
  peer->set_streams_total(9);
  peer->set_streams_active(1);
  auto *denial = m->add_kernel_denials();
  denial->set_rule("DENY demo/no-legacy rules[0]");
  denial->set_count(4);
  const auto r = run({"status"});
  EXPECT_EQ(r.code, 0);
  const std::string expected =
      "\nMesh:\n"
      "Domain:      cluster.local\n"
      "Node ID:     spiffe://cluster.local/sockmesh/node/n1\n"
      "Node cert:   expires in 23h53m\n"
      "Identity:    ok\n"
      "\n"
      "SVIDs:\n"
      "SPIFFE-ID                                  WORKLOAD      GEN   SERIAL             EXPIRES   "
      "RENEWS\n"
      "spiffe://cluster.local/ns/demo/sa/client   demo/client   2     f92c1c64a8730760   in 59m    "
      "in 29m\n"
      "\n"
      "Tunnel:\n"
      "END        CONNECTIONS(ACTIVE/ALL)   STREAMS(OPEN/CLOSED/RESET/REFUSED)   BYTES(OUT/IN)   "
      "PEERS-REFUSED   DENIED\n"
      "outbound   1/1                       389/388/1/0                          29000/39435     - "
      "              -\n"
      "inbound    0/0                       0/0/0/2                              0/0             "
      "unknown_ca=3    default deny=2\n"
      "Captured:    389 accepted, dropped: no_svid=1\n";
  EXPECT_NE(r.out.find(expected), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("Same-node denials (kernel, at connect):\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("DENY demo/no-legacy rules[0]"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("spiffe://cluster.local/ns/demo/sa/web   sha256:0123456789abcdef   "
                       "10.77.0.2:41234   1/9\n"),
            std::string::npos)
      << r.out;
}

TEST_F(MeshctlTest, StatusOfAFreshAgent) {
  auto &agent = start_agent("n1");
  agent.status = v1::AgentStatus();
  agent.status.set_node("n1");
  const auto r = run({"status"});
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.out,
            "Node:        n1\n"
            "Version:     \n"
            "PID:         0\n"
            "Uptime:      -\n"
            "Cgroup:      \n"
            "Pin dir:     \n"
            "\n"
            "Config:      -\n"
            "Generation:  0 (nothing applied yet)\n"
            "Resources:   0 services, 0 workloads\n"
            "\n"
            "Programs:\n"
            "No programs.\n"
            "\n"
            "Maps:\n"
            "No maps.\n"
            "\n"
            "Kernel features:\n"
            "Not reported.\n"
            "\n"
            "Counters:\n"
            "No counters.\n");
}

TEST_F(MeshctlTest, GetServices) {
  start_agent("n1");
  const auto r = run({"get", "services"});
  EXPECT_EQ(r.err, "");
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(
      r.out,
      "NAMESPACE   NAME   VIPS                                      POLICY         ENDPOINTS\n"
      "default     api    [fd00:96::1]:443/TCP                      RANDOM         0/0\n"
      "default     web    10.96.0.10:80/TCP,[fd00:96::a]:80/TCP     ROUND_ROBIN    3/3\n"
      "shop        cart   10.96.0.20:8080/TCP,10.96.0.20:8081/UDP   MAGLEV(4093)   1/2\n");
  EXPECT_EQ(run({"get", "svc"}).out, r.out);
  EXPECT_EQ(run({"get", "services", "-o", "table"}).out, r.out);
}

TEST_F(MeshctlTest, MaglevWithoutATableSizeAndUnknownPolicies) {
  auto &agent = start_agent("n1");
  agent.services.Clear();
  *agent.services.add_services() = service("a", "maglev", v1::LB_POLICY_MAGLEV, 1, 1);
  *agent.services.add_services() = service("a", "least", v1::LB_POLICY_LEAST_CONNECTIONS, 1, 1);
  *agent.services.add_services() = service("a", "future", static_cast<v1::LbPolicy>(9), 1, 1);
  const auto r = run({"get", "services"});
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.out,
            "NAMESPACE   NAME     VIPS   POLICY              ENDPOINTS\n"
            "a           future   -      UNKNOWN(9)          1/1\n"
            "a           least    -      LEAST_CONNECTIONS   1/1\n"
            "a           maglev   -      MAGLEV              1/1\n");
}

const char *const kWebEndpoints =
    "default/web   web-v1-a   10.78.1.10:8080   v1       40       40.0%\n"
    "default/web   web-v1-b   10.78.2.13:8080   v1       40       40.0%\n"
    "default/web   web-v2     10.78.1.12:8080   v2       20       20.0%\n";

TEST_F(MeshctlTest, GetEndpoints) {
  start_agent("n1");
  const auto r = run({"get", "endpoints"});
  EXPECT_EQ(r.err, "");
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.out,
            std::string("SERVICE       ENDPOINT   ADDRESS           SUBSET   WEIGHT   SHARE\n") +
                kWebEndpoints +
                "shop/cart     cart-1     10.78.2.10:9000   -        1        100.0%\n"
                "shop/cart     cart-2     10.78.2.11:9000   -        0        0.0%\n");
  EXPECT_EQ(run({"get", "ep"}).out, r.out);
}

TEST_F(MeshctlTest, GetEndpointsOfOneService) {
  start_agent("n1");
  const std::string expected =
      std::string("SERVICE       ENDPOINT   ADDRESS           SUBSET   WEIGHT   SHARE\n") +
      kWebEndpoints;
  for (const std::string filter : {"default/web", "web"}) {
    const auto r = run({"get", "endpoints", filter});
    EXPECT_EQ(r.err, "") << filter;
    EXPECT_EQ(r.code, 0) << filter;
    EXPECT_EQ(r.out, expected) << filter;
  }
  const auto cart = run({"get", "endpoints", "shop/cart"});
  EXPECT_EQ(cart.out,
            "SERVICE     ENDPOINT   ADDRESS           SUBSET   WEIGHT   SHARE\n"
            "shop/cart   cart-1     10.78.2.10:9000   -        1        100.0%\n"
            "shop/cart   cart-2     10.78.2.11:9000   -        0        0.0%\n");
}

TEST_F(MeshctlTest, Ipv6EndpointAddressesAreBracketed) {
  auto &agent = start_agent("n1");
  agent.endpoints.Clear();
  add_endpoint(agent.endpoints, "default", "web", "web-v1-a", "fd00:78::10", 8080, "v1", 40, 50.0);
  add_endpoint(agent.endpoints, "default", "web", "web-v1-a", "10.78.1.10", 8080, "v1", 40, 50.0);
  add_endpoint(agent.endpoints, "default", "web", "web-v2", "::ffff:10.78.1.12", 443, "v2", 0, 0.0);
  const auto r = run({"get", "endpoints"});
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.out,
            "SERVICE       ENDPOINT   ADDRESS                   SUBSET   WEIGHT   SHARE\n"
            "default/web   web-v1-a   10.78.1.10:8080           v1       40       50.0%\n"
            "default/web   web-v1-a   [fd00:78::10]:8080        v1       40       50.0%\n"
            "default/web   web-v2     [::ffff:10.78.1.12]:443   v2       0        0.0%\n");
}

TEST_F(MeshctlTest, GetEndpointsOfAServiceWithoutEndpoints) {
  start_agent("n1");
  const auto r = run({"get", "endpoints", "default/api"});
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.out, "No endpoints.\n");
  EXPECT_EQ(r.err, "");
}

TEST_F(MeshctlTest, GetEndpointsOfAnUnknownService) {
  start_agent("n1");
  auto r = run({"get", "endpoints", "shop/web"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err, "meshctl: service \"shop/web\" not found\n");
  r = run({"get", "endpoints", "nope"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err, "meshctl: service \"nope\" (any namespace) not found\n");
  r = run({"get", "endpoints", "a/b/c"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err, "meshctl: service filter \"a/b/c\": give NAMESPACE/NAME or NAME\n");
}

const char *const kServicesJson = R"({
  "services": [
    {
      "namespace": "default",
      "name": "api",
      "vips": [
        {
          "address": "fd00:96::1",
          "port": 443,
          "protocol": "PROTOCOL_UNSPECIFIED"
        }
      ],
      "lbPolicy": "LB_POLICY_UNSPECIFIED",
      "endpoints": 0,
      "usableEndpoints": 0,
      "slots": [],
      "maglevTableSize": 0
    },
    {
      "namespace": "default",
      "name": "web",
      "vips": [
        {
          "address": "10.96.0.10",
          "port": 80,
          "protocol": "PROTOCOL_TCP"
        },
        {
          "address": "fd00:96::a",
          "port": 80,
          "protocol": "PROTOCOL_TCP"
        }
      ],
      "lbPolicy": "LB_POLICY_ROUND_ROBIN",
      "endpoints": 3,
      "usableEndpoints": 3,
      "slots": [],
      "maglevTableSize": 0
    },
    {
      "namespace": "shop",
      "name": "cart",
      "vips": [
        {
          "address": "10.96.0.20",
          "port": 8080,
          "protocol": "PROTOCOL_TCP"
        },
        {
          "address": "10.96.0.20",
          "port": 8081,
          "protocol": "PROTOCOL_UDP"
        }
      ],
      "lbPolicy": "LB_POLICY_MAGLEV",
      "endpoints": 2,
      "usableEndpoints": 1,
      "slots": [
        4,
        5
      ],
      "maglevTableSize": 4093
    }
  ],
  "generation": "7"
}
)";

const char *const kServicesYaml = R"(services:
  - namespace: default
    name: api
    vips:
      - address: fd00:96::1
        port: 443
        protocol: PROTOCOL_UNSPECIFIED
    lbPolicy: LB_POLICY_UNSPECIFIED
    endpoints: 0
    usableEndpoints: 0
    slots: []
    maglevTableSize: 0
  - namespace: default
    name: web
    vips:
      - address: "10.96.0.10"
        port: 80
        protocol: PROTOCOL_TCP
      - address: fd00:96::a
        port: 80
        protocol: PROTOCOL_TCP
    lbPolicy: LB_POLICY_ROUND_ROBIN
    endpoints: 3
    usableEndpoints: 3
    slots: []
    maglevTableSize: 0
  - namespace: shop
    name: cart
    vips:
      - address: "10.96.0.20"
        port: 8080
        protocol: PROTOCOL_TCP
      - address: "10.96.0.20"
        port: 8081
        protocol: PROTOCOL_UDP
    lbPolicy: LB_POLICY_MAGLEV
    endpoints: 2
    usableEndpoints: 1
    slots:
      - 4
      - 5
    maglevTableSize: 4093
generation: "7"
)";

TEST_F(MeshctlTest, GetServicesAsJsonAndYaml) {
  start_agent("n1");
  auto r = run({"get", "services", "-o", "json"});
  EXPECT_EQ(r.err, "");
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.out, kServicesJson);
  EXPECT_EQ(run({"get", "services", "--output=json"}).out, kServicesJson);
  r = run({"get", "svc", "--output", "yaml"});
  EXPECT_EQ(r.err, "");
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.out, kServicesYaml);
}

const char *const kWebEndpointsJson = R"({
  "endpoints": [
    {
      "serviceNamespace": "default",
      "serviceName": "web",
      "workload": "web-v1-a",
      "address": "10.78.1.10",
      "port": 8080,
      "subset": "v1",
      "kernelWeight": 40,
      "sharePercent": 40
    },
    {
      "serviceNamespace": "default",
      "serviceName": "web",
      "workload": "web-v1-b",
      "address": "10.78.2.13",
      "port": 8080,
      "subset": "v1",
      "kernelWeight": 40,
      "sharePercent": 40
    },
    {
      "serviceNamespace": "default",
      "serviceName": "web",
      "workload": "web-v2",
      "address": "10.78.1.12",
      "port": 8080,
      "subset": "v2",
      "kernelWeight": 20,
      "sharePercent": 20
    }
  ]
}
)";

const char *const kWebEndpointsYaml = R"(endpoints:
  - serviceNamespace: default
    serviceName: web
    workload: web-v1-a
    address: "10.78.1.10"
    port: 8080
    subset: v1
    kernelWeight: 40
    sharePercent: 40
  - serviceNamespace: default
    serviceName: web
    workload: web-v1-b
    address: "10.78.2.13"
    port: 8080
    subset: v1
    kernelWeight: 40
    sharePercent: 40
  - serviceNamespace: default
    serviceName: web
    workload: web-v2
    address: "10.78.1.12"
    port: 8080
    subset: v2
    kernelWeight: 20
    sharePercent: 20
)";

TEST_F(MeshctlTest, GetEndpointsAsJsonAndYamlAreFiltered) {
  start_agent("n1");
  auto r = run({"get", "endpoints", "web", "-o", "json"});
  EXPECT_EQ(r.err, "");
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.out, kWebEndpointsJson);
  r = run({"get", "ep", "-o", "yaml", "default/web"});
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.out, kWebEndpointsYaml);
  r = run({"get", "endpoints", "shop/web", "-o", "json"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err, "meshctl: service \"shop/web\" not found\n");
}

const char *const kStatusJson = R"({
  "node": "n1",
  "version": "0.1.0",
  "pid": "4242",
  "startedUnixMs": "1714561077000",
  "cgroup": "/sys/fs/cgroup/unified/sockmesh",
  "pinDir": "/sys/fs/bpf/sockmesh/n1",
  "config": {
    "source": "file:/etc/sockmesh/config.yaml",
    "generation": "7",
    "appliedUnixMs": "1714564497000",
    "lastError": "",
    "lastErrorUnixMs": "0",
    "services": 3,
    "workloads": 5,
    "streamState": "",
    "systemVersion": "",
    "lastNack": "",
    "lastAckUnixMs": "0",
    "mapWrites": "0"
  },
  "programs": [
    {
      "name": "sm_connect4",
      "id": 42,
      "attachType": "cgroup/connect4",
      "linkId": 7,
      "attached": true,
      "kept": false
    },
    {
      "name": "sm_getpeername4",
      "id": 43,
      "attachType": "cgroup/getpeername4",
      "linkId": 8,
      "attached": true,
      "kept": true
    }
  ],
  "maps": [
    {
      "name": "sm_services",
      "id": 10,
      "type": "hash",
      "entries": 4,
      "maxEntries": 65536
    },
    {
      "name": "sm_backend_sets",
      "id": 11,
      "type": "array",
      "entries": 3,
      "maxEntries": 1024
    }
  ],
  "counters": [
    {
      "name": "connect_balanced",
      "value": "1200"
    },
    {
      "name": "connect_no_backend",
      "value": "0"
    }
  ],
  "features": [
    {
      "name": "attach:cgroup/getpeername4",
      "present": true,
      "required": true,
      "since": "5.8",
      "without": ""
    },
    {
      "name": "helper:bpf_set_retval",
      "present": false,
      "required": false,
      "since": "5.18",
      "without": "refused connects report EPERM"
    }
  ]
}
)";

const char *const kStatusYaml = R"(node: n1
version: "0.1.0"
pid: "4242"
startedUnixMs: "1714561077000"
cgroup: /sys/fs/cgroup/unified/sockmesh
pinDir: /sys/fs/bpf/sockmesh/n1
config:
  source: file:/etc/sockmesh/config.yaml
  generation: "7"
  appliedUnixMs: "1714564497000"
  lastError: ""
  lastErrorUnixMs: "0"
  services: 3
  workloads: 5
  streamState: ""
  systemVersion: ""
  lastNack: ""
  lastAckUnixMs: "0"
  mapWrites: "0"
programs:
  - name: sm_connect4
    id: 42
    attachType: cgroup/connect4
    linkId: 7
    attached: true
    kept: false
  - name: sm_getpeername4
    id: 43
    attachType: cgroup/getpeername4
    linkId: 8
    attached: true
    kept: true
maps:
  - name: sm_services
    id: 10
    type: hash
    entries: 4
    maxEntries: 65536
  - name: sm_backend_sets
    id: 11
    type: array
    entries: 3
    maxEntries: 1024
counters:
  - name: connect_balanced
    value: "1200"
  - name: connect_no_backend
    value: "0"
features:
  - name: attach:cgroup/getpeername4
    present: true
    required: true
    since: "5.8"
    without: ""
  - name: helper:bpf_set_retval
    present: false
    required: false
    since: "5.18"
    without: refused connects report EPERM
)";

TEST_F(MeshctlTest, StatusAsJsonAndYaml) {
  start_agent("n1");
  auto r = run({"status", "-o", "json"});
  EXPECT_EQ(r.err, "");
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.out, kStatusJson);
  r = run({"status", "-o", "yaml"});
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.out, kStatusYaml);
}

TEST_F(MeshctlTest, DocumentsOfEmptyAnswersKeepTheirShape) {
  auto &agent = start_agent("n1");
  agent.status = v1::AgentStatus();
  agent.services.Clear();
  agent.endpoints.Clear();
  EXPECT_EQ(run({"get", "services", "-o", "json"}).out,
            "{\n  \"services\": [],\n  \"generation\": \"0\"\n}\n");
  EXPECT_EQ(run({"get", "services", "-o", "yaml"}).out, "services: []\ngeneration: \"0\"\n");
  EXPECT_EQ(run({"get", "endpoints", "-o", "json"}).out, "{\n  \"endpoints\": []\n}\n");
  EXPECT_EQ(run({"get", "endpoints", "-o", "yaml"}).out, "endpoints: []\n");
  EXPECT_EQ(run({"status", "-o", "yaml"}).out,
            "node: \"\"\n"
            "version: \"\"\n"
            "pid: \"0\"\n"
            "startedUnixMs: \"0\"\n"
            "cgroup: \"\"\n"
            "pinDir: \"\"\n"
            "config:\n"
            "  source: \"\"\n"
            "  generation: \"0\"\n"
            "  appliedUnixMs: \"0\"\n"
            "  lastError: \"\"\n"
            "  lastErrorUnixMs: \"0\"\n"
            "  services: 0\n"
            "  workloads: 0\n"
            "  streamState: \"\"\n"
            "  systemVersion: \"\"\n"
            "  lastNack: \"\"\n"
            "  lastAckUnixMs: \"0\"\n"
            "  mapWrites: \"0\"\n"
            "programs: []\n"
            "maps: []\n"
            "counters: []\n"
            "features: []\n");
}

TEST_F(MeshctlTest, YamlQuotesStringsThatWouldReadAsAnotherType) {
  auto &agent = start_agent("n1");
  agent.endpoints.Clear();
  add_endpoint(agent.endpoints, "yes", "true", "null", "1e3", 1, "", 1, 12.5);
  add_endpoint(agent.endpoints, "ns", "multi\nline: x", "-", "fd00::1", 2, "~", 1, 87.5);
  const auto r = run({"get", "endpoints", "-o", "yaml"});
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.out,
            "endpoints:\n"
            "  - serviceNamespace: ns\n"
            "    serviceName: \"multi\\nline: x\"\n"
            "    workload: \"-\"\n"
            "    address: fd00::1\n"
            "    port: 2\n"
            "    subset: \"~\"\n"
            "    kernelWeight: 1\n"
            "    sharePercent: 87.5\n"
            "  - serviceNamespace: \"yes\"\n"
            "    serviceName: \"true\"\n"
            "    workload: \"null\"\n"
            "    address: \"1e3\"\n"
            "    port: 1\n"
            "    subset: \"\"\n"
            "    kernelWeight: 1\n"
            "    sharePercent: 12.5\n");
}

TEST_F(MeshctlTest, UnknownOutputFormatNamesTheChoices) {
  start_agent("n1");
  for (const std::vector<std::string> &args :
       std::vector<std::vector<std::string>>{{"status", "-o", "xml"},
                                             {"get", "services", "--output", "xml"},
                                             {"get", "endpoints", "--output=xml"}}) {
    const auto r = run(args);
    EXPECT_EQ(r.code, 2);
    EXPECT_EQ(r.out, "");
    EXPECT_EQ(
        r.err,
        "meshctl: --output: must be one of table, json, yaml, got \"xml\" (see meshctl --help)\n");
  }
  EXPECT_EQ(run({"version", "-o", "json"}).code, 2);
}

const char *const kWatchTable =
    "# generation 7\n"
    "NAMESPACE   NAME   VIPS                                      POLICY         ENDPOINTS\n"
    "default     api    [fd00:96::1]:443/TCP                      RANDOM         0/0\n"
    "default     web    10.96.0.10:80/TCP,[fd00:96::a]:80/TCP     ROUND_ROBIN    3/3\n"
    "shop        cart   10.96.0.20:8080/TCP,10.96.0.20:8081/UDP   MAGLEV(4093)   1/2\n"
    "\n"
    "# generation 8\n"
    "NAMESPACE   NAME   VIPS                                    POLICY        ENDPOINTS\n"
    "default     api    [fd00:96::1]:443/TCP                    RANDOM        0/0\n"
    "default     web    10.96.0.10:80/TCP,[fd00:96::a]:80/TCP   ROUND_ROBIN   1/3\n";

TEST_F(MeshctlTest, WatchServicesUntilTheAgentStops) {
  auto &agent = start_agent("n1");
  agent.watch_updates = sample_updates();
  agent.watch_end = grpc::Status(grpc::StatusCode::UNAVAILABLE, "meshd is stopping");
  const auto r = run({"get", "services", "--watch"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.out, kWatchTable);
  EXPECT_EQ(r.err, "meshctl: the agent of node \"n1\" at " +
                       (env_.run_root / "n1/admin.sock").string() +
                       " closed the watch: meshd is stopping (gRPC status 14)\n");
}

TEST_F(MeshctlTest, WatchServicesUntilInterrupted) {
  auto &agent = start_agent("n1");
  agent.watch_updates = sample_updates();
  agent.watch_holds_open = true;
  const auto r = run_interrupted_after({"get", "svc", "-w"}, 2);
  EXPECT_EQ(r.err, "");
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.out, kWatchTable);
}

TEST_F(MeshctlTest, WatchServicesAsJsonLines) {
  auto &agent = start_agent("n1");
  agent.watch_updates = sample_updates();
  const auto r = run({"get", "services", "-w", "-o", "json"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(
      r.out,
      R"({"services":[{"namespace":"default","name":"api","vips":[{"address":"fd00:96::1","port":443,"protocol":"PROTOCOL_UNSPECIFIED"}],"lbPolicy":"LB_POLICY_UNSPECIFIED","endpoints":0,"usableEndpoints":0,"slots":[],"maglevTableSize":0},{"namespace":"default","name":"web","vips":[{"address":"10.96.0.10","port":80,"protocol":"PROTOCOL_TCP"},{"address":"fd00:96::a","port":80,"protocol":"PROTOCOL_TCP"}],"lbPolicy":"LB_POLICY_ROUND_ROBIN","endpoints":3,"usableEndpoints":3,"slots":[],"maglevTableSize":0},{"namespace":"shop","name":"cart","vips":[{"address":"10.96.0.20","port":8080,"protocol":"PROTOCOL_TCP"},{"address":"10.96.0.20","port":8081,"protocol":"PROTOCOL_UDP"}],"lbPolicy":"LB_POLICY_MAGLEV","endpoints":2,"usableEndpoints":1,"slots":[4,5],"maglevTableSize":4093}],"generation":"7"})"
      "\n"
      R"({"services":[{"namespace":"default","name":"api","vips":[{"address":"fd00:96::1","port":443,"protocol":"PROTOCOL_UNSPECIFIED"}],"lbPolicy":"LB_POLICY_UNSPECIFIED","endpoints":0,"usableEndpoints":0,"slots":[],"maglevTableSize":0},{"namespace":"default","name":"web","vips":[{"address":"10.96.0.10","port":80,"protocol":"PROTOCOL_TCP"},{"address":"fd00:96::a","port":80,"protocol":"PROTOCOL_TCP"}],"lbPolicy":"LB_POLICY_ROUND_ROBIN","endpoints":3,"usableEndpoints":1,"slots":[],"maglevTableSize":0}],"generation":"8"})"
      "\n");
  EXPECT_EQ(r.err, "meshctl: the agent of node \"n1\" at " +
                       (env_.run_root / "n1/admin.sock").string() +
                       " closed the watch: no reason given\n");
}

TEST_F(MeshctlTest, WatchServicesAsYamlDocuments) {
  auto &agent = start_agent("n1");
  agent.watch_updates = sample_updates();
  agent.watch_updates[0].mutable_services()->DeleteSubrange(0, 2);  // api only
  agent.watch_updates[1].mutable_services()->Clear();
  agent.watch_holds_open = true;
  const auto r = run_interrupted_after({"get", "services", "--watch", "--output", "yaml"}, 2);
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.out,
            "---\n"
            "services:\n"
            "  - namespace: default\n"
            "    name: api\n"
            "    vips:\n"
            "      - address: fd00:96::1\n"
            "        port: 443\n"
            "        protocol: PROTOCOL_UNSPECIFIED\n"
            "    lbPolicy: LB_POLICY_UNSPECIFIED\n"
            "    endpoints: 0\n"
            "    usableEndpoints: 0\n"
            "    slots: []\n"
            "    maglevTableSize: 0\n"
            "generation: \"7\"\n"
            "---\n"
            "services: []\n"
            "generation: \"8\"\n");
}

TEST_F(MeshctlTest, WatchServicesWithoutServices) {
  auto &agent = start_agent("n1");
  agent.watch_updates = sample_updates();
  agent.watch_updates[0].mutable_services()->Clear();
  agent.watch_holds_open = true;
  const auto r = run_interrupted_after({"get", "services", "--watch"}, 2);
  EXPECT_EQ(r.code, 0);
  EXPECT_TRUE(r.out.starts_with("# generation 7\nNo services.\n\n# generation 8\nNAMESPACE"))
      << r.out;
}

TEST_F(MeshctlTest, WatchServicesFailuresBeforeTheFirstUpdate) {
  auto &agent = start_agent("n1");
  const std::string at = (env_.run_root / "n1/admin.sock").string();
  agent.watch_end = grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "unknown method");
  auto r = run({"get", "services", "--watch"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err, "meshctl: the agent of node \"n1\" at " + at +
                       " failed WatchServices: unknown method (gRPC status 12)\n");
  agent.watch_holds_open = true;
  r = run({"get", "services", "--watch", "--timeout", "0.2"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err, "meshctl: the agent of node \"n1\" at " + at +
                       " did not answer WatchServices within 0.2s (raise --timeout?)\n");
}

// Reads fd until its text contains `until` or the writer closes it.
std::string read_until(int fd, std::string_view until) {
  std::string text;
  char buffer[4096];
  while (text.find(until) == std::string::npos) {
    const ssize_t n = ::read(fd, buffer, sizeof(buffer));
    if (n <= 0) break;
    text.append(buffer, static_cast<std::size_t>(n));
  }
  return text;
}

TEST_F(MeshctlTest, CtrlCEndsTheWatchOfTheRealBinaryWithExit0) {
  auto &agent = start_agent("n1");
  agent.watch_updates = sample_updates();
  agent.watch_holds_open = true;
  int out[2], err[2];
  ASSERT_EQ(::pipe(out), 0);
  ASSERT_EQ(::pipe(err), 0);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, err[1], STDERR_FILENO);
  const std::string socket = (env_.run_root / "n1" / "admin.sock").string();
  std::vector<std::string> args = {MESHCTL_BINARY, "--admin-socket", socket,
                                   "get",          "services",       "--watch"};
  std::vector<char *> argv;
  for (auto &arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);
  pid_t pid = 0;
  ASSERT_EQ(::posix_spawn(&pid, MESHCTL_BINARY, &actions, nullptr, argv.data(), environ), 0);
  posix_spawn_file_actions_destroy(&actions);
  ::close(out[1]);
  ::close(err[1]);

  const std::string shown = read_until(out[0], "1/3\n");
  ::kill(pid, SIGINT);
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  const std::string rest = read_until(out[0], "\x01"), errors = read_until(err[0], "\x01");
  ::close(out[0]);
  ::close(err[0]);
  ASSERT_TRUE(WIFEXITED(status)) << "status " << status;
  EXPECT_EQ(WEXITSTATUS(status), 0) << errors;
  EXPECT_EQ(shown + rest, kWatchTable);
  EXPECT_EQ(errors, "");
}

TEST_F(MeshctlTest, InterruptedCallExits130Silently) {
  start_agent("n1").status_delay = std::chrono::milliseconds(1500);
  std::stop_source interrupt;
  env_.interrupted = interrupt.get_token();
  std::jthread operator_([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    interrupt.request_stop();
  });
  const auto started = std::chrono::steady_clock::now();
  const auto r = run({"status"});
  EXPECT_EQ(r.code, 130);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err, "");
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::milliseconds(1000));
}

TEST_F(MeshctlTest, EmptyLists) {
  auto &agent = start_agent("n1");
  agent.services.Clear();
  agent.endpoints.Clear();
  auto r = run({"get", "services"});
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.out, "No services.\n");
  EXPECT_EQ(r.err, "");
  r = run({"get", "endpoints"});
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.out, "No endpoints.\n");
  EXPECT_EQ(r.err, "");
}

TEST_F(MeshctlTest, GlobalOptionsMayFollowTheCommand) {
  start_agent("n1");
  start_agent("n2");
  const auto r = run({"get", "endpoints", "shop/cart", "--node", "n2", "--timeout", "2"});
  EXPECT_EQ(r.err, "");
  EXPECT_EQ(r.code, 0);
  EXPECT_TRUE(r.out.starts_with("SERVICE     ENDPOINT")) << r.out;
}

TEST_F(MeshctlTest, ExplicitAdminSocket) {
  start_agent("n1");
  start_agent("n2").status.set_node("n2");
  const auto r = run({"status", "--admin-socket", (env_.run_root / "n2" / "admin.sock").string()});
  EXPECT_EQ(r.code, 0);
  EXPECT_TRUE(r.out.starts_with("Node:        n2\n")) << r.out;
}

TEST_F(MeshctlTest, NodeWhoseSocketDoesNotExist) {
  start_agent("n1");
  const auto r = run({"--node", "n9", "get", "services"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err, "meshctl: cannot reach the agent of node \"n9\" at " +
                       (env_.run_root / "n9/admin.sock").string() +
                       ": no such socket (is meshd running?)\n");
}

TEST_F(MeshctlTest, SocketWithoutAListener) {
  fs::create_directories(env_.run_root / "n1");
  const auto path = env_.run_root / "n1" / "admin.sock";
  // A socket left behind by an agent that died: bound once, nobody listens.
  const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  ASSERT_LT(path.string().size(), sizeof(addr.sun_path));
  std::strcpy(addr.sun_path, path.c_str());
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr *>(&addr), sizeof(addr)), 0);
  ::close(fd);

  const auto r = run({"status"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.out, "");
  const std::string prefix =
      "meshctl: cannot reach the agent of node \"n1\" at " + path.string() + ": ";
  EXPECT_TRUE(r.err.starts_with(prefix)) << r.err;
  EXPECT_TRUE(r.err.ends_with(" (is meshd running?)\n")) << r.err;
  EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << r.err;
}

TEST_F(MeshctlTest, AgentTooSlowToAnswer) {
  start_agent("n1").status_delay = std::chrono::milliseconds(1500);
  const auto r = run({"--timeout", "0.2", "status"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err, "meshctl: the agent of node \"n1\" at " +
                       (env_.run_root / "n1/admin.sock").string() +
                       " did not answer GetStatus within 0.2s (raise --timeout?)\n");
}

TEST_F(MeshctlTest, NoAgentAtAll) {
  auto r = run({"status"});  // the run root does not even exist
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.out, "");
  const std::string expected = "meshctl: no node agent found under " + env_.run_root.string() +
                               " (is meshd running? pick one with --node)\n";
  EXPECT_EQ(r.err, expected);
  fs::create_directories(env_.run_root / "n1");  // a node directory without a socket does not count
  r = run({"get", "services"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err, expected);
}

TEST_F(MeshctlTest, SeveralAgents) {
  for (const char *node : {"b", "a"}) {
    fs::create_directories(env_.run_root / node);
    std::ofstream(env_.run_root / node / "admin.sock").put('\0');
  }
  const auto r = run({"get", "endpoints"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err, "meshctl: several node agents run here (a, b): pick one with --node\n");
}

TEST_F(MeshctlTest, DefaultRunRootIsTheAgentsOne) {
  const auto target = resolve_target({.node = "n1", .admin_socket = ""}, Environment{}.run_root);
  EXPECT_EQ(target.socket_path.string(), paths::admin_socket("n1"));
  EXPECT_EQ(target.describe(), "the agent of node \"n1\" at /run/sockmesh/n1/admin.sock");
}

TEST_F(MeshctlTest, UsageErrorsAreOneLineWithExitCode2) {
  for (const std::vector<std::string> &args :
       std::vector<std::vector<std::string>>{{},
                                             {"frobnicate"},
                                             {"get"},
                                             {"get", "pods"},
                                             {"--timeout", "0", "status"},
                                             {"--timeout", "1e300", "status"},
                                             {"--node", "a", "--admin-socket", "/x", "status"}}) {
    const auto r = run(args);
    EXPECT_EQ(r.code, 2) << r.err;
    EXPECT_EQ(r.out, "");
    EXPECT_TRUE(r.err.starts_with("meshctl: ")) << r.err;
    EXPECT_TRUE(r.err.ends_with(" (see meshctl --help)\n")) << r.err;
    EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << r.err;
  }
}

TEST_F(MeshctlTest, MissingCommandNamesTheChoices) {
  auto r = run({});
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(r.err,
            "meshctl: missing command, one of: status, stats, bpf, fastpath, resilience, get, "
            "describe, apply, delete, check, controlplane, node, version (see meshctl --help)\n");
  r = run({"get"});
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(r.err,
            "meshctl: get: missing command, one of: services, endpoints, workloads, policies, "
            "identities, nodes (see meshctl --help)\n");
  r = run({"cp"});
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(r.err, "meshctl: controlplane: missing command, one of: status (see meshctl --help)\n");
  r = run({"describe"});
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(r.err,
            "meshctl: describe: missing command, one of: service, workload (see meshctl --help)\n");
  r = run({"--timeout", "-1", "status"});
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(r.err,
            "meshctl: --timeout: must be a number of seconds > 0 and <= 3600, got \"-1\" (see "
            "meshctl --help)\n");
}

TEST_F(MeshctlTest, HelpListsEveryCommandAndOption) {
  auto r = run({"--help"});
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.err, "");
  EXPECT_NE(r.out.find("Usage: meshctl [OPTIONS] COMMAND\n"), std::string::npos) << r.out;
  for (const char *word :
       {"--node", "--admin-socket", "--timeout", "status", "get", "version", "Exit codes"}) {
    EXPECT_NE(r.out.find(word), std::string::npos) << word << " missing from:\n" << r.out;
  }
  r = run({"get", "--help"});
  EXPECT_EQ(r.code, 0);
  for (const char *word : {"services", "endpoints"}) {
    EXPECT_NE(r.out.find(word), std::string::npos) << word << " missing from:\n" << r.out;
  }
  r = run({"get", "services", "--help"});
  EXPECT_EQ(r.code, 0);
  for (const char *word : {"-w,--watch", "-o,--output FORMAT=table", "table, json", "yaml"}) {
    EXPECT_NE(r.out.find(word), std::string::npos) << word << " missing from:\n" << r.out;
  }
  for (const std::vector<std::string> &args : std::vector<std::vector<std::string>>{
           {"status", "--help"}, {"get", "endpoints", "--help"}}) {
    r = run(args);
    EXPECT_EQ(r.code, 0);
    EXPECT_NE(r.out.find("-o,--output FORMAT=table"), std::string::npos) << r.out;
  }
}

TEST_F(MeshctlTest, Version) {
  const auto r = run({"version"});
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.out, "meshctl " SOCKMESH_TEST_VERSION "\n");
}

}  // namespace
}  // namespace sockmesh::cli
