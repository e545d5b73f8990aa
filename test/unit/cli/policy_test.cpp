// meshctl's authorization commands end to end in-process against a fake meshcp: get policies,
// describe workload, check, and policies in apply and delete. Exact output.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "fake_controlplane.h"
#include "meshctl_harness.h"
#include "sockmesh/cli/manifest.h"
#include "sockmesh/cli/meshctl.h"

namespace sockmesh::cli {
namespace {

namespace fs = std::filesystem;
using testing::kNow;
using testing::MeshctlHarness;
using testing::Result;

// Five workloads, two services (demo/db is also a workload's name), three policies:
// web-from-client lets only the client's service account reach the web workloads on 8080,
// freeze-v2 denies everything to v2 on 8080, deny-legacy (mesh-wide) denies */sa/legacy.
constexpr std::string_view kMesh = R"(apiVersion: sockmesh/v1
kind: Workload
metadata: {name: web-v1-a, namespace: demo, labels: {app: web, version: v1}}
spec: {serviceAccount: web, node: n1, addresses: [10.78.1.10, "fd00:78:1::10"], cgroupPath: pods/web-v1-a}
---
apiVersion: sockmesh/v1
kind: Workload
metadata: {name: web-v2-a, namespace: demo, labels: {app: web, version: v2}}
spec: {serviceAccount: web, node: n2, addresses: [10.78.2.11]}
---
apiVersion: sockmesh/v1
kind: Workload
metadata: {name: client, namespace: demo, labels: {app: client}}
spec: {serviceAccount: client, node: n1, addresses: [10.78.1.20]}
---
apiVersion: sockmesh/v1
kind: Workload
metadata: {name: intruder, namespace: demo}
spec: {serviceAccount: intruder, node: n2, addresses: [10.78.2.20], captured: false}
---
apiVersion: sockmesh/v1
kind: Workload
metadata: {name: db, namespace: demo, labels: {app: db}}
spec: {serviceAccount: db, node: n2, addresses: [10.78.2.30]}
---
apiVersion: sockmesh/v1
kind: Service
metadata: {name: web, namespace: demo}
spec:
  vips: [{address: 10.96.0.10, port: 80}, {address: "fd00:96::a", port: 80}]
  endpoints: [{workload: web-v1-a, port: 8080}, {workload: web-v2-a, port: 8080, weight: 3}]
---
apiVersion: sockmesh/v1
kind: Service
metadata: {name: db, namespace: demo}
spec:
  vips: [{address: 10.96.0.20, port: 5432}]
  endpoints: [{workload: db, port: 5432}]
---
apiVersion: sockmesh/v1
kind: AuthorizationPolicy
metadata: {name: web-from-client, namespace: demo}
spec:
  selector: {matchLabels: {app: web}}
  rules:
    - from: [{source: {principals: [cluster.local/ns/demo/sa/client]}}]
      to: [{operation: {ports: ["8080"]}}]
---
apiVersion: sockmesh/v1
kind: AuthorizationPolicy
metadata: {name: freeze-v2, namespace: demo}
spec:
  selector: {matchLabels: {version: v2}}
  action: DENY
  rules: [{to: [{operation: {ports: [8080]}}]}]
---
apiVersion: sockmesh/v1
kind: AuthorizationPolicy
metadata: {name: deny-legacy, namespace: sockmesh-system}
spec:
  action: DENY
  rules: [{from: [{source: {principals: ["*/sa/legacy"]}}]}]
)";

class PolicyCliTest : public MeshctlHarness {
 protected:
  void SetUp() override {
    MeshctlHarness::SetUp();
    socket_ = dir_ / "api.sock";
    cp_ = std::make_unique<testing::FakeControlPlane>(socket_);
    hold(kMesh);
  }
  void TearDown() override {
    cp_.reset();
    MeshctlHarness::TearDown();
  }

