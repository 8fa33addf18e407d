#include "core/delivery/retry_policy.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <cmath>

namespace hookd {
namespace {

using std::chrono::hours;
using std::chrono::milliseconds;
using std::chrono::minutes;
using std::chrono::seconds;

random_source fixed(double r) {
  return [r] {
    return r;
  };
}

TEST(RetryPolicy, DefaultScheduleIsTheDocumentedOne) {
  const retry_policy policy;
  EXPECT_EQ(policy.schedule(),
            (std::vector<milliseconds>{seconds(5), minutes(5), minutes(30), hours(2), hours(5),
                                       hours(10), hours(10)}));
  EXPECT_EQ(policy.max_attempts(), 8u);
}

TEST(RetryPolicy, JitterBoundsAtTheEdgesOfTheRandomRange) {
  const retry_policy policy;
  EXPECT_EQ(policy.delay_after(1, fixed(0.0)), milliseconds(4000));  // 5 s - 20%
  EXPECT_EQ(policy.delay_after(1, fixed(0.5)), milliseconds(5000));  // exactly the step
  const auto top = policy.delay_after(1, fixed(0.999999));
  ASSERT_TRUE(top.has_value());
  EXPECT_GT(*top, milliseconds(5990));
  EXPECT_LE(*top, milliseconds(6000));  // 5 s + 20%

  EXPECT_EQ(policy.delay_after(2, fixed(0.0)), milliseconds(minutes(4)));
  EXPECT_EQ(policy.delay_after(2, fixed(0.5)), milliseconds(minutes(5)));
  EXPECT_EQ(policy.delay_after(7, fixed(0.0)), milliseconds(hours(8)));
  EXPECT_EQ(policy.delay_after(7, fixed(0.75)), milliseconds(hours(11)));
}

TEST(RetryPolicy, OutOfRangeRandomValuesAreClamped) {
  const retry_policy policy;
  EXPECT_EQ(policy.delay_after(1, fixed(-3.0)), milliseconds(4000));
  EXPECT_LE(policy.delay_after(1, fixed(7.0)), milliseconds(6000));
  EXPECT_EQ(policy.delay_after(1, fixed(std::nan(""))), milliseconds(4000));
  EXPECT_EQ(policy.delay_after(1, random_source{}), milliseconds(5000));  // no jitter
}

TEST(RetryPolicy, EveryStepInTurnThenNothing) {
  const retry_policy policy({seconds(1), seconds(10), seconds(100)});
  EXPECT_EQ(policy.max_attempts(), 4u);
  EXPECT_EQ(policy.delay_after(1, fixed(0.5)), seconds(1));
  EXPECT_EQ(policy.delay_after(2, fixed(0.5)), seconds(10));
  EXPECT_EQ(policy.delay_after(3, fixed(0.5)), seconds(100));
  EXPECT_EQ(policy.delay_after(4, fixed(0.5)), std::nullopt);  // the delivery is failed
  EXPECT_EQ(policy.delay_after(1000, fixed(0.5)), std::nullopt);
  EXPECT_EQ(policy.delay_after(0, fixed(0.5)), seconds(1));  // 0 counts as the first attempt
  EXPECT_EQ(policy.step_after(3), seconds(100));
  EXPECT_EQ(policy.step_after(4), std::nullopt);
}

TEST(RetryPolicy, DefaultScheduleEndsAfterTheSeventhRetry) {
  const retry_policy policy;
  for (std::uint32_t attempt = 1; attempt <= 7; ++attempt) {
    EXPECT_TRUE(policy.delay_after(attempt, fixed(0.3)).has_value()) << attempt;
  }
  EXPECT_EQ(policy.delay_after(8, fixed(0.3)), std::nullopt);
}

TEST(RetryPolicy, EmptyScheduleMeansNoRetry) {
  const retry_policy policy(std::vector<milliseconds>{});
  EXPECT_EQ(policy.max_attempts(), 1u);
  EXPECT_EQ(policy.delay_after(1, fixed(0.5)), std::nullopt);
}

TEST(RetryPolicy, HugeStepsSaturateInsteadOfOverflowing) {
  const retry_policy policy({milliseconds::max()});
  EXPECT_EQ(policy.delay_after(1, fixed(0.99)), milliseconds::max());
  EXPECT_GT(policy.delay_after(1, fixed(0.0)), milliseconds(0));
}

TEST(RetryPolicy, RealRandomnessStaysWithinBounds) {
  const retry_policy policy;
  for (int i = 0; i < 1000; ++i) {
    const double r = uniform_random();
    ASSERT_GE(r, 0.0);
    ASSERT_LT(r, 1.0);
    const auto d = policy.delay_after(3);
    ASSERT_TRUE(d.has_value());
    ASSERT_GE(*d, milliseconds(minutes(24)));
    ASSERT_LE(*d, milliseconds(minutes(36)));
  }
}

TEST(RetryPolicy, ClampRetryAfter) {
  const milliseconds step = minutes(5);
  EXPECT_EQ(clamp_retry_after(seconds(1), step), step);        // not sooner than the schedule
  EXPECT_EQ(clamp_retry_after(minutes(7), step), minutes(7));  // honoured within range
  EXPECT_EQ(clamp_retry_after(hours(24), step), minutes(10));  // at most twice the step
  EXPECT_EQ(clamp_retry_after(milliseconds(0), step), step);
  EXPECT_EQ(clamp_retry_after(milliseconds::max(), milliseconds::max()), milliseconds::max());
  EXPECT_EQ(clamp_retry_after(seconds(3), milliseconds(-5)), milliseconds(0));
}

TEST(RetryPolicy, ClassifyStatus) {
  EXPECT_EQ(classify(200), attempt_outcome::success);
  EXPECT_EQ(classify(201), attempt_outcome::success);
  EXPECT_EQ(classify(204), attempt_outcome::success);
  EXPECT_EQ(classify(299), attempt_outcome::success);
  EXPECT_EQ(classify(410), attempt_outcome::gone);
  EXPECT_EQ(classify(429), attempt_outcome::retry_after_honoured);
  EXPECT_EQ(classify(503), attempt_outcome::retry_after_honoured);
  EXPECT_EQ(classify(301), attempt_outcome::retry);  // redirects are not followed
  EXPECT_EQ(classify(302), attempt_outcome::retry);
  EXPECT_EQ(classify(304), attempt_outcome::retry);
  EXPECT_EQ(classify(100), attempt_outcome::retry);
  EXPECT_EQ(classify(400), attempt_outcome::retry);
  EXPECT_EQ(classify(404), attempt_outcome::retry);
  EXPECT_EQ(classify(500), attempt_outcome::retry);
  EXPECT_EQ(classify(502), attempt_outcome::retry);
  EXPECT_EQ(classify(0), attempt_outcome::retry);
}

// 1994-11-06T08:49:37Z, the example date of RFC 9110.
const timestamp kRfcDate = *parse_rfc3339("1994-11-06T08:49:37Z");

TEST(RetryAfter, DeltaSeconds) {
  const timestamp now = kRfcDate;
  EXPECT_EQ(parse_retry_after("120", now), seconds(120));
  EXPECT_EQ(parse_retry_after("0", now), seconds(0));
  EXPECT_EQ(parse_retry_after(" 30\t", now), seconds(30));
  EXPECT_EQ(parse_retry_after("99999999999999999999999", now), seconds(1'000'000'000));
  EXPECT_EQ(parse_retry_after("", now), std::nullopt);
  EXPECT_EQ(parse_retry_after("  ", now), std::nullopt);
  EXPECT_EQ(parse_retry_after("-5", now), std::nullopt);
  EXPECT_EQ(parse_retry_after("1.5", now), std::nullopt);
  EXPECT_EQ(parse_retry_after("12 s", now), std::nullopt);
  EXPECT_EQ(parse_retry_after("+5", now), std::nullopt);
}

TEST(RetryAfter, ImfFixdate) {
  const timestamp now = kRfcDate - seconds(90);
  EXPECT_EQ(parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now), seconds(90));
  // A date in the past means "now".
  EXPECT_EQ(parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", kRfcDate + hours(1)),
            milliseconds(0));
  EXPECT_EQ(
      parse_retry_after("Tue, 29 Feb 2028 00:00:00 GMT", *parse_rfc3339("2028-02-28T23:59:00Z")),
      seconds(60));
}

TEST(RetryAfter, ObsoleteFormsAreAccepted) {
  const timestamp now = kRfcDate - seconds(10);
  EXPECT_EQ(parse_retry_after("Sunday, 06-Nov-94 08:49:37 GMT", now), seconds(10));
  EXPECT_EQ(parse_retry_after("Sun Nov  6 08:49:37 1994", now), seconds(10));
  EXPECT_EQ(parse_retry_after("Wed Nov 16 08:49:37 1994", now), seconds(10) + hours(240));
  // A two-digit year is in the century that keeps it at most 50 years ahead of now.
  const timestamp in_2026 = *parse_rfc3339("2026-01-01T00:00:00Z");
  EXPECT_EQ(parse_retry_after("Thursday, 01-Jan-26 00:01:00 GMT", in_2026), minutes(1));
  EXPECT_EQ(parse_retry_after("Monday, 01-Jan-90 00:00:00 GMT", in_2026), milliseconds(0));
}

TEST(RetryAfter, MalformedDatesAreRefused) {
  const timestamp now = kRfcDate;
  for (const char* bad : {
           "Sun, 06 Nov 1994 08:49:37 UTC",    // not GMT
           "Sun, 6 Nov 1994 08:49:37 GMT",     // one-digit day
           "Sun, 06 nov 1994 08:49:37 GMT",    // month names are case-sensitive
           "Sun, 31 Nov 1994 08:49:37 GMT",    // no such day
           "Sun, 06 Nov 1994 24:00:00 GMT",    // no such hour
           "Sun, 06 Nov 1994 08:61:00 GMT",    // no such minute
           "Sun, 06 Nov 1994 08:49 GMT",       // no seconds
           "Sun, 06 Nov 1994 08:49:37 GMT x",  // trailing text
           "Sun 06 Nov 1994 08:49:37 GMT",     // missing comma
           "Sunday, 06-Nov-1994 08:49:37 GMT",
           "Sun Nov 6 08:49:37 1994",  // asctime pads the day with a space
           "1994-11-06T08:49:37Z",     // not an HTTP-date
           "soon",
       }) {
    EXPECT_EQ(parse_retry_after(bad, now), std::nullopt) << bad;
  }
}

}  // namespace
}  // namespace hookd
