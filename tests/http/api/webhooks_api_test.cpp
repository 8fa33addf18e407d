// The webhooks API through HTTP (docs/openapi.yaml): every route, every status and every validation
// rule, with the field named in `errors`.

#include "support/test_server.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <regex>
#include <thread>

namespace hookd::test {
namespace {

using bhttp::verb;

const std::regex kId("^[0-9a-f]{24}$");
const std::regex kSecret("^whsec_[A-Za-z0-9+/]{32,}={0,2}$");

bool has(const std::vector<std::string>& fields, const std::string& field) {
  return std::find(fields.begin(), fields.end(), field) != fields.end();
}

std::string upper(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), ::toupper);
  return s;
}

class webhooks_api_test : public ::testing::Test {
 protected:
  void SetUp() override {
    org_ = srv_.create_organization("Acme");
    proj_ = srv_.create_project(org_, "shop");
  }

  std::string hooks() const { return test_server::webhooks_path(org_, proj_); }
  std::string hook(const std::string& id) const { return hooks() + "/" + id; }

  // A create with `body`, expecting a validation problem naming `field`.
  void expect_rejected(const json::object& body, const std::string& field) {
    auto r = srv_.post(hooks(), body);
    expect_problem(r, 400);
    EXPECT_EQ(r.str("type"), "https://hookd.dev/problems/validation") << r.body;
    EXPECT_TRUE(has(error_fields(r), field))
        << "expected field " << field << " for " << json::serialize(body) << " -> " << r.body;
  }
  // The same body with one member replaced (or added).
  static json::object with(const std::string& key, json::value value) {
    auto body = test_server::webhook_body();
    body[key] = std::move(value);
    return body;
  }
  static json::object without(const std::string& key) {
    auto body = test_server::webhook_body();
    body.erase(key);
    return body;
  }

  test_server srv_;
  std::string org_, proj_;
};

TEST_F(webhooks_api_test, create_is_201_with_location_and_secret) {
  json::object body = test_server::webhook_body("Orders");
  body["headers"] = {{"X-Team", "payments"}};
  body["active"] = false;
  auto r = srv_.post(hooks(), body);
  ASSERT_EQ(r.status, 201u) << r.body;
  EXPECT_EQ(r.header("Content-Type"), "application/json");
  auto w = r.json().as_object();
  const std::string id(w.at("_id").as_string());
  EXPECT_TRUE(std::regex_match(id, kId));
  EXPECT_EQ(r.header("Location"), hook(id));
  EXPECT_EQ(w.at("organization"), org_.c_str());
  EXPECT_EQ(w.at("project"), proj_.c_str());
  EXPECT_EQ(w.at("name"), "Orders");
  EXPECT_EQ(w.at("url"), "https://example.com/hooks");
  EXPECT_EQ(w.at("headers"), (json::object{{"X-Team", "payments"}}));
  EXPECT_EQ(w.at("active"), false);
  EXPECT_EQ(w.at("events"), (json::array{"order.created", "order.*"}));
  EXPECT_TRUE(w.contains("createdAt"));
  EXPECT_EQ(w.at("createdAt"), w.at("updatedAt"));
  EXPECT_TRUE(std::regex_match(std::string(w.at("secret").as_string()), kSecret)) << w.at("secret");
}

TEST_F(webhooks_api_test, defaults_are_active_and_no_headers) {
  auto w = srv_.create_webhook(org_, proj_, test_server::webhook_body());
  EXPECT_EQ(w.at("active"), true);
  EXPECT_EQ(w.at("headers"), json::object{});
}

