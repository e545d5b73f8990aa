// NACK details from validator lines.
#include "xds/error_detail.h"

#include <gtest/gtest.h>

#include <string>

namespace sockmesh::xds {
namespace {

TEST(ErrorDetail, NamesResourceAndField) {
  auto d =
      error_detail(R"(service "demo/web": spec.vips[0].port: must be between 1 and 65535, got 0)");
  EXPECT_EQ(d.resource(), "service/demo/web");
  EXPECT_EQ(d.field(), "spec.vips[0].port");
  EXPECT_EQ(d.message(),
            R"(service "demo/web": spec.vips[0].port: must be between 1 and 65535, got 0)");
}

TEST(ErrorDetail, SkipsAFileLocation) {
  auto d = error_detail(
      R"(a.yaml:12: workload "demo/a": spec.addresses[0]: "x" is not an IPv4 or IPv6 address)");
  EXPECT_EQ(d.resource(), "workload/demo/a");
  EXPECT_EQ(d.field(), "spec.addresses[0]");
}

TEST(ErrorDetail, OtherShapesKeepOnlyTheMessage) {
  auto d = error_detail(
      "applying to the kernel failed: install backend set in slot 3: Invalid argument");
  EXPECT_EQ(d.resource(), "");
  EXPECT_EQ(d.field(), "");
  EXPECT_EQ(d.message(),
            "applying to the kernel failed: install backend set in slot 3: Invalid argument");
}

// Found by test/fuzz/error_detail_fuzz (corpus/error_detail_fuzz/crash-long-line): a regular
// expression overflowed the stack on a line of some 50 KB, a long value quoted in the message.
TEST(ErrorDetail, LongLinesAreRead) {
  const std::string value(1 << 20, 'x');
  const std::string line = R"(demo.yaml:3: service "demo/web": spec.vips[0].address: ")" + value +
                           R"(" is not an IPv4 or IPv6 address)";
  auto d = error_detail(line);
  EXPECT_EQ(d.resource(), "service/demo/web");
  EXPECT_EQ(d.field(), "spec.vips[0].address");
  EXPECT_EQ(d.message(), line);

  const std::string name(1 << 20, 'n');
  d = error_detail("workload \"demo/" + name + "\": metadata.name: too long");
  EXPECT_EQ(d.resource(), "workload/demo/" + name);
  EXPECT_EQ(d.field(), "metadata.name");

  d = error_detail(std::string(1 << 20, ':'));
  EXPECT_EQ(d.resource(), "");
  EXPECT_EQ(d.field(), "");
}

// The shape the expression had, edge by edge: a location is optional (an empty file name too) and
// skipped only when what follows has the shape; kind, name and field are never empty.
TEST(ErrorDetail, TheShapeOfTheLine) {
  EXPECT_EQ(error_detail(R"(:7: node "default/n1": spec: x)").resource(), "node/default/n1");
  EXPECT_EQ(error_detail(R"(a.yaml:: node "default/n1": spec: x)").resource(), "");
  EXPECT_EQ(error_detail(R"(a:1: b: node "d/n": spec: x)").resource(), "");
  EXPECT_EQ(error_detail(R"(node "": spec: x)").resource(), "");
  EXPECT_EQ(error_detail(R"(node "d/n": : x)").resource(), "");
  EXPECT_EQ(error_detail(R"(node "d/n": spec:x)").resource(), "");
  EXPECT_EQ(error_detail(R"(Node "d/n": spec: x)").resource(), "");
  auto d =
      error_detail(R"(x:1: service "a/b": spec.endpoints[0].workload: workload "a/c" is gone)");
  EXPECT_EQ(d.resource(), "service/a/b");
  EXPECT_EQ(d.field(), "spec.endpoints[0].workload");
}

}  // namespace
}  // namespace sockmesh::xds