  // meshcp holds the resources of a YAML text, each with version "r<n>" in load order.
  void hold(std::string_view yaml) {
    cp_->resources = load_manifests({write("held.yaml", yaml)});
    int version = 1;
    for (auto &resource : cp_->resources) resource.set_version("r" + std::to_string(version++));
  }

  Result run(std::vector<std::string> args) {
    args.insert(args.begin(), {"--controlplane", socket_.string()});
    return MeshctlHarness::run(args);
  }

  fs::path socket_;
  std::unique_ptr<testing::FakeControlPlane> cp_;
};

TEST_F(PolicyCliTest, GetPolicies) {
  const std::string expected =
      "NAMESPACE         NAME              ACTION   SELECTOR     RULES\n"
      "demo              freeze-v2         DENY     version=v2   1\n"
      "demo              web-from-client   ALLOW    app=web      1\n"
      "sockmesh-system   deny-legacy       DENY     -            1\n";
  auto r = run({"get", "policies"});
  EXPECT_EQ(r.err, "");
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.out, expected);
  EXPECT_EQ(run({"get", "authorizationpolicies"}).out, expected);

  cp_->resources.clear();
  r = run({"get", "policies"});
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.out, "No policies.\n");
}

TEST_F(PolicyCliTest, GetPoliciesAsJsonAndYaml) {
  hold(R"(apiVersion: sockmesh/v1
kind: AuthorizationPolicy
metadata: {name: deny-all, namespace: demo}
spec: {}
)");
  auto r = run({"get", "policies", "-o", "json"});
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.out,
            "{\n"
            "  \"version\": \"7\",\n"
            "  \"resources\": [\n"
            "    {\n"
            "      \"name\": \"authorizationpolicy/demo/deny-all\",\n"
            "      \"version\": \"r1\",\n"
            "      \"authorizationPolicy\": {\n"
            "        \"metadata\": {\n"
            "          \"name\": \"deny-all\",\n"
            "          \"namespace\": \"demo\",\n"
            "          \"labels\": {}\n"
            "        },\n"
            "        \"action\": \"AUTHORIZATION_ACTION_ALLOW\",\n"
            "        \"rules\": []\n"
            "      }\n"
            "    }\n"
            "  ]\n"
            "}\n");
  r = run({"get", "policies", "-o", "yaml"});
  EXPECT_EQ(r.out,
            "version: \"7\"\n"
            "resources:\n"
            "  - name: authorizationpolicy/demo/deny-all\n"
            "    version: r1\n"
            "    authorizationPolicy:\n"
            "      metadata:\n"
            "        name: deny-all\n"
            "        namespace: demo\n"
            "        labels: {}\n"
            "      action: AUTHORIZATION_ACTION_ALLOW\n"
            "      rules: []\n");
}

TEST_F(PolicyCliTest, CheckAWorkloadAllowed) {
  const auto r = run({"check", "demo/client", "demo/web-v1-a:8080"});
  EXPECT_EQ(r.err, "");
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.out,
            "allowed: rules[0] of ALLOW policy demo/web-from-client matches "
            "spiffe://cluster.local/ns/demo/sa/client on port 8080\n"
            "Decided by:  ALLOW demo/web-from-client rules[0]\n");
  EXPECT_EQ(run({"check", "workload/demo/client", "workload/demo/web-v1-a:8080"}).out, r.out);
}

TEST_F(PolicyCliTest, CheckAWorkloadDeniedExitsThree) {
  auto r = run({"check", "demo/intruder", "demo/web-v1-a:8080"});
  EXPECT_EQ(r.err, "");
  EXPECT_EQ(r.code, 3);
  EXPECT_EQ(r.out,
            "denied: ALLOW policy demo/web-from-client selects workload demo/web-v1-a but none of "
            "its rules matches spiffe://cluster.local/ns/demo/sa/intruder on port 8080\n"
            "Decided by:  default deny (ALLOW policies select the workload but none matched)\n");
  r = run({"check", "demo/client", "demo/web-v1-a:9090"});
  EXPECT_EQ(r.code, 3);
  // DENY before ALLOW: the client's own ALLOW rule matches too.
  r = run({"check", "demo/client", "demo/web-v2-a:8080"});
  EXPECT_EQ(r.code, 3);
  EXPECT_EQ(r.out,
            "denied: rules[0] of DENY policy demo/freeze-v2 matches "
            "spiffe://cluster.local/ns/demo/sa/client on port 8080\n"
            "Decided by:  DENY demo/freeze-v2 rules[0]\n");
}

