// Durations of resource fields ("500ms", "2s", "1.5s", "5m", "1h"): what parses, to how many
// milliseconds, and the message for what does not.
#include "duration.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <variant>

namespace sockmesh::resources::detail {
namespace {

using Parsed = std::variant<uint64_t, std::string>;

Parsed ms(uint64_t value) {
  return value;
}
Parsed error(std::string what) {
  return what;
}

TEST(DurationTest, Units) {
  EXPECT_EQ(parse_duration_ms("500ms"), ms(500));
  EXPECT_EQ(parse_duration_ms("2s"), ms(2000));
  EXPECT_EQ(parse_duration_ms("5m"), ms(300000));
  EXPECT_EQ(parse_duration_ms("1h"), ms(3600000));
  EXPECT_EQ(parse_duration_ms("24h"), ms(86400000));
  EXPECT_EQ(parse_duration_ms("0s"), ms(0));
  EXPECT_EQ(parse_duration_ms("0ms"), ms(0));
  EXPECT_EQ(parse_duration_ms("007s"), ms(7000));
}

TEST(DurationTest, FractionsThatAreWholeMilliseconds) {
  EXPECT_EQ(parse_duration_ms("1.5s"), ms(1500));
  EXPECT_EQ(parse_duration_ms("0.001s"), ms(1));
  EXPECT_EQ(parse_duration_ms("0.5m"), ms(30000));
  EXPECT_EQ(parse_duration_ms("1.25h"), ms(4500000));
  EXPECT_EQ(parse_duration_ms("0.0000125h"), ms(45));
  EXPECT_EQ(parse_duration_ms("2.000s"), ms(2000));
  EXPECT_EQ(parse_duration_ms("1.0ms"), ms(1));
  // Trailing zeros do not count as precision, however many.
  EXPECT_EQ(parse_duration_ms("1.50000000000000000000s"), ms(1500));
}

TEST(DurationTest, FractionsOfAMillisecondAreRefused) {
  EXPECT_EQ(parse_duration_ms("1.5ms"), error("must be a whole number of milliseconds, got 1.5ms"));
  EXPECT_EQ(parse_duration_ms("0.0001s"),
            error("must be a whole number of milliseconds, got 0.0001s"));
  EXPECT_EQ(parse_duration_ms("0.0000005h"),
            error("must be a whole number of milliseconds, got 0.0000005h"));
  EXPECT_EQ(parse_duration_ms("1.000000001h"),
            error("must be a whole number of milliseconds, got 1.000000001h"));
}

TEST(DurationTest, NumbersWithoutAUnitSayToAddOne) {
  EXPECT_EQ(parse_duration_ms("30"),
            error("must be a duration with a unit (ms, s, m or h), got 30; add a unit, e.g. 30s"));
  EXPECT_EQ(
      parse_duration_ms("1.5"),
      error("must be a duration with a unit (ms, s, m or h), got 1.5; add a unit, e.g. 1.5s"));
  EXPECT_EQ(parse_duration_ms("0"),
            error("must be a duration with a unit (ms, s, m or h), got 0; add a unit, e.g. 0s"));
}

TEST(DurationTest, OtherShapesAreRefused) {
  for (const char *text : {"", "s", "1d", "30sec", "1h30m", "1e3s", ".5s", "5.s", "+5s", " 5s",
                           "5 s", "5S", "1,5s", "PT5S"}) {
    EXPECT_EQ(parse_duration_ms(text),
              error(std::string("must be a duration (e.g. 500ms, 2s, 1.5s, 5m or 1h), got \"") +
                    text + "\""))
        << text;
  }
  EXPECT_EQ(parse_duration_ms("-5s"), error("must not be negative, got -5s"));
}

TEST(DurationTest, HugeValuesSaturateForTheCallersRangeCheck) {
  EXPECT_EQ(parse_duration_ms("99999999999999999999999h"), ms(UINT64_MAX));
  EXPECT_EQ(parse_duration_ms("5124095576030431h"), ms(UINT64_MAX));  // * 3600000 overflows
  EXPECT_EQ(parse_duration_ms("4294967296ms"), ms(4294967296));
}

TEST(DurationTest, Format) {
  EXPECT_EQ(format_duration_ms(0), "0ms");
  EXPECT_EQ(format_duration_ms(1), "1ms");
  EXPECT_EQ(format_duration_ms(1500), "1500ms");
  EXPECT_EQ(format_duration_ms(2000), "2s");
  EXPECT_EQ(format_duration_ms(90000), "90s");
  EXPECT_EQ(format_duration_ms(300000), "5m");
  EXPECT_EQ(format_duration_ms(5400000), "90m");
  EXPECT_EQ(format_duration_ms(86400000), "24h");
  EXPECT_EQ(format_duration_ms(90000000), "25h");
}

TEST(DurationTest, FormatReadsBack) {
  for (uint64_t value : {1ull, 999ull, 1000ull, 1001ull, 59999ull, 60000ull, 3599999ull, 3600000ull,
                         86400000ull, 4294967295ull}) {
    EXPECT_EQ(parse_duration_ms(format_duration_ms(value)), ms(value)) << value;
  }
}

}  // namespace
}  // namespace sockmesh::resources::detail