TEST_F(webhooks_api_test, secret_only_on_create_and_from_the_secret_route) {
  auto created = srv_.create_webhook(org_, proj_, test_server::webhook_body());
  const std::string id(created.at("_id").as_string());
  const std::string secret(created.at("secret").as_string());

  auto one = srv_.get(hook(id));
  ASSERT_EQ(one.status, 200u) << one.body;
  EXPECT_FALSE(one.json().as_object().contains("secret"));
  EXPECT_EQ(one.body.find(secret), std::string::npos);

  auto list = srv_.get(hooks());
  ASSERT_EQ(list.status, 200u);
  EXPECT_EQ(list.body.find(secret), std::string::npos);

  auto patched = srv_.patch(hook(id), {{"name", "Renamed"}});
  ASSERT_EQ(patched.status, 200u);
  EXPECT_EQ(patched.body.find(secret), std::string::npos);

  auto s = srv_.get(hook(id) + "/secret");
  ASSERT_EQ(s.status, 200u) << s.body;
  EXPECT_EQ(s.json(), (json::object{{"secret", secret}}));

  // Every webhook gets its own secret.
  auto second = srv_.create_webhook(org_, proj_, test_server::webhook_body("Second"));
  EXPECT_NE(second.at("secret"), created.at("secret"));
}

TEST_F(webhooks_api_test, get_returns_the_webhook_and_ids_are_case_insensitive) {
  auto created = srv_.create_webhook(org_, proj_, test_server::webhook_body());
  const std::string id(created.at("_id").as_string());
  created.erase("secret");

  auto r = srv_.get(test_server::webhook_path(upper(org_), upper(proj_), upper(id)));
  ASSERT_EQ(r.status, 200u) << r.body;
  EXPECT_EQ(r.json(), created);
  EXPECT_EQ(r.str("_id"), id);  // lowercase out

  EXPECT_EQ(srv_.patch(hook(upper(id)), {{"name", "Upper"}}).status, 200u);
  EXPECT_EQ(srv_.get(hook(upper(id)) + "/secret").status, 200u);
  EXPECT_EQ(srv_.del(hook(upper(id))).status, 204u);
}

TEST_F(webhooks_api_test, list_is_oldest_first_and_per_project) {
  auto other_proj = srv_.create_project(org_, "other");
  auto a = srv_.create_webhook(org_, proj_, test_server::webhook_body("First"));
  auto elsewhere = srv_.create_webhook(org_, other_proj, test_server::webhook_body("Elsewhere"));
  auto b = srv_.create_webhook(org_, proj_, test_server::webhook_body("Second"));

  auto r = srv_.get(hooks());
  ASSERT_EQ(r.status, 200u) << r.body;
  auto list = r.json().as_array();
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list[0].at("_id"), a.at("_id"));
  EXPECT_EQ(list[1].at("_id"), b.at("_id"));
  for (const auto& w : list) EXPECT_FALSE(w.as_object().contains("secret"));

  auto empty = srv_.get(test_server::webhooks_path(org_, srv_.create_project(org_, "empty")));
  ASSERT_EQ(empty.status, 200u);
  EXPECT_EQ(empty.json(), json::array{});
  (void)elsewhere;
}

TEST_F(webhooks_api_test, patch_merges_and_moves_updated_at_only_on_change) {
  auto created = srv_.create_webhook(org_, proj_, test_server::webhook_body());
  const std::string id(created.at("_id").as_string());
  // Let the millisecond clock advance, so that a change is visible in updatedAt.
  std::this_thread::sleep_for(std::chrono::milliseconds(5));

  // Sending the current values changes nothing.
  auto same = srv_.patch(hook(id), {{"name", created.at("name")}, {"active", true}});
  ASSERT_EQ(same.status, 200u) << same.body;
  EXPECT_EQ(same.json().at("updatedAt"), created.at("updatedAt"));
  auto empty = srv_.patch(hook(id), json::object{});
  ASSERT_EQ(empty.status, 200u) << empty.body;
  EXPECT_EQ(empty.json().at("updatedAt"), created.at("updatedAt"));

  auto changed = srv_.patch(hook(id), {{"url", "https://example.org/in"},
                                       {"headers", {{"X-Env", "prod"}}},
                                       {"events", json::array{"*"}}});
  ASSERT_EQ(changed.status, 200u) << changed.body;
  auto w = changed.json().as_object();
  EXPECT_EQ(w.at("url"), "https://example.org/in");
  EXPECT_EQ(w.at("headers"), (json::object{{"X-Env", "prod"}}));
  EXPECT_EQ(w.at("events"), json::array{"*"});
  // Untouched fields keep their values.
  EXPECT_EQ(w.at("name"), created.at("name"));
  EXPECT_EQ(w.at("active"), true);
  EXPECT_EQ(w.at("createdAt"), created.at("createdAt"));
  EXPECT_NE(w.at("updatedAt"), created.at("updatedAt"));
  EXPECT_GT(std::string(w.at("updatedAt").as_string()),
            std::string(created.at("updatedAt").as_string()));

  // The change is what GET returns now.
  EXPECT_EQ(srv_.get(hook(id)).json(), changed.json());
  // The secret did not change.
  EXPECT_EQ(srv_.get(hook(id) + "/secret").str("secret"), created.at("secret").as_string());
}

