// Endpoint health end to end (docs/delivery.md, "Endpoint health", "Auto-disable", "Paused
// deliveries"): real receivers on 127.0.0.1 answering 410 or failing, the webhook set inactive
// with its reason, the hookd.webhook.disabled event reaching a hookd.* subscriber, the paused
// backlog listed and then delivered in order after PATCH {active: true}, GET …/health, and the
// per-webhook series of /metrics.

#include "support/delivery_fixture.hpp"

#include <gtest/gtest.h>

#include <set>

namespace hookd::test {
namespace {

std::string required_str(const json::object& o, std::string_view key) {
  return std::string(o.at(key).as_string());
}

class EndpointHealthE2E : public ::testing::Test {
 protected:
  void make_stack(delivery_stack_options options) {
    stack = std::make_unique<delivery_stack>(std::move(options));
    org = stack->create_organization("Acme");
    proj = stack->create_project(org, "shop");
  }

  std::string hook(const std::string& name, const std::string& path,
                   std::initializer_list<std::string_view> events) {
    json::array list;
    for (auto e : events) list.emplace_back(e);
    auto created = stack->create_webhook(
        org, proj, {{"name", name}, {"url", sink.url(path)}, {"events", list}});
    return std::string(created.at("_id").as_string());
  }

  void ingest(std::int64_t seq) {
    auto r = stack->ingest(org, proj, {{"type", "order.created"}, {"data", {{"seq", seq}}}});
    ASSERT_EQ(r.status, 202u) << r.body;
  }

  json::object webhook(const std::string& id) {
    auto r = stack->get(delivery_stack::webhook_path(org, proj, id));
    EXPECT_EQ(r.status, 200u) << r.body;
    return r.json().as_object();
  }
  bool inactive(const std::string& id) {
    auto w = webhook(id);
    return w.contains("active") && !w.at("active").as_bool();
  }
  json::object health(const std::string& id) {
    auto r = stack->get(delivery_stack::webhook_path(org, proj, id) + "/health");
    EXPECT_EQ(r.status, 200u) << r.body;
    return r.json().as_object();
  }
  json::array deliveries(const std::string& id, const std::string& query) {
    auto r = stack->get(delivery_stack::deliveries_path(org, proj, id) + "?limit=100" + query);
    EXPECT_EQ(r.status, 200u) << r.body;
    return r.json().at("data").as_array();
  }
  // The seq of each request a path received with `status`, in the order they came.
  std::vector<std::int64_t> seqs(const std::string& path, unsigned status) {
    std::vector<std::int64_t> out;
    for (const auto& got : sink.requests(path)) {
      if (got.answered == status)
        out.push_back(json::parse(got.body).at("data").at("seq").as_int64());
    }
    return out;
  }
  // The hookd.webhook.disabled events a path received: their data.
  std::vector<json::object> disabled_events(const std::string& path) {
    std::vector<json::object> out;
    for (const auto& got : sink.requests(path)) {
      auto body = json::parse(got.body).as_object();
      if (body.at("type").as_string() == "hookd.webhook.disabled") {
        out.push_back(body.at("data").as_object());
      }
    }
    return out;
  }

