// End to end: events in over the API, deliveries out to a real receiver on 127.0.0.1, attempts
// and outcomes back through the API (docs/openapi.yaml).

#include "core/common/clock.hpp"
#include "core/delivery/signing.hpp"
#include "hookd/version.hpp"
#include "support/delivery_fixture.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <barrier>
#include <iostream>
#include <set>

namespace hookd::test {
namespace {

class DeliveryE2E : public ::testing::Test {
 protected:
  void make_stack(delivery_stack_options options = {}) {
    stack = std::make_unique<delivery_stack>(std::move(options));
    org = stack->create_organization("Acme");
    proj = stack->create_project(org, "shop");
  }
  void SetUp() override { make_stack(); }

  json::object hook(const std::string& name, const std::string& path,
                    std::initializer_list<std::string_view> events, bool active = true,
                    json::object headers = {}) {
    json::array list;
    for (auto e : events) list.emplace_back(e);
    return stack->create_webhook(org, proj,
                                 {{"name", name},
                                  {"url", sink.url(path)},
                                  {"events", list},
                                  {"active", active},
                                  {"headers", headers}});
  }

  http_reply ingest(const json::value& body, std::string_view token = delivery_stack::kAdminToken,
                    header_list headers = {}) {
    return stack->ingest(org, proj, body, token, std::move(headers));
  }

  // The webhook's deliveries through the API (newest first, one page of up to 100).
  json::array deliveries_of(const std::string& hook_id, const std::string& query = "") {
    auto r = stack->get(delivery_stack::deliveries_path(org, proj, hook_id) + "?limit=100" + query);
    EXPECT_EQ(r.status, 200u) << r.body;
    auto v = r.json();
    if (!v.is_object() || !v.as_object().contains("data")) return {};
    return v.as_object().at("data").as_array();
  }
  json::object delivery_detail(const std::string& hook_id, const std::string& delivery_id) {
    auto r = stack->get(delivery_stack::deliveries_path(org, proj, hook_id) + "/" + delivery_id);
    EXPECT_EQ(r.status, 200u) << r.body;
    auto v = r.json();
    return v.is_object() ? v.as_object() : json::object{};
  }
  // Waits until the delivery reached `status` (read through the API).
  bool wait_status(const std::string& hook_id, const std::string& delivery_id,
                   std::string_view status) {
    return eventually([&] {
      auto d = delivery_detail(hook_id, delivery_id);
      return d.contains("status") && d.at("status").as_string() == status;
    });
  }
  // The only delivery of a webhook, once it exists.
  std::string only_delivery(const std::string& hook_id) {
    auto list = deliveries_of(hook_id);
    EXPECT_EQ(list.size(), 1u);
    return list.empty() ? std::string() : std::string(list[0].at("_id").as_string());
  }

  static std::string id_of(const json::object& o) { return std::string(o.at("_id").as_string()); }