TEST_F(webhooks_api_test, patch_result_obeys_the_create_rules) {
  auto created = srv_.create_webhook(org_, proj_, test_server::webhook_body());
  const std::string id(created.at("_id").as_string());
  struct bad_case {
    json::object body;
    std::string field;
  };
  const std::vector<bad_case> cases = {
      {{{"name", "x"}}, "name"},
      {{{"url", "mailto:a@b.c"}}, "url"},
      {{{"events", json::array{}}}, "events"},
      {{{"events", json::array{"Bad Event"}}}, "events[0]"},
      {{{"headers", {{"Host", "evil.test"}}}}, "headers.Host"},
      {{{"active", "yes"}}, "active"},
      {{{"secret", "whsec_mine"}}, "secret"},
      {{{"_id", created.at("_id")}}, "_id"},
      {{{"name", nullptr}}, "name"},
  };
  for (const auto& c : cases) {
    auto r = srv_.patch(hook(id), c.body);
    expect_problem(r, 400);
    EXPECT_TRUE(has(error_fields(r), c.field)) << json::serialize(c.body) << " -> " << r.body;
  }
  auto after = srv_.get(hook(id)).json();
  created.erase("secret");
  EXPECT_EQ(after, created) << "refused patches must change nothing";
}

TEST_F(webhooks_api_test, delete_is_204_with_no_body_then_404) {
  auto created = srv_.create_webhook(org_, proj_, test_server::webhook_body());
  const std::string id(created.at("_id").as_string());
  auto r = srv_.del(hook(id));
  EXPECT_EQ(r.status, 204u) << r.body;
  EXPECT_TRUE(r.body.empty());
  expect_problem(srv_.get(hook(id)), 404);
  expect_problem(srv_.get(hook(id) + "/secret"), 404);
  expect_problem(srv_.patch(hook(id), {{"name", "Back"}}), 404);
  expect_problem(srv_.del(hook(id)), 404);
  EXPECT_EQ(srv_.get(hooks()).json(), json::array{});
}

TEST_F(webhooks_api_test, unknown_webhook_and_webhook_of_another_project_are_404) {
  auto other_proj = srv_.create_project(org_, "other");
  auto theirs = srv_.create_webhook(org_, other_proj, test_server::webhook_body());
  const std::string their_id(theirs.at("_id").as_string());

  for (const std::string& id : {their_id, std::string("0123456789abcdef01234567")}) {
    expect_problem(srv_.get(hook(id)), 404);
    expect_problem(srv_.get(hook(id) + "/secret"), 404);
    expect_problem(srv_.patch(hook(id), {{"name", "Hijack"}}), 404);
    expect_problem(srv_.del(hook(id)), 404);
  }
  // The other project's webhook is untouched.
  auto still = srv_.get(test_server::webhook_path(org_, other_proj, their_id));
  ASSERT_EQ(still.status, 200u);
  EXPECT_EQ(still.str("name"), "Orders");
}