TEST_F(PolicyCliTest, CheckAServiceDecidesEachEndpointAtItsPort) {
  auto r = run({"check", "demo/client", "demo/web:80"});
  EXPECT_EQ(r.err, "");
  EXPECT_EQ(r.code, 3);
  EXPECT_EQ(r.out,
            "denied: 1 of 2 endpoints of service demo/web deny "
            "spiffe://cluster.local/ns/demo/sa/client on port 80\n"
            "\n"
            "Endpoints:\n"
            "WORKLOAD   PORT   RESULT    DECIDED BY\n"
            "web-v1-a   8080   allowed   ALLOW demo/web-from-client rules[0]\n"
            "web-v2-a   8080   denied    DENY demo/freeze-v2 rules[0]\n");

  // No policy selects the database: default allow, from anyone.
  r = run({"check", "unauthenticated", "service/demo/db:5432"});
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.out,
            "allowed: the only endpoint of service demo/db allows an unauthenticated peer on port "
            "5432\n"
            "\n"
            "Endpoints:\n"
            "WORKLOAD   PORT   RESULT    DECIDED BY\n"
            "db         5432   allowed   default allow (no ALLOW policy selects the workload)\n");

  hold(std::string(kMesh).substr(
      0,
      std::string(kMesh).find(
          "---\napiVersion: sockmesh/v1\nkind: AuthorizationPolicy\nmetadata: {name: freeze-v2")));
  r = run({"check", "demo/client", "demo/web:80"});
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.out.substr(0, r.out.find('\n')),
            "allowed: all 2 endpoints of service demo/web allow "
            "spiffe://cluster.local/ns/demo/sa/client on port 80");
}

TEST_F(PolicyCliTest, CheckFromASpiffeIdInAnotherTrustDomain) {
  // cluster.local in a policy stands for the mesh's trust domain.
  auto r = run({"check", "spiffe://example.org/ns/demo/sa/client", "demo/web-v1-a:8080",
                "--trust-domain", "example.org"});
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  r = run({"check", "demo/client", "demo/web-v1-a:8080", "--trust-domain", "example.org"});
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.out,
            "allowed: rules[0] of ALLOW policy demo/web-from-client matches "
            "spiffe://example.org/ns/demo/sa/client on port 8080\n"
            "Decided by:  ALLOW demo/web-from-client rules[0]\n");
  // An ID of cluster.local is then foreign; Istio's principal form without the scheme works too.
  r = run({"check", "cluster.local/ns/demo/sa/client", "demo/web-v1-a:8080", "--trust-domain",
           "example.org"});
  EXPECT_EQ(r.code, 3);
  r = run({"check", "cluster.local/ns/demo/sa/legacy", "demo/db:5432"});
  EXPECT_EQ(r.code, 1);  // demo/db is both a workload and a service
  r = run({"check", "cluster.local/ns/demo/sa/legacy", "workload/demo/db:5432"});
  EXPECT_EQ(r.code, 3);
  EXPECT_EQ(r.out,
            "denied: rules[0] of DENY policy sockmesh-system/deny-legacy matches "
            "spiffe://cluster.local/ns/demo/sa/legacy on port 5432\n"
            "Decided by:  DENY sockmesh-system/deny-legacy rules[0]\n");
}

