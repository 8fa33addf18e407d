#include "core/delivery/endpoint_health.hpp"

#include <gtest/gtest.h>

#include <cstdio>

namespace hookd {
namespace {

using std::chrono::hours;
using std::chrono::milliseconds;
using std::chrono::minutes;
using std::chrono::seconds;

const timestamp kT0{milliseconds{1'700'000'000'000}};
const object_id kHook = *object_id::parse("65a000000000000000000001");
const object_id kOther = *object_id::parse("65a000000000000000000002");

attempt_report failed_at(timestamp at, std::optional<int> status = 500) {
  return attempt_report{false, status, milliseconds{20}, at};
}
attempt_report succeeded_at(timestamp at, milliseconds took = milliseconds{20}) {
  return attempt_report{true, 200, took, at};
}

// `n` failures spread evenly from kT0 to kT0 + span (the last one exactly at kT0 + span); the
// step of the last one.
health_step fail_evenly(health_tracker& t, std::uint64_t n, milliseconds span) {
  health_step last;
  for (std::uint64_t i = 0; i < n; ++i) {
    const auto offset =
        n == 1 ? span : span * static_cast<std::int64_t>(i) / static_cast<std::int64_t>(n - 1);
    last = t.record(kHook, failed_at(kT0 + offset));
    if (i + 1 < n) {
      EXPECT_FALSE(last.disable) << "failure " << i + 1;
    }
  }
  return last;
}

// ---------------------------------------------------------------- the auto-disable rule

TEST(AutoDisable, NineFailuresOverSixDaysDoNotDisable) {
  health_tracker t;  // 5 days, 10 failures
  const health_step last = fail_evenly(t, 9, hours{24 * 6});
  EXPECT_FALSE(last.disable);
  EXPECT_EQ(t.get(kHook, kT0 + hours{24 * 6}).streak.failures, 9u);
}

TEST(AutoDisable, TenFailuresOverFiveDaysDisable) {
  health_tracker t;
  const health_step last = fail_evenly(t, 10, hours{24 * 5});
  ASSERT_TRUE(last.disable);
  EXPECT_EQ(*last.disable, kDisabledFailing);
  EXPECT_TRUE(last.persist);  // the streak that disabled it is written with it
}

TEST(AutoDisable, TenFailuresOneMillisecondShortOfFiveDaysDoNotDisableTheEleventhDoes) {
  health_tracker t;
  EXPECT_FALSE(fail_evenly(t, 10, hours{24 * 5} - milliseconds{1}).disable);
  const health_step eleventh = t.record(kHook, failed_at(kT0 + hours{24 * 5}));
  ASSERT_TRUE(eleventh.disable);
  EXPECT_EQ(*eleventh.disable, kDisabledFailing);
}

TEST(AutoDisable, ASuccessStartsTheCountAgain) {
  health_tracker t;
  for (int i = 0; i < 20; ++i) (void)t.record(kHook, failed_at(kT0 + hours{i}));
  (void)t.record(kHook, succeeded_at(kT0 + hours{21}));
  // Ten failures over five days, but the five days count from the first after the success.
  for (int i = 0; i < 10; ++i) {
    EXPECT_FALSE(t.record(kHook, failed_at(kT0 + hours{22} + hours{i})).disable);
  }
  EXPECT_FALSE(t.record(kHook, failed_at(kT0 + hours{22} + hours{24 * 5} - minutes{1})).disable);
  EXPECT_TRUE(t.record(kHook, failed_at(kT0 + hours{22} + hours{24 * 5})).disable);
}

TEST(AutoDisable, TheSpanCountsFromTheFirstFailureNotFromAnEarlierSuccess) {
  // A webhook that last succeeded a week ago and is idle since is not disabled by a burst of
  // failures: it has not been failing for five days.
  health_tracker t;
  (void)t.record(kHook, succeeded_at(kT0));
  for (int i = 0; i < 30; ++i) {
    EXPECT_FALSE(t.record(kHook, failed_at(kT0 + hours{24 * 7} + seconds{i})).disable);
  }
}

TEST(AutoDisable, ShortOptionsFollowTheSameRule) {
  health_options o;
  o.disable_after = seconds{2};
  health_tracker t(o);
  EXPECT_FALSE(fail_evenly(t, 10, milliseconds{1999}).disable);
  EXPECT_TRUE(t.record(kHook, failed_at(kT0 + seconds{2})).disable);
}

TEST(AutoDisable, GoneDisablesAtOnce) {
  health_tracker t;
  const health_step step = t.record(kHook, failed_at(kT0, 410));
  ASSERT_TRUE(step.disable);
  EXPECT_EQ(*step.disable, kDisabledGone);
  EXPECT_TRUE(step.persist);
  // Another webhook is not affected.
  EXPECT_FALSE(t.record(kOther, failed_at(kT0, 500)).disable);
}

TEST(AutoDisable, ShouldDisableIsThePureRule) {
  health_options o;
  failure_streak s;
  s.failures = 10;
  s.first_failure_at = kT0;
  EXPECT_TRUE(should_disable(s, kT0 + o.disable_after, o));
  EXPECT_FALSE(should_disable(s, kT0 + o.disable_after - milliseconds{1}, o));
  s.failures = 9;
  EXPECT_FALSE(should_disable(s, kT0 + o.disable_after * 2, o));
  EXPECT_FALSE(should_disable(failure_streak{}, kT0 + hours{10'000}, o));
}

// ---------------------------------------------------------------- what is written, and when

TEST(FailureStreak, WrittenWhenItStartsReachesTheMinimumEndsAndOnceAMinute) {
  health_tracker t;
  std::vector<std::uint64_t> written;  // the failure count of each write
  for (int i = 0; i < 15; ++i) {
    const health_step step = t.record(kHook, failed_at(kT0 + seconds{i}));
    if (step.persist) written.push_back(step.persist->failures);
  }
  EXPECT_EQ(written, (std::vector<std::uint64_t>{1, 10}));
  // A minute after the last write, the next failure writes its count.
  auto step = t.record(kHook, failed_at(kT0 + seconds{9} + minutes{1}));
  ASSERT_TRUE(step.persist);
  EXPECT_EQ(step.persist->failures, 16u);
  // The success that ends the streak is written at once.
  step = t.record(kHook, succeeded_at(kT0 + seconds{9} + minutes{1} + seconds{1}));
  ASSERT_TRUE(step.persist);
  EXPECT_EQ(step.persist->failures, 0u);
  EXPECT_EQ(step.persist->last_success_at, kT0 + seconds{9} + minutes{1} + seconds{1});
  EXPECT_EQ(step.persist->last_failure_at, kT0 + seconds{9} + minutes{1});
  // Successes after it: at most once a minute.
  EXPECT_FALSE(t.record(kHook, succeeded_at(kT0 + minutes{2})).persist);
  EXPECT_TRUE(t.record(kHook, succeeded_at(kT0 + minutes{3})).persist);
}

TEST(FailureStreak, AFailingWebhookWritesAboutOnceAMinuteNotOncePerAttempt) {
  // The cost of keeping streaks across restarts: five days of an attempt every 5 s, all failing.
  health_tracker t;
  constexpr int kAttempts = 5 * 24 * 3600 / 5;
  int writes = 0;
  bool disabled = false;
  for (int i = 0; i < kAttempts && !disabled; ++i) {
    const health_step step = t.record(kHook, failed_at(kT0 + seconds{5} * i));
    writes += step.persist ? 1 : 0;
    disabled = step.disable.has_value();
  }
  // One write a minute (plus the start and the tenth failure), 1 per 12 attempts.
  EXPECT_LE(writes, 5 * 24 * 60 + 3);
  EXPECT_GE(writes, 5 * 24 * 60 - 1);
  std::printf("[ measure  ] %d failed attempts over 5 days: %d streak writes\n", kAttempts, writes);
}

TEST(FailureStreak, EncodesAndDecodes) {
  failure_streak s;
  s.failures = 12;
  s.first_failure_at = kT0;
  s.last_failure_at = kT0 + hours{3};
  s.last_success_at = kT0 - hours{1};
  auto back = decode_failure_streak(encode(s));
  ASSERT_TRUE(back) << back.error().detail;
  EXPECT_EQ(*back, s);
  auto empty = decode_failure_streak(encode(failure_streak{}));
  ASSERT_TRUE(empty);
  EXPECT_EQ(*empty, failure_streak{});

  EXPECT_FALSE(decode_failure_streak("not json"));
  EXPECT_FALSE(decode_failure_streak(R"({"v":1})"));
  EXPECT_FALSE(decode_failure_streak(R"({"v":1,"failures":3})"));  // no firstFailureAt
  EXPECT_FALSE(decode_failure_streak(R"({"v":1,"failures":0,"lastSuccessAt":"x"})"));
  EXPECT_EQ(failure_streak_key(kHook), std::string("wh") + std::string(kHook.binary()));
}

TEST(FailureStreak, ARestoredStreakGoesOnCounting) {
  health_tracker before;
  (void)fail_evenly(before, 9, hours{24 * 5});
  // What a restart finds: the record written at the first failure (count 1) is behind; the
  // record written last is what load() restores. Here: every failure written, for the test.
  failure_streak stored = before.get(kHook, kT0).streak;
  health_tracker after;
  after.restore(kHook, stored);
  const health_step tenth = after.record(kHook, failed_at(kT0 + hours{24 * 5} + seconds{1}));
  ASSERT_TRUE(tenth.disable);
  EXPECT_EQ(after.get(kHook, kT0).streak.failures, 10u);
}

TEST(FailureStreak, ResetForgivesTheFailuresAndKeepsTheLastSuccess) {
  health_tracker t;
  (void)t.record(kHook, succeeded_at(kT0));
  for (int i = 1; i <= 12; ++i) (void)t.record(kHook, failed_at(kT0 + hours{12 * i}));
  EXPECT_TRUE(t.reset(kHook));  // a record was written: the caller erases it
  const failure_streak s = t.get(kHook, kT0).streak;
  EXPECT_EQ(s.failures, 0u);
  EXPECT_FALSE(s.first_failure_at);
  EXPECT_EQ(s.last_success_at, kT0);
  EXPECT_FALSE(t.reset(kOther));  // never attempted: nothing stored
  // Counting starts again: one more failure does not disable.
  EXPECT_FALSE(t.record(kHook, failed_at(kT0 + hours{24 * 7})).disable);
}

// ---------------------------------------------------------------- the hour window

TEST(HourWindow, CountsTheLastSixtyMinutes) {
  hour_window w;
  const timestamp start{minutes{29'000'000}};  // on a minute boundary
  for (int m = 0; m < 90; ++m) {
    w.record(start + minutes{m}, m % 3 != 0, milliseconds{10});  // 1 in 3 fails
  }
  const timestamp now = start + minutes{89} + seconds{30};
  const window_summary s = w.summary(now);
  // Minutes 30..89: sixty of them, twenty failed.
  EXPECT_EQ(s.successes + s.failures, 60u);
  EXPECT_EQ(s.failures, 20u);
  // An hour of silence later, nothing is left.
  EXPECT_EQ(w.summary(now + minutes{60}).successes, 0u);
  EXPECT_FALSE(w.summary(now + minutes{60}).p50_ms);
  // A minute that slid out of the window is not counted, even when its slot was not reused.
  const window_summary later = w.summary(start + minutes{100});
  EXPECT_EQ(later.successes + later.failures, 49u);  // minutes 41..89
}

TEST(HourWindow, EachMinuteWithAttemptsOldestFirst) {
  // What the portal's health chart draws (docs/delivery.md, "Endpoint health"): every minute of
  // the hour that had attempts, in time order, whatever slot of the ring it landed in.
  hour_window w;
  const timestamp start{minutes{29'000'000}};
  for (int m = 0; m < 70; m += 7) {  // minutes 0, 7, ..., 63: the ring wraps after 60
    for (int i = 0; i <= m % 3; ++i)
      w.record(start + minutes{m} + seconds{5}, true, milliseconds{m + 10});
    w.record(start + minutes{m} + seconds{9}, false, std::nullopt);
  }
  const window_summary s = w.summary(start + minutes{63} + seconds{30});
  // Minute 0 is more than an hour old: minutes 7..63 remain.
  ASSERT_EQ(s.minutes.size(), 9u);
  std::uint64_t successes = 0, failures = 0;
  for (std::size_t i = 0; i < s.minutes.size(); ++i) {
    const int m = 7 * static_cast<int>(i + 1);
    const minute_summary& one = s.minutes[i];
    EXPECT_EQ(one.at, start + minutes{m}) << i;
    EXPECT_EQ(one.successes, static_cast<std::uint64_t>(m % 3 + 1)) << i;
    EXPECT_EQ(one.failures, 1u) << i;
    ASSERT_TRUE(one.p50_ms) << i;
    EXPECT_GE(*one.p50_ms, static_cast<std::uint64_t>(m + 10)) << i;
    EXPECT_LE(static_cast<double>(*one.p50_ms), (m + 10) * 1.25) << i;
    successes += one.successes;
    failures += one.failures;
  }
  // The minutes add up to the hour.
  EXPECT_EQ(successes, s.successes);
  EXPECT_EQ(failures, s.failures);
  // A minute of failures without a response has no latency.
  hour_window only_failures;
  only_failures.record(start, false, std::nullopt);
  const window_summary f = only_failures.summary(start);
  ASSERT_EQ(f.minutes.size(), 1u);
  EXPECT_FALSE(f.minutes[0].p50_ms);
}

TEST(HourWindow, PercentilesWithinAQuarter) {
  hour_window w;
  const timestamp now = kT0;
  for (int i = 0; i < 98; ++i) w.record(now, true, milliseconds{100});
  w.record(now, true, milliseconds{900});
  w.record(now, true, milliseconds{5000});
  w.record(now, false, std::nullopt);  // no response: counted, no latency
  const window_summary s = w.summary(now);
  EXPECT_EQ(s.successes, 100u);
  EXPECT_EQ(s.failures, 1u);
  ASSERT_TRUE(s.p50_ms && s.p99_ms);
  EXPECT_GE(*s.p50_ms, 100u);
  EXPECT_LE(*s.p50_ms, 125u);
  EXPECT_GE(*s.p99_ms, 900u);
  EXPECT_LE(*s.p99_ms, 1125u);
}

TEST(HourWindow, BucketsAreExactBelowFourMillisecondsAndAQuarterWideAbove) {
  for (std::uint64_t ms = 0; ms < 4; ++ms) {
    EXPECT_EQ(hour_window::highest_in_bucket(hour_window::bucket_of(ms)), ms);
  }
  for (std::uint64_t ms = 4; ms < (std::uint64_t{1} << 17); ms = ms * 9 / 8 + 1) {
    const std::uint64_t top = hour_window::highest_in_bucket(hour_window::bucket_of(ms));
    EXPECT_GE(top, ms);
    EXPECT_LE(static_cast<double>(top), static_cast<double>(ms) * 1.25) << ms;
  }
  EXPECT_EQ(hour_window::bucket_of(std::uint64_t{1} << 40), hour_window::kLatencyBuckets - 1);
}

TEST(HourWindow, AMinuteOfManyAttemptsKeepsItsShape) {
  hour_window w;
  // More than a 16-bit count in one bucket: the slot halves and keeps its proportions.
  for (int i = 0; i < 150'000; ++i) w.record(kT0, true, milliseconds{10});
  for (int i = 0; i < 150'000; ++i) w.record(kT0, true, milliseconds{1000});
  const window_summary s = w.summary(kT0);
  EXPECT_EQ(s.successes, 300'000u);
  ASSERT_TRUE(s.p50_ms && s.p99_ms);
  EXPECT_LE(*s.p50_ms, 1250u);
  EXPECT_GE(*s.p99_ms, 1000u);
}

TEST(HourWindow, MemoryIsBoundedPerWebhook) {
  // The whole cost of a tracked webhook, whatever its traffic (docs/delivery.md, "Endpoint
  // health"): 60 slots of 144 bytes, and the map entry.
  EXPECT_EQ(sizeof(hour_window), 60u * 144u);
  EXPECT_LE(health_tracker::bytes_per_webhook(), 9u * 1024u);
  std::printf("[ measure  ] hour_window %zu bytes, per tracked webhook %zu bytes\n",
              sizeof(hour_window), health_tracker::bytes_per_webhook());
}

// ---------------------------------------------------------------- states and the report

TEST(HealthState, FromActivityStreakAndHour) {
  failure_streak none;
  failure_streak streak;
  streak.failures = 2;
  streak.first_failure_at = kT0;
  window_summary quiet;
  window_summary mixed{5, 1, 10, 20};
  window_summary all_failed{0, 7, 10, 20};
  EXPECT_EQ(health_state(false, none, quiet), "disabled");
  EXPECT_EQ(health_state(true, none, quiet), "healthy");
  EXPECT_EQ(health_state(true, none, window_summary{9, 0, 1, 2}), "healthy");
  EXPECT_EQ(health_state(true, none, mixed), "degraded");  // recovered, but failed this hour
  EXPECT_EQ(health_state(true, streak, mixed), "degraded");
  EXPECT_EQ(health_state(true, streak, all_failed), "failing");
  EXPECT_EQ(health_state(true, streak, quiet), "failing");  // after a restart: streak only
}

TEST(HealthReport, JsonFields) {
  health_report r;
  r.state = "degraded";
  r.streak.failures = 1;
  r.streak.first_failure_at = kT0;
  r.streak.last_failure_at = kT0;
  r.pending = 3;
  r.in_flight = 1;
  r.concurrency = 4;
  r.hour = window_summary{3, 1, 12, 40, {}};
  r.hour.minutes.push_back({kT0 - std::chrono::minutes{2}, 2, 0, 12});
  r.hour.minutes.push_back({kT0, 1, 1, std::nullopt});
  const auto o = to_json(r);
  EXPECT_EQ(o.at("state"), "degraded");
  EXPECT_TRUE(o.at("lastSuccessAt").is_null());
  EXPECT_EQ(o.at("lastFailureAt").as_string(), format_rfc3339(kT0));
  EXPECT_EQ(o.at("consecutiveFailures").as_uint64(), 1u);
  EXPECT_EQ(o.at("pending").as_uint64(), 3u);
  EXPECT_EQ(o.at("paused").as_uint64(), 0u);
  EXPECT_EQ(o.at("inFlight").as_uint64(), 1u);
  EXPECT_EQ(o.at("concurrency").as_uint64(), 4u);
  EXPECT_EQ(o.at("successRate1h").as_double(), 0.75);
  EXPECT_EQ(o.at("latencyP50Ms1h").as_uint64(), 12u);
  EXPECT_EQ(o.at("latencyP99Ms1h").as_uint64(), 40u);
  const auto& per_minute = o.at("minutes1h").as_array();
  ASSERT_EQ(per_minute.size(), 2u);
  EXPECT_EQ(per_minute[0].at("at").as_string(), format_rfc3339(kT0 - std::chrono::minutes{2}));
  EXPECT_EQ(per_minute[0].at("successes").as_uint64(), 2u);
  EXPECT_EQ(per_minute[0].at("failures").as_uint64(), 0u);
  EXPECT_EQ(per_minute[0].at("latencyP50Ms").as_uint64(), 12u);
  EXPECT_EQ(per_minute[1].at("failures").as_uint64(), 1u);
  EXPECT_TRUE(per_minute[1].at("latencyP50Ms").is_null());
  EXPECT_TRUE(to_json(health_report{}).at("successRate1h").is_null());
  EXPECT_TRUE(to_json(health_report{}).at("latencyP99Ms1h").is_null());
  EXPECT_TRUE(to_json(health_report{}).at("minutes1h").as_array().empty());
}

TEST(HealthTracker, SeriesCountAttemptsByOutcomeAndLatency) {
  health_tracker t;
  (void)t.record(kHook, succeeded_at(kT0, milliseconds{7}));
  (void)t.record(kHook, failed_at(kT0));
  (void)t.record(kHook, succeeded_at(kT0, milliseconds{2000}));
  const auto series = t.series();
  ASSERT_EQ(series.size(), 1u);
  EXPECT_EQ(series[0].first, kHook);
  EXPECT_EQ(series[0].second.succeeded, 2u);
  EXPECT_EQ(series[0].second.failed, 1u);
  EXPECT_EQ(series[0].second.latency[1], 1u);  // 7 ms: (5 ms, 10 ms]
  EXPECT_EQ(series[0].second.latency[2], 1u);  // 20 ms: (10 ms, 25 ms]
  EXPECT_EQ(series[0].second.latency[8], 1u);  // 2 s: (1 s, 2.5 s]
  EXPECT_EQ(series[0].second.latency_ms_sum, 2027u);
  t.forget(kHook);
  EXPECT_TRUE(t.series().empty());
}

}  // namespace
}  // namespace hookd
