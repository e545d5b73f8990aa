#include <gtest/gtest.h>

#include "pki_test_util.h"

namespace sockmesh::pki {
namespace {

using testing::error_of;

struct Accepted {
  const char *uri;
  const char *td;
  const char *path;
};

TEST(SpiffeIdTest, AcceptsValidIds) {
  const Accepted cases[] = {
      {"spiffe://example.org/ns/default/sa/web", "example.org", "/ns/default/sa/web"},
      {"spiffe://a-b.c_d9/x", "a-b.c_d9", "/x"},
      {"spiffe://td/A.b-C_d/..x/x..", "td", "/A.b-C_d/..x/x.."},
      {"spiffe://td/sockmesh/node/worker-1", "td", "/sockmesh/node/worker-1"},
  };
  for (const auto &c : cases) {
    auto id = SpiffeId::parse(c.uri);
    ASSERT_TRUE(id) << c.uri;
    EXPECT_EQ(id->trust_domain, c.td) << c.uri;
    EXPECT_EQ(id->path, c.path) << c.uri;
    EXPECT_EQ(id->str(), c.uri);
  }
}

TEST(SpiffeIdTest, RejectsInvalidIds) {
  const char *cases[] = {
      "",
      "spiffe://",
      "spiffe://td",    // trust domain only
      "spiffe://td/",   // empty path segment
      "spiffe:///x",    // empty trust domain
      "SPIFFE://td/x",  // scheme not lowercase
      "spiffe:/td/x",
      "https://td/x",
      "spiffe://TD/x",          // trust domain not lowercase
      "spiffe://td:8443/x",     // port
      "spiffe://user@td/x",     // userinfo
      "spiffe://td/x?query=1",  // query
      "spiffe://td/x#frag",     // fragment
      "spiffe://td//x",         // empty segment
      "spiffe://td/x/",         // trailing slash
      "spiffe://td/./x",        // dot segment
      "spiffe://td/x/..",       // dot-dot segment
      "spiffe://td/a%20b",      // percent-encoding
      "spiffe://td/a b",
      "spiffe://t d/x",
      " spiffe://td/x",
  };
  for (const char *uri : cases) EXPECT_FALSE(SpiffeId::parse(uri)) << "accepted: " << uri;
}

TEST(SpiffeIdTest, LengthLimitIs2048Bytes) {
  std::string prefix = "spiffe://td/";
  std::string at_limit = prefix + std::string(2048 - prefix.size(), 'a');
  ASSERT_EQ(at_limit.size(), 2048u);
  EXPECT_TRUE(SpiffeId::parse(at_limit));
  EXPECT_FALSE(SpiffeId::parse(at_limit + "a"));
}

TEST(SpiffeIdTest, WorkloadAndNodeBuilders) {
  SpiffeId w = SpiffeId::workload("prod.mesh", "default", "web");
  EXPECT_EQ(w.str(), "spiffe://prod.mesh/ns/default/sa/web");
  EXPECT_EQ(w.ns(), "default");
  EXPECT_EQ(w.service_account(), "web");
  EXPECT_EQ(w.node_name(), "");

  SpiffeId n = SpiffeId::node("prod.mesh", "worker-1");
  EXPECT_EQ(n.str(), "spiffe://prod.mesh/sockmesh/node/worker-1");
  EXPECT_EQ(n.node_name(), "worker-1");
  EXPECT_EQ(n.ns(), "");
  EXPECT_EQ(n.service_account(), "");

  EXPECT_EQ(SpiffeId::parse("spiffe://td/ns/a/sa/b/extra")->ns(), "");
  EXPECT_EQ(SpiffeId::parse("spiffe://td/sockmesh/node/a/b")->node_name(), "");
  EXPECT_EQ(w, *SpiffeId::parse("spiffe://prod.mesh/ns/default/sa/web"));
}

TEST(SpiffeIdTest, BuildersRefuseInvalidParts) {
  EXPECT_EQ(error_of([] { SpiffeId::workload("td", "", "web"); }),
            "not a valid SPIFFE ID: spiffe://td/ns//sa/web");
  EXPECT_EQ(error_of([] { SpiffeId::node("Bad.TD", "n1"); }),
            "not a valid SPIFFE ID: spiffe://Bad.TD/sockmesh/node/n1");
}

}  // namespace
}  // namespace sockmesh::pki