  receiver sink;
  std::unique_ptr<delivery_stack> stack;
  std::string org, proj;
};

// ---------------------------------------------------------------- ingest

TEST_F(DeliveryE2E, FansOutOnlyToMatchingActiveWebhooksWithTheStandardWebhooksRequest) {
  auto exact = hook("Exact", "/exact", {"order.created"}, true, {{"X-Tenant", "acme"}});
  auto prefix = hook("Prefix", "/prefix", {"order.*"});
  auto all_inactive = hook("Inactive", "/inactive", {"*"}, false);
  auto other = hook("Other", "/other", {"user.created", "order.deleted"});

  auto r =
      ingest({{"type", "order.created"}, {"data", {{"id", 42}, {"items", json::array{1, 2}}}}});
  ASSERT_EQ(r.status, 202u) << r.body;
  auto accepted = r.json().as_object();
  EXPECT_EQ(accepted.at("deliveries").as_int64(), 2);
  EXPECT_EQ(accepted.at("type").as_string(), "order.created");
  const std::string event_id(accepted.at("_id").as_string());
  const std::string timestamp(accepted.at("timestamp").as_string());

  ASSERT_TRUE(sink.wait_for("/exact", 1));
  ASSERT_TRUE(sink.wait_for("/prefix", 1));
  const auto exact_id = id_of(exact);
  ASSERT_TRUE(wait_status(exact_id, only_delivery(exact_id), "succeeded"));
  ASSERT_TRUE(wait_status(id_of(prefix), only_delivery(id_of(prefix)), "succeeded"));
  EXPECT_EQ(sink.count("/inactive"), 0u);
  EXPECT_EQ(sink.count("/other"), 0u);
  EXPECT_TRUE(deliveries_of(id_of(all_inactive)).empty());
  EXPECT_TRUE(deliveries_of(id_of(other)).empty());

  const auto got = sink.requests("/exact").at(0);
  EXPECT_EQ(got.header("content-type"), "application/json");
  EXPECT_EQ(got.header("user-agent"), "hookd/" + std::string(kVersion));
  EXPECT_EQ(got.header("x-tenant"), "acme");
  EXPECT_EQ(got.header("webhook-id"), only_delivery(exact_id));
  // The body is exactly {"type","timestamp","data"}, data as sent.
  auto body = json::parse(got.body).as_object();
  EXPECT_EQ(body.size(), 3u);
  EXPECT_EQ(body.at("type").as_string(), "order.created");
  EXPECT_EQ(body.at("timestamp").as_string(), timestamp);
  EXPECT_EQ(json::serialize(body.at("data")), R"({"id":42,"items":[1,2]})");
  EXPECT_EQ(got.body.substr(0, 8), R"({"type":)");

  // The signature verifies with the webhook's secret, like a receiver would check it.
  auto signer = webhook_signer::create(std::string(exact.at("secret").as_string()));
  ASSERT_TRUE(signer);
  const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count();
  auto verified = signer->verify(got.header("webhook-id"), got.header("webhook-timestamp"),
                                 got.body, got.header("webhook-signature"), now);
  EXPECT_TRUE(verified.ok()) << verified.detail;
  // Another webhook's secret does not verify it.
  auto other_signer = webhook_signer::create(std::string(prefix.at("secret").as_string()));
  EXPECT_FALSE(other_signer->verify(got.header("webhook-id"), got.header("webhook-timestamp"),
                                    got.body, got.header("webhook-signature"), now));

  // The event id is the one the 202 named.
  auto d = delivery_detail(exact_id, got.header("webhook-id"));
  EXPECT_EQ(d.at("event").as_string(), event_id);
  EXPECT_EQ(d.at("webhook").as_string(), exact_id);
  EXPECT_EQ(d.at("attempts").as_array().size(), 1u);
  EXPECT_EQ(d.at("attempts").as_array()[0].at("statusCode").as_int64(), 200);
  EXPECT_EQ(d.at("attempts").as_array()[0].at("response").as_string(), "ok");
}

// The dispatcher writes a webhook's URL and fixed headers once and reuses them: a change through
// the API must reach the very next delivery, whether it moves the URL or only the headers.
TEST_F(DeliveryE2E, AChangedWebhookSendsItsNewUrlAndHeadersFromTheNextDelivery) {
  auto changing = hook("Changing", "/before", {"order.created"}, true,
                       {{"X-Tenant", "acme"}, {"traceparent", "00-custom"}});
  const std::string path = delivery_stack::webhook_path(org, proj, id_of(changing));
  ASSERT_EQ(ingest({{"type", "order.created"}, {"data", {{"n", 1}}}}).status, 202u);
  ASSERT_TRUE(sink.wait_for("/before", 1));
  const auto first = sink.requests("/before").at(0);
  EXPECT_EQ(first.header("x-tenant"), "acme");
  // The event's trace, not the custom header of that name (docs/delivery.md, "Trace context").
  EXPECT_EQ(first.header("traceparent").size(), 55u) << first.header("traceparent");

  auto moved =
      stack->patch(path, {{"url", sink.url("/after")}, {"headers", {{"X-Tenant", "globex"}}}});
  ASSERT_EQ(moved.status, 200u) << moved.body;
  ASSERT_EQ(ingest({{"type", "order.created"}, {"data", {{"n", 2}}}}).status, 202u);
  ASSERT_TRUE(sink.wait_for("/after", 1));
  const auto second = sink.requests("/after").at(0);
  EXPECT_EQ(second.header("x-tenant"), "globex");
  EXPECT_EQ(json::parse(second.body).at("data").at("n").as_int64(), 2);

  // The same URL, other headers.
  auto renamed = stack->patch(path, {{"headers", {{"X-Tenant", "initech"}, {"X-Extra", "1"}}}});
  ASSERT_EQ(renamed.status, 200u) << renamed.body;
  ASSERT_EQ(ingest({{"type", "order.created"}, {"data", {{"n", 3}}}}).status, 202u);
  ASSERT_TRUE(sink.wait_for("/after", 2));
  const auto third = sink.requests("/after").at(1);
  EXPECT_EQ(third.header("x-tenant"), "initech");
  EXPECT_EQ(third.header("x-extra"), "1");
  EXPECT_EQ(sink.count("/before"), 1u);

  // Every one of them signed for its own id, time and body.
  auto signer = webhook_signer::create(std::string(changing.at("secret").as_string()));
  ASSERT_TRUE(signer);
  const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count();
  for (const auto& got : {first, second, third}) {
    auto verified = signer->verify(got.header("webhook-id"), got.header("webhook-timestamp"),
                                   got.body, got.header("webhook-signature"), now);
    EXPECT_TRUE(verified.ok()) << verified.detail;
  }
}
TEST_F(DeliveryE2E, AnEventWithoutMatchingWebhooksIsAcceptedWithNoDeliveries) {
  hook("Users", "/users", {"user.*"});
  auto r = ingest({{"type", "invoice.paid"}, {"data", nullptr}});
  ASSERT_EQ(r.status, 202u) << r.body;
  EXPECT_EQ(r.json().at("deliveries").as_int64(), 0);
  EXPECT_EQ(stack->log().counters().events, 1u);
}

TEST_F(DeliveryE2E, IngestValidatesTypeDataFieldsScopeAndProject) {
  auto r = ingest({{"type", "order.*"}, {"data", 1}});
  expect_problem(r, 400);
  EXPECT_EQ(error_fields(r), std::vector<std::string>{"type"});

  r = ingest({{"type", "order.created"}});
  expect_problem(r, 400);
  EXPECT_EQ(error_fields(r), std::vector<std::string>{"data"});

  r = ingest({{"type", "order.created"}, {"data", 1}, {"extra", true}});
  expect_problem(r, 400);
  EXPECT_EQ(error_fields(r), std::vector<std::string>{"extra"});

  r = ingest({{"type", 7}, {"data", 1}, {"idempotencyKey", 5}});
  expect_problem(r, 400);
  EXPECT_EQ(error_fields(r), (std::vector<std::string>{"type", "idempotencyKey"}));

  r = stack->call(bhttp::verb::post, delivery_stack::events_path(org, proj), std::string("{oops"));
  expect_problem(r, 400);
  r = stack->call(bhttp::verb::post, delivery_stack::events_path(org, proj),
                  std::string(20 * 1024, ' '));
  expect_problem(r, 413);

  // A webhooks token may not send events; an events token may not read deliveries.
  auto webhooks_only = stack->create_token({org}, {"webhooks:read", "webhooks:write"});
  expect_problem(ingest({{"type", "a.b"}, {"data", 1}}, webhooks_only.secret), 403);
  expect_problem(ingest({{"type", "a.b"}, {"data", 1}}, ""), 401);

  auto other_org = stack->create_organization("Other");
  auto other_proj = stack->create_project(other_org, "theirs");
  expect_problem(stack->ingest(org, other_proj, {{"type", "a.b"}, {"data", 1}}), 404);
  expect_problem(stack->ingest(org, "not-an-id", {{"type", "a.b"}, {"data", 1}}), 400);
  EXPECT_EQ(stack->log().counters().events, 0u);
}

TEST_F(DeliveryE2E, IdempotencyKeyReplaysTheFirstAnswerAndRefusesAnotherBody) {
  hook("All", "/all", {"*"});
  auto token = stack->create_token({org}, {"events:write"});
  const json::object body{
      {"type", "order.created"}, {"data", {{"n", 1}}}, {"idempotencyKey", "k-1"}};

  auto first = ingest(body, token.secret);
  ASSERT_EQ(first.status, 202u) << first.body;
  EXPECT_FALSE(first.has_header("Idempotent-Replayed"));
  auto again = ingest(body, token.secret);
  ASSERT_EQ(again.status, 202u) << again.body;
  EXPECT_EQ(again.json(), first.json());
  EXPECT_EQ(again.header("Idempotent-Replayed"), "true");

  // The same key in the header, with the same body, is the same request.
  auto by_header = ingest({{"type", "order.created"}, {"data", {{"n", 1}}}}, token.secret,
                          {{"Idempotency-Key", "k-1"}});
  ASSERT_EQ(by_header.status, 202u) << by_header.body;
  EXPECT_EQ(by_header.json(), first.json());

  auto conflict = ingest(
      {{"type", "order.created"}, {"data", {{"n", 2}}}, {"idempotencyKey", "k-1"}}, token.secret);
  expect_problem(conflict, 409);

  // Keys are per token: the admin token's k-1 is a new event.
  auto other_token = ingest(body);
  ASSERT_EQ(other_token.status, 202u);
  EXPECT_NE(other_token.str("_id"), first.str("_id"));

  // Header and body keys that disagree are refused.
  auto mixed = ingest(body, token.secret, {{"Idempotency-Key", "k-2"}});
  expect_problem(mixed, 400);
  EXPECT_EQ(error_fields(mixed), std::vector<std::string>{"idempotencyKey"});

  EXPECT_EQ(stack->log().counters().events, 2u);
  ASSERT_TRUE(sink.wait_for("/all", 2));
}

TEST_F(DeliveryE2E, FiftyConcurrentIdenticalIngestsCreateOneEvent) {
  auto all = hook("All", "/all", {"*"});
  constexpr int kRequests = 50;
  std::vector<http_reply> replies(kRequests);
  std::barrier start(kRequests);
  std::vector<std::thread> threads;
  const std::string target = delivery_stack::events_path(org, proj);
  const std::string body =
      json::serialize(json::object{{"type", "order.created"}, {"data", {{"sku", "A-1"}}}});
  for (int i = 0; i < kRequests; ++i) {
    threads.emplace_back([&, i] {
      http_client client(stack->endpoint());
      start.arrive_and_wait();
      replies[static_cast<std::size_t>(i)] =
          client.request(bhttp::verb::post, target, body,
                         {{"Authorization", "Bearer " + std::string(delivery_stack::kAdminToken)},
                          {"Content-Type", "application/json"},
                          {"Idempotency-Key", "same-key"}});
    });
  }
  for (auto& t : threads) t.join();

  std::set<std::string> ids;
  for (const auto& r : replies) {
    ASSERT_EQ(r.status, 202u) << r.body;
    ids.insert(r.str("_id"));
  }
  EXPECT_EQ(ids.size(), 1u);
  EXPECT_EQ(stack->log().counters().events, 1u);
  EXPECT_EQ(stack->log().counters().deliveries, 1u);
  EXPECT_EQ(stack->log().counters().replays, static_cast<std::uint64_t>(kRequests - 1));
  ASSERT_TRUE(wait_status(id_of(all), only_delivery(id_of(all)), "succeeded"));
  EXPECT_EQ(sink.count("/all"), 1u);
}

// ---------------------------------------------------------------- outcomes

TEST_F(DeliveryE2E, RetriesAfterServerErrorsWithTheSameWebhookIdThenSucceeds) {
  sink.script("/flaky", {{500}, {503, {}, "busy"}});
  auto h = hook("Flaky", "/flaky", {"order.created"});
  ASSERT_EQ(ingest({{"type", "order.created"}, {"data", 1}}).status, 202u);

  ASSERT_TRUE(sink.wait_for("/flaky", 3));
  const auto id = only_delivery(id_of(h));
  ASSERT_TRUE(wait_status(id_of(h), id, "succeeded"));
  auto got = sink.requests("/flaky");
  ASSERT_EQ(got.size(), 3u);
  for (const auto& r : got) {
    EXPECT_EQ(r.header("webhook-id"), id);
    EXPECT_EQ(r.body, got[0].body);
  }

  auto d = delivery_detail(id_of(h), id);
  const auto& attempts = d.at("attempts").as_array();
  ASSERT_EQ(attempts.size(), 3u);
  EXPECT_EQ(attempts[0].at("statusCode").as_int64(), 500);
  EXPECT_EQ(attempts[1].at("statusCode").as_int64(), 503);
  EXPECT_EQ(attempts[1].at("response").as_string(), "busy");
  EXPECT_EQ(attempts[2].at("statusCode").as_int64(), 200);
  EXPECT_EQ(d.at("nextAttemptAt"), nullptr);
}

TEST_F(DeliveryE2E, RetriesAreExhaustedAfterTheLastStep) {
  sink.set_default("/down", {500, {}, "down"});
  auto h = hook("Down", "/down", {"order.created"});
  ASSERT_EQ(ingest({{"type", "order.created"}, {"data", 1}}).status, 202u);
  const std::string hid = id_of(h);
  ASSERT_TRUE(eventually([&] { return deliveries_of(hid).size() == 1; }));
  const auto id = only_delivery(hid);
  ASSERT_TRUE(wait_status(hid, id, "failed"));
  auto d = delivery_detail(hid, id);
  EXPECT_EQ(d.at("reason").as_string(), "retries exhausted");
  EXPECT_EQ(d.at("attempts").as_array().size(), 3u);  // the first and one per step (100ms,200ms)
  EXPECT_EQ(sink.count("/down"), 3u);
}

TEST_F(DeliveryE2E, RetryAfterOn429And503IsHonouredWithinOneToTwoSteps) {
  // One step of 1 h: a plain retry would wait 48..72 min; Retry-After moves it, clamped to
  // [1 h, 2 h]. The wait is read from the recorded times, not measured.
  delivery_stack_options options;
  options.retry_schedule = {std::chrono::hours(1)};
  make_stack(options);
  sink.set_default("/slow-down", {429, {{"Retry-After", "5400"}}, ""});
  sink.set_default("/unavailable", {503, {{"Retry-After", "86400"}}, ""});
  auto slow = hook("Slow down", "/slow-down", {"order.created"});
  auto unavailable = hook("Unavailable", "/unavailable", {"order.created"});
  ASSERT_EQ(ingest({{"type", "order.created"}, {"data", 1}}).status, 202u);
  ASSERT_TRUE(eventually([&] { return stack->log().counters().retries == 2; }));

  auto wait_of = [&](const json::object& h) {
    auto d = delivery_detail(id_of(h), only_delivery(id_of(h)));
    const auto next = parse_rfc3339(d.at("nextAttemptAt").as_string());
    const auto at = parse_rfc3339(d.at("attempts").as_array().at(0).at("at").as_string());
    EXPECT_TRUE(next && at);
    return next && at ? *next - *at : std::chrono::milliseconds(0);
  };
  const auto slow_wait = wait_of(slow);
  EXPECT_GE(slow_wait, std::chrono::milliseconds(5400s));
  EXPECT_LE(slow_wait, std::chrono::milliseconds(5400s + 10s));
  const auto clamped = wait_of(unavailable);
  EXPECT_GE(clamped, std::chrono::milliseconds(2h));
  EXPECT_LE(clamped, std::chrono::milliseconds(2h + 10s));
}

TEST_F(DeliveryE2E, GoneStopsRetriesAtOnce) {
  sink.set_default("/gone", {410, {}, "gone"});
  auto h = hook("Gone", "/gone", {"order.created"});
  ASSERT_EQ(ingest({{"type", "order.created"}, {"data", 1}}).status, 202u);
  ASSERT_TRUE(sink.wait_for("/gone", 1));
  const auto id = only_delivery(id_of(h));
  ASSERT_TRUE(wait_status(id_of(h), id, "failed"));
  auto d = delivery_detail(id_of(h), id);
  EXPECT_EQ(d.at("reason").as_string(), "410 Gone");
  EXPECT_EQ(d.at("attempts").as_array().size(), 1u);
  EXPECT_EQ(sink.count("/gone"), 1u);
}

TEST_F(DeliveryE2E, ARedirectIsNotFollowedAndCountsAsAFailure) {
  sink.set_default("/moved", {302, {{"Location", sink.url("/elsewhere")}}, ""});
  auto h = hook("Moved", "/moved", {"order.created"});
  ASSERT_EQ(ingest({{"type", "order.created"}, {"data", 1}}).status, 202u);
  const std::string hid = id_of(h);
  ASSERT_TRUE(eventually([&] { return deliveries_of(hid).size() == 1; }));
  const auto id = only_delivery(hid);
  ASSERT_TRUE(wait_status(hid, id, "failed"));
  auto d = delivery_detail(hid, id);
  EXPECT_EQ(d.at("reason").as_string(), "retries exhausted");
  for (const auto& a : d.at("attempts").as_array()) {
    EXPECT_EQ(a.at("statusCode").as_int64(), 302);
  }
  EXPECT_EQ(sink.count("/elsewhere"), 0u);
  EXPECT_EQ(sink.count("/moved"), 3u);
}

TEST_F(DeliveryE2E, AReceiverThatHangsIsCutOffByTheDeliveryTimeout) {
  delivery_stack_options options;
  options.delivery_timeout = 300ms;
  options.retry_schedule = {100ms};
  make_stack(options);
  sink.set_default("/hang", {200, {}, "late", 10s});
  auto h = hook("Hang", "/hang", {"order.created"});
  ASSERT_EQ(ingest({{"type", "order.created"}, {"data", 1}}).status, 202u);
  const std::string hid = id_of(h);
  ASSERT_TRUE(eventually([&] { return deliveries_of(hid).size() == 1; }));
  const auto id = only_delivery(hid);
  ASSERT_TRUE(wait_status(hid, id, "failed"));
  auto d = delivery_detail(hid, id);
  const auto& attempts = d.at("attempts").as_array();
  ASSERT_EQ(attempts.size(), 2u);
  for (const auto& a : attempts) {
    EXPECT_EQ(a.at("statusCode"), nullptr);
    ASSERT_TRUE(a.at("error").is_string());
    EXPECT_NE(std::string(a.at("error").as_string()).find("timeout"), std::string::npos)
        << a.at("error");
  }
}

TEST_F(DeliveryE2E, TheGuardRefusesALoopbackTargetUnlessPrivateTargetsAreAllowed) {
  delivery_stack_options options;
  options.allow_private_targets = false;
  options.retry_schedule = {50ms};
  make_stack(options);
  auto h = hook("Local", "/local", {"order.created"});
  ASSERT_EQ(ingest({{"type", "order.created"}, {"data", 1}}).status, 202u);
  const std::string hid = id_of(h);
  ASSERT_TRUE(eventually([&] { return deliveries_of(hid).size() == 1; }));
  const auto id = only_delivery(hid);
  ASSERT_TRUE(wait_status(hid, id, "failed"));
  auto d = delivery_detail(hid, id);
  for (const auto& a : d.at("attempts").as_array()) {
    EXPECT_EQ(a.at("statusCode"), nullptr);
    ASSERT_TRUE(a.at("error").is_string());
    const std::string error(a.at("error").as_string());
    EXPECT_EQ(error.rfind("refused: 127.0.0.1", 0), 0u) << error;
  }
  EXPECT_EQ(sink.count(), 0u);
  EXPECT_EQ(stack->dispatch().stats().guard_refusals(), 2u);
  auto metrics = stack->get("/metrics", "");
  EXPECT_NE(metrics.body.find("hookd_delivery_ssrf_refusals_total 2\n"), std::string::npos);
}

TEST_F(DeliveryE2E, AWebhookNeverGetsMoreThanItsInFlightCapAtOnce) {
  delivery_stack_options options;
  options.max_in_flight_per_webhook = 2;
  make_stack(options);
  sink.set_default("/capped", {200, {}, "ok", 200ms});
  auto h = hook("Capped", "/capped", {"order.created"});
  constexpr std::size_t kEvents = 6;
  for (std::size_t i = 0; i < kEvents; ++i) {
    ASSERT_EQ(ingest({{"type", "order.created"}, {"data", i}}).status, 202u);
  }
  ASSERT_TRUE(
      eventually([&] { return deliveries_of(id_of(h), "&status=succeeded").size() == kEvents; }));
  EXPECT_EQ(sink.count("/capped"), kEvents);
  EXPECT_LE(sink.max_concurrent(), 2u);
}

TEST_F(DeliveryE2E, WebhooksOfOneReceiverShareItsKeepAliveConnections) {
  // Four webhooks at one origin, three attempts in flight each: never more than twelve requests
  // open at once, so twelve connections serve every round of deliveries. The first round is slow
  // (every event is in before it ends), so the rounds after it start together; a pool that kept
  // fewer idle connections than attempts in flight would close some after the first round and
  // open new ones for the next.
  delivery_stack_options options;
  options.max_in_flight_per_webhook = 3;
  make_stack(options);
  constexpr std::size_t kWebhooks = 4, kEvents = 9, kCap = 3;
  for (std::size_t w = 0; w < kWebhooks; ++w) {
    const std::string path = "/shared-" + std::to_string(w);
    sink.script(path, std::vector<scripted_reply>(kCap, {200, {}, "ok", 500ms}));
    sink.set_default(path, {200, {}, "ok", 50ms});
    hook("Shared " + std::to_string(w), path, {"order.created"});
  }
  for (std::size_t i = 0; i < kEvents; ++i) {
    ASSERT_EQ(ingest({{"type", "order.created"}, {"data", i}}).status, 202u);
  }
  ASSERT_TRUE(eventually([&] { return stack->log().counters().succeeded == kWebhooks * kEvents; }));
  EXPECT_EQ(sink.count(), kWebhooks * kEvents);
  EXPECT_LE(sink.max_concurrent(), kWebhooks * kCap);
  EXPECT_LE(sink.connections(), kWebhooks * kCap);
}

// ---------------------------------------------------------------- tenants

// Two organizations over a global cap of 8: A (the fixture's) with three webhooks at a receiver
// that holds every request until the test releases it (a tenant whose receivers stall each
// attempt), and B with one webhook at a receiver that answers 200 at once.
class TenantShareE2E : public DeliveryE2E {
 protected:
  static constexpr std::size_t kGlobalCap = 8, kStalledWebhooks = 3, kStalledEvents = 8;
  static constexpr std::size_t kStalledDeliveries = kStalledWebhooks * kStalledEvents;