TEST_F(webhooks_api_test, project_of_another_organization_and_unknown_project_are_404) {
  auto other_org = srv_.create_organization("Other");
  auto their_proj = srv_.create_project(other_org, "theirs");
  // Their project addressed under our organization.
  auto wrong = test_server::webhooks_path(org_, their_proj);
  expect_problem(srv_.get(wrong), 404);
  expect_problem(srv_.post(wrong, test_server::webhook_body()), 404);
  // Unknown project, and unknown organization.
  expect_problem(srv_.get(test_server::webhooks_path(org_, "0123456789abcdef01234567")), 404);
  expect_problem(srv_.get(test_server::webhooks_path("0123456789abcdef01234567", proj_)), 404);
  // A non-admin token of our organization sees the same 404.
  auto token = srv_.create_token({org_}, {"webhooks:read"});
  expect_problem(srv_.get(wrong, token.secret), 404);
}

TEST_F(webhooks_api_test, malformed_path_ids_are_400_naming_the_parameter) {
  const std::string good = "0123456789abcdef01234567";
  struct bad_case {
    std::string target;
    std::string field;
  };
  const std::vector<bad_case> cases = {
      {test_server::webhooks_path("xyz", proj_), "organizationId"},
      {test_server::webhooks_path(org_, "1234"), "projectId"},
      {hook("zzzzzzzzzzzzzzzzzzzzzzzz"), "webhookId"},
      {hook(good + "0"), "webhookId"},
      {hook("zz") + "/secret", "webhookId"},
  };
  for (const auto& c : cases) {
    auto r = srv_.get(c.target);
    expect_problem(r, 400);
    EXPECT_EQ(r.str("type"), "https://hookd.dev/problems/bad-id");
    EXPECT_EQ(error_fields(r), std::vector<std::string>{c.field}) << c.target << " -> " << r.body;
  }
  auto p = srv_.patch(hook("nope"), {{"name", "x y"}});
  expect_problem(p, 400);
  EXPECT_EQ(error_fields(p), std::vector<std::string>{"webhookId"});
  auto d = srv_.del(hook("nope"));
  expect_problem(d, 400);
  EXPECT_EQ(error_fields(d), std::vector<std::string>{"webhookId"});
}

// ---- create validation, one rule at a time

TEST_F(webhooks_api_test, name_rules) {
  expect_rejected(without("name"), "name");
  expect_rejected(with("name", "A"), "name");
  expect_rejected(with("name", "   "), "name");
  expect_rejected(with("name", json::string(std::string(101, 'n'))), "name");
  expect_rejected(with("name", 12), "name");
  expect_rejected(with("name", "Tab\there"), "name");
  EXPECT_EQ(srv_.post(hooks(), with("name", json::string(std::string(100, 'n')))).status, 201u);
}

TEST_F(webhooks_api_test, url_rules) {
  expect_rejected(without("url"), "url");
  expect_rejected(with("url", "example.com/hooks"), "url");
  expect_rejected(with("url", "/relative"), "url");
  expect_rejected(with("url", "ftp://example.com/hooks"), "url");
  expect_rejected(with("url", "https://"), "url");
  expect_rejected(with("url", "https://user:pw@example.com/"), "url");
  expect_rejected(with("url", "https://example.com/#frag"), "url");
  expect_rejected(with("url", json::string("https://example.com/" + std::string(2048, 'p'))),
                  "url");
  expect_rejected(with("url", json::array{"https://example.com"}), "url");
  expect_rejected(with("url", "https://example.com:0/"), "url");
  expect_rejected(with("url", "https://example.com:65536/"), "url");
  auto ok = srv_.post(hooks(), with("url", "http://hooks.example.com:8443/in?x=1"));
  EXPECT_EQ(ok.status, 201u) << ok.body;
}

