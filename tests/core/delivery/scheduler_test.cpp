#include "core/delivery/scheduler.hpp"

#include "core/delivery/delivery.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>
#include <set>

namespace hookd {
namespace {

using std::chrono::hours;
using std::chrono::milliseconds;
using std::chrono::minutes;
using std::chrono::seconds;

const timestamp kT0{std::chrono::milliseconds{1'700'000'000'000}};

// Ids whose order is their number.
object_id nth_id(std::uint32_t n, std::uint8_t kind = 0) {
  object_id::bytes_type b{};
  b[0] = kind;
  b[8] = static_cast<std::uint8_t>(n >> 24);
  b[9] = static_cast<std::uint8_t>(n >> 16);
  b[10] = static_cast<std::uint8_t>(n >> 8);
  b[11] = static_cast<std::uint8_t>(n);
  return object_id(b);
}
object_id delivery_id(std::uint32_t n) {
  return nth_id(n, 1);
}
object_id webhook_id(std::uint32_t n) {
  return nth_id(n, 2);
}

object_id organization_id(std::uint32_t n) {
  return nth_id(n, 3);
}

// The catalog as the scheduler sees it: webhooks that are active, inactive or gone, each in an
// organization of its own unless `organizations` names another.
struct fake_webhooks {
  std::map<object_id, webhook_state> states;
  std::map<object_id, object_id> organizations;
  std::map<object_id, std::uint32_t> rates;  // rateLimit of those that have one
  webhook_lookup lookup() {
    return [this](const object_id& id) {
      const auto it = states.find(id);
      if (it == states.end()) return webhook_info{};
      const auto org = organizations.find(id);
      const auto rate = rates.find(id);
      return webhook_info{
          it->second, org == organizations.end() ? id : org->second,
          rate == rates.end() ? std::nullopt : std::optional<std::uint32_t>(rate->second)};
    };
  }
  // An active webhook of `organization`.
  void add(const object_id& webhook, const object_id& organization) {
    states[webhook] = webhook_state::active;
    organizations[webhook] = organization;
  }
};

std::vector<object_id> deliveries_of(const std::vector<scheduled_job>& jobs) {
  std::vector<object_id> out;
  for (const auto& j : jobs) out.push_back(j.delivery);
  return out;
}

double mid() {
  return 0.5;
}  // no jitter: factor 1.0

// ---------------------------------------------------------------- decide

TEST(Decide, TwoHundredsSucceed) {
  const retry_policy policy;
  for (int status : {200, 201, 204, 299}) {
    const attempt_decision d = decide({status, std::nullopt}, 1, policy, kT0, mid);
    EXPECT_EQ(d.kind, decision_kind::succeeded) << status;
    EXPECT_EQ(d.retry_at, std::nullopt);
    EXPECT_EQ(d.reason, std::nullopt);
  }
}

TEST(Decide, GoneFailsAtOnceEvenOnTheFirstAttempt) {
  const attempt_decision d = decide({410, std::nullopt}, 1, retry_policy{}, kT0, mid);
  EXPECT_EQ(d.kind, decision_kind::failed);
  EXPECT_EQ(d.reason, "410 Gone");
  EXPECT_EQ(d.retry_at, std::nullopt);
}

TEST(Decide, RedirectsAndServerErrorsAndNoResponseAreRetriedOnSchedule) {
  const retry_policy policy;  // 5s, 5m, 30m, ...
  for (std::optional<int> status :
       {std::optional<int>(301), std::optional<int>(302), std::optional<int>(500),
        std::optional<int>(400), std::optional<int>()}) {
    const attempt_decision first = decide({status, std::nullopt}, 1, policy, kT0, mid);
    EXPECT_EQ(first.kind, decision_kind::retry);
    EXPECT_EQ(first.retry_at, kT0 + seconds(5));
    const attempt_decision third = decide({status, std::nullopt}, 3, policy, kT0, mid);
    EXPECT_EQ(third.retry_at, kT0 + minutes(30));
  }
}

TEST(Decide, JitterComesFromTheInjectedSource) {
  const retry_policy policy;
  EXPECT_EQ(decide({500, std::nullopt}, 2, policy, kT0, [] { return 0.0; }).retry_at,
            kT0 + minutes(4));  // 5m × 0.8
  EXPECT_EQ(decide({500, std::nullopt}, 2, policy, kT0, [] { return 0.75; }).retry_at,
            kT0 + milliseconds(330'000));  // 5m × 1.1
}

TEST(Decide, TooManyRequestsHonoursRetryAfterWithinTwiceTheStep) {
  const retry_policy policy;
  // Step after attempt 2 is 5 minutes: a Retry-After of 7 minutes is honoured as such.
  attempt_decision d = decide({429, std::string("420")}, 2, policy, kT0, mid);
  EXPECT_EQ(d.kind, decision_kind::retry);
  EXPECT_EQ(d.retry_at, kT0 + minutes(7));
  // Sooner than the step: the schedule wins.
  d = decide({429, std::string("1")}, 2, policy, kT0, mid);
  EXPECT_EQ(d.retry_at, kT0 + minutes(5));
  // Much later: capped at twice the step.
  d = decide({503, std::string("86400")}, 2, policy, kT0, mid);
  EXPECT_EQ(d.retry_at, kT0 + minutes(10));
  // An HTTP-date works too.
  d = decide({503, std::string("Tue, 14 Nov 2023 22:21:20 GMT")}, 2, policy, kT0, mid);
  EXPECT_EQ(d.retry_at, kT0 + minutes(8));
  // Garbage is ignored: the jittered schedule applies.
  d = decide({429, std::string("soon")}, 2, policy, kT0, [] { return 0.0; });
  EXPECT_EQ(d.retry_at, kT0 + minutes(4));
  // Retry-After on a plain 500 is not honoured.
  d = decide({500, std::string("420")}, 2, policy, kT0, mid);
  EXPECT_EQ(d.retry_at, kT0 + minutes(5));
}

TEST(Decide, AfterTheLastStepTheDeliveryFails) {
  const retry_policy policy({seconds(1), seconds(2)});  // three attempts in all
  EXPECT_EQ(decide({500, std::nullopt}, 2, policy, kT0, mid).kind, decision_kind::retry);
  const attempt_decision last = decide({500, std::nullopt}, 3, policy, kT0, mid);
  EXPECT_EQ(last.kind, decision_kind::failed);
  EXPECT_EQ(last.reason, "retries exhausted");
  // Retry-After does not extend the schedule.
  EXPECT_EQ(decide({429, std::string("5")}, 3, policy, kT0, mid).reason, "retries exhausted");
  // Success on the last attempt is still success.
  EXPECT_EQ(decide({200, std::nullopt}, 3, policy, kT0, mid).kind, decision_kind::succeeded);
  // The default schedule allows eight attempts.
  EXPECT_EQ(decide({500, std::nullopt}, 7, retry_policy{}, kT0, mid).kind, decision_kind::retry);
  EXPECT_EQ(decide({500, std::nullopt}, 8, retry_policy{}, kT0, mid).kind, decision_kind::failed);
}

// ---------------------------------------------------------------- scheduler

TEST(Scheduler, HandsOutOnlyJobsWhoseTimeHasComeEarliestFirst) {
  fake_webhooks hooks;
  for (std::uint32_t w = 1; w <= 3; ++w) hooks.states[webhook_id(w)] = webhook_state::active;
  scheduler s(hooks.lookup());
  EXPECT_EQ(s.next_due(), std::nullopt);
  s.schedule(delivery_id(1), webhook_id(1), kT0 + seconds(30));
  s.schedule(delivery_id(2), webhook_id(2), kT0 + seconds(10));
  s.schedule(delivery_id(3), webhook_id(3), kT0 + seconds(20));
  s.schedule(delivery_id(4), webhook_id(1), kT0 + seconds(5));
  EXPECT_EQ(s.next_due(), kT0 + seconds(5));

  EXPECT_TRUE(s.take_due(kT0, 10).ready.empty());
  const due_jobs first = s.take_due(kT0 + seconds(20), 10);
  EXPECT_EQ(deliveries_of(first.ready),
            (std::vector<object_id>{delivery_id(4), delivery_id(2), delivery_id(3)}));
  EXPECT_EQ(first.ready[0].webhook, webhook_id(1));
  EXPECT_EQ(first.ready[0].due, kT0 + seconds(5));
  EXPECT_EQ(s.next_due(), kT0 + seconds(30));
  EXPECT_EQ(deliveries_of(s.take_due(kT0 + hours(1), 10).ready),
            std::vector<object_id>{delivery_id(1)});
  EXPECT_EQ(s.counts().in_flight, 4u);
  EXPECT_EQ(s.counts().queued, 0u);
}

TEST(Scheduler, TakeDueHonoursMax) {
  fake_webhooks hooks;
  hooks.states[webhook_id(1)] = webhook_state::active;
  scheduler s(hooks.lookup(), {.max_in_flight = 100, .max_in_flight_per_webhook = 100});
  for (std::uint32_t i = 1; i <= 5; ++i) s.schedule(delivery_id(i), webhook_id(1), kT0);
  EXPECT_EQ(s.take_due(kT0, 2).ready.size(), 2u);
  EXPECT_EQ(s.take_due(kT0, 10).ready.size(), 3u);
}

TEST(Scheduler, RescheduleMovesAQueuedJob) {
  fake_webhooks hooks;
  hooks.states[webhook_id(1)] = webhook_state::active;
  scheduler s(hooks.lookup());
  s.schedule(delivery_id(1), webhook_id(1), kT0 + seconds(1));
  s.schedule(delivery_id(1), webhook_id(1), kT0 + seconds(60));
  EXPECT_EQ(s.counts().queued, 1u);
  EXPECT_TRUE(s.take_due(kT0 + seconds(30), 10).ready.empty());
  EXPECT_EQ(s.take_due(kT0 + seconds(60), 10).ready.size(), 1u);
}

TEST(Scheduler, SlowWebhookNeverHoldsMoreThanItsCapAndOthersStillGetThrough) {
  fake_webhooks hooks;
  hooks.states[webhook_id(1)] = webhook_state::active;
  hooks.states[webhook_id(2)] = webhook_state::active;
  scheduler s(hooks.lookup(), {.max_in_flight = 256, .max_in_flight_per_webhook = 4});
  // A thousand jobs for the slow webhook, all due before the other webhook's two.
  for (std::uint32_t i = 1; i <= 1000; ++i) s.schedule(delivery_id(i), webhook_id(1), kT0);
  s.schedule(delivery_id(5001), webhook_id(2), kT0 + seconds(1));
  s.schedule(delivery_id(5002), webhook_id(2), kT0 + seconds(2));

  const due_jobs taken = s.take_due(kT0 + seconds(10), 1000);
  std::map<object_id, int> per_webhook;
  for (const auto& j : taken.ready) ++per_webhook[j.webhook];
  EXPECT_EQ(per_webhook[webhook_id(1)], 4);
  EXPECT_EQ(per_webhook[webhook_id(2)], 2);
  EXPECT_EQ(s.counts().in_flight, 6u);
  EXPECT_EQ(s.counts().queued, 996u);

  // Nothing more can come out until a slot is released; next_due says so.
  EXPECT_TRUE(s.take_due(kT0 + seconds(10), 1000).ready.empty());
  EXPECT_EQ(s.next_due(), std::nullopt);

  // One done: exactly one more job of the slow webhook, the earliest remaining.
  s.done(taken.ready[0].delivery);
  EXPECT_EQ(s.next_due(), kT0);
  const due_jobs next = s.take_due(kT0 + seconds(10), 1000);
  ASSERT_EQ(next.ready.size(), 1u);
  EXPECT_EQ(next.ready[0].delivery, delivery_id(5));
}

TEST(Scheduler, GlobalCapLimitsAllWebhooksTogether) {
  fake_webhooks hooks;
  for (std::uint32_t w = 1; w <= 10; ++w) hooks.states[webhook_id(w)] = webhook_state::active;
  scheduler s(hooks.lookup(), {.max_in_flight = 5, .max_in_flight_per_webhook = 4});
  std::uint32_t n = 0;
  for (std::uint32_t w = 1; w <= 10; ++w) {
    for (int k = 0; k < 3; ++k) s.schedule(delivery_id(++n), webhook_id(w), kT0);
  }
  const due_jobs taken = s.take_due(kT0, 100);
  EXPECT_EQ(taken.ready.size(), 5u);
  EXPECT_TRUE(s.take_due(kT0, 100).ready.empty());
  EXPECT_EQ(s.next_due(), std::nullopt);
  s.done(taken.ready[1].delivery);
  s.done(taken.ready[2].delivery);
  EXPECT_EQ(s.take_due(kT0, 100).ready.size(), 2u);
  EXPECT_EQ(s.counts().in_flight, 5u);
  s.done(delivery_id(999));  // unknown: ignored
  EXPECT_EQ(s.counts().in_flight, 5u);
}

TEST(Scheduler, InactiveWebhookJobsAreHeldAndComeOutOnceActive) {
  fake_webhooks hooks;
  hooks.states[webhook_id(1)] = webhook_state::inactive;
  hooks.states[webhook_id(2)] = webhook_state::active;
  scheduler s(hooks.lookup(), {.held_recheck = seconds(1)});
  s.schedule(delivery_id(1), webhook_id(1), kT0);
  s.schedule(delivery_id(2), webhook_id(1), kT0 + seconds(1));
  s.schedule(delivery_id(3), webhook_id(2), kT0 + seconds(2));

  const due_jobs first = s.take_due(kT0 + seconds(5), 10);
  EXPECT_EQ(deliveries_of(first.ready), std::vector<object_id>{delivery_id(3)});
  EXPECT_TRUE(first.dropped.empty());
  EXPECT_EQ(s.counts().held, 2u);
  EXPECT_EQ(s.counts().queued, 2u);
  // Held jobs do not make next_due fire at once (no busy loop), but ask for a recheck.
  EXPECT_EQ(s.next_due(), kT0 + seconds(6));
  EXPECT_TRUE(s.take_due(kT0 + seconds(6), 10).ready.empty());

  hooks.states[webhook_id(1)] = webhook_state::active;
  const due_jobs later = s.take_due(kT0 + seconds(7), 10);
  EXPECT_EQ(deliveries_of(later.ready), (std::vector<object_id>{delivery_id(1), delivery_id(2)}));
  EXPECT_EQ(s.counts().held, 0u);
}

TEST(Scheduler, AJobMarkedEvenIfInactiveGoesOutWhileItsWebhooksOthersAreHeld) {
  fake_webhooks hooks;
  hooks.states[webhook_id(1)] = webhook_state::inactive;
  scheduler s(hooks.lookup(), {.held_recheck = seconds(1)});
  int wakes = 0;
  s.set_wake([&wakes] { ++wakes; });
  s.schedule(delivery_id(1), webhook_id(1), kT0);
  EXPECT_TRUE(s.take_due(kT0, 10).ready.empty());  // held from now on
  EXPECT_EQ(s.counts().held, 1u);
  const int before = wakes;
  s.schedule(delivery_id(2), webhook_id(1), kT0 + seconds(1), std::nullopt, true);  // a test ping
  EXPECT_GT(wakes, before);  // the loop looks at once, not at its next recheck

  EXPECT_TRUE(s.take_due(kT0, 10).ready.empty());  // not due yet
  const due_jobs due = s.take_due(kT0 + seconds(1), 10);
  EXPECT_EQ(deliveries_of(due.ready), std::vector<object_id>{delivery_id(2)});
  EXPECT_EQ(s.counts().held, 1u);  // the other job stays held
  EXPECT_EQ(s.counts().in_flight, 1u);

  // Retried: the mark stays while it is scheduled again before done().
  s.schedule(delivery_id(2), webhook_id(1), kT0 + seconds(2));
  s.done(delivery_id(2));
  EXPECT_EQ(deliveries_of(s.take_due(kT0 + seconds(2), 10).ready),
            std::vector<object_id>{delivery_id(2)});
  // Finished: done() without a reschedule forgets the mark; scheduled again plainly, it is held.
  s.done(delivery_id(2));
  s.schedule(delivery_id(2), webhook_id(1), kT0 + seconds(3));
  EXPECT_TRUE(s.take_due(kT0 + seconds(3), 10).ready.empty());
  EXPECT_EQ(s.counts().held, 2u);

  // The global cap still counts it.
  scheduler capped(hooks.lookup(), {.max_in_flight = 1, .held_recheck = seconds(1)});
  capped.schedule(delivery_id(3), webhook_id(2), kT0);  // unknown webhook 2: dropped when due
  hooks.states[webhook_id(3)] = webhook_state::active;
  capped.schedule(delivery_id(4), webhook_id(3), kT0);
  capped.schedule(delivery_id(5), webhook_id(1), kT0, std::nullopt, true);
  EXPECT_EQ(capped.take_due(kT0, 10).ready.size(), 1u);
  EXPECT_EQ(capped.counts().in_flight, 1u);
}

TEST(Scheduler, JobsOfDeletedWebhooksAreDroppedAndReported) {
  fake_webhooks hooks;
  hooks.states[webhook_id(1)] = webhook_state::active;
  hooks.states[webhook_id(2)] = webhook_state::inactive;
  scheduler s(hooks.lookup());
  s.schedule(delivery_id(1), webhook_id(1), kT0);
  s.schedule(delivery_id(2), webhook_id(1), kT0 + hours(5));  // not due yet, dropped too
  s.schedule(delivery_id(3), webhook_id(2), kT0);
  s.schedule(delivery_id(4), webhook_id(3), kT0);  // never existed
  const due_jobs first = s.take_due(kT0, 10);
  EXPECT_EQ(deliveries_of(first.ready), std::vector<object_id>{delivery_id(1)});
  EXPECT_EQ(deliveries_of(first.dropped), std::vector<object_id>{delivery_id(4)});
  EXPECT_EQ(s.counts().held, 1u);

  hooks.states.erase(webhook_id(1));
  hooks.states.erase(webhook_id(2));  // held, then deleted
  s.schedule(delivery_id(5), webhook_id(1), kT0);
  const due_jobs taken = s.take_due(kT0 + seconds(1), 10);
  EXPECT_TRUE(taken.ready.empty());
  std::set<object_id> dropped;
  for (const auto& j : taken.dropped) dropped.insert(j.delivery);
  EXPECT_EQ(dropped, (std::set<object_id>{delivery_id(2), delivery_id(3), delivery_id(5)}));
  EXPECT_EQ(s.counts().queued, 0u);
  EXPECT_EQ(s.counts().held, 0u);
}

TEST(Scheduler, JobForUnknownWebhookIsDroppedWhenDue) {
  fake_webhooks hooks;
  scheduler s(hooks.lookup());
  s.schedule(delivery_id(1), webhook_id(9), kT0);
  const due_jobs taken = s.take_due(kT0, 10);
  EXPECT_TRUE(taken.ready.empty());
  ASSERT_EQ(taken.dropped.size(), 1u);
  EXPECT_EQ(taken.dropped[0], (scheduled_job{delivery_id(1), webhook_id(9), kT0}));
}

TEST(Scheduler, CancelRemovesQueuedJobsAndAnInFlightJobIsNotRequeued) {
  fake_webhooks hooks;
  hooks.states[webhook_id(1)] = webhook_state::active;
  scheduler s(hooks.lookup());
  s.schedule(delivery_id(1), webhook_id(1), kT0);
  s.schedule(delivery_id(2), webhook_id(1), kT0 + seconds(10));
  EXPECT_TRUE(s.cancel(delivery_id(2)));
  EXPECT_FALSE(s.cancel(delivery_id(7)));
  ASSERT_EQ(s.take_due(kT0, 10).ready.size(), 1u);
  // Rescheduled while in flight, then cancelled: done() must not bring it back.
  s.schedule(delivery_id(1), webhook_id(1), kT0 + seconds(1));
  EXPECT_TRUE(s.cancel(delivery_id(1)));
  s.done(delivery_id(1));
  EXPECT_EQ(s.counts().queued, 0u);
  EXPECT_EQ(s.counts().in_flight, 0u);
  EXPECT_TRUE(s.take_due(kT0 + hours(1), 10).ready.empty());
  EXPECT_EQ(s.next_due(), std::nullopt);
}

TEST(Scheduler, AJobIsNeverHandedOutTwiceAtOnce) {
  fake_webhooks hooks;
  hooks.states[webhook_id(1)] = webhook_state::active;
  scheduler s(hooks.lookup());
  s.schedule(delivery_id(1), webhook_id(1), kT0);
  ASSERT_EQ(s.take_due(kT0, 10).ready.size(), 1u);
  s.schedule(delivery_id(1), webhook_id(1), kT0);  // e.g. a retry decided while in flight
  EXPECT_TRUE(s.take_due(kT0 + seconds(1), 10).ready.empty());
  s.done(delivery_id(1));
  const due_jobs again = s.take_due(kT0 + seconds(1), 10);
  ASSERT_EQ(again.ready.size(), 1u);
  EXPECT_EQ(again.ready[0].delivery, delivery_id(1));
}

TEST(Scheduler, SentFreesTheWebhookSlotWhileTheJobStaysTakenUntilDone) {
  fake_webhooks hooks;
  hooks.states[webhook_id(1)] = webhook_state::active;
  scheduler s(hooks.lookup(), {.max_in_flight = 3, .max_in_flight_per_webhook = 1});
  int wakes = 0;
  s.set_wake([&wakes] { ++wakes; });
  for (std::uint32_t i = 1; i <= 4; ++i) s.schedule(delivery_id(i), webhook_id(1), kT0);
  wakes = 0;

  // The webhook's one slot is taken: nothing more until the first attempt is sent.
  EXPECT_EQ(deliveries_of(s.take_due(kT0, 10).ready), std::vector{delivery_id(1)});
  EXPECT_TRUE(s.take_due(kT0, 10).ready.empty());
  EXPECT_EQ(s.next_due(), std::nullopt);

  // Sent: the slot is free for the next job (and the dispatcher is woken for it), while the
  // first one is still being recorded.
  s.sent(delivery_id(1));
  EXPECT_EQ(wakes, 1);
  EXPECT_EQ(s.next_due(), kT0);
  EXPECT_EQ(deliveries_of(s.take_due(kT0, 10).ready), std::vector{delivery_id(2)});
  EXPECT_EQ(s.counts().in_flight, 2u);
  EXPECT_EQ(s.counts().recording, 1u);

  // A second sent() of the same job does not free another slot.
  s.sent(delivery_id(1));
  EXPECT_TRUE(s.take_due(kT0, 10).ready.empty());

  // A recording job is still taken: a retry decided for it waits for done(), never handed out
  // twice at once.
  s.schedule(delivery_id(1), webhook_id(1), kT0);
  s.sent(delivery_id(2));
  EXPECT_EQ(deliveries_of(s.take_due(kT0, 10).ready), std::vector{delivery_id(3)});

  // Recording jobs count against the global cap (3): jobs 1, 2 and 3 are all taken.
  s.sent(delivery_id(3));
  EXPECT_EQ(s.counts().in_flight, 3u);
  EXPECT_EQ(s.counts().recording, 3u);
  EXPECT_TRUE(s.take_due(kT0, 10).ready.empty());
  EXPECT_EQ(s.next_due(), std::nullopt);

  // done() of a sent job frees its global slot only (its webhook slot is free already), and
  // queues the retry that came while it was recorded.
  s.done(delivery_id(1));
  EXPECT_EQ(s.counts().in_flight, 2u);
  EXPECT_EQ(s.counts().recording, 2u);
  EXPECT_EQ(s.counts().queued, 2u);  // 4 and the retry of 1
  EXPECT_EQ(deliveries_of(s.take_due(kT0, 10).ready), std::vector{delivery_id(1)});
  EXPECT_TRUE(s.take_due(kT0, 10).ready.empty());  // the webhook's slot: job 1 again

  // done() without sent() (an attempt that never reached the receiver) frees both slots.
  s.done(delivery_id(1));
  s.done(delivery_id(2));
  s.done(delivery_id(3));
  EXPECT_EQ(s.counts().in_flight, 0u);
  EXPECT_EQ(s.counts().recording, 0u);
  EXPECT_EQ(deliveries_of(s.take_due(kT0, 10).ready), std::vector{delivery_id(4)});
  s.sent(delivery_id(99));  // unknown: ignored
  EXPECT_EQ(s.counts().in_flight, 1u);
}

TEST(Scheduler, WakesTheDispatcherWhenSomethingBecomesReadySooner) {
  fake_webhooks hooks;
  hooks.states[webhook_id(1)] = webhook_state::active;
  scheduler s(hooks.lookup(), {.max_in_flight = 1});
  int wakes = 0;
  s.set_wake([&wakes] { ++wakes; });
  s.schedule(delivery_id(1), webhook_id(1), kT0 + seconds(10));
  EXPECT_EQ(wakes, 1);
  s.schedule(delivery_id(2), webhook_id(1), kT0 + seconds(20));  // later: no need to wake
  EXPECT_EQ(wakes, 1);
  s.schedule(delivery_id(3), webhook_id(1), kT0 + seconds(5));
  EXPECT_EQ(wakes, 2);
  ASSERT_EQ(s.take_due(kT0 + seconds(30), 10).ready.size(), 1u);  // global cap 1
  s.done(delivery_id(3));  // frees the only slot: jobs are ready again
  EXPECT_EQ(wakes, 3);
}

// ---------------------------------------------------------------- per-organization cap

TEST(Scheduler, OrganizationCapHoldsAcrossAllItsWebhooks) {
  fake_webhooks hooks;
  for (std::uint32_t w = 1; w <= 3; ++w) hooks.add(webhook_id(w), organization_id(1));
  scheduler s(
      hooks.lookup(),
      {.max_in_flight = 100, .max_in_flight_per_webhook = 4, .max_in_flight_per_organization = 5});
  std::uint32_t n = 0;
  for (std::uint32_t w = 1; w <= 3; ++w) {
    for (int k = 0; k < 4; ++k) s.schedule(delivery_id(++n), webhook_id(w), kT0);
  }
  // Each webhook could take four, twelve in all; the organization takes five.
  EXPECT_EQ(s.take_due(kT0, 100).ready.size(), 5u);
  EXPECT_TRUE(s.take_due(kT0 + hours(1), 100).ready.empty());
  EXPECT_EQ(s.next_due(), std::nullopt);
  EXPECT_EQ(s.counts().in_flight, 5u);
  EXPECT_EQ(s.counts().queued, 7u);
  EXPECT_EQ(s.counts().organizations_at_cap, 1u);
}

TEST(Scheduler, AnotherOrganizationStillGetsThroughWhileOneIsAtItsCap) {
  fake_webhooks hooks;
  for (std::uint32_t w = 1; w <= 3; ++w) hooks.add(webhook_id(w), organization_id(1));
  hooks.add(webhook_id(4), organization_id(2));
  // Organization 1 alone could fill the global cap (three webhooks, four each), and its jobs are
  // all due before organization 2's.
  scheduler s(
      hooks.lookup(),
      {.max_in_flight = 8, .max_in_flight_per_webhook = 4, .max_in_flight_per_organization = 4});
  std::uint32_t n = 0;
  for (std::uint32_t w = 1; w <= 3; ++w) {
    for (int k = 0; k < 100; ++k) s.schedule(delivery_id(++n), webhook_id(w), kT0);
  }
  s.schedule(delivery_id(1001), webhook_id(4), kT0 + seconds(1));
  const due_jobs taken = s.take_due(kT0 + seconds(10), 100);
  std::map<object_id, int> per_webhook;
  for (const auto& j : taken.ready) ++per_webhook[j.webhook];
  EXPECT_EQ(per_webhook[webhook_id(1)] + per_webhook[webhook_id(2)] + per_webhook[webhook_id(3)],
            4);
  EXPECT_EQ(per_webhook[webhook_id(4)], 1);
  EXPECT_EQ(taken.ready.back().delivery, delivery_id(1001));

  // Organization 1 still at its cap: the next job of organization 2 is the next one due, and it
  // comes out too.
  s.schedule(delivery_id(1002), webhook_id(4), kT0 + seconds(20));
  EXPECT_EQ(s.next_due(), kT0 + seconds(20));
  EXPECT_EQ(deliveries_of(s.take_due(kT0 + seconds(20), 100).ready),
            std::vector{delivery_id(1002)});
  EXPECT_EQ(s.counts().organizations_at_cap, 1u);
}

TEST(Scheduler, AFreedOrganizationSlotLetsItsWebhooksOutAgainInDueOrder) {
  fake_webhooks hooks;
  for (std::uint32_t w = 1; w <= 3; ++w) hooks.add(webhook_id(w), organization_id(1));
  scheduler s(
      hooks.lookup(),
      {.max_in_flight = 100, .max_in_flight_per_webhook = 4, .max_in_flight_per_organization = 2});
  int wakes = 0;
  s.set_wake([&wakes] { ++wakes; });
  // Due one second apart, spread over the three webhooks: delivery n is due at n seconds.
  for (std::uint32_t n = 1; n <= 8; ++n) {
    s.schedule(delivery_id(n), webhook_id((n - 1) % 3 + 1), kT0 + seconds(n));
  }
  const timestamp later = kT0 + hours(1);
  EXPECT_EQ(deliveries_of(s.take_due(later, 100).ready),
            (std::vector{delivery_id(1), delivery_id(2)}));
  EXPECT_EQ(s.next_due(), std::nullopt);

  // sent() frees the organization's slot (the job stays taken): the earliest waiting job, of
  // another webhook, comes out, and the dispatcher is woken for it.
  wakes = 0;
  s.sent(delivery_id(1));
  EXPECT_EQ(wakes, 1);
  EXPECT_EQ(s.next_due(), kT0 + seconds(3));
  EXPECT_EQ(deliveries_of(s.take_due(later, 100).ready), std::vector{delivery_id(3)});
  EXPECT_EQ(s.next_due(), std::nullopt);
  // done() of that sent job frees nothing more: its organization slot is free already.
  s.done(delivery_id(1));
  EXPECT_TRUE(s.take_due(later, 100).ready.empty());

  // done() without sent() frees it too.
  s.done(delivery_id(2));
  EXPECT_EQ(deliveries_of(s.take_due(later, 100).ready), std::vector{delivery_id(4)});
  // Two slots at once: the next two in due order, whichever webhooks they belong to.
  s.sent(delivery_id(3));
  s.sent(delivery_id(4));
  EXPECT_EQ(deliveries_of(s.take_due(later, 100).ready),
            (std::vector{delivery_id(5), delivery_id(6)}));
  EXPECT_EQ(s.counts().in_flight, 4u);  // 3 and 4 are still being recorded
  EXPECT_EQ(s.counts().recording, 2u);
}

TEST(Scheduler, NextDueIgnoresJobsOfAnOrganizationAtItsCap) {
  fake_webhooks hooks;
  hooks.add(webhook_id(1), organization_id(1));
  hooks.add(webhook_id(2), organization_id(1));
  hooks.add(webhook_id(3), organization_id(2));
  scheduler s(
      hooks.lookup(),
      {.max_in_flight = 100, .max_in_flight_per_webhook = 4, .max_in_flight_per_organization = 1});
  s.schedule(delivery_id(1), webhook_id(1), kT0);
  s.schedule(delivery_id(2), webhook_id(1), kT0);
  s.schedule(delivery_id(3), webhook_id(2), kT0);
  ASSERT_EQ(s.take_due(kT0, 100).ready.size(), 1u);
  // Jobs 2 and 3 are due, and their webhooks have free slots, but their organization has none.
  EXPECT_EQ(s.next_due(), std::nullopt);
  // Another organization's later job is what comes next.
  s.schedule(delivery_id(4), webhook_id(3), kT0 + hours(1));
  EXPECT_EQ(s.next_due(), kT0 + hours(1));
  EXPECT_TRUE(s.take_due(kT0 + minutes(1), 100).ready.empty());
  ASSERT_EQ(s.take_due(kT0 + hours(1), 100).ready.size(), 1u);
  EXPECT_EQ(s.next_due(), std::nullopt);
  s.done(delivery_id(1));
  EXPECT_EQ(s.next_due(), kT0);
}

TEST(Scheduler, CancelAndRescheduleWhileInFlightKeepTheOrganizationCountRight) {
  fake_webhooks hooks;
  hooks.add(webhook_id(1), organization_id(1));
  hooks.add(webhook_id(2), organization_id(1));
  scheduler s(
      hooks.lookup(),
      {.max_in_flight = 100, .max_in_flight_per_webhook = 4, .max_in_flight_per_organization = 2});
  s.schedule(delivery_id(1), webhook_id(1), kT0);
  s.schedule(delivery_id(2), webhook_id(1), kT0 + seconds(1));
  s.schedule(delivery_id(3), webhook_id(1), kT0 + seconds(2));
  s.schedule(delivery_id(4), webhook_id(2), kT0 + seconds(3));
  const timestamp later = kT0 + minutes(1);
  ASSERT_EQ(deliveries_of(s.take_due(later, 100).ready),
            (std::vector{delivery_id(1), delivery_id(2)}));

  // A retry decided while in flight, a cancel while in flight, a cancel of a queued job: none
  // frees or takes an organization slot.
  s.schedule(delivery_id(1), webhook_id(1), kT0 + seconds(5));
  EXPECT_TRUE(s.cancel(delivery_id(2)));
  EXPECT_TRUE(s.cancel(delivery_id(3)));
  EXPECT_TRUE(s.take_due(later, 100).ready.empty());
  EXPECT_EQ(s.next_due(), std::nullopt);

  // done() of the cancelled one frees its slot: job 4 (3 is cancelled).
  s.done(delivery_id(2));
  EXPECT_EQ(deliveries_of(s.take_due(later, 100).ready), std::vector{delivery_id(4)});
  // done() of the rescheduled one frees its slot and queues it again, and it takes the slot.
  s.done(delivery_id(1));
  EXPECT_EQ(deliveries_of(s.take_due(later, 100).ready), std::vector{delivery_id(1)});
  EXPECT_EQ(s.counts().organizations_at_cap, 1u);
  s.done(delivery_id(1));
  s.done(delivery_id(4));
  EXPECT_EQ(s.counts().in_flight, 0u);
  EXPECT_EQ(s.counts().queued, 0u);
  EXPECT_EQ(s.counts().organizations_at_cap, 0u);

  // No slot leaked either way: the organization takes exactly two again.
  for (std::uint32_t n = 11; n <= 15; ++n) s.schedule(delivery_id(n), webhook_id(n % 2 + 1), kT0);
  EXPECT_EQ(s.take_due(later, 100).ready.size(), 2u);
  EXPECT_TRUE(s.take_due(later, 100).ready.empty());
}

TEST(Scheduler, HeldAndDroppedWebhooksTakeNoOrganizationSlot) {
  fake_webhooks hooks;
  hooks.add(webhook_id(1), organization_id(1));
  hooks.add(webhook_id(2), organization_id(1));
  hooks.add(webhook_id(3), organization_id(1));
  hooks.states[webhook_id(1)] = webhook_state::inactive;
  scheduler s(
      hooks.lookup(),
      {.max_in_flight = 100, .max_in_flight_per_webhook = 4, .max_in_flight_per_organization = 2});
  s.schedule(delivery_id(1), webhook_id(1), kT0);
  s.schedule(delivery_id(2), webhook_id(2), kT0 + seconds(1));
  s.schedule(delivery_id(3), webhook_id(3), kT0 + seconds(2));
  s.schedule(delivery_id(4), webhook_id(3), kT0 + seconds(3));
  hooks.states.erase(webhook_id(2));  // deleted after its job was queued
  // The inactive webhook's job is held and the deleted one's dropped: both slots go to webhook 3.
  const due_jobs taken = s.take_due(kT0 + minutes(1), 100);
  EXPECT_EQ(deliveries_of(taken.ready), (std::vector{delivery_id(3), delivery_id(4)}));
  EXPECT_EQ(deliveries_of(taken.dropped), std::vector{delivery_id(2)});
  EXPECT_EQ(s.counts().held, 1u);

  // Active again while its organization is at its cap: it waits for a slot like the others.
  hooks.states[webhook_id(1)] = webhook_state::active;
  EXPECT_TRUE(s.take_due(kT0 + minutes(2), 100).ready.empty());
  EXPECT_EQ(s.counts().held, 0u);
  EXPECT_EQ(s.next_due(), std::nullopt);
  s.sent(delivery_id(3));
  EXPECT_EQ(deliveries_of(s.take_due(kT0 + minutes(2), 100).ready), std::vector{delivery_id(1)});
}

TEST(Scheduler, OrganizationShareDefaultsToAQuarterOfTheGlobalCap) {
  fake_webhooks hooks;
  EXPECT_EQ(scheduler(hooks.lookup()).options().max_in_flight_per_organization, 64u);
  EXPECT_EQ(
      scheduler(hooks.lookup(), {.max_in_flight = 8}).options().max_in_flight_per_organization, 2u);
  EXPECT_EQ(
      scheduler(hooks.lookup(), {.max_in_flight = 3}).options().max_in_flight_per_organization,
      1u);  // at least one
  EXPECT_EQ(scheduler(hooks.lookup(), {.max_in_flight = 8, .max_in_flight_per_organization = 8})
                .options()
                .max_in_flight_per_organization,
            8u);

  // In force: two webhooks of one organization, room for eight globally and four each.
  hooks.add(webhook_id(1), organization_id(1));
  hooks.add(webhook_id(2), organization_id(1));
  scheduler s(hooks.lookup(), {.max_in_flight = 8, .max_in_flight_per_webhook = 4});
  for (std::uint32_t n = 1; n <= 8; ++n) s.schedule(delivery_id(n), webhook_id(n % 2 + 1), kT0);
  EXPECT_EQ(s.take_due(kT0, 100).ready.size(), 2u);
}

// ---------------------------------------------------------------- flow control

sent_report answered(int status, timestamp now, std::optional<std::string> retry_after = {}) {
  return sent_report{attempt_response{status, std::move(retry_after)}, false, now};
}
sent_report timed_out(timestamp now) {
  return sent_report{attempt_response{}, true, now};
}

// Takes what is due, reports `report` for each and finishes them (done, nothing queued again).
std::vector<object_id> attempt_all(scheduler& s, timestamp now, const sent_report& report) {
  const std::vector<object_id> taken = deliveries_of(s.take_due(now, 1000).ready);
  for (const object_id& d : taken) s.sent(d, report);
  for (const object_id& d : taken) s.done(d);
  return taken;
}

TEST(FlowControl, CongestionClassesAndBurst) {
  for (int status : {429, 502, 503, 504}) EXPECT_TRUE(is_congestion(status, false)) << status;
  for (int status : {200, 400, 404, 410, 500, 501}) {
    EXPECT_FALSE(is_congestion(status, false)) << status;
  }
  EXPECT_TRUE(is_congestion(std::nullopt, true));
  EXPECT_FALSE(is_congestion(std::nullopt, false));  // refused, reset: not a sign of load
  EXPECT_EQ(burst_of(1), 1u);
  EXPECT_EQ(burst_of(19), 1u);
  EXPECT_EQ(burst_of(20), 2u);
  EXPECT_EQ(burst_of(10'000), 1000u);
}

TEST(FlowControl, ConcurrencyHalvesOnCongestionOncePerRoundAndGrowsBackByOne) {
  fake_webhooks hooks;
  hooks.states[webhook_id(1)] = webhook_state::active;
  scheduler s(hooks.lookup(), {.max_in_flight = 100,
                               .max_in_flight_per_webhook = 8,
                               .max_in_flight_per_organization = 100});
  for (std::uint32_t i = 1; i <= 200; ++i) s.schedule(delivery_id(i), webhook_id(1), kT0);
  EXPECT_EQ(s.flow(webhook_id(1)).limit, 8u);  // starts at the cap

  // Eight in flight meet 503s together: one halving, not eight.
  EXPECT_EQ(attempt_all(s, kT0, answered(503, kT0)).size(), 8u);
  EXPECT_EQ(s.flow(webhook_id(1)).limit, 4u);
  // The next round: 4 in flight; a timeout halves again, 502 and 504 likewise.
  EXPECT_EQ(attempt_all(s, kT0, timed_out(kT0)).size(), 4u);
  EXPECT_EQ(s.flow(webhook_id(1)).limit, 2u);
  EXPECT_EQ(attempt_all(s, kT0, answered(502, kT0)).size(), 2u);
  EXPECT_EQ(s.flow(webhook_id(1)).limit, 1u);
  EXPECT_EQ(attempt_all(s, kT0, answered(504, kT0)).size(), 1u);
  EXPECT_EQ(s.flow(webhook_id(1)).limit, 1u);  // never below one
  // A 500 or a refused connection says nothing about load: no change.
  EXPECT_EQ(attempt_all(s, kT0, answered(500, kT0)).size(), 1u);
  EXPECT_EQ(attempt_all(s, kT0, sent_report{{}, false, kT0}).size(), 1u);
  EXPECT_EQ(s.flow(webhook_id(1)).limit, 1u);

  // Additive increase: one more after `limit` successes at that limit.
  std::vector<std::size_t> seen_limits;
  for (int i = 0; i < 12; ++i) {
    attempt_all(s, kT0, answered(200, kT0));
    seen_limits.push_back(s.flow(webhook_id(1)).limit);
  }
  // Round by round: 1 taken -> 2; 2 -> 3; 3 -> 4; 4 -> 5; ... up to the cap.
  EXPECT_EQ(seen_limits, (std::vector<std::size_t>{2, 3, 4, 5, 6, 7, 8, 8, 8, 8, 8, 8}));
  EXPECT_EQ(s.take_due(kT0, 1000).ready.size(), 8u);  // the cap again
}

TEST(FlowControl, AnAttemptTakenBeforeAHalvingDoesNotHalveAgain) {
  fake_webhooks hooks;
  hooks.states[webhook_id(1)] = webhook_state::active;
  scheduler s(hooks.lookup(), {.max_in_flight = 100,
                               .max_in_flight_per_webhook = 4,
                               .max_in_flight_per_organization = 100});
  for (std::uint32_t i = 1; i <= 10; ++i) s.schedule(delivery_id(i), webhook_id(1), kT0);
  const auto first = deliveries_of(s.take_due(kT0, 100).ready);
  ASSERT_EQ(first.size(), 4u);
  s.sent(first[0], answered(429, kT0));
  EXPECT_EQ(s.flow(webhook_id(1)).limit, 2u);
  // Three are still in flight, above the new limit: nothing more goes out.
  EXPECT_TRUE(s.take_due(kT0, 100).ready.empty());
  s.sent(first[1], answered(503, kT0));  // the same round
  EXPECT_EQ(s.flow(webhook_id(1)).limit, 2u);
  s.sent(first[2], answered(200, kT0));
  EXPECT_EQ(s.take_due(kT0, 100).ready.size(), 1u);  // 1 in flight, limit 2: one more goes
  s.sent(first[3], answered(200, kT0));              // the second success at 2: one more slot
  EXPECT_EQ(s.flow(webhook_id(1)).limit, 3u);
  EXPECT_EQ(s.take_due(kT0, 100).ready.size(), 2u);
}

TEST(FlowControl, RetryAfterOn429Or503PausesTheWholeWebhook) {
  fake_webhooks hooks;
  hooks.states[webhook_id(1)] = webhook_state::active;
  hooks.states[webhook_id(2)] = webhook_state::active;
  scheduler s(hooks.lookup(), {.max_in_flight = 100,
                               .max_in_flight_per_webhook = 4,
                               .max_in_flight_per_organization = 100});
  for (std::uint32_t i = 1; i <= 3; ++i) s.schedule(delivery_id(i), webhook_id(1), kT0);
  s.schedule(delivery_id(9), webhook_id(2), kT0 + seconds(1));
  const auto taken = deliveries_of(s.take_due(kT0, 1).ready);
  ASSERT_EQ(taken, std::vector{delivery_id(1)});
  s.sent(delivery_id(1), answered(429, kT0 + milliseconds(100), "2"));
  s.schedule(delivery_id(1), webhook_id(1), kT0 + milliseconds(200));  // its own retry, sooner
  s.done(delivery_id(1));
  EXPECT_EQ(s.flow(webhook_id(1)).paused_until, kT0 + milliseconds(2100));

  // Nothing of webhook 1 goes before the pause ends, its retry and its other deliveries alike;
  // webhook 2 is not affected.
  EXPECT_EQ(s.next_due(), kT0 + seconds(1));
  EXPECT_EQ(deliveries_of(s.take_due(kT0 + seconds(1), 100).ready), std::vector{delivery_id(9)});
  EXPECT_EQ(s.next_due(), kT0 + milliseconds(2100));
  EXPECT_TRUE(s.take_due(kT0 + milliseconds(2099), 100).ready.empty());
  // Two of its three: the 429 also halved its concurrency.
  EXPECT_EQ(s.take_due(kT0 + milliseconds(2100), 100).ready.size(), 2u);
}

TEST(FlowControl, RetryAfterIsReadAsADateAndClampedAndOnlyOn429And503) {
  fake_webhooks hooks;
  for (std::uint32_t w = 1; w <= 4; ++w) hooks.states[webhook_id(w)] = webhook_state::active;
  scheduler s(hooks.lookup(), {.max_in_flight = 100,
                               .max_in_flight_per_webhook = 4,
                               .max_in_flight_per_organization = 100,
                               .max_pause = std::chrono::minutes(10)});
  for (std::uint32_t w = 1; w <= 4; ++w) s.schedule(delivery_id(w), webhook_id(w), kT0);
  ASSERT_EQ(s.take_due(kT0, 100).ready.size(), 4u);
  // kT0 is 2023-11-14T22:13:20Z: a date 30 s later.
  s.sent(delivery_id(1), answered(503, kT0, "Tue, 14 Nov 2023 22:13:50 GMT"));
  s.sent(delivery_id(2), answered(429, kT0, "86400"));  // a day: clamped to max_pause
  s.sent(delivery_id(3), answered(500, kT0, "60"));     // not 429 or 503: ignored
  s.sent(delivery_id(4), answered(429, kT0, "soon"));   // malformed: ignored
  EXPECT_EQ(s.flow(webhook_id(1)).paused_until, kT0 + seconds(30));
  EXPECT_EQ(s.flow(webhook_id(2)).paused_until, kT0 + minutes(10));
  EXPECT_EQ(s.flow(webhook_id(3)).paused_until, std::nullopt);
  EXPECT_EQ(s.flow(webhook_id(4)).paused_until, std::nullopt);
}

TEST(FlowControl, ARateLimitSpacesAttemptsAndNeverDropsThem) {
  fake_webhooks hooks;
  hooks.states[webhook_id(1)] = webhook_state::active;
  hooks.rates[webhook_id(1)] = 10;  // burst 1
  scheduler s(hooks.lookup(), {.max_in_flight = 100,
                               .max_in_flight_per_webhook = 4,
                               .max_in_flight_per_organization = 100});
  constexpr std::uint32_t kJobs = 35;
  for (std::uint32_t i = 1; i <= kJobs; ++i) s.schedule(delivery_id(i), webhook_id(1), kT0);

  // Driven by next_due() like the dispatcher, every attempt answered at once.
  std::vector<timestamp> taken_at;
  timestamp now = kT0;
  while (taken_at.size() < kJobs) {
    for (const object_id& d : attempt_all(s, now, answered(200, now))) {
      (void)d;
      taken_at.push_back(now);
    }
    const auto next = s.next_due();
    if (!next) break;
    ASSERT_GT(*next, now);
    now = *next;
  }
  ASSERT_EQ(taken_at.size(), kJobs);  // every one went, none was refused
  // At most rate + burst in any one-second window, and exactly the rate in steady state.
  for (std::size_t i = 0; i < taken_at.size(); ++i) {
    std::size_t in_window = 0;
    for (const timestamp t : taken_at) {
      if (t >= taken_at[i] && t < taken_at[i] + seconds(1)) ++in_window;
    }
    EXPECT_LE(in_window, 10u + burst_of(10)) << i;
  }
  EXPECT_EQ(taken_at.back() - taken_at.front(), milliseconds(100 * (kJobs - 1)));
}

TEST(FlowControl, ABurstAfterAQuietSpellAndAChangedRate) {
  fake_webhooks hooks;
  hooks.states[webhook_id(1)] = webhook_state::active;
  hooks.rates[webhook_id(1)] = 1000;  // burst 100
  scheduler s(hooks.lookup(), {.max_in_flight = 1000,
                               .max_in_flight_per_webhook = 1000,
                               .max_in_flight_per_organization = 1000});
  for (std::uint32_t i = 1; i <= 300; ++i) s.schedule(delivery_id(i), webhook_id(1), kT0);
  EXPECT_EQ(attempt_all(s, kT0, answered(200, kT0)).size(), 100u);  // the burst
  EXPECT_EQ(s.next_due(), kT0 + milliseconds(1));
  EXPECT_EQ(attempt_all(s, kT0 + milliseconds(10), answered(200, kT0)).size(), 10u);
  // Lowered to 10 per second (burst 1): the bucket shrinks to it.
  hooks.rates[webhook_id(1)] = 10;
  EXPECT_TRUE(attempt_all(s, kT0 + milliseconds(11), answered(200, kT0)).empty());
  EXPECT_EQ(attempt_all(s, kT0 + milliseconds(120), answered(200, kT0)).size(), 1u);
  // Removed: no limit but the in-flight cap, from the time its next token was due.
  hooks.rates.erase(webhook_id(1));
  EXPECT_EQ(s.next_due(), kT0 + milliseconds(220));
  EXPECT_EQ(attempt_all(s, kT0 + milliseconds(220), answered(200, kT0)).size(), 189u);
}

ordering key(const std::string& k, std::uint32_t created) {
  return ordering{k, kT0 + milliseconds(created)};
}

TEST(Ordering, OneKeyGoesOneAtATimeInIngestOrderOthersInParallel) {
  fake_webhooks hooks;
  hooks.states[webhook_id(1)] = webhook_state::active;
  scheduler s(hooks.lookup(), {.max_in_flight = 100,
                               .max_in_flight_per_webhook = 10,
                               .max_in_flight_per_organization = 100});
  s.schedule(delivery_id(1), webhook_id(1), kT0, key("a", 1));
  s.schedule(delivery_id(2), webhook_id(1), kT0, key("a", 2));
  s.schedule(delivery_id(3), webhook_id(1), kT0, key("b", 3));
  s.schedule(delivery_id(4), webhook_id(1), kT0);  // no key
  s.schedule(delivery_id(5), webhook_id(1), kT0, key("a", 5));
  s.schedule(delivery_id(6), webhook_id(1), kT0);
  EXPECT_EQ(deliveries_of(s.take_due(kT0, 100).ready),
            (std::vector{delivery_id(1), delivery_id(3), delivery_id(4), delivery_id(6)}));
  EXPECT_EQ(s.counts().queued, 2u);  // 2 and 5 wait behind 1

  // 1 is retried (queued again before done, as record_attempt does): 2 still waits, also while
  // 1's retry is not yet due; then 1 goes again.
  s.schedule(delivery_id(1), webhook_id(1), kT0 + seconds(5));
  s.sent(delivery_id(1));
  s.done(delivery_id(1));
  EXPECT_TRUE(s.take_due(kT0 + seconds(1), 100).ready.empty());
  EXPECT_EQ(s.next_due(), kT0 + seconds(5));
  EXPECT_EQ(deliveries_of(s.take_due(kT0 + seconds(5), 100).ready), std::vector{delivery_id(1)});
  // Finished for good (done without being queued again): 2 is next, then 5.
  s.done(delivery_id(1));
  EXPECT_EQ(deliveries_of(s.take_due(kT0 + seconds(5), 100).ready), std::vector{delivery_id(2)});
  EXPECT_TRUE(s.take_due(kT0 + seconds(5), 100).ready.empty());
  s.done(delivery_id(2));
  EXPECT_EQ(deliveries_of(s.take_due(kT0 + seconds(5), 100).ready), std::vector{delivery_id(5)});
}

TEST(Ordering, TheOldestGoesFirstWhateverTheOrderOfScheduling) {
  // As after a restart: the queue table is read in id order, not necessarily ingest order, and a
  // delivery sent back to pending may be older than the ones waiting.
  fake_webhooks hooks;
  hooks.states[webhook_id(1)] = webhook_state::active;
  scheduler s(hooks.lookup(), {.max_in_flight = 100,
                               .max_in_flight_per_webhook = 10,
                               .max_in_flight_per_organization = 100});
  s.schedule(delivery_id(3), webhook_id(1), kT0, key("a", 30));
  s.schedule(delivery_id(2), webhook_id(1), kT0, key("a", 20));
  s.schedule(delivery_id(1), webhook_id(1), kT0 + seconds(1), key("a", 10));
  // The oldest is not due yet: nothing of the key goes before it.
  EXPECT_TRUE(s.take_due(kT0, 100).ready.empty());
  EXPECT_EQ(s.next_due(), kT0 + seconds(1));
  std::vector<object_id> order;
  timestamp now = kT0 + seconds(1);
  for (int round = 0; round < 3; ++round) {
    const auto taken = deliveries_of(s.take_due(now, 100).ready);
    ASSERT_EQ(taken.size(), 1u);
    order.push_back(taken[0]);
    s.done(taken[0]);
  }
  EXPECT_EQ(order, (std::vector{delivery_id(1), delivery_id(2), delivery_id(3)}));
}

TEST(Ordering, CancellingTheHeadLetsTheNextGoAndAMissingWebhookDropsTheWholeLine) {
  fake_webhooks hooks;
  hooks.states[webhook_id(1)] = webhook_state::active;
  scheduler s(hooks.lookup(), {.max_in_flight = 100,
                               .max_in_flight_per_webhook = 10,
                               .max_in_flight_per_organization = 100});
  for (std::uint32_t i = 1; i <= 4; ++i)
    s.schedule(delivery_id(i), webhook_id(1), kT0, key("k", i));
  EXPECT_TRUE(s.cancel(delivery_id(1)));  // the head, queued
  EXPECT_EQ(deliveries_of(s.take_due(kT0, 100).ready), std::vector{delivery_id(2)});
  EXPECT_TRUE(s.cancel(delivery_id(3)));  // parked behind 2
  EXPECT_TRUE(s.cancel(delivery_id(2)));  // in flight: not queued again at done()
  s.done(delivery_id(2));
  EXPECT_EQ(deliveries_of(s.take_due(kT0, 100).ready), std::vector{delivery_id(4)});
  s.schedule(delivery_id(4), webhook_id(1), kT0);  // a retry
  s.done(delivery_id(4));
  s.schedule(delivery_id(5), webhook_id(1), kT0, key("k", 5));  // parked behind 4

  hooks.states.erase(webhook_id(1));
  const due_jobs out = s.take_due(kT0, 100);
  EXPECT_TRUE(out.ready.empty());
  std::set<object_id> dropped;
  for (const auto& j : out.dropped) dropped.insert(j.delivery);
  EXPECT_EQ(dropped, (std::set{delivery_id(4), delivery_id(5)}));
  EXPECT_EQ(s.counts().queued, 0u);
}

}  // namespace
}  // namespace hookd
