// End to end: flow control per webhook and ordering keys (docs/delivery.md, "Flow control" and
// "Ordering"), over the API and real receivers on 127.0.0.1. Assertions are on what the receiver
// recorded (arrival order, the concurrency it saw, the gaps between arrivals it timed), never on
// how fast hookd is.

#include "support/delivery_fixture.hpp"

#include <gtest/gtest.h>

#include <map>
#include <random>

namespace hookd::test {
namespace {

class FlowControlE2E : public ::testing::Test {
 protected:
  void make_stack(delivery_stack_options options) {
    stack = std::make_unique<delivery_stack>(std::move(options));
    org = stack->create_organization("Acme");
    proj = stack->create_project(org, "shop");
  }

  json::object hook(const std::string& path, json::object extra = {}) {
    json::object body{
        {"name", "Flow " + path}, {"url", sink.url(path)}, {"events", json::array{"order.*"}}};
    for (const auto& member : extra) body[member.key()] = member.value();
    return stack->create_webhook(org, proj, body);
  }

  http_reply ingest(const json::value& body) { return stack->ingest(org, proj, body); }

  std::uint64_t succeeded() { return stack->log().counters().succeeded; }

  static std::string id_of(const json::object& o) { return std::string(o.at("_id").as_string()); }

  receiver sink;  // outlives the stack: attempts in flight end with their sockets
  std::unique_ptr<delivery_stack> stack;
  std::string org, proj;
};

// ---------------------------------------------------------------- Retry-After

TEST_F(FlowControlE2E, RetryAfterOn429PausesEveryDeliveryOfTheWebhook) {
  delivery_stack_options options;
  options.retry_schedule = {100ms, 100ms, 100ms};
  make_stack(options);
  sink.script("/busy", {{429, {{"Retry-After", "2"}}, "slow down"}});
  hook("/busy");

  ASSERT_EQ(ingest({{"type", "order.created"}, {"data", 0}}).status, 202u);
  // The 429 is recorded, so the webhook's pause is in force (it is set before the record).
  ASSERT_TRUE(eventually([&] { return stack->log().counters().attempts >= 1; }));
  // Two more events, due at once; the first delivery's own retry is due 100..200 ms after its
  // attempt (the schedule's step bounds a Retry-After for the delivery itself).
  ASSERT_EQ(ingest({{"type", "order.created"}, {"data", 1}}).status, 202u);
  ASSERT_EQ(ingest({{"type", "order.created"}, {"data", 2}}).status, 202u);
  ASSERT_TRUE(eventually([&] { return succeeded() == 3; }));

  const auto got = sink.requests("/busy");
  ASSERT_EQ(got.size(), 4u);  // the 429, then the retry and the two others
  EXPECT_EQ(got[0].answered, 429u);
  // The receiver read the 429'd request before hookd's clock started the pause, and hookd's
  // clock counts whole milliseconds: 2 s less a millisecond of rounding at most (10 ms of margin
  // for the two clocks).
  for (std::size_t i = 1; i < got.size(); ++i) {
    EXPECT_EQ(got[i].answered, 200u);
    EXPECT_GE(got[i].at - got[0].at, 2s - 10ms) << "request " << i << " came during the pause";
  }
}

// ---------------------------------------------------------------- AIMD

TEST_F(FlowControlE2E, ConcurrencyFallsUnder503sAndClimbsBackAfter) {
  delivery_stack_options options;
  options.max_in_flight_per_webhook = 8;
  options.retry_schedule = std::vector<std::chrono::milliseconds>(10, 50ms);
  make_stack(options);
  // The first 8 requests are held until all 8 are in (the webhook starts at its cap), then all
  // answer 503; 22 more 503s follow; then 200s. Each answer takes 40 ms, so that the receiver
  // sees requests overlap.
  constexpr std::size_t kCap = 8, kFailures = 30, kEvents = 60;
  std::vector<scripted_reply> script(kCap, scripted_reply{503, {}, "busy", 0ms, true});
  for (std::size_t i = kCap; i < kFailures; ++i) script.push_back({503, {}, "busy", 40ms});
  sink.script("/load", std::move(script));
  sink.set_default("/load", {200, {}, "ok", 40ms});
  hook("/load");
  for (std::size_t i = 0; i < kEvents; ++i) {
    ASSERT_EQ(ingest({{"type", "order.created"}, {"data", i}}).status, 202u);
  }
  ASSERT_TRUE(eventually([&] { return sink.held() == kCap; }));
  sink.release_held();
  ASSERT_TRUE(eventually([&] { return succeeded() == kEvents; }, 60s));
  EXPECT_EQ(stack->log().counters().failed, 0u);

  const auto got = sink.requests("/load");
  ASSERT_GT(got.size(), kFailures + 10);
  const auto most_concurrent = [&got](std::size_t from, std::size_t to) {
    std::size_t most = 0;
    for (std::size_t i = from; i < to && i < got.size(); ++i) {
      most = std::max(most, got[i].concurrent);
    }
    return most;
  };
  // At the cap first; after rounds of 503s (each halving the limit once), one or two at a time;
  // after successes, more than that again.
  EXPECT_EQ(most_concurrent(0, kCap), kCap);
  EXPECT_LE(most_concurrent(20, kFailures), 2u);
  EXPECT_GE(most_concurrent(kFailures, got.size()), 4u);
  EXPECT_LE(sink.max_concurrent(), kCap);
}

// ---------------------------------------------------------------- rateLimit

TEST_F(FlowControlE2E, ARateLimitedWebhookGetsNoMoreThanItsRateAndNothingFails) {
  delivery_stack_options options;
  options.max_in_flight_per_webhook = 16;
  make_stack(options);
  constexpr std::int64_t kRate = 20;  // burst 2 (a tenth of a second's worth)
  constexpr std::size_t kEvents = 50;
  auto created = hook("/limited", {{"rateLimit", kRate}});
  EXPECT_EQ(created.at("rateLimit").as_int64(), kRate);
  for (std::size_t i = 0; i < kEvents; ++i) {
    ASSERT_EQ(ingest({{"type", "order.created"}, {"data", i}}).status, 202u);
  }
  ASSERT_TRUE(eventually([&] { return succeeded() == kEvents; }, 30s));
  EXPECT_EQ(stack->log().counters().attempts, kEvents);  // waiting is not failing

  const auto got = sink.requests("/limited");
  ASSERT_EQ(got.size(), kEvents);
  // In any one second: at most the rate plus the burst, and one more for the jitter between
  // hookd taking a token and the receiver reading the request.
  std::size_t most = 0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    std::size_t in_window = 0;
    for (const auto& r : got) {
      if (r.at >= got[i].at && r.at < got[i].at + 1s) ++in_window;
    }
    most = std::max(most, in_window);
  }
  EXPECT_LE(most, static_cast<std::size_t>(kRate) + 2 + 1);
}

TEST_F(FlowControlE2E, RateLimitIsValidatedSetAndCleared) {
  make_stack({});
  json::object body = delivery_stack::webhook_body();
  for (const json::value& bad :
       {json::value(0), json::value(10001), json::value(2.5), json::value("10"), json::value(-3)}) {
    body["rateLimit"] = bad;
    const auto r = stack->post(delivery_stack::webhooks_path(org, proj), body);
    expect_problem(r, 400);
    EXPECT_EQ(error_fields(r), std::vector<std::string>{"rateLimit"}) << json::serialize(bad);
  }
  body.erase("rateLimit");
  const auto h = stack->create_webhook(org, proj, body);
  EXPECT_FALSE(h.contains("rateLimit"));  // none unless set
  const std::string path = delivery_stack::webhook_path(org, proj, id_of(h));

  auto r = stack->patch(path, {{"rateLimit", 10000}});
  ASSERT_EQ(r.status, 200u) << r.body;
  EXPECT_EQ(r.json().at("rateLimit").as_int64(), 10000);
  r = stack->patch(path, {{"rateLimit", 10001}});
  expect_problem(r, 400);
  EXPECT_EQ(error_fields(r), std::vector<std::string>{"rateLimit"});
  // Kept across a restart, and cleared with null.
  stack->restart();
  EXPECT_EQ(stack->get(path).json().at("rateLimit").as_int64(), 10000);
  r = stack->patch(path, {{"rateLimit", nullptr}});
  ASSERT_EQ(r.status, 200u) << r.body;
  EXPECT_FALSE(r.json().as_object().contains("rateLimit"));
}

// ---------------------------------------------------------------- ordering keys

// For every key, the receiver must see the events strictly in order: each request of a key is
// for the event after the last one the receiver accepted (2xx) for that key, so a retry of the
// head comes before anything behind it. Returns the number of accepted events per key.
std::map<std::string, std::int64_t> check_order(const std::vector<received_request>& got) {
  std::map<std::string, std::int64_t> accepted;
  for (std::size_t i = 0; i < got.size(); ++i) {
    const json::value body = json::parse(got[i].body);
    const json::object& data = body.at("data").as_object();
    const std::string key(data.at("key").as_string());
    const std::int64_t seq = data.at("seq").as_int64();
    std::int64_t& next = accepted[key];
    EXPECT_EQ(seq, next) << "request " << i << " of key " << key << " is out of order";
    if (got[i].answered >= 200 && got[i].answered < 300) ++next;
  }
  return accepted;
}

TEST_F(FlowControlE2E, EventsOfOneKeyArriveInIngestOrderDespiteRandomFailures) {
  delivery_stack_options options;
  options.max_in_flight_per_webhook = 8;
  options.retry_schedule = std::vector<std::chrono::milliseconds>(12, 20ms);
  make_stack(options);
  // A receiver that fails 30% of requests, from a fixed seed.
  std::mt19937 rng(20261206);
  std::bernoulli_distribution fails(0.3);
  std::vector<scripted_reply> script;
  for (int i = 0; i < 2000; ++i) script.push_back({fails(rng) ? 500u : 200u});
  sink.script("/ordered", std::move(script));
  hook("/ordered");

  constexpr std::int64_t kKeys = 3, kPerKey = 50;
  for (std::int64_t seq = 0; seq < kPerKey; ++seq) {
    for (std::int64_t k = 0; k < kKeys; ++k) {
      const std::string key = "customer-" + std::to_string(k);
      const auto r = ingest({{"type", "order.updated"},
                             {"data", {{"key", key}, {"seq", seq}}},
                             {"orderingKey", key}});
      ASSERT_EQ(r.status, 202u) << r.body;
    }
  }
  ASSERT_TRUE(eventually([&] { return succeeded() == kKeys * kPerKey; }, 60s));
  EXPECT_EQ(stack->log().counters().failed, 0u);
  const auto accepted = check_order(sink.requests("/ordered"));
  ASSERT_EQ(accepted.size(), static_cast<std::size_t>(kKeys));
  for (const auto& [key, n] : accepted) EXPECT_EQ(n, kPerKey) << key;
}

TEST_F(FlowControlE2E, KeysAndUnkeyedEventsGoInParallel) {
  delivery_stack_options options;
  options.max_in_flight_per_webhook = 8;
  make_stack(options);
  // Every request is held until the test releases them: what goes out at once is visible.
  sink.set_default("/parallel", {200, {}, "ok", 0ms, true});
  hook("/parallel");
  for (std::int64_t seq = 0; seq < 2; ++seq) {
    for (const char* key : {"a", "b"}) {
      ASSERT_EQ(ingest({{"type", "order.updated"},
                        {"data", {{"key", key}, {"seq", seq}}},
                        {"orderingKey", key}})
                    .status,
                202u);
    }
  }
  ASSERT_EQ(ingest({{"type", "order.updated"}, {"data", {{"key", "-"}, {"seq", 0}}}}).status, 202u);
  ASSERT_EQ(ingest({{"type", "order.updated"}, {"data", {{"key", "-"}, {"seq", 1}}}}).status, 202u);
  // The first of a and of b and both unkeyed events: four at once; the second of each key waits.
  ASSERT_TRUE(eventually([&] { return sink.held() == 4; }));
  EXPECT_FALSE(eventually([&] { return sink.count("/parallel") > 4; }, 300ms));
  sink.release_held();
  ASSERT_TRUE(eventually([&] { return succeeded() == 6; }));
  std::vector<received_request> keyed;
  for (auto& r : sink.requests("/parallel")) {
    if (json::parse(r.body).at("data").at("key").as_string() != "-") keyed.push_back(r);
  }
  check_order(keyed);
}

TEST_F(FlowControlE2E, TheOrderHoldsAcrossARestart) {
  delivery_stack_options options;
  options.retry_schedule = std::vector<std::chrono::milliseconds>(8, 100ms);
  make_stack(options);
  sink.set_default("/restart", {500, {}, "not yet"});
  hook("/restart");
  for (std::int64_t seq = 0; seq < 5; ++seq) {
    ASSERT_EQ(ingest({{"type", "order.updated"},
                      {"data", {{"key", "k"}, {"seq", seq}}},
                      {"orderingKey", "k"}})
                  .status,
              202u);
  }
  ASSERT_TRUE(sink.wait_for("/restart", 2));  // the head, failing and retried
  stack->restart();  // the line is rebuilt from the stored deliveries: the oldest first
  sink.set_default("/restart", {200, {}, "ok"});
  ASSERT_TRUE(eventually([&] { return succeeded() == 5; }));
  const auto accepted = check_order(sink.requests("/restart"));
  EXPECT_EQ(accepted.at("k"), 5);
}

TEST_F(FlowControlE2E, AnOrderingKeyIsValidatedAndShownOnTheEvent) {
  make_stack({});
  for (const json::value& bad : {json::value(""), json::value(7), json::value(nullptr),
                                 json::value(std::string(129, 'k'))}) {
    const auto r = ingest({{"type", "order.created"}, {"data", 1}, {"orderingKey", bad}});
    expect_problem(r, 400);
    EXPECT_EQ(error_fields(r), std::vector<std::string>{"orderingKey"}) << json::serialize(bad);
  }
  const std::string key(128, 'k');
  const auto r = ingest({{"type", "order.created"}, {"data", 1}, {"orderingKey", key}});
  ASSERT_EQ(r.status, 202u) << r.body;
  const auto e = stack->get(delivery_stack::event_path(org, proj, r.str("_id")));
  ASSERT_EQ(e.status, 200u) << e.body;
  EXPECT_EQ(e.json().at("orderingKey").as_string(), key);
}

}  // namespace
}  // namespace hookd::test