TEST_F(webhooks_api_test, header_rules) {
  expect_rejected(with("headers", json::array{}), "headers");
  expect_rejected(with("headers", "X-A: b"), "headers");
  json::object many;
  for (int i = 0; i < 21; ++i) many["X-H" + std::to_string(i)] = "v";
  expect_rejected(with("headers", many), "headers");
  expect_rejected(with("headers", {{"Bad Name", "v"}}), "headers.Bad Name");
  expect_rejected(with("headers", {{"X-" + std::string(63, 'a'), "v"}}),
                  "headers.X-" + std::string(63, 'a'));
  expect_rejected(with("headers", {{"X-Long", std::string(1025, 'v')}}), "headers.X-Long");
  expect_rejected(with("headers", {{"X-CR", "a\rb"}}), "headers.X-CR");
  expect_rejected(with("headers", {{"X-LF", "a\nb"}}), "headers.X-LF");
  expect_rejected(with("headers", {{"X-NUL", std::string("a\0b", 3)}}), "headers.X-NUL");
  expect_rejected(with("headers", {{"X-Num", 5}}), "headers.X-Num");
  expect_rejected(with("headers", {{"X-Team", "a"}, {"x-team", "b"}}), "headers.x-team");
  for (std::string reserved :
       {"Host", "content-length", "Content-Type", "Transfer-Encoding", "connection", "Upgrade",
        "TE", "trailer", "Keep-Alive", "Proxy-Authorization", "proxy-anything", "User-Agent",
        "webhook-id", "Webhook-Timestamp", "WEBHOOK-SIGNATURE"}) {
    expect_rejected(with("headers", {{reserved, "v"}}), "headers." + reserved);
  }
  // The limits themselves are accepted.
  json::object twenty;
  for (int i = 0; i < 20; ++i) twenty["X-H" + std::to_string(i)] = "v";
  EXPECT_EQ(srv_.post(hooks(), with("headers", twenty)).status, 201u);
  auto ok =
      srv_.post(hooks(), with("headers", {{"X-" + std::string(62, 'a'), std::string(1024, 'v')}}));
  EXPECT_EQ(ok.status, 201u) << ok.body;
}

TEST_F(webhooks_api_test, event_rules) {
  expect_rejected(without("events"), "events");
  expect_rejected(with("events", json::array{}), "events");
  expect_rejected(with("events", "order.created"), "events");
  json::array many;
  for (int i = 0; i < 101; ++i) many.emplace_back("e" + std::to_string(i));
  expect_rejected(with("events", many), "events");
  expect_rejected(with("events", json::array{"order.created", "order.created"}), "events[1]");
  expect_rejected(with("events", json::array{"ok", std::string(129, 'e')}), "events[1]");
  expect_rejected(with("events", json::array{"Order.Created"}), "events[0]");
  expect_rejected(with("events", json::array{"order..created"}), "events[0]");
  expect_rejected(with("events", json::array{"order.*.created"}), "events[0]");
  expect_rejected(with("events", json::array{"order*"}), "events[0]");
  expect_rejected(with("events", json::array{".order"}), "events[0]");
  expect_rejected(with("events", json::array{"ok", 3}), "events[1]");
  // Accepted forms, and the limits.
  EXPECT_EQ(srv_.post(hooks(), with("events", json::array{"*"})).status, 201u);
  EXPECT_EQ(
      srv_.post(hooks(), with("events", json::array{"a_b-c.d-1", "x.*", std::string(128, 'e')}))
          .status,
      201u);
}

TEST_F(webhooks_api_test, active_and_unknown_fields) {
  expect_rejected(with("active", "true"), "active");
  expect_rejected(with("active", 1), "active");
  expect_rejected(with("secret", "whsec_AAAA"), "secret");
  expect_rejected(with("colour", "blue"), "colour");
  auto r = srv_.post(hooks(), json::array{});
  expect_problem(r, 400);
  // Every fault is reported at once.
  json::object body{{"name", "x"}, {"url", "nope"}, {"events", json::array{}}, {"extra", 1}};
  auto all = srv_.post(hooks(), body);
  expect_problem(all, 400);
  auto fields = error_fields(all);
  for (const char* f : {"name", "url", "events", "extra"}) EXPECT_TRUE(has(fields, f)) << f;
  EXPECT_EQ(srv_.get(hooks()).json(), json::array{}) << "refused creates must create nothing";
}

