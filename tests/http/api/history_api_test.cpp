// History through the API (docs/delivery.md, docs/openapi.yaml): the project's deliveries
// across its webhooks with status lists and filters, an event with its deliveries, and
// retention removing old history from every read and from storage while pending work stays.
// A real stack (RocksDB in a temp dir) delivering to a real receiver on 127.0.0.1.

#include "support/delivery_fixture.hpp"

#include <gtest/gtest.h>

#include <set>
#include <thread>

namespace hookd::test {
namespace {

class HistoryApi : public ::testing::Test {
 protected:
  void make_stack(delivery_stack_options options = {}) {
    stack = std::make_unique<delivery_stack>(std::move(options));
    org = stack->create_organization("Acme");
    proj = stack->create_project(org, "shop");
  }

  std::string hook(const std::string& path, std::initializer_list<std::string_view> events) {
    json::array list;
    for (auto e : events) list.emplace_back(e);
    auto created = stack->create_webhook(
        org, proj, {{"name", "Hook " + path}, {"url", sink.url(path)}, {"events", list}});
    return std::string(created.at("_id").as_string());
  }

  std::string ingest(const std::string& type, json::value data = 1) {
    auto r = stack->ingest(org, proj, {{"type", type}, {"data", std::move(data)}});
    EXPECT_EQ(r.status, 202u) << r.body;
    return r.str("_id");
  }

  // Every page of the project's deliveries for `query`, newest first.
  json::array project_deliveries(const std::string& query = "", std::size_t limit = 100) {
    json::array out;
    std::string after;
    for (;;) {
      auto r = stack->get(delivery_stack::project_deliveries_path(org, proj) +
                          "?limit=" + std::to_string(limit) + query + after);
      EXPECT_EQ(r.status, 200u) << r.body;
      if (r.status != 200) break;
      const auto page = r.json().as_object();
      for (const auto& d : page.at("data").as_array()) out.push_back(d);
      if (page.at("next").is_null()) break;
      after = "&after=" + std::string(page.at("next").as_string());
    }
    return out;
  }

  static std::set<std::string> ids(const json::array& list) {
    std::set<std::string> out;
    for (const auto& d : list) out.insert(std::string(d.at("_id").as_string()));
    return out;
  }

  receiver sink;
  std::unique_ptr<delivery_stack> stack;
  std::string org, proj;
};

TEST_F(HistoryApi, TheProjectListSpansWebhooksAndAnswersWhatIsUndeliveredInOneRequest) {
  make_stack();
  const std::string ok = hook("/ok", {"order.*"});
  const std::string down = hook("/down", {"*"});
  sink.set_default("/down", scripted_reply{503});
  ingest("order.created");
  ingest("user.created");
  ingest("order.paid");
  ASSERT_TRUE(eventually([&] {
    return stack->log().counters().succeeded == 2 && stack->log().counters().attempts >= 5;
  }));

  const json::array all = project_deliveries();
  ASSERT_EQ(all.size(), 5u);
  for (std::size_t i = 1; i < all.size(); ++i) {
    EXPECT_GT(all[i - 1].at("_id").as_string(), all[i].at("_id").as_string());  // newest first
  }
  const json::array undelivered = project_deliveries("&status=pending,failed");
  ASSERT_EQ(undelivered.size(), 3u);
  for (const auto& d : undelivered) EXPECT_EQ(d.at("webhook").as_string(), down);
  EXPECT_EQ(project_deliveries("&status=succeeded").size(), 2u);
  EXPECT_EQ(project_deliveries("&webhook=" + ok).size(), 2u);
  EXPECT_EQ(project_deliveries("&eventType=order.created").size(), 2u);
  EXPECT_EQ(project_deliveries("&eventType=order.created&status=succeeded&webhook=" + ok).size(),
            1u);
  // Paging by 2 gives the same deliveries as one page.
  EXPECT_EQ(ids(project_deliveries("", 2)), ids(all));
  // Times: everything was created after a minute ago and before a minute from now.
  const auto minute_ago = format_rfc3339(now_ms() - std::chrono::minutes(1));
  const auto minute_on = format_rfc3339(now_ms() + std::chrono::minutes(1));
  EXPECT_EQ(project_deliveries("&since=" + minute_ago + "&until=" + minute_on).size(), 5u);
  EXPECT_TRUE(project_deliveries("&since=" + minute_on).empty());
  // The webhook's own list takes the status list too.
  auto r = stack->get(delivery_stack::deliveries_path(org, proj, down) + "?status=failed,pending");
  ASSERT_EQ(r.status, 200u) << r.body;
  EXPECT_EQ(r.json().at("data").as_array().size(), 3u);
}

TEST_F(HistoryApi, BadQueriesNameTheParameter) {
  make_stack();
  const std::string base = delivery_stack::project_deliveries_path(org, proj);
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"?status=done", "status"},
      {"?status=pending,", "status"},
      {"?webhook=xyz", "webhook"},
      {"?eventType=Not%20A%20Type", "eventType"},
      {"?since=yesterday", "since"},
      {"?since=2026-12-02T00:00:00Z&until=2026-12-01T00:00:00Z", "until"},
      {"?limit=0", "limit"},
      {"?after=1", "after"},
      {"?stauts=pending", "stauts"},
  };
  for (const auto& [query, field] : cases) {
    auto r = stack->get(base + query);
    expect_problem(r, 400);
    EXPECT_EQ(error_fields(r), std::vector<std::string>{field}) << query << ": " << r.body;
  }
  // ?webhook= is the project list's; a webhook's own list refuses it.
  const std::string w = hook("/w", {"*"});
  auto r = stack->get(delivery_stack::deliveries_path(org, proj, w) + "?webhook=" + w);
  expect_problem(r, 400);
  EXPECT_EQ(error_fields(r), std::vector<std::string>{"webhook"});
  // The scope is deliveries:read.
  auto writer = stack->create_token({org}, {"webhooks:read", "events:write"});
  expect_problem(stack->get(base, writer.secret), 403);
}

