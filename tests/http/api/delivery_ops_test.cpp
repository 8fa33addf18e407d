// Sending again through the API (docs/delivery.md, "Redelivery and recovery", "Test pings",
// "Trace context"): redeliver one delivery, recover a webhook's failed deliveries of a time
// window, send a test ping, and the W3C trace context every attempt carries. A real stack
// (RocksDB in a temp dir) delivering to a real receiver on 127.0.0.1.

#include "support/delivery_fixture.hpp"

#include <gtest/gtest.h>

#include <map>
#include <set>
#include <thread>

namespace hookd::test {
namespace {

constexpr std::string_view kParent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

class DeliveryOps : public ::testing::Test {
 protected:
  DeliveryOps() {
    org = stack.create_organization("Acme");
    proj = stack.create_project(org, "shop");
  }

  std::string hook(const std::string& path, std::initializer_list<std::string_view> events,
                   bool active = true) {
    json::array list;
    for (auto e : events) list.emplace_back(e);
    auto created = stack.create_webhook(
        org, proj,
        {{"name", "Hook " + path}, {"url", sink.url(path)}, {"events", list}, {"active", active}});
    return std::string(created.at("_id").as_string());
  }

  std::string ingest(const std::string& type, json::value data = 1, header_list headers = {}) {
    auto r = stack.ingest(org, proj, {{"type", type}, {"data", std::move(data)}},
                          test_server::kAdminToken, std::move(headers));
    EXPECT_EQ(r.status, 202u) << r.body;
    return r.str("_id");
  }

  std::string hook_path(const std::string& hook_id) {
    return test_server::webhook_path(org, proj, hook_id);
  }
  std::string delivery_path(const std::string& hook_id, const std::string& delivery) {
    return delivery_stack::deliveries_path(org, proj, hook_id) + "/" + delivery;
  }

  json::object detail_of(const std::string& hook_id, const std::string& id) {
    auto r = stack.get(delivery_path(hook_id, id));
    EXPECT_EQ(r.status, 200u) << r.body;
    return r.status == 200 ? r.json().as_object() : json::object{};
  }
  std::string status_of(const std::string& hook_id, const std::string& id) {
    const auto d = detail_of(hook_id, id);
    return d.contains("status") ? std::string(d.at("status").as_string()) : std::string();
  }

  // The ids of the webhook's deliveries with `status`, newest first.
  std::vector<std::string> listed(const std::string& hook_id, const std::string& status) {
    auto r = stack.get(delivery_stack::deliveries_path(org, proj, hook_id) +
                       "?limit=100&status=" + status);
    EXPECT_EQ(r.status, 200u) << r.body;
    std::vector<std::string> out;
    if (r.status != 200) return out;
    const json::value page = r.json();
    for (const auto& d : page.at("data").as_array()) {
      out.emplace_back(d.at("_id").as_string());
    }
    return out;
  }

  http_reply post_empty(const std::string& path,
                        std::string_view token = test_server::kAdminToken) {
    return stack.call(bhttp::verb::post, path, std::nullopt, token);
  }

