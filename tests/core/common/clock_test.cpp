#include "core/common/clock.hpp"

#include <gtest/gtest.h>

#include <limits>

namespace hookd {
namespace {

using std::chrono::milliseconds;
using namespace std::chrono_literals;

timestamp at_ms(std::int64_t ms) {
  return timestamp{milliseconds{ms}};
}

// The second an object id starts with: whole seconds, rounded down, and clamped to 32 bits.
TEST(UnixSeconds, WholeSecondsClampedToThirtyTwoBits) {
  EXPECT_EQ(unix_seconds(at_ms(1'700'000'000'999)), 1'700'000'000u);
  EXPECT_EQ(unix_seconds(at_ms(0)), 0u);
  EXPECT_EQ(unix_seconds(at_ms(-5'000)), 0u);
  EXPECT_EQ(unix_seconds(at_ms(0xFFFFFFFFLL * 1000 + 999)), 0xFFFFFFFFu);
  EXPECT_EQ(unix_seconds(at_ms(0x1'0000'0000LL * 1000)), 0xFFFFFFFFu);
  static_assert(unix_seconds(timestamp{std::chrono::seconds{86'400}}) == 86'400u);
}

TEST(Rfc3339, FormatsUtcWithMillisecondsAlways) {
  EXPECT_EQ(format_rfc3339(at_ms(0)), "1970-01-01T00:00:00.000Z");
  EXPECT_EQ(format_rfc3339(at_ms(1'796'004'000'000)), "2026-11-30T02:00:00.000Z");
  EXPECT_EQ(format_rfc3339(at_ms(951'827'696'789)), "2000-02-29T12:34:56.789Z");
  EXPECT_EQ(format_rfc3339(at_ms(-1)), "1969-12-31T23:59:59.999Z");
  EXPECT_EQ(format_rfc3339(at_ms(253'402'300'799'999)), "9999-12-31T23:59:59.999Z");
  EXPECT_EQ(format_rfc3339(at_ms(5)), "1970-01-01T00:00:00.005Z");
}

TEST(Rfc3339, AppendKeepsPrefix) {
  std::string out = "at ";
  append_rfc3339(out, at_ms(1'796'004'000'000));
  EXPECT_EQ(out, "at 2026-11-30T02:00:00.000Z");
}

TEST(Rfc3339, NowRoundTrips) {
  const timestamp now = now_ms();
  EXPECT_GT(now.time_since_epoch().count(), 1'700'000'000'000);  // after November 2023
  const auto parsed = parse_rfc3339(format_rfc3339(now));
  ASSERT_TRUE(parsed.has_value());
  EXPECT_EQ(*parsed, now);
}

TEST(Rfc3339, ParsesZuluAndOffsets) {
  EXPECT_EQ(parse_rfc3339("2026-11-30T02:00:00Z"), at_ms(1'796'004'000'000));
  EXPECT_EQ(parse_rfc3339("2026-11-30T02:00:00.000Z"), at_ms(1'796'004'000'000));
  EXPECT_EQ(parse_rfc3339("2026-11-30t02:00:00z"), at_ms(1'796'004'000'000));
  EXPECT_EQ(parse_rfc3339("2026-11-30T03:00:00+01:00"), at_ms(1'796'004'000'000));
  EXPECT_EQ(parse_rfc3339("2026-11-29T21:30:00-04:30"), at_ms(1'796'004'000'000));
  EXPECT_EQ(parse_rfc3339("2026-11-30T02:00:00+00:00"), at_ms(1'796'004'000'000));
  EXPECT_EQ(parse_rfc3339("2026-11-30T02:00:00-00:00"), at_ms(1'796'004'000'000));
}

TEST(Rfc3339, FractionOfZeroToNineDigitsTruncatesToMilliseconds) {
  const std::int64_t base = 1'796'004'000'000;
  EXPECT_EQ(parse_rfc3339("2026-11-30T02:00:00.5Z"), at_ms(base + 500));
  EXPECT_EQ(parse_rfc3339("2026-11-30T02:00:00.12Z"), at_ms(base + 120));
  EXPECT_EQ(parse_rfc3339("2026-11-30T02:00:00.123Z"), at_ms(base + 123));
  EXPECT_EQ(parse_rfc3339("2026-11-30T02:00:00.123999Z"), at_ms(base + 123));
  EXPECT_EQ(parse_rfc3339("2026-11-30T02:00:00.999999999Z"), at_ms(base + 999));
  EXPECT_FALSE(parse_rfc3339("2026-11-30T02:00:00.1234567890Z"));  // 10 digits
  EXPECT_FALSE(parse_rfc3339("2026-11-30T02:00:00.Z"));            // dot without digits
}

TEST(Rfc3339, RejectsInvalidDatesAndTimes) {
  EXPECT_TRUE(parse_rfc3339("2024-02-29T00:00:00Z"));
  EXPECT_TRUE(parse_rfc3339("2000-02-29T00:00:00Z"));
  EXPECT_FALSE(parse_rfc3339("2023-02-29T00:00:00Z"));
  EXPECT_FALSE(parse_rfc3339("1900-02-29T00:00:00Z"));
  EXPECT_FALSE(parse_rfc3339("2026-04-31T00:00:00Z"));
  EXPECT_FALSE(parse_rfc3339("2026-13-01T00:00:00Z"));
  EXPECT_FALSE(parse_rfc3339("2026-00-01T00:00:00Z"));
  EXPECT_FALSE(parse_rfc3339("2026-01-00T00:00:00Z"));
  EXPECT_FALSE(parse_rfc3339("2026-01-01T24:00:00Z"));
  EXPECT_FALSE(parse_rfc3339("2026-01-01T00:60:00Z"));
  EXPECT_FALSE(parse_rfc3339("2026-01-01T00:00:61Z"));
  EXPECT_FALSE(parse_rfc3339("2026-01-01T00:00:00+24:00"));
  EXPECT_FALSE(parse_rfc3339("2026-01-01T00:00:00+01:60"));
}

TEST(Rfc3339, RejectsMalformedText) {
  EXPECT_FALSE(parse_rfc3339(""));
  EXPECT_FALSE(parse_rfc3339("2026-11-30"));
  EXPECT_FALSE(parse_rfc3339("2026-11-30T02:00:00"));  // no zone
  EXPECT_FALSE(parse_rfc3339("2026-11-30 02:00:00Z"));
  EXPECT_FALSE(parse_rfc3339("2026-11-30T02:00Z"));
  EXPECT_FALSE(parse_rfc3339("26-11-30T02:00:00Z"));
  EXPECT_FALSE(parse_rfc3339("2026-1-30T02:00:00Z"));
  EXPECT_FALSE(parse_rfc3339("2026-11-30T02:00:00ZZ"));
  EXPECT_FALSE(parse_rfc3339("2026-11-30T02:00:00+0100"));
  EXPECT_FALSE(parse_rfc3339("2026-11-30T02:00:00+01"));
  EXPECT_FALSE(parse_rfc3339("2026-11-30T02:00:00.000Z "));
  EXPECT_FALSE(parse_rfc3339("+026-11-30T02:00:00Z"));
}

TEST(Duration, ParsesEachUnit) {
  EXPECT_EQ(parse_duration("250ms"), 250ms);
  EXPECT_EQ(parse_duration("5s"), 5s);
  EXPECT_EQ(parse_duration("5m"), 5min);
  EXPECT_EQ(parse_duration("2h"), 2h);
  EXPECT_EQ(parse_duration("5d"), milliseconds{5LL * 24 * 3600 * 1000});
  EXPECT_EQ(parse_duration("0s"), 0ms);
}

TEST(Duration, ParsesCombinedForms) {
  EXPECT_EQ(parse_duration("1h30m"), 90min);
  EXPECT_EQ(parse_duration("1d12h"), 36h);
  EXPECT_EQ(parse_duration("1m30s500ms"), 90'500ms);
}

TEST(Duration, RejectsMalformedNegativeAndOverflow) {
  EXPECT_FALSE(parse_duration(""));
  EXPECT_FALSE(parse_duration("5"));
  EXPECT_FALSE(parse_duration("s"));
  EXPECT_FALSE(parse_duration("-5s"));
  EXPECT_FALSE(parse_duration("+5s"));
  EXPECT_FALSE(parse_duration("5x"));
  EXPECT_FALSE(parse_duration("5 s"));
  EXPECT_FALSE(parse_duration(" 5s"));
  EXPECT_FALSE(parse_duration("5S"));
  EXPECT_FALSE(parse_duration("1.5h"));
  EXPECT_FALSE(parse_duration("5sec"));
  EXPECT_FALSE(parse_duration("1h30"));
  EXPECT_FALSE(parse_duration("99999999999999999999ms"));
  EXPECT_FALSE(parse_duration("9223372036854775807d"));
  EXPECT_FALSE(parse_duration("9223372036854775807ms1ms"));
  EXPECT_EQ(parse_duration("9223372036854775807ms"),
            milliseconds{std::numeric_limits<std::int64_t>::max()});
}

TEST(Duration, FormatsTheShortestExactForm) {
  EXPECT_EQ(format_duration(5min), "5m");
  EXPECT_EQ(format_duration(90min), "1h30m");
  EXPECT_EQ(format_duration(250ms), "250ms");
  EXPECT_EQ(format_duration(1500ms), "1s500ms");
  EXPECT_EQ(format_duration(120s), "2m");
  EXPECT_EQ(format_duration(120h), "5d");
  EXPECT_EQ(format_duration(0ms), "0s");
  for (const char* text : {"5s", "5m", "30m", "2h", "5h", "10h", "5d", "1d1h1m1s1ms"}) {
    EXPECT_EQ(format_duration(*parse_duration(text)), text);
  }
}

TEST(DurationList, ParsesTheDefaultRetrySchedule) {
  const auto list = parse_duration_list("5s,5m,30m,2h,5h,10h,10h");
  ASSERT_TRUE(list.has_value());
  const std::vector<milliseconds> expected{5s, 5min, 30min, 2h, 5h, 10h, 10h};
  EXPECT_EQ(*list, expected);
}

TEST(DurationList, AcceptsSpacesAfterCommasAndOneStep) {
  const std::vector<milliseconds> expected{5s, 5min};
  EXPECT_EQ(parse_duration_list("5s, 5m"), expected);
  EXPECT_EQ(parse_duration_list("5s,  5m"), expected);
  EXPECT_EQ(parse_duration_list("1h30m"), std::vector<milliseconds>{90min});
}

TEST(DurationList, RejectsEmptyMalformedAndNonPositiveSteps) {
  EXPECT_FALSE(parse_duration_list(""));
  EXPECT_FALSE(parse_duration_list(","));
  EXPECT_FALSE(parse_duration_list("5s,"));
  EXPECT_FALSE(parse_duration_list("5s,,5m"));
  EXPECT_FALSE(parse_duration_list("5s,0s"));
  EXPECT_FALSE(parse_duration_list("5s,-5m"));
  EXPECT_FALSE(parse_duration_list("5s;5m"));
  EXPECT_FALSE(parse_duration_list("5s,5q"));
}

}  // namespace
}  // namespace hookd