  void SetUp() override {}  // start() makes the stack

  void start(std::size_t share) {
    delivery_stack_options options;
    options.max_in_flight = kGlobalCap;
    options.max_in_flight_per_organization = share;
    options.delivery_timeout = 60s;  // no held attempt times out while the test looks at it
    make_stack(options);
    for (std::size_t w = 0; w < kStalledWebhooks; ++w) {
      const std::string path = "/stalled-" + std::to_string(w);
      stalled.set_default(path, {.hold = true});
      stack->create_webhook(org, proj,
                            {{"name", "Stalled " + std::to_string(w)},
                             {"url", stalled.url(path)},
                             {"events", json::array{"order.created"}}});
    }
    other_org = stack->create_organization("Beta");
    other_proj = stack->create_project(other_org, "shop");
    other_hook = id_of(stack->create_webhook(other_org, other_proj,
                                             {{"name", "Prompt"},
                                              {"url", prompt.url("/prompt")},
                                              {"events", json::array{"order.created"}}}));
  }

  // kStalledEvents events into A: three deliveries each, held as they reach the receiver.
  void ingest_into_stalled() {
    for (std::size_t i = 0; i < kStalledEvents; ++i) {
      ASSERT_EQ(ingest({{"type", "order.created"}, {"data", i}}).status, 202u);
    }
  }
  void ingest_into_other() {
    ASSERT_EQ(
        stack->ingest(other_org, other_proj, {{"type", "order.created"}, {"data", "b"}}).status,
        202u);
  }
  std::size_t other_succeeded() {
    auto r = stack->get(delivery_stack::deliveries_path(other_org, other_proj, other_hook) +
                        "?status=succeeded");
    auto v = r.json();
    return v.is_object() && v.as_object().contains("data")
               ? v.as_object().at("data").as_array().size()
               : 0;
  }
  bool all_succeeded() { return stack->log().counters().succeeded == kStalledDeliveries + 1; }

