#include "sockmesh/cli/table.h"

#include <gtest/gtest.h>

#include <sstream>

#include "sockmesh/cli/format.h"

namespace sockmesh::cli {
namespace {

TEST(Table, AlignsLeftWithThreeSpacesAndNoTrailingSpaces) {
  Table table({"NAME", "VALUE", "X"});
  table.add_row({"a", "1", ""});
  table.add_row({"longer-name", "12345678", "z"});
  std::ostringstream out;
  table.render(out);
  EXPECT_EQ(out.str(),
            "NAME          VALUE      X\n"
            "a             1\n"
            "longer-name   12345678   z\n");
}

TEST(Table, CountsUtf8CodePointsForWidth) {
  Table table({"A", "B"});
  table.add_row({"\xc3\xa9t\xc3\xa9", "x"});  // "été": 3 columns, 5 bytes
  std::ostringstream out;
  table.render(out);
  EXPECT_EQ(out.str(), "A     B\n\xc3\xa9t\xc3\xa9   x\n");
}

TEST(Format, DurationKeepsTwoMostSignificantUnits) {
  EXPECT_EQ(format_duration(-5), "0s");
  EXPECT_EQ(format_duration(999), "0s");
  EXPECT_EQ(format_duration(42'000), "42s");
  EXPECT_EQ(format_duration(300'000), "5m");
  EXPECT_EQ(format_duration(303'000), "5m3s");
  EXPECT_EQ(format_duration(3'723'000), "1h2m");
  EXPECT_EQ(format_duration(7'200'000), "2h");
  EXPECT_EQ(format_duration(273'600'000), "3d4h");
  EXPECT_EQ(format_duration(172'800'000), "2d");
}

TEST(Format, UtcAndHostPort) {
  EXPECT_EQ(format_utc(1'714'564'800'000), "2024-05-01 12:00:00 UTC");
  EXPECT_EQ(format_host_port("10.0.0.1", 80), "10.0.0.1:80");
  EXPECT_EQ(format_host_port("fd00:96::1", 443), "[fd00:96::1]:443");
}

}  // namespace
}  // namespace sockmesh::cli