  receiver sink;
  delivery_stack stack;
  std::string org, proj;
};

TEST_F(DeliveryOps, ARedeliveryKeepsTheWebhookIdAndAppendsItsAttempts) {
  const std::string h = hook("/orders", {"order.*"});
  ingest("order.created", {{"n", 1}});
  ASSERT_TRUE(sink.wait_for("/orders", 1));
  const std::string id = sink.requests("/orders").at(0).header("webhook-id");
  ASSERT_TRUE(eventually([&] { return status_of(h, id) == "succeeded"; }));

  sink.set_default("/orders", {202, {}, "again"});
  auto r = post_empty(delivery_path(h, id) + "/redeliver");
  ASSERT_EQ(r.status, 202u) << r.body;
  EXPECT_EQ(r.str("_id"), id);
  EXPECT_EQ(r.str("status"), "pending");
  EXPECT_EQ(r.json().at("attempts").as_int64(), 1);

  ASSERT_TRUE(sink.wait_for("/orders", 2));
  const auto got = sink.requests("/orders");
  EXPECT_EQ(got.at(1).header("webhook-id"), id);  // the receiver can deduplicate
  EXPECT_EQ(got.at(1).body, got.at(0).body);
  ASSERT_TRUE(eventually([&] { return status_of(h, id) == "succeeded"; }));
  const json::object d = detail_of(h, id);
  const auto& attempts = d.at("attempts").as_array();
  ASSERT_EQ(attempts.size(), 2u);
  EXPECT_EQ(attempts.at(0).at("statusCode").as_int64(), 200);
  EXPECT_EQ(attempts.at(1).at("statusCode").as_int64(), 202);
  EXPECT_EQ(attempts.at(1).at("response").as_string(), "again");

  // A failed one too (its fresh schedule of three attempts runs out; a 410 would also disable the
  // webhook), and it survives a restart while pending.
  sink.set_default("/orders", {500, {}, "down"});
  r = post_empty(delivery_path(h, id) + "/redeliver");
  ASSERT_EQ(r.status, 202u) << r.body;
  ASSERT_TRUE(eventually([&] { return status_of(h, id) == "failed"; }));
  sink.set_default("/orders", {200, {}, "back"});
  stack.restart();  // the failed delivery is read back from history
  r = post_empty(delivery_path(h, id) + "/redeliver");
  ASSERT_EQ(r.status, 202u) << r.body;
  ASSERT_TRUE(eventually([&] { return status_of(h, id) == "succeeded"; }));
  EXPECT_EQ(detail_of(h, id).at("attempts").as_array().size(), 6u);  // 1 + 1 + 3 + 1
  std::set<std::string> ids;
  for (const auto& req : sink.requests("/orders")) ids.insert(req.header("webhook-id"));
  EXPECT_EQ(ids, std::set<std::string>{id});
}

TEST_F(DeliveryOps, RecoverBringsBackExactlyTheFailedDeliveriesOfTheWindow) {
  const std::string h = hook("/flaky", {"*"});
  const std::string other = hook("/other", {"*"});
  // 500s until the schedule runs out (a 410 would disable the webhooks as well).
  sink.set_default("/flaky", {500, {}, "down"});
  sink.set_default("/other", {500, {}, "down"});
  // Failed before, inside and after the window (two each), and the other webhook's.
  const auto failed_batch = [&](const std::string& label) {
    ingest("order." + label, 1);
    ingest("order." + label, 2);
  };
  failed_batch("before");
  ASSERT_TRUE(eventually([&] { return listed(h, "failed").size() == 2u; }));
  std::this_thread::sleep_for(20ms);
  const std::string since = format_rfc3339(now_ms());
  std::this_thread::sleep_for(20ms);
  failed_batch("inside");
  ASSERT_TRUE(eventually([&] { return listed(h, "failed").size() == 4u; }));
  std::this_thread::sleep_for(20ms);
  const std::string until = format_rfc3339(now_ms());
  std::this_thread::sleep_for(20ms);
  failed_batch("after");
  ASSERT_TRUE(eventually(
      [&] { return listed(h, "failed").size() == 6u && listed(other, "failed").size() == 6u; }));
  const std::vector<std::string> all_failed = listed(h, "failed");  // newest first
  const std::set<std::string> inside{all_failed.at(2), all_failed.at(3)};

  sink.set_default("/flaky", {200, {}, "ok"});
  auto r = stack.post(hook_path(h) + "/recover", {{"since", since}, {"until", until}});
  ASSERT_EQ(r.status, 202u) << r.body;
  EXPECT_EQ(r.json(), json::value({{"deliveries", 2}}));
  ASSERT_TRUE(eventually([&] { return listed(h, "succeeded").size() == 2u; }));
  const auto succeeded = listed(h, "succeeded");
  EXPECT_EQ(std::set<std::string>(succeeded.begin(), succeeded.end()), inside);
  EXPECT_EQ(listed(h, "failed").size(), 4u);
  EXPECT_EQ(listed(other, "failed").size(), 6u);  // another webhook's are not touched
  std::set<std::string> sent_again;
  for (const auto& req : sink.requests("/flaky")) {
    if (req.answered == 200) sent_again.insert(req.header("webhook-id"));
  }
  EXPECT_EQ(sent_again, inside);

  // Without `until`: everything failed since then, the window's first two being done already.
  r = stack.post(hook_path(h) + "/recover", {{"since", since}});
  ASSERT_EQ(r.status, 202u) << r.body;
  EXPECT_EQ(r.json(), json::value({{"deliveries", 2}}));
}

TEST_F(DeliveryOps, ATestPingReachesAnInactiveWebhookAndNoOther) {
  const std::string quiet = hook("/quiet", {"order.created"}, false);
  const std::string everything = hook("/everything", {"*"});
  auto r = post_empty(hook_path(quiet) + "/test");
  ASSERT_EQ(r.status, 202u) << r.body;
  const std::string id = r.str("_id");
  EXPECT_EQ(r.str("type"), "webhook.ping");
  EXPECT_EQ(r.str("webhook"), quiet);
  EXPECT_EQ(r.str("status"), "pending");

  ASSERT_TRUE(sink.wait_for("/quiet", 1));
  const auto got = sink.requests("/quiet").at(0);
  EXPECT_EQ(got.header("webhook-id"), id);
  EXPECT_FALSE(got.header("webhook-signature").empty());
  const json::value body = json::parse(got.body);
  EXPECT_EQ(body.at("type").as_string(), "webhook.ping");
  EXPECT_EQ(body.at("data"), json::value({{"webhookId", quiet}}));
  ASSERT_TRUE(eventually([&] { return status_of(quiet, id) == "succeeded"; }));
  // Nobody else heard it: the other webhook (subscribed to everything) got nothing.
  ingest("order.created");
  ASSERT_TRUE(sink.wait_for("/everything", 1));
  EXPECT_EQ(sink.count("/everything"), 1u);
  EXPECT_EQ(json::parse(sink.requests("/everything").at(0).body).at("type").as_string(),
            "order.created");
  EXPECT_EQ(sink.count("/quiet"), 1u);  // and the inactive webhook still gets no events
  const auto event = stack.get(delivery_stack::event_path(
      org, proj, std::string(detail_of(quiet, id).at("event").as_string())));
  ASSERT_EQ(event.status, 200u) << event.body;
  EXPECT_EQ(event.json().at("deliveries").as_array().size(), 1u);
}

TEST_F(DeliveryOps, EveryAttemptContinuesTheTraceOfItsEvent) {
  const std::string h = hook("/traced", {"*"});
  sink.script("/traced", {{500, {}, "once more"}});  // two attempts of the first delivery
  ingest("order.created", 1, {{"traceparent", std::string(kParent)}});
  ASSERT_TRUE(sink.wait_for("/traced", 2));
  std::set<std::string> spans;
  for (const auto& req : sink.requests("/traced")) {
    const std::string tp = req.header("traceparent");
    ASSERT_EQ(tp.size(), 55u) << tp;
    EXPECT_EQ(tp.substr(0, 3), "00-");
    EXPECT_EQ(tp.substr(3, 32), kParent.substr(3, 32));    // the same trace
    EXPECT_NE(tp.substr(36, 16), kParent.substr(36, 16));  // a span of its own
    EXPECT_EQ(tp.substr(53), "01");
    spans.insert(tp.substr(36, 16));
  }
  EXPECT_EQ(spans.size(), 2u);  // one per attempt

  // Without one (or with an invalid one, ignored, not refused), the event starts a trace.
  const std::string started = ingest("order.created", 2);
  const std::string ignored =
      ingest("order.created", 3, {{"traceparent", "00-XYZ-00f067aa0ba902b7-01"}});
  ASSERT_TRUE(sink.wait_for("/traced", 4));
  std::set<std::string> traces;
  for (const auto& req : sink.requests("/traced")) {
    traces.insert(req.header("traceparent").substr(3, 32));
  }
  EXPECT_EQ(traces.size(), 3u);
  for (const std::string& e : {started, ignored}) {
    auto r = stack.get(delivery_stack::event_path(org, proj, e));
    ASSERT_EQ(r.status, 200u) << r.body;
    const std::string tp = r.str("traceparent");
    EXPECT_EQ(tp.size(), 55u);
    EXPECT_TRUE(traces.contains(tp.substr(3, 32)));
  }
}

TEST_F(DeliveryOps, BadRequestsNameTheFieldAndAccessIsChecked) {
  const std::string h = hook("/checked", {"*"});
  ingest("order.created");
  ASSERT_TRUE(sink.wait_for("/checked", 1));
  const std::string id = sink.requests("/checked").at(0).header("webhook-id");
  const std::string recover = hook_path(h) + "/recover";

  const auto expect_fields = [&](const http_reply& r, std::vector<std::string> fields) {
    expect_problem(r, 400);
    EXPECT_EQ(error_fields(r), fields) << r.body;
  };
  expect_fields(stack.post(recover, json::object{}), {"since"});
  expect_fields(stack.post(recover, {{"since", "yesterday"}}), {"since"});
  expect_fields(stack.post(recover, {{"since", 5}}), {"since"});
  expect_fields(stack.post(recover, {{"since", "2026-12-01T00:00:00Z"}, {"until", "later"}}),
                {"until"});
  expect_fields(
      stack.post(recover, {{"since", "2026-12-02T00:00:00Z"}, {"until", "2026-12-01T00:00:00Z"}}),
      {"until"});
  expect_fields(stack.post(recover, {{"since", "2026-12-01T00:00:00Z"}, {"limit", 5}}), {"limit"});
  expect_fields(stack.post(recover, json::array{}), {"body"});
  expect_fields(stack.post(hook_path(h) + "/test", {{"force", true}}), {"force"});
  expect_fields(stack.post(delivery_path(h, id) + "/redeliver", {{"now", true}}), {"now"});
  expect_fields(post_empty(delivery_path(h, "not-an-id") + "/redeliver"), {"deliveryId"});
  expect_fields(post_empty(hook_path("xyz") + "/test"), {"webhookId"});

  // Unknown ids, or another webhook's delivery: 404.
  const std::string other = hook("/other", {"nothing.matches"});
  const std::string unknown = "65a0f1c2aabbccddee000999";
  expect_problem(post_empty(delivery_path(h, unknown) + "/redeliver"), 404);
  expect_problem(post_empty(delivery_path(other, id) + "/redeliver"), 404);
  expect_problem(post_empty(delivery_path(unknown, id) + "/redeliver"), 404);
  expect_problem(post_empty(hook_path(unknown) + "/test"), 404);
  expect_problem(stack.post(hook_path(unknown) + "/recover", {{"since", "2026-12-01T00:00:00Z"}}),
                 404);
  const std::string elsewhere = stack.create_project(org, "elsewhere");
  expect_problem(post_empty(test_server::webhook_path(org, elsewhere, h) + "/test"), 404);

  // 401 without a token, 403 without the scope or the organization.
  const auto reader = stack.create_token({org}, {"deliveries:read", "webhooks:write"});
  const std::string stranger_org = stack.create_organization("Stranger");
  const auto stranger = stack.create_token({stranger_org}, {"deliveries:write"});
  const auto writer = stack.create_token({org}, {"deliveries:write"});
  for (const std::string& path :
       {delivery_path(h, id) + "/redeliver", hook_path(h) + "/test", recover}) {
    const json::object body{{"since", "2026-12-01T00:00:00Z"}};
    const bool with_body = path == recover;
    const auto send = [&](std::string_view token) {
      return with_body ? stack.post(path, body, token) : post_empty(path, token);
    };
    auto unauthenticated = send("");
    expect_problem(unauthenticated, 401);
    EXPECT_EQ(unauthenticated.header("WWW-Authenticate").rfind("Bearer", 0), 0u);
    expect_problem(send(reader.secret), 403);
    expect_problem(send(stranger.secret), 403);
    EXPECT_EQ(send(writer.secret).status, 202u) << path;
  }
}

}  // namespace
}  // namespace hookd::test