  receiver sink;
  std::unique_ptr<delivery_stack> stack;
  std::string org, proj;
};

TEST_F(EndpointHealthE2E, GoneDisablesTheWebhookAndTellsAHookdSubscriber) {
  delivery_stack_options o;
  o.max_in_flight_per_webhook = 1;  // the second delivery waits behind the first
  o.retry_schedule = {100ms, 100ms, 100ms};
  make_stack(o);
  // The first answer is a 410, late enough that the second event is queued behind it.
  sink.script("/gone", {{410, {}, "gone", 300ms}});
  const std::string gone = hook("Gone", "/gone", {"*"});  // would match the event, if active
  (void)hook("Watcher", "/watch", {"hookd.*"});
  ingest(1);
  ingest(2);

  ASSERT_TRUE(eventually([&] { return inactive(gone); }));
  const json::object w = webhook(gone);
  EXPECT_EQ(w.at("disabledReason"), "gone");
  ASSERT_TRUE(w.contains("disabledAt"));
  EXPECT_TRUE(parse_rfc3339(w.at("disabledAt").as_string()));

  ASSERT_TRUE(eventually([&] { return disabled_events("/watch").size() == 1; }));
  const json::object data = disabled_events("/watch").at(0);
  EXPECT_EQ(data.at("webhookId"), json::value(gone));
  EXPECT_EQ(data.at("reason"), "gone");
  // Never to the disabled webhook itself, although it subscribed to everything.
  EXPECT_TRUE(disabled_events("/gone").empty());

  // The 410 failed its delivery; the second one is kept, paused. The dispatcher disables the
  // webhook (which sends the event above) before it hands the 410 to the delivery log, so wait
  // until that delivery is recorded and out of the pending ones (then only the second is paused).
  ASSERT_TRUE(eventually([&] {
    return deliveries(gone, "&status=failed").size() == 1 &&
           health(gone).at("paused") == json::value(1);
  }));
  auto failed = deliveries(gone, "&status=failed");
  ASSERT_EQ(failed.size(), 1u);
  EXPECT_EQ(failed[0].at("reason"), "410 Gone");
  auto paused = deliveries(gone, "&status=paused");
  ASSERT_EQ(paused.size(), 1u);
  EXPECT_EQ(paused[0].at("status"), "paused");
  EXPECT_TRUE(paused[0].at("nextAttemptAt").is_null());
  auto event = stack->get(
      delivery_stack::event_path(org, proj, required_str(paused[0].as_object(), "event")));
  ASSERT_EQ(event.status, 200u) << event.body;
  EXPECT_EQ(event.json().at("deliveries").at(0).at("status"), "paused");
  EXPECT_TRUE(deliveries(gone, "&status=pending").empty());
  auto project_paused = stack->get(delivery_stack::project_deliveries_path(org, proj) +
                                   "?status=pending,paused&webhook=" + gone);
  ASSERT_EQ(project_paused.status, 200u) << project_paused.body;
  EXPECT_EQ(project_paused.json().at("data").as_array().size(), 1u);
  EXPECT_EQ(required_str(health(gone), "state"), "disabled");
  EXPECT_EQ(health(gone).at("paused"), json::value(1));

  // Switched back on: the reason goes, and the paused delivery is sent.
  auto on = stack->patch(delivery_stack::webhook_path(org, proj, gone), {{"active", true}});
  ASSERT_EQ(on.status, 200u) << on.body;
  EXPECT_FALSE(on.json().as_object().contains("disabledReason"));
  EXPECT_FALSE(on.json().as_object().contains("disabledAt"));
  ASSERT_TRUE(eventually([&] { return seqs("/gone", 200) == std::vector<std::int64_t>{2}; }));
}

TEST_F(EndpointHealthE2E, AFailingWebhookIsDisabledItsBacklogPausedThenDeliveredInOrder) {
  delivery_stack_options o;
  o.disable_after = 2s;
  o.max_in_flight_per_webhook = 1;      // one at a time, so that arrival order is send order
  o.retry_schedule.assign(200, 100ms);  // never exhausted within the test
  make_stack(o);
  sink.set_default("/failing", {500, {}, "down"});
  const std::string failing = hook("Failing", "/failing", {"order.*"});
  (void)hook("Watcher", "/watch", {"hookd.*"});
  constexpr std::size_t kEvents = 5;
  for (std::size_t i = 0; i < kEvents; ++i) ingest(static_cast<std::int64_t>(i));

  ASSERT_TRUE(eventually([&] { return inactive(failing); }, 30s));
  const json::object w = webhook(failing);
  EXPECT_EQ(w.at("disabledReason"), "failing");
  EXPECT_TRUE(w.contains("disabledAt"));
  ASSERT_TRUE(eventually([&] { return disabled_events("/watch").size() == 1; }));
  EXPECT_EQ(disabled_events("/watch").at(0).at("reason"), "failing");
  EXPECT_EQ(disabled_events("/watch").at(0).at("webhookId"), json::value(failing));

  // Every delivery is kept, paused; the failures that led here are on record.
  ASSERT_TRUE(eventually([&] { return deliveries(failing, "&status=paused").size() == kEvents; }));
  EXPECT_TRUE(deliveries(failing, "&status=pending").empty());
  EXPECT_TRUE(deliveries(failing, "&status=failed").empty());
  const json::object h = health(failing);
  EXPECT_EQ(required_str(h, "state"), "disabled");
  EXPECT_GE(h.at("consecutiveFailures").as_int64(), 10);
  EXPECT_EQ(h.at("paused").as_int64(), static_cast<std::int64_t>(kEvents));
  EXPECT_EQ(h.at("pending").as_int64(), 0);

  // Fixed, and switched back on: everything arrives, oldest first, nothing lost.
  sink.set_default("/failing", {200, {}, "ok"});
  auto on = stack->patch(delivery_stack::webhook_path(org, proj, failing), {{"active", true}});
  ASSERT_EQ(on.status, 200u) << on.body;
  EXPECT_FALSE(on.json().as_object().contains("disabledReason"));
  ASSERT_TRUE(eventually([&] { return seqs("/failing", 200).size() == kEvents; }));
  EXPECT_EQ(seqs("/failing", 200), (std::vector<std::int64_t>{0, 1, 2, 3, 4}));
  ASSERT_TRUE(
      eventually([&] { return deliveries(failing, "&status=succeeded").size() == kEvents; }));
  // The streak was forgiven with the reactivation, and the successes ended it.
  const json::object after = health(failing);
  EXPECT_EQ(after.at("consecutiveFailures"), json::value(0));
  EXPECT_EQ(required_str(after, "state"), "degraded");  // failures within the hour
}

TEST_F(EndpointHealthE2E, HealthOfAHealthyAndOfAFailingWebhook) {
  make_stack({});
  sink.set_default("/bad", {503, {}, "unavailable"});
  const std::string good = hook("Good", "/good", {"order.*"});
  const std::string bad = hook("Bad", "/bad", {"order.*"});
  {
    const json::object fresh = health(good);
    EXPECT_EQ(required_str(fresh, "state"), "healthy");
    EXPECT_TRUE(fresh.at("lastSuccessAt").is_null());
    EXPECT_TRUE(fresh.at("successRate1h").is_null());
    EXPECT_TRUE(fresh.at("latencyP50Ms1h").is_null());
    EXPECT_EQ(fresh.at("concurrency"), json::value(4));  // --max-inflight-per-webhook
  }
  for (std::int64_t i = 0; i < 3; ++i) ingest(i);
  ASSERT_TRUE(sink.wait_for("/good", 3));
  ASSERT_TRUE(eventually([&] { return health(good).at("pending") == json::value(0); }));
  ASSERT_TRUE(sink.wait_for("/bad", 6));  // the three first attempts and some retries

  const json::object g = health(good);
  EXPECT_EQ(required_str(g, "state"), "healthy");
  EXPECT_FALSE(g.at("lastSuccessAt").is_null());
  EXPECT_TRUE(g.at("lastFailureAt").is_null());
  EXPECT_EQ(g.at("consecutiveFailures"), json::value(0));
  EXPECT_EQ(g.at("successRate1h").as_double(), 1.0);
  EXPECT_LE(g.at("latencyP50Ms1h").as_int64(), g.at("latencyP99Ms1h").as_int64());
  // Per minute, what the portal's chart draws: the attempts all landed in the last minute or two.
  const json::array& per_minute = g.at("minutes1h").as_array();
  ASSERT_FALSE(per_minute.empty());
  ASSERT_LE(per_minute.size(), 2u);
  std::int64_t minute_successes = 0;
  for (const json::value& m : per_minute) {
    EXPECT_EQ(m.at("failures"), json::value(0));
    EXPECT_FALSE(m.at("latencyP50Ms").is_null());
    minute_successes += m.at("successes").as_int64();
  }
  EXPECT_GE(minute_successes, 1);
  EXPECT_EQ(g.at("paused"), json::value(0));
  EXPECT_EQ(g.at("inFlight"), json::value(0));

  ASSERT_TRUE(eventually([&] { return health(bad).at("consecutiveFailures").as_int64() >= 3; }));
  const json::object b = health(bad);
  EXPECT_EQ(required_str(b, "state"), "failing");
  EXPECT_TRUE(b.at("lastSuccessAt").is_null());
  EXPECT_FALSE(b.at("lastFailureAt").is_null());
  EXPECT_EQ(b.at("successRate1h").as_double(), 0.0);
  EXPECT_FALSE(b.at("latencyP99Ms1h").is_null());  // a 503 is a response
  EXPECT_EQ(b.at("paused"), json::value(0));

  // webhooks:read may look; a token of another organization may not.
  const std::string other = stack->create_organization("Other");
  auto reader = stack->create_token({org}, {"webhooks:read"});
  auto stranger = stack->create_token({other}, {"webhooks:read"});
  const std::string path = delivery_stack::webhook_path(org, proj, good) + "/health";
  EXPECT_EQ(stack->get(path, reader.secret).status, 200u);
  EXPECT_EQ(stack->get(path, stranger.secret).status, 403u);
  expect_problem(
      stack->get(delivery_stack::webhook_path(org, proj, "65a0000000000000000000ff") + "/health"),
      404);
  expect_problem(stack->get(delivery_stack::webhook_path(org, proj, "nope") + "/health"), 400);

  // The streak survives a restart (the hour window does not).
  const auto failures = b.at("consecutiveFailures").as_int64();
  stack->restart();
  const json::object again = health(bad);
  EXPECT_GE(again.at("consecutiveFailures").as_int64(), 1);
  EXPECT_LE(again.at("consecutiveFailures").as_int64(), failures + 100);
  EXPECT_FALSE(again.at("lastFailureAt").is_null());
}

TEST_F(EndpointHealthE2E, PerWebhookSeriesOnlyWithTheOption) {
  for (const bool per_webhook : {false, true}) {
    delivery_stack_options o;
    o.metrics_per_webhook = per_webhook;
    stack.reset();
    make_stack(o);
    const std::string id = hook("Good", "/metered", {"order.*"});
    ingest(1);
    ASSERT_TRUE(eventually([&] { return health(id).at("pending") == json::value(0); }));
    ASSERT_TRUE(eventually([&] { return health(id).at("lastSuccessAt").is_string(); }));
    const std::string text = stack->get("/metrics", "").body;
    const std::string attempts =
        "hookd_webhook_attempts_total{webhook=\"" + id + "\",outcome=\"succeeded\"} 1";
    const std::string latency =
        "hookd_webhook_attempt_duration_seconds_count{webhook=\"" + id + "\"} 1";
    if (per_webhook) {
      EXPECT_NE(text.find(attempts), std::string::npos) << text;
      EXPECT_NE(text.find(latency), std::string::npos) << text;
    } else {
      EXPECT_EQ(text.find("hookd_webhook_"), std::string::npos);
    }
  }
}

}  // namespace
}  // namespace hookd::test