TEST_F(HistoryApi, AnEventShowsEachOfItsDeliveriesWithItsStatus) {
  // A retry a minute away: the failing delivery is still pending when the event is read, however
  // slowly the test runs (under TSan the default 100 ms + 200 ms schedule could run out first).
  delivery_stack_options options;
  options.retry_schedule = {std::chrono::minutes(1)};
  make_stack(std::move(options));
  const std::string ok = hook("/ok", {"*"});
  const std::string down = hook("/down", {"*"});
  sink.set_default("/down", scripted_reply{503});
  const std::string event = ingest("order.created", json::object{{"sku", "A-1"}});
  ASSERT_TRUE(eventually([&] { return stack->log().counters().succeeded == 1; }));

  auto r = stack->get(delivery_stack::event_path(org, proj, event));
  ASSERT_EQ(r.status, 200u) << r.body;
  const auto e = r.json().as_object();
  EXPECT_EQ(e.at("_id").as_string(), event);
  EXPECT_EQ(e.at("type").as_string(), "order.created");
  EXPECT_EQ(e.at("data"), (json::object{{"sku", "A-1"}}));
  std::map<std::string, std::string> status_by_webhook;
  for (const auto& d : e.at("deliveries").as_array()) {
    status_by_webhook[std::string(d.at("webhook").as_string())] = d.at("status").as_string();
  }
  EXPECT_EQ(status_by_webhook,
            (std::map<std::string, std::string>{{ok, "succeeded"}, {down, "pending"}}));
  // Another project's path does not find it; neither does a made-up id.
  const std::string other = stack->create_project(org, "other");
  expect_problem(stack->get(delivery_stack::event_path(org, other, event)), 404);
  expect_problem(stack->get(delivery_stack::event_path(org, proj, "65a0f1c2aabbccddee000999")),
                 404);
  expect_problem(stack->get(delivery_stack::event_path(org, proj, "nope")), 400);
}

// --retention 3s: finished history goes from every read and from storage; pending work stays.
TEST_F(HistoryApi, ShortRetentionRemovesFinishedHistoryFromTheApiAndFromStorage) {
  delivery_stack_options options;
  options.retention = std::chrono::seconds(3);
  options.retry_schedule = {std::chrono::hours(1)};  // a failing delivery stays pending
  make_stack(options);
  const std::string ok = hook("/ok", {"*"});
  const std::string down = hook("/down", {"*"});
  sink.set_default("/down", scripted_reply{503});
  std::vector<std::string> events;
  for (int i = 0; i < 20; ++i) events.push_back(ingest("order.created", i));
  ASSERT_TRUE(eventually([&] {
    return stack->log().counters().succeeded == 20 && stack->log().counters().attempts == 40;
  }));
  ASSERT_EQ(project_deliveries("&status=succeeded").size(), 20u);
  const std::string a_delivery(project_deliveries("&status=succeeded").at(0).at("_id").as_string());
  ASSERT_EQ(stack->get(delivery_stack::deliveries_path(org, proj, ok) + "/" + a_delivery).status,
            200u);
  // The writer counts a success, then adds it to its bucket's count: the last may lag a moment.
  EXPECT_TRUE(eventually([&] { return stack->log().counts().history_deliveries == 20; }));
  EXPECT_EQ(stack->log().counts().history_deliveries, 20u);
  const std::uint64_t keys_before = stack->store().size(table::history).keys;
  EXPECT_GT(keys_before, 0u);

  // Gone from the API, then from storage (the sweeper runs every second here).
  ASSERT_TRUE(eventually([&] { return project_deliveries("&status=succeeded").empty(); }));
  expect_problem(stack->get(delivery_stack::deliveries_path(org, proj, ok) + "/" + a_delivery),
                 404);
  expect_problem(stack->get(delivery_stack::event_path(org, proj, events.front())), 404);
  ASSERT_TRUE(eventually([&] { return stack->log().counts().history_deliveries == 0; }));
  // A sweep sets its dropped buckets' counts to 0, then counts them as expired: wait for that.
  EXPECT_TRUE(eventually([&] { return stack->log().counters().expired == 20; }));
  EXPECT_EQ(stack->log().counters().expired, 20u);

  // The pending deliveries are still listed, with their attempts, and still sent.
  const json::array pending = project_deliveries("&status=pending");
  ASSERT_EQ(pending.size(), 20u);
  auto detail = stack->get(delivery_stack::deliveries_path(org, proj, down) + "/" +
                           std::string(pending.at(0).at("_id").as_string()));
  ASSERT_EQ(detail.status, 200u) << detail.body;
  EXPECT_EQ(detail.json().at("attempts").as_array().size(), 1u);

  // And a restart keeps them, with what they send.
  stack->restart();
  EXPECT_EQ(stack->log().counts().pending, 20u);
  EXPECT_EQ(project_deliveries("&status=pending").size(), 20u);
  EXPECT_TRUE(project_deliveries("&status=succeeded").empty());
}