TEST_F(PolicyCliTest, CheckAsJson) {
  const auto r = run({"check", "demo/intruder", "demo/web-v1-a:8080", "-o", "json"});
  EXPECT_EQ(r.code, 3);
  EXPECT_EQ(
      r.out,
      "{\n"
      "  \"source\": \"spiffe://cluster.local/ns/demo/sa/intruder\",\n"
      "  \"sourceWorkload\": \"demo/intruder\",\n"
      "  \"destination\": \"workload/demo/web-v1-a\",\n"
      "  \"port\": 8080,\n"
      "  \"trustDomain\": \"cluster.local\",\n"
      "  \"allowed\": false,\n"
      "  \"decisions\": [\n"
      "    {\n"
      "      \"workload\": \"demo/web-v1-a\",\n"
      "      \"port\": 8080,\n"
      "      \"allowed\": false,\n"
      "      \"action\": \"AUTHORIZATION_ACTION_DENY\",\n"
      "      \"policy\": \"\",\n"
      "      \"rule\": -1,\n"
      "      \"decidedBy\": \"default deny (ALLOW policies select the workload but none "
      "matched)\",\n"
      "      \"explanation\": \"ALLOW policy demo/web-from-client selects workload "
      "demo/web-v1-a but none of its rules matches spiffe://cluster.local/ns/demo/sa/intruder "
      "on port 8080\"\n"
      "    }\n"
      "  ]\n"
      "}\n");
  const auto yaml = run({"check", "demo/client", "service/demo/web:80", "-o", "yaml"});
  EXPECT_EQ(yaml.code, 3);
  EXPECT_NE(yaml.out.find("destination: service/demo/web\n"), std::string::npos) << yaml.out;
  EXPECT_NE(yaml.out.find("    decidedBy: DENY demo/freeze-v2 rules[0]\n"), std::string::npos)
      << yaml.out;
}

TEST_F(PolicyCliTest, CheckUsageErrors) {
  for (const auto &[args, message] : std::vector<std::pair<std::vector<std::string>, std::string>>{
           {{"check", "client", "demo/web:80"},
            "check: SRC must be NAMESPACE/NAME (a workload), a SPIFFE ID or \"unauthenticated\", "
            "got \"client\""},
           {{"check", "https://x/ns/demo/sa/y", "demo/web:80"},
            "check: SRC must be NAMESPACE/NAME (a workload), a SPIFFE ID or \"unauthenticated\", "
            "got \"https://x/ns/demo/sa/y\""},
           {{"check", "demo/client", "demo/web"},
            "check: DST must be [workload/|service/]NAMESPACE/NAME:PORT, got \"demo/web\""},
           {{"check", "demo/client", "web:80"},
            "check: DST must be [workload/|service/]NAMESPACE/NAME:PORT, got \"web:80\""},
           {{"check", "demo/client", "demo/web:0"},
            "check: PORT must be between 1 and 65535, got \"0\""},
           {{"check", "demo/client", "demo/web:http"},
            "check: PORT must be between 1 and 65535, got \"http\""},
           {{"check", "demo/client"}, "DST:PORT is required"},
           {{"check", "demo/client", "demo/web:80", "--trust-domain", "Example.org"},
            "--trust-domain: must be a trust domain (lowercase letters, digits, '.', '-' and '_'), "
            "got \"Example.org\""},
       }) {
    const auto r = run(args);
    EXPECT_EQ(r.code, 2) << message;
    EXPECT_EQ(r.out, "");
    EXPECT_EQ(r.err, "meshctl: " + message + " (see meshctl --help)\n");
  }
}

