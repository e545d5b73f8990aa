// Same-node authorization in the kernel (docs/datapath.md, "Authorization"), with real sockets:
// a workload's TCP connect to a workload of this node is allowed or refused at connect() from
// the entries the agent compiles (reconcile::PolicyMaps), VIP or pod address, both families;
// every denial is counted per deciding rule; everything else is untouched.
#include <chrono>

#include "capture_fixture.h"
#include "sockmesh/resources/load.h"

namespace sockmesh {
namespace {

constexpr uint32_t kClient = 1, kOther = 2, kWeb = 3, kDb = 4, kRemote = 5, kWeb6 = 6;
constexpr uint32_t kLocalNode = 1, kRemoteNode = 2;
const std::string kDefaultDeny =
    "default deny (ALLOW policies select the workload but none matched)";

std::string policy(std::string_view ns, std::string_view name, std::string_view spec) {
  return "---\napiVersion: sockmesh/v1\nkind: AuthorizationPolicy\nmetadata: {name: " +
         std::string(name) + ", namespace: " + std::string(ns) + "}\nspec:\n" + std::string(spec);
}

reconcile::PolicyWorkload workload(uint32_t number, const std::string &sa, const std::string &app) {
  return {number, policy::Source::workload("cluster.local", "demo", sa),
          policy::Destination{"demo", {{"app", app}}, "demo/" + app}};
}

// What a connect did: "<where>" when it landed, "refused" for ECONNREFUSED within a second.
std::string outcome(const Landing &l) {
  if (l.err == 0) return l.where;
  if (l.err == ECONNREFUSED && l.connect_us < 1000000) return "refused";
  return "err " + std::to_string(l.err) + " after " + std::to_string(l.connect_us) + "us";
}

class PolicyTest : public CaptureTest {
 protected:
  // client and other are workloads of this node (cgroups client, other; unknown is none);
  // web (127.0.0.2), db (127.0.0.3) and web6 (::1) run on this node, remote (127.0.0.4) on
  // another one.
  void mesh() {
    capture_->sync_workloads(
        {{cgroup_id(cg_.client), kClient, false}, {cgroup_id(cg_.other), kOther, false}});
    capture_->sync_endpoints({{parse_ip("127.0.0.2"), kWeb, kLocalNode, false},
                              {parse_ip("127.0.0.3"), kDb, kLocalNode, false},
                              {parse_ip("127.0.0.4"), kRemote, kRemoteNode, true},
                              {parse_ip("::1"), kWeb6, kLocalNode, false}});
  }

  // web: only the client, only on 9001. db: everyone but "other". web6: the client on 9001,
  // "other" on every port.
  reconcile::PolicySyncStats policies() {
    const std::string yaml = policy("demo", "web", R"(  selector: {matchLabels: {app: web}}
  rules:
    - from: [{source: {principals: [cluster.local/ns/demo/sa/client]}}]
      to: [{operation: {ports: [9001]}}]
)") + policy("demo", "deny-other-to-db", R"(  selector: {matchLabels: {app: db}}
  action: DENY
  rules:
    - from: [{source: {principals: [cluster.local/ns/demo/sa/other]}}]
)") + policy("demo", "web6", R"(  selector: {matchLabels: {app: web6}}
  rules:
    - from: [{source: {principals: [cluster.local/ns/demo/sa/client]}}]
      to: [{operation: {ports: [9001]}}]
    - from: [{source: {principals: [cluster.local/ns/demo/sa/other]}}]
)");
    auto loaded = resources::load_yaml_string(yaml, "policies.yaml");
    EXPECT_TRUE(loaded.ok()) << (loaded.errors.empty() ? "" : loaded.errors.front());
    index_ = policy::PolicyIndex::build(loaded.snapshot.authorization_policies());
    return policy_->apply(index_, local());
  }

  static std::vector<reconcile::PolicyWorkload> local() {
    return {workload(kClient, "client", "client"), workload(kOther, "other", "other"),
            workload(kWeb, "web", "web"), workload(kDb, "db", "db"),
            workload(kWeb6, "web6", "web6")};
  }

  std::map<std::string, uint64_t> denials() {
    std::map<std::string, uint64_t> out;
    for (const auto &d : policy_->denials()) out[d.rule] = d.count;
    return out;
  }