  // For the record, not asserted: timings depend on the machine.
  void record(const char* name, std::chrono::steady_clock::duration d) {
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
    RecordProperty(name, static_cast<int>(ms));
    std::cout << "[ record   ] " << name << " = " << ms << " ms\n";
  }

  receiver stalled, prompt;  // destroyed before the stack: held attempts end with their sockets
  std::string other_org, other_proj, other_hook;
};

TEST_F(TenantShareE2E, AStalledOrganizationCannotTakeTheSlotsOfAnother) {
  constexpr std::size_t kShare = 4;
  start(kShare);
  const auto stalled_ingested = std::chrono::steady_clock::now();
  ingest_into_stalled();
  // A takes its share: 4 requests held, 20 deliveries queued behind them, 4 global slots free.
  ASSERT_TRUE(eventually([&] { return stalled.held() >= kShare; }));
  EXPECT_NE(stack->get("/metrics", "").body.find("hookd_delivery_organizations_at_cap 1\n"),
            std::string::npos);

  const auto other_ingested = std::chrono::steady_clock::now();
  ingest_into_other();
  ASSERT_TRUE(eventually([&] { return other_succeeded() == 1; }));
  // B succeeded while every request of A was still held, and A had no more than its share.
  EXPECT_EQ(stalled.answered(), 0u);
  EXPECT_EQ(stalled.held(), kShare);
  EXPECT_EQ(stalled.count(), kShare);
  // B's success is in history once its group commit returns; its slot is given back just after,
  // so the count may still include it for a moment.
  EXPECT_TRUE(eventually([&] { return stack->log().jobs().counts().in_flight == kShare; }));
  EXPECT_EQ(stack->log().jobs().counts().in_flight, kShare);
  record("b_first_attempt_ms", prompt.requests().at(0).at - other_ingested);

  const auto released = std::chrono::steady_clock::now();
  stalled.release_held();
  ASSERT_TRUE(eventually([&] { return all_succeeded(); }));
  EXPECT_EQ(stalled.count(), kStalledDeliveries);
  // The receiver counts a request answered once its write has completed, which may be after
  // hookd has read that response and recorded the success.
  EXPECT_TRUE(eventually([&] { return stalled.answered() == kStalledDeliveries; }));
  EXPECT_EQ(stalled.answered(), kStalledDeliveries);
  EXPECT_LE(stalled.max_concurrent(), kShare);
  record("a_first_attempt_ms", released - stalled_ingested);  // held until released
}

TEST_F(TenantShareE2E, WithTheShareAtTheGlobalCapAStalledOrganizationHoldsEverySlot) {
  // What happened before the share: A's held requests fill the global cap, and B waits for them.
  start(kGlobalCap);
  const auto stalled_ingested = std::chrono::steady_clock::now();
  ingest_into_stalled();
  ASSERT_TRUE(eventually([&] { return stalled.held() == kGlobalCap; }));

  const auto other_ingested = std::chrono::steady_clock::now();
  ingest_into_other();
  // B's job is queued (the ingest answered after scheduling it) and cannot come out: every slot
  // is held by A, and none frees before the release.
  const scheduler_counts jobs = stack->log().jobs().counts();
  EXPECT_EQ(jobs.in_flight, kGlobalCap);
  EXPECT_EQ(jobs.queued, kStalledDeliveries - kGlobalCap + 1);
  EXPECT_FALSE(eventually([&] { return prompt.count() > 0; }, 300ms));  // a look: it cannot come
  EXPECT_EQ(other_succeeded(), 0u);
  EXPECT_EQ(stalled.answered(), 0u);

  const auto released = std::chrono::steady_clock::now();
  stalled.release_held();
  ASSERT_TRUE(eventually([&] { return all_succeeded(); }));
  // B went out only once A's answers freed slots.
  EXPECT_GT(prompt.requests().at(0).at, released);
  EXPECT_LE(stalled.max_concurrent(), kGlobalCap);
  record("b_first_attempt_ms", prompt.requests().at(0).at - other_ingested);
  record("a_first_attempt_ms", released - stalled_ingested);  // held until released
}

// ---------------------------------------------------------------- webhook state

TEST_F(DeliveryE2E, DeletingAWebhookCancelsItsPendingDeliveries) {
  delivery_stack_options options;
  options.retry_schedule = {std::chrono::hours(1)};
  make_stack(options);
  sink.set_default("/busy", {500});
  auto h = hook("Busy", "/busy", {"order.created"});
  const std::string hid = id_of(h);
  for (int i = 0; i < 3; ++i)
    ASSERT_EQ(ingest({{"type", "order.created"}, {"data", i}}).status, 202u);
  ASSERT_TRUE(sink.wait_for("/busy", 3));
  ASSERT_TRUE(eventually([&] { return stack->log().counters().retries == 3; }));
  EXPECT_EQ(deliveries_of(hid, "&status=pending").size(), 3u);

  auto r = stack->del(test_server::webhook_path(org, proj, hid));
  ASSERT_EQ(r.status, 204u) << r.body;
  // The 204 comes after the cancellation: the history stays readable, all failed.
  auto list = deliveries_of(hid);
  ASSERT_EQ(list.size(), 3u);
  for (const auto& d : list) {
    EXPECT_EQ(d.at("status").as_string(), "failed");
    EXPECT_EQ(d.at("reason").as_string(), "webhook deleted");
  }
  EXPECT_EQ(stack->log().pending_count(), 0u);
  EXPECT_EQ(stack->log().jobs().counts().queued, 0u);
  EXPECT_EQ(stack->log().counters().cancelled, 3u);
}

TEST_F(DeliveryE2E, AnInactiveWebhookHoldsItsDeliveriesUntilItIsActiveAgain) {
  // A delivery pending when its webhook is deactivated is held, not dropped, and goes out once
  // the webhook is active again; events in between skip the inactive webhook. The retry comes
  // 1 s after the failed first attempt, time enough to deactivate the webhook before it.
  delivery_stack_options options;
  options.retry_schedule = {1s};
  make_stack(options);
  auto h = hook("Paused", "/paused", {"order.created"});
  const std::string hid = id_of(h);
  sink.script("/paused", {{500}});
  ASSERT_EQ(ingest({{"type", "order.created"}, {"data", 1}}).status, 202u);
  ASSERT_TRUE(sink.wait_for("/paused", 1));
  ASSERT_TRUE(eventually([&] { return stack->log().counters().retries == 1; }));
  ASSERT_EQ(stack->patch(test_server::webhook_path(org, proj, hid), {{"active", false}}).status,
            200u);
  const auto id = only_delivery(hid);
  ASSERT_TRUE(eventually([&] { return stack->log().jobs().counts().held == 1; }));
  // Shown as paused (docs/delivery.md, "Paused deliveries").
  EXPECT_EQ(delivery_detail(hid, id).at("status").as_string(), "paused");
  EXPECT_EQ(ingest({{"type", "order.created"}, {"data", 2}}).json().at("deliveries").as_int64(), 0);

  ASSERT_EQ(stack->patch(test_server::webhook_path(org, proj, hid), {{"active", true}}).status,
            200u);
  ASSERT_TRUE(wait_status(hid, id, "succeeded"));
  EXPECT_EQ(sink.count("/paused"), 2u);
}

TEST_F(DeliveryE2E, PendingDeliveriesResumeAfterARestart) {
  delivery_stack_options options;
  options.retry_schedule = {300ms, 300ms, 300ms};
  make_stack(options);
  sink.script("/later", {{500}});
  auto h = hook("Later", "/later", {"order.created"});
  ASSERT_EQ(ingest({{"type", "order.created"}, {"data", 1}}).status, 202u);
  ASSERT_TRUE(sink.wait_for("/later", 1));
  stack->restart();
  const std::string hid = id_of(h);
  const auto id = only_delivery(hid);
  ASSERT_TRUE(wait_status(hid, id, "succeeded"));
  auto got = sink.requests("/later");
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[1].header("webhook-id"), id);
}

// An attempt ends when its receiver has answered: from then on its record is the delivery log's
// to write, and a stop commits the records handed over before it (docs/operations.md, "Signals
// and shutdown"). The receiver answers the last request 300 ms late, so the stop begins while
// that attempt is in flight and it ends during the stop: after a restart every delivery has
// succeeded and none is sent again.
TEST_F(DeliveryE2E, AnAttemptThatEndsDuringAStopIsRecorded) {
  constexpr std::size_t kEvents = 10;
  std::vector<scripted_reply> replies(kEvents);
  replies.back().delay = 300ms;
  sink.script("/stop", std::move(replies));
  auto h = hook("Stop", "/stop", {"order.created"});
  for (std::size_t i = 0; i < kEvents; ++i) {
    ASSERT_EQ(ingest({{"type", "order.created"}, {"data", i}}).status, 202u);
  }
  ASSERT_TRUE(sink.wait_for("/stop", kEvents));
  ASSERT_LT(sink.answered(), kEvents) << "the stop must begin before the last answer";
  stack->restart();
  const json::array list = deliveries_of(id_of(h));
  ASSERT_EQ(list.size(), kEvents);
  for (const json::value& d : list) {
    EXPECT_EQ(std::string(d.at("status").as_string()), "succeeded") << d;
  }
  // A delivery left pending would be due at once after the restart.
  std::this_thread::sleep_for(500ms);
  EXPECT_EQ(sink.count("/stop"), kEvents);
}

// ---------------------------------------------------------------- the read API

TEST_F(DeliveryE2E, DeliveriesAreListedNewestFirstWithACursorAndFilteredByStatus) {
  sink.script("/list", {{500}});  // one delivery stays pending (its retry is in 1 h)
  delivery_stack_options options;
  options.retry_schedule = {std::chrono::hours(1)};
  make_stack(options);
  auto h = hook("List", "/list", {"order.created"});
  const std::string hid = id_of(h);
  for (int i = 0; i < 5; ++i)
    ASSERT_EQ(ingest({{"type", "order.created"}, {"data", i}}).status, 202u);
  ASSERT_TRUE(eventually([&] { return stack->log().counters().attempts == 5; }));

  std::vector<std::string> seen;
  std::string after;
  for (int page = 0; page < 10; ++page) {
    auto r = stack->get(delivery_stack::deliveries_path(org, proj, hid) + "?limit=2" +
                        (after.empty() ? "" : "&after=" + after));
    ASSERT_EQ(r.status, 200u) << r.body;
    auto body = r.json().as_object();
    const auto& data = body.at("data").as_array();
    EXPECT_LE(data.size(), 2u);
    for (const auto& d : data) seen.emplace_back(d.at("_id").as_string());
    if (body.at("next").is_null()) break;
    after = std::string(body.at("next").as_string());
    EXPECT_EQ(after, seen.back());
  }
  ASSERT_EQ(seen.size(), 5u);
  EXPECT_TRUE(std::is_sorted(seen.rbegin(), seen.rend()));  // ids grow with time: newest first
  EXPECT_EQ(std::set<std::string>(seen.begin(), seen.end()).size(), 5u);

  auto pending = deliveries_of(hid, "&status=pending");
  ASSERT_EQ(pending.size(), 1u);
  const std::string pending_id(pending[0].at("_id").as_string());
  EXPECT_NE(std::find(seen.begin(), seen.end(), pending_id), seen.end());
  EXPECT_TRUE(pending[0].at("nextAttemptAt").is_string());
  auto succeeded = deliveries_of(hid, "&status=succeeded");
  EXPECT_EQ(succeeded.size(), 4u);
  for (const auto& s : succeeded) EXPECT_EQ(s.at("nextAttemptAt"), nullptr);
  EXPECT_TRUE(deliveries_of(hid, "&status=failed").empty());

  // Detail with its attempts: time, duration, status, response excerpt, error.
  auto d = delivery_detail(hid, pending_id);
  ASSERT_EQ(d.at("attempts").as_array().size(), 1u);
  const auto& a = d.at("attempts").as_array()[0].as_object();
  EXPECT_TRUE(a.at("at").is_string());
  EXPECT_TRUE(a.at("durationMs").is_int64());
  EXPECT_EQ(a.at("statusCode").as_int64(), 500);
  EXPECT_EQ(a.at("error"), nullptr);

  // Bad queries name the parameter.
  const auto base = delivery_stack::deliveries_path(org, proj, hid);
  for (const auto& [query, field] :
       std::vector<std::pair<std::string, std::string>>{{"?status=done", "status"},
                                                        {"?limit=0", "limit"},
                                                        {"?limit=101", "limit"},
                                                        {"?limit=x", "limit"},
                                                        {"?after=123", "after"},
                                                        {"?stauts=failed", "stauts"}}) {
    auto r = stack->get(base + query);
    expect_problem(r, 400);
    EXPECT_EQ(error_fields(r), std::vector<std::string>{field}) << query;
  }

  // Scope and tenancy: deliveries:read is needed; another project's webhook is a 404, and so is
  // a delivery of another webhook.
  auto events_only = stack->create_token({org}, {"events:write"});
  expect_problem(stack->get(base, events_only.secret), 403);
  auto reader = stack->create_token({org}, {"deliveries:read"});
  EXPECT_EQ(stack->get(base, reader.secret).status, 200u);
  auto other_proj = stack->create_project(org, "other");
  expect_problem(stack->get(delivery_stack::deliveries_path(org, other_proj, hid)), 404);
  auto h2 = hook("Second", "/second", {"user.created"});
  expect_problem(stack->get(delivery_stack::deliveries_path(org, proj, id_of(h2)) + "/" + seen[0]),
                 404);
  expect_problem(stack->get(base + "/" + std::string(24, '0')), 404);
  expect_problem(stack->get(base + "/xyz"), 400);
}

TEST_F(DeliveryE2E, MetricsCountAttemptsOutcomesAndPendingJobs) {
  sink.script("/m", {{500}});
  auto h = hook("Metrics", "/m", {"order.created"});
  ASSERT_EQ(ingest({{"type", "order.created"}, {"data", 1}}).status, 202u);
  ASSERT_TRUE(wait_status(id_of(h), only_delivery(id_of(h)), "succeeded"));
  // The delivery leaves memory before the writer counts it (deliveries_total, history_deliveries)
  // and gives its slot back last: wait for the slot.
  EXPECT_TRUE(eventually([&] { return stack->log().jobs().counts().in_flight == 0; }));
  auto r = stack->get("/metrics", "");
  ASSERT_EQ(r.status, 200u);
  const std::string& text = r.body;
  for (const char* line :
       {"hookd_delivery_attempts_total{class=\"2xx\"} 1\n",
        "hookd_delivery_attempts_total{class=\"5xx\"} 1\n",
        "hookd_deliveries_total{outcome=\"succeeded\"} 1\n",
        "hookd_deliveries_total{outcome=\"failed\"} 0\n", "hookd_delivery_jobs_pending 0\n",
        "hookd_delivery_oldest_pending_age_seconds 0",
        "hookd_delivery_attempt_duration_seconds_count 2\n", "hookd_events_total 1\n",
        // History: the finished delivery is on disk, nothing has expired yet.
        "hookd_history_deliveries 1\n", "hookd_history_expired_deliveries_total 0\n",
        "hookd_history_sweep_failures_total 0\n", "# TYPE hookd_history_bytes gauge\n",
        "# TYPE hookd_history_oldest_age_seconds gauge\n", "hookd_idempotency_keys 0\n"}) {
    EXPECT_NE(text.find(line), std::string::npos) << line << "\n" << text;
  }
}

}  // namespace
}  // namespace hookd::test