// ---- bodies, media types and limits

TEST_F(webhooks_api_test, malformed_json_is_400_invalid_json) {
  for (const std::string& text :
       std::vector<std::string>{"{", "{\"name\": }", "{\"name\": \"a\",}", "not json", "{} {}",
                                std::string(40, '[') + std::string(40, ']')}) {
    auto r = srv_.call(verb::post, hooks(), text);
    expect_problem(r, 400);
    EXPECT_EQ(r.str("type"), "https://hookd.dev/problems/invalid-json") << text << " -> " << r.body;
  }
  auto invalid_utf8 = srv_.call(verb::post, hooks(), "{\"name\": \"\xff\xfe\"}");
  expect_problem(invalid_utf8, 400);
}

// Boost.JSON reads 1e400 as an infinity and writes it back as `Infinity`, which is not JSON. A
// webhook whose filter held one was stored that way, and the catalog then failed to load at the
// next start; an event's data went to receivers as a body they could not parse (found by
// tests/fuzz: catalog_json and ingest, input {"type":"x.y","data":1e400}).
TEST_F(webhooks_api_test, a_number_too_large_for_a_double_is_400_invalid_json) {
  const std::string filter = R"({"name":"Big","url":"https://example.com/h","events":["order.*"],)"
                             R"("filter":{"data.total":1e400}})";
  auto created = srv_.call(verb::post, hooks(), filter);
  expect_problem(created, 400);
  EXPECT_EQ(created.str("type"), "https://hookd.dev/problems/invalid-json") << created.body;

  const std::string events = "/api/v1/organizations/" + org_ + "/projects/" + proj_ + "/events";
  for (const char* body : {R"({"type":"order.created","data":1e400})",
                           R"({"type":"order.created","data":{"a":[-1e400]}})"}) {
    auto sent = srv_.call(verb::post, events, body);
    expect_problem(sent, 400);
    EXPECT_EQ(sent.str("type"), "https://hookd.dev/problems/invalid-json") << body;
  }
  // The largest double is a number like any other.
  auto largest =
      srv_.call(verb::post, events, R"({"type":"order.created","data":1.7976931348623157e308})");
  EXPECT_EQ(largest.status, 202u) << largest.body;

  srv_.restart();  // nothing unreadable was stored
  EXPECT_EQ(srv_.get(hooks()).json(), json::array{});
}

// Problems quote the request: a Content-Type header's bytes (obs-text, not UTF-8), a decoded query
// key. Written as they came, they made the problem document invalid JSON (found by tests/fuzz:
// request, a POST with "Content-Type: appli\x99\x9e\x8b\x96\x90\x91\xd0\x95son").
TEST_F(webhooks_api_test, a_problem_quoting_bytes_that_are_not_utf8_is_still_json) {
  const std::string body = json::serialize(test_server::webhook_body());
  const std::string auth = "Bearer " + std::string(test_server::kAdminToken);
  auto media = srv_.client().request(verb::post, hooks(), body,
                                     {{"Authorization", auth}, {"Content-Type", "appli\x99son"}});
  expect_problem(media, 415);
  EXPECT_EQ(media.str("detail"),
            "The request body must be application/json, not 'appli\xEF\xBF\xBDson'.");

  const auto created = srv_.create_webhook(org_, proj_, test_server::webhook_body());
  auto query = srv_.get(hook(std::string(created.at("_id").as_string())) + "/deliveries?%FFx=1");
  expect_problem(query, 400);
  const auto errors = query.json().at("errors").as_array();
  ASSERT_EQ(errors.size(), 1u) << query.body;
  EXPECT_EQ(errors[0].at("field").as_string(), "\xEF\xBF\xBDx");
}