  policy::PolicyIndex index_;
};

TEST_F(PolicyTest, AllowedPairsConnectAndDeniedOnesAreRefusedAtOnce) {
  mesh();
  policies();
  auto out = in_child([](Node &n) {
    const auto &cg = n.cgroups();
    n.emit("client_web", outcome(n.tcp(cg.client, "127.0.0.2", 9001)));
    n.emit("other_web", outcome(n.tcp(cg.other, "127.0.0.2", 9001)));
    n.emit("client_db", outcome(n.tcp(cg.client, "127.0.0.3", 9001)));
    n.emit("other_db", outcome(n.tcp(cg.other, "127.0.0.3", 9001)));
    n.emit("other_db_again", outcome(n.tcp(cg.other, "127.0.0.3", 9001)));
  });
  EXPECT_EQ(out["client_web"], "be2");
  EXPECT_EQ(out["other_web"], "refused");
  EXPECT_EQ(out["client_db"], "be3");
  EXPECT_EQ(out["other_db"], "refused");
  EXPECT_EQ(out["other_db_again"], "refused");
  EXPECT_EQ(counter("connect_denied"), 3u);
  EXPECT_EQ(counter("connect_passthrough"), 2u);
  const std::map<std::string, uint64_t> expected = {{kDefaultDeny, 1},
                                                    {"DENY demo/deny-other-to-db rules[0]", 2}};
  EXPECT_EQ(denials(), expected);
  // The agent's own evaluator names the same rules.
  const auto w = local();
  EXPECT_EQ(index_.decide(w[1].source, w[2].destination, 9001).decided_by, kDefaultDeny);
  EXPECT_EQ(index_.decide(w[1].source, w[3].destination, 9001).decided_by,
            "DENY demo/deny-other-to-db rules[0]");
}

TEST_F(PolicyTest, OtherPortsFollowThePortZeroEntryInBothFamilies) {
  mesh();
  policies();
  auto out = in_child([](Node &n) {
    const auto &cg = n.cgroups();
    n.emit("client_9001", outcome(n.tcp(cg.client, "::1", 9001)));  // its own entry: allowed
    n.emit("client_9002", outcome(n.tcp(cg.client, "::1", 9002)));  // port 0: default deny
    n.emit("other_9001", outcome(n.tcp(cg.other, "::1", 9001)));    // no entry: allowed
    n.emit("other_9002", outcome(n.tcp(cg.other, "::1", 9002)));
    // IPv4-mapped on a dual-stack socket: web (127.0.0.2) decided as IPv4.
    n.emit("mapped_client", outcome(n.tcp(cg.client, "::ffff:127.0.0.2", 9001, AF_INET6)));
    n.emit("mapped_other", outcome(n.tcp(cg.other, "::ffff:127.0.0.2", 9001, AF_INET6)));
  });
  EXPECT_EQ(out["client_9001"], "be9001");
  EXPECT_EQ(out["client_9002"], "refused");
  EXPECT_EQ(out["other_9001"], "be9001");
  EXPECT_EQ(out["other_9002"], "be9002");
  EXPECT_EQ(out["mapped_client"], "be2");
  EXPECT_EQ(out["mapped_other"], "refused");
  EXPECT_EQ(counter("connect_denied"), 2u);
  EXPECT_EQ(denials(), (std::map<std::string, uint64_t>{{kDefaultDeny, 2}}));
}

TEST_F(PolicyTest, VipBackendsAreDecidedLikePodAddresses) {
  reconciler_->apply({{vip("10.96.0.10", 80), service({{"127.0.0.2", 9001}})},
                      {vip("fd00:96::10", 80), service({{"::1", 9002}})}});
  mesh();
  policies();
  auto out = in_child([](Node &n) {
    const auto &cg = n.cgroups();
    auto allowed = n.tcp(cg.client, "10.96.0.10", 80);
    n.emit("client_vip", outcome(allowed) + " " + allowed.peer);
    n.emit("other_vip", outcome(n.tcp(cg.other, "10.96.0.10", 80)));
    // The backend's port decides (9002: web6's port 0), not the VIP's.
    n.emit("client_vip6", outcome(n.tcp(cg.client, "fd00:96::10", 80)));
    n.emit("other_vip6", outcome(n.tcp(cg.other, "fd00:96::10", 80)));
  });
  EXPECT_EQ(out["client_vip"], "be2 10.96.0.10:80");
  EXPECT_EQ(out["other_vip"], "refused");
  EXPECT_EQ(out["client_vip6"], "refused");
  EXPECT_EQ(out["other_vip6"], "be9002");
  EXPECT_EQ(counter("connect_denied"), 2u);
  EXPECT_EQ(counter("connect_balanced"), 2u);  // a denied connect is not balanced
  EXPECT_EQ(denials(), (std::map<std::string, uint64_t>{{kDefaultDeny, 2}}));
}

TEST_F(PolicyTest, NonWorkloadsRemoteDestinationsAndUdpAreUntouched) {
  mesh();
  // Deny everything between every pair, the remote destination included (the agent never
  // compiles entries for it; the kernel must not apply them either).
  reconcile::CompiledPolicy all;
  all.rules = {reconcile::default_deny_rule()};
  for (uint32_t src : {kClient, kOther})
    for (uint32_t dst : {kWeb, kDb, kRemote, kWeb6}) {
      reconcile::PolicyEntry e{};
      e.key.src = src;
      e.key.dst = dst;
      e.value.verdict = SM_POLICY_DENY;
      all.entries.push_back(e);
    }
  policy_->sync(all);
  auto out = in_child([](Node &n) {
    const auto &cg = n.cgroups();
    n.emit("unknown", outcome(n.tcp(cg.unknown, "127.0.0.2", 9001)));         // no workload
    n.emit("root", outcome(n.tcp(cg.root, "127.0.0.2", 9001)));               // no programs
    n.emit("remote", outcome(n.tcp(cg.client, "127.0.0.4", 9001)));           // another node
    n.emit("outside", outcome(n.tcp(cg.client, "127.0.0.1", kControlPort)));  // no workload
    n.emit("udp", n.udp(cg.client, "127.0.0.2", 9001));
    n.emit("denied", outcome(n.tcp(cg.client, "127.0.0.2", 9001)));  // the same setup denies
  });
  EXPECT_EQ(out["unknown"], "be2");
  EXPECT_EQ(out["root"], "be2");
  EXPECT_EQ(out["remote"], "be4");
  EXPECT_EQ(out["outside"], "control");
  EXPECT_EQ(out["udp"], "be2");
  EXPECT_EQ(out["denied"], "refused");
  EXPECT_EQ(counter("connect_denied"), 1u);
}

TEST_F(PolicyTest, ContainerCgroupsBelowAWorkloadAreDecidedAsIt) {
  mesh();
  capture_->sync_workloads({{cgroup_id(cg_.client), kClient, false},
                            {cgroup_id(cg_.other), kOther, false},
                            {cgroup_id(cg_.sidecar), kOther, false}});
  policies();
  auto out = in_child([](Node &n) {
    const auto &cg = n.cgroups();
    n.emit("container", outcome(n.tcp(cg.container, "127.0.0.2", 9001)));  // client's
    n.emit("sidecar", outcome(n.tcp(cg.sidecar, "127.0.0.2", 9001)));      // registered: other
  });
  EXPECT_EQ(out["container"], "be2");
  EXPECT_EQ(out["sidecar"], "refused");
}

TEST_F(PolicyTest, APolicyChangeRewritesOnlyTheDifferenceAndTakesEffect) {
  mesh();
  const auto first = policies();
  EXPECT_EQ(first.written, first.entries);
  EXPECT_EQ(first.removed, 0u);
  // The same policies again: nothing to write.
  const auto again = policy_->apply(index_, local());
  EXPECT_EQ(again.written + again.removed, 0u);
  EXPECT_EQ(again.unchanged, first.entries);
  // Drop the db policy: only db's entries go.
  const auto entries = policy_->entries();
  const size_t db_entries =
      std::count_if(entries.begin(), entries.end(), [](const auto &e) { return e.key.dst == kDb; });
  ASSERT_GT(db_entries, 0u);
  auto loaded =
      resources::load_yaml_string(policy("demo", "web", R"(  selector: {matchLabels: {app: web}}
  rules:
    - from: [{source: {principals: [cluster.local/ns/demo/sa/client]}}]
      to: [{operation: {ports: [9001]}}]
)") + policy("demo", "web6", R"(  selector: {matchLabels: {app: web6}}
  rules:
    - from: [{source: {principals: [cluster.local/ns/demo/sa/client]}}]
      to: [{operation: {ports: [9001]}}]
    - from: [{source: {principals: [cluster.local/ns/demo/sa/other]}}]
)"),
                                  "policies.yaml");
  ASSERT_TRUE(loaded.ok());
  const auto change =
      policy_->apply(policy::PolicyIndex::build(loaded.snapshot.authorization_policies()), local());
  EXPECT_EQ(change.written, 0u);
  EXPECT_EQ(change.removed, db_entries);
  EXPECT_EQ(change.entries, first.entries - db_entries);
  auto out = in_child(
      [](Node &n) { n.emit("other_db", outcome(n.tcp(n.cgroups().other, "127.0.0.3", 9001))); });
  EXPECT_EQ(out["other_db"], "be3");
  // A restarted agent adopts the map: nothing to rewrite.
  close_datapath();
  open_datapath();
  EXPECT_EQ(policy_->entries().size(), change.entries);
}

TEST_F(PolicyTest, ACompileOverTheBoundsKeepsTheLastGoodEntries) {
  mesh();
  const auto good = policies();
  const auto before = policy_->entries();
  // Every local workload count that would exceed the bound is refused before anything is written.
  std::vector<reconcile::PolicyWorkload> many;
  for (uint32_t i = 1; i <= 300; i++) many.push_back(workload(i, "w" + std::to_string(i), "web"));
  // 300 destinations selected by "web" x 300 sources: 90,000 port-0 denies > 65,536.
  EXPECT_THROW(policy_->apply(index_, many), std::length_error);
  const auto after = policy_->entries();
  ASSERT_EQ(after.size(), before.size());
  EXPECT_EQ(std::memcmp(after.data(), before.data(), before.size() * sizeof(before[0])), 0);
  EXPECT_EQ(good.entries, before.size());
}

}  // namespace
}  // namespace sockmesh
