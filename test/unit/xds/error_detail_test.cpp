// NACK details from validator lines.
#include "xds/error_detail.h"

#include <gtest/gtest.h>

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

}  // namespace
}  // namespace sockmesh::xds