// DELETE …/subjects/{subject}: the subject's events, deliveries and attempts leave every read
// before the 202; its pending deliveries are never attempted again.
TEST_F(HistoryApi, ErasingASubjectRemovesItsEventsFromEveryReadAndStopsTheirDeliveries) {
  delivery_stack_options options;
  // Retries every 300 ms, many times: the pending deliveries keep knocking until erased.
  options.retry_schedule =
      std::vector<std::chrono::milliseconds>(50, std::chrono::milliseconds(300));
  make_stack(options);
  const std::string ok = hook("/ok", {"*"});
  const std::string slow = hook("/slow", {"*"});
  sink.set_default("/slow", scripted_reply{503});
  const auto ingest_for = [&](const std::string& subject) {
    auto r = stack->ingest(
        org, proj, {{"type", "user.updated"}, {"data", {{"who", subject}}}, {"subject", subject}});
    EXPECT_EQ(r.status, 202u) << r.body;
    return r.str("_id");
  };
  // Requests /slow received for one subject's event so far.
  const auto slow_for = [&](const std::string& subject) {
    std::size_t n = 0;
    for (const auto& got : sink.requests("/slow")) {
      n += json::parse(got.body).at("data").at("who").as_string() == subject ? 1u : 0u;
    }
    return n;
  };
  const std::string erased_event = ingest_for("user 42");
  const std::string kept_event = ingest_for("user-7");
  ASSERT_TRUE(eventually([&] { return stack->log().counters().succeeded == 2; }));
  ASSERT_TRUE(eventually([&] { return slow_for("user 42") >= 1 && slow_for("user-7") >= 1; }));

  auto r = stack->del(test_server::projects_path(org) + "/" + proj + "/subjects/user%2042");
  ASSERT_EQ(r.status, 202u) << r.body;
  EXPECT_EQ(r.json(), (json::object{{"events", 1}}));
  // An attempt of the erased delivery taken before the erase may still reach the receiver; its
  // slot comes back after its request did: count once no attempt is in flight.
  EXPECT_TRUE(eventually([&] { return stack->log().jobs().counts().in_flight == 0; }));
  const std::size_t erased_requests = slow_for("user 42");
  expect_problem(stack->get(delivery_stack::event_path(org, proj, erased_event)), 404);
  EXPECT_EQ(stack->get(delivery_stack::event_path(org, proj, kept_event)).status, 200u);
  for (const auto& d : project_deliveries()) EXPECT_NE(d.at("event").as_string(), erased_event);
  EXPECT_EQ(project_deliveries().size(), 2u);
  EXPECT_EQ(stack->log().counters().deleted, 1u);
  // The kept subject's pending delivery is retried (every 300 ms); the erased one's never again.
  const std::size_t kept_requests = slow_for("user-7");
  ASSERT_TRUE(eventually([&] { return slow_for("user-7") >= kept_requests + 2; }));
  EXPECT_EQ(slow_for("user 42"), erased_requests);

  // Bad subjects and the scope.
  const std::string base = test_server::projects_path(org) + "/" + proj + "/subjects/";
  for (const char* bad : {"%ZZ", "a%0Ab"}) {
    auto refused = stack->del(base + bad);
    expect_problem(refused, 400);
    EXPECT_EQ(error_fields(refused), std::vector<std::string>{"subject"}) << bad;
  }
  auto reader = stack->create_token({org}, {"deliveries:read"});
  expect_problem(stack->del(base + "user-7", reader.secret), 403);
}

}  // namespace
}  // namespace hookd::test