TEST_F(PolicyCliTest, CheckOfWhatTheControlPlaneDoesNotHold) {
  for (const auto &[args, message] : std::vector<std::pair<std::vector<std::string>, std::string>>{
           {{"check", "demo/ghost", "demo/web:80"}, "workload demo/ghost not in the control plane"},
           {{"check", "demo/client", "demo/ghost:80"},
            "no workload or service demo/ghost in the control plane"},
           {{"check", "demo/client", "service/demo/web-v1-a:80"},
            "no service demo/web-v1-a in the control plane"},
           {{"check", "demo/client", "demo/db:5432"},
            "demo/db is both a workload and a service: write workload/demo/db or service/demo/db"},
           {{"check", "demo/client", "demo/web:8080"},
            "service demo/web has no VIP on port 8080 (its ports: 80)"},
       }) {
    const auto r = run(args);
    EXPECT_EQ(r.code, 1) << message;
    EXPECT_EQ(r.out, "");
    EXPECT_EQ(r.err, "meshctl: " + message + "\n");
  }
  hold(R"(apiVersion: sockmesh/v1
kind: Service
metadata: {name: empty, namespace: demo}
spec: {vips: [{address: 10.96.0.99, port: 80}]}
)");
  const auto r = run({"check", "unauthenticated", "demo/empty:80"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err, "meshctl: service demo/empty has no endpoints: nothing to check\n");
}

TEST_F(PolicyCliTest, DescribeWorkload) {
  auto r = run({"describe", "workload", "demo/web-v2-a"});
  EXPECT_EQ(r.err, "");
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.out,
            "Workload:    demo/web-v2-a\n"
            "Version:     r2\n"
            "Node:        n2\n"
            "Addresses:   10.78.2.11\n"
            "SPIFFE ID:   spiffe://cluster.local/ns/demo/sa/web\n"
            "Labels:      app=web,version=v2\n"
            "Captured:    yes\n"
            "Cgroup:      -\n"
            "\n"
            "Services:\n"
            "SERVICE   VIPS                                    PORT   WEIGHT\n"
            "web       10.96.0.10:80/TCP,[fd00:96::a]:80/TCP   8080   3\n"
            "\n"
            "Policies:\n"
            "NAMESPACE         NAME              ACTION   SELECTOR     RULES\n"
            "demo              freeze-v2         DENY     version=v2   1\n"
            "demo              web-from-client   ALLOW    app=web      1\n"
            "sockmesh-system   deny-legacy       DENY     -            1\n");

  r = run({"describe", "workload", "intruder", "-n", "demo", "--trust-domain", "example.org"});
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.out,
            "Workload:    demo/intruder\n"
            "Version:     r4\n"
            "Node:        n2\n"
            "Addresses:   10.78.2.20\n"
            "SPIFFE ID:   spiffe://example.org/ns/demo/sa/intruder\n"
            "Labels:      -\n"
            "Captured:    no\n"
            "Cgroup:      -\n"
            "\n"
            "Services:\n"
            "No service names it.\n"
            "\n"
            "Policies:\n"
            "NAMESPACE         NAME          ACTION   SELECTOR   RULES\n"
            "sockmesh-system   deny-legacy   DENY     -          1\n");

  hold(std::string(kMesh).substr(
      0, std::string(kMesh).find("---\napiVersion: sockmesh/v1\nkind: AuthorizationPolicy")));
  r = run({"describe", "workload", "demo/web-v1-a"});
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.out,
            "Workload:    demo/web-v1-a\n"
            "Version:     r1\n"
            "Node:        n1\n"
            "Addresses:   10.78.1.10, fd00:78:1::10\n"
            "SPIFFE ID:   spiffe://cluster.local/ns/demo/sa/web\n"
            "Labels:      app=web,version=v1\n"
            "Captured:    yes\n"
            "Cgroup:      pods/web-v1-a\n"
            "\n"
            "Services:\n"
            "SERVICE   VIPS                                    PORT   WEIGHT\n"
            "web       10.96.0.10:80/TCP,[fd00:96::a]:80/TCP   8080   1\n"
            "\n"
            "Policies:\n"
            "No policy selects it: every connection to it is allowed.\n");

  r = run({"describe", "workload", "web-v1-a"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err, "meshctl: workload/default/web-v1-a not in the control plane\n");
}