TEST_F(webhooks_api_test, empty_body_is_400) {
  auto r = srv_.call(verb::post, hooks(), std::string());
  expect_problem(r, 400);
  auto p = srv_.call(verb::patch, hook("0123456789abcdef01234567"), std::string());
  expect_problem(p, 400);
  auto none = srv_.call(verb::post, hooks());  // no body, no Content-Type
  expect_problem(none, 400);
}

TEST_F(webhooks_api_test, content_type_must_be_json) {
  const std::string body = json::serialize(test_server::webhook_body());
  const std::string auth = "Bearer " + std::string(test_server::kAdminToken);
  for (std::string type : {"text/plain", "application/x-www-form-urlencoded", "application/jsonp",
                           "multipart/form-data; boundary=x"}) {
    auto r = srv_.client().request(verb::post, hooks(), body,
                                   {{"Authorization", auth}, {"Content-Type", type}});
    expect_problem(r, 415);
  }
  auto missing = srv_.client().request(verb::post, hooks(), body, {{"Authorization", auth}});
  expect_problem(missing, 415);
  auto patch = srv_.client().request(verb::patch, hook("0123456789abcdef01234567"), "{}",
                                     {{"Authorization", auth}, {"Content-Type", "text/json"}});
  expect_problem(patch, 415);

  for (std::string type :
       {"application/json; charset=utf-8", "Application/JSON", "application/json;charset=UTF-8"}) {
    auto r = srv_.client().request(verb::post, hooks(), body,
                                   {{"Authorization", auth}, {"Content-Type", type}});
    EXPECT_EQ(r.status, 201u) << type << ": " << r.body;
    srv_.del(hook(r.str("_id")));
  }
}

TEST_F(webhooks_api_test, body_over_the_limit_is_413) {
  auto body = test_server::webhook_body();
  body["name"] = std::string(17 * 1024, 'n');  // the fixture's limit is 16 KiB
  auto r = srv_.post(hooks(), body);
  expect_problem(r, 413);
  EXPECT_EQ(srv_.get(hooks()).json(), json::array{});
}

TEST_F(webhooks_api_test, the_next_webhook_over_the_limit_is_409) {
  // The fixture sets --max-webhooks-per-project to 3.
  std::vector<std::string> ids;
  for (int i = 0; i < 3; ++i) {
    ids.emplace_back(
        srv_.create_webhook(org_, proj_, test_server::webhook_body("Hook " + std::to_string(i)))
            .at("_id")
            .as_string());
  }
  auto r = srv_.post(hooks(), test_server::webhook_body("One too many"));
  expect_problem(r, 409);
  EXPECT_EQ(r.str("type"), "https://hookd.dev/problems/limit-reached");
  EXPECT_EQ(srv_.get(hooks()).json().as_array().size(), 3u);
  // The limit is per project.
  auto other = srv_.create_project(org_, "other");
  EXPECT_EQ(srv_.post(test_server::webhooks_path(org_, other), test_server::webhook_body()).status,
            201u);
  // Deleting one makes room again.
  EXPECT_EQ(srv_.del(hook(ids[0])).status, 204u);
  EXPECT_EQ(srv_.post(hooks(), test_server::webhook_body("Fits now")).status, 201u);
}

TEST_F(webhooks_api_test, wrong_methods_are_405_with_allow) {
  auto created = srv_.create_webhook(org_, proj_, test_server::webhook_body());
  const std::string id(created.at("_id").as_string());

  auto r = srv_.call(verb::put, hook(id), "{}");
  expect_problem(r, 405);
  const std::string allow = r.header("Allow");
  for (const char* m : {"GET", "PATCH", "DELETE"}) {
    EXPECT_NE(allow.find(m), std::string::npos) << m << " not in " << allow;
  }
  EXPECT_EQ(allow.find("POST"), std::string::npos) << allow;

  auto list = srv_.call(verb::delete_, hooks());
  expect_problem(list, 405);
  EXPECT_NE(list.header("Allow").find("GET"), std::string::npos);
  EXPECT_NE(list.header("Allow").find("POST"), std::string::npos);

  auto secret = srv_.call(verb::post, hook(id) + "/secret", "{}");
  expect_problem(secret, 405);
  EXPECT_NE(secret.header("Allow").find("GET"), std::string::npos);
}