TEST_F(PolicyCliTest, ApplyAndDeletePolicies) {
  cp_->apply_response.set_version("8");
  cp_->apply_response.set_created(1);
  cp_->apply_response.set_unchanged(1);
  const auto file = write("policy.yaml", R"(apiVersion: sockmesh/v1
kind: AuthorizationPolicy
metadata: {name: web-from-client, namespace: demo}
spec:
  selector: {matchLabels: {app: web}}
  rules:
    - from: [{source: {principals: [cluster.local/ns/demo/sa/client]}}]
      to: [{operation: {ports: ["8080"]}}]
---
apiVersion: sockmesh/v1
kind: AuthorizationPolicy
metadata: {name: deny-all, namespace: shop}
spec: {}
)");
  auto r = run({"apply", "-f", file.string()});
  EXPECT_EQ(r.err, "");
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.out,
            "authorizationpolicy/demo/web-from-client unchanged\n"
            "authorizationpolicy/shop/deny-all created\n"
            "1 created, 0 configured, 1 unchanged: the control plane is at version 8\n");
  ASSERT_EQ(cp_->applied().size(), 1u);
  EXPECT_EQ(cp_->applied()[0].resources(1).authorization_policy().metadata().namespace_(), "shop");

  // An invalid policy file sends nothing.
  const auto bad = write("bad.yaml", R"(apiVersion: sockmesh/v1
kind: AuthorizationPolicy
metadata: {name: p, namespace: demo}
spec:
  action: AUDIT
)");
  r = run({"apply", "-f", bad.string()});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err, "meshctl: " + bad.string() + " is invalid:\n" + bad.string() +
                       ":5: authorizationpolicy \"demo/p\": spec.action: unknown action \"AUDIT\" "
                       "(one of ALLOW, DENY; Istio's CUSTOM and AUDIT are not supported)\n");
  EXPECT_EQ(cp_->applied().size(), 1u);

  cp_->apply_response.set_deleted(2);
  cp_->apply_response.set_version("9");
  r = run({"delete", "authorizationpolicy", "demo/web-from-client", "freeze-v2", "-n", "demo"});
  EXPECT_EQ(r.code, 1);  // freeze-v2 is in "demo" and so is web-from-client: -n and ns/ clash
  r = run({"delete", "policy", "web-from-client", "freeze-v2", "-n", "demo"});
  EXPECT_EQ(r.err, "");
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.out,
            "authorizationpolicy/demo/web-from-client deleted\n"
            "authorizationpolicy/demo/freeze-v2 deleted\n"
            "2 deleted: the control plane is at version 9\n");
  r = run({"delete", "authorizationpolicies", "sockmesh-system/deny-legacy"});
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.out.substr(0, r.out.find('\n')),
            "authorizationpolicy/sockmesh-system/deny-legacy deleted");
  r = run({"delete", "pods", "demo/x"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(
      r.err,
      "meshctl: unknown kind \"pods\": one of workload, service, node, authorizationpolicy\n");
}

TEST_F(PolicyCliTest, TheCommandsAreInTheHelp) {
  auto r = run({"--help"});
  EXPECT_EQ(r.code, 0);
  for (const char *word : {"check", "3 denied (check)"})
    EXPECT_NE(r.out.find(word), std::string::npos) << word << " missing from:\n" << r.out;
  r = run({"get", "--help"});
  EXPECT_NE(r.out.find("policies"), std::string::npos) << r.out;
  r = run({"describe", "--help"});
  EXPECT_NE(r.out.find("workload"), std::string::npos) << r.out;
  r = run({"check", "--help"});
  EXPECT_EQ(r.code, 0);
  for (const char *word :
       {"SRC", "DST:PORT", "--trust-domain DOMAIN=cluster.local", "-o,--output FORMAT=table"})
    EXPECT_NE(r.out.find(word), std::string::npos) << word << " missing from:\n" << r.out;
}

}  // namespace
}  // namespace sockmesh::cli