// Custom header values often carry the receiver's credentials: a token that may only read the
// webhook sees each value masked; one that may change it sees them (docs/operations.md).
TEST_F(webhooks_api_test, header_values_are_masked_for_read_only_tokens) {
  const json::object headers{{"Authorization", "Bearer receiver-secret-42"}, {"X-Team", "blue"}};
  auto created = srv_.create_webhook(org_, proj_, with("headers", headers));
  const std::string id(created.at("_id").as_string());
  EXPECT_EQ(created.at("headers"), headers);

  auto reader = srv_.create_token({org_}, {"webhooks:read"});
  const json::object masked{{"Authorization", "********"}, {"X-Team", "********"}};
  auto one = srv_.get(hook(id), reader.secret);
  ASSERT_EQ(one.status, 200u) << one.body;
  EXPECT_EQ(one.json().at("headers"), masked);
  EXPECT_EQ(one.body.find("receiver-secret-42"), std::string::npos);
  auto list = srv_.get(hooks(), reader.secret);
  ASSERT_EQ(list.status, 200u) << list.body;
  EXPECT_EQ(list.json().as_array().at(0).at("headers"), masked);
  EXPECT_EQ(list.body.find("receiver-secret-42"), std::string::npos);

  // A reader's view differs from a writer's in the header values only.
  auto writer = srv_.create_token({org_}, {"webhooks:read", "webhooks:write"});
  auto full = srv_.get(hook(id), writer.secret).json().as_object();
  EXPECT_EQ(full.at("headers"), headers);
  auto reader_view = one.json().as_object();
  reader_view["headers"] = headers;
  EXPECT_EQ(reader_view, full);
  // The admin token may write everything: it sees the values.
  EXPECT_EQ(srv_.get(hook(id)).json().at("headers"), headers);
  EXPECT_EQ(srv_.get(hooks()).json().as_array().at(0).at("headers"), headers);
}

TEST_F(webhooks_api_test, a_patch_that_sends_the_mask_back_keeps_the_stored_value) {
  auto created = srv_.create_webhook(
      org_, proj_, with("headers", json::object{{"Authorization", "Bearer kept-1"}, {"X-A", "a"}}));
  const std::string id(created.at("_id").as_string());

  // The masked object as a read-only client saw it, with one value changed and the name's case
  // changed on the other: the masked one keeps its value.
  auto patched = srv_.patch(
      hook(id), {{"headers", json::object{{"authorization", "********"}, {"X-A", "new"}}}});
  ASSERT_EQ(patched.status, 200u) << patched.body;
  EXPECT_EQ(patched.json().at("headers"),
            (json::object{{"authorization", "Bearer kept-1"}, {"X-A", "new"}}));
  srv_.restart();
  EXPECT_EQ(srv_.get(hook(id)).json().at("headers"),
            (json::object{{"authorization", "Bearer kept-1"}, {"X-A", "new"}}));

  // A mask under a name the webhook does not have has nothing to keep: 400 naming the header,
  // and nothing changed.
  auto unknown = srv_.patch(hook(id), {{"headers", json::object{{"X-New", "********"}}}});
  expect_problem(unknown, 400);
  EXPECT_TRUE(has(error_fields(unknown), "headers.X-New")) << unknown.body;
  EXPECT_EQ(srv_.get(hook(id)).json().at("headers"),
            (json::object{{"authorization", "Bearer kept-1"}, {"X-A", "new"}}));
}

TEST_F(webhooks_api_test, a_create_cannot_send_the_mask_as_a_value) {
  expect_rejected(with("headers", json::object{{"Authorization", "********"}}),
                  "headers.Authorization");
}

}  // namespace
}  // namespace hookd::test
