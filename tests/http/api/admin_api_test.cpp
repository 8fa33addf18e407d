// The admin API through HTTP (docs/openapi.yaml): organizations, projects and tokens; and what
// deleting an organization or a project does to its deliveries (docs/delivery.md, "Deleting").

#include "support/delivery_fixture.hpp"
#include "support/test_server.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <regex>

namespace hookd::test {
namespace {

using bhttp::verb;

const std::regex kId("^[0-9a-f]{24}$");
const std::regex kTimestamp(R"(^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$)");

bool has(const std::vector<std::string>& fields, const std::string& field) {
  return std::find(fields.begin(), fields.end(), field) != fields.end();
}

class admin_api_test : public ::testing::Test {
 protected:
  test_server srv_;
};

// ---- organizations

TEST_F(admin_api_test, create_organization_is_201_with_location_and_readable_there) {
  auto r = srv_.post("/api/v1/organizations", {{"name", "Acme Corp"}});
  ASSERT_EQ(r.status, 201u) << r.body;
  EXPECT_EQ(r.header("Content-Type"), "application/json");
  auto body = r.json().as_object();
  const std::string id(body.at("_id").as_string());
  EXPECT_TRUE(std::regex_match(id, kId)) << id;
  EXPECT_EQ(body.at("name"), "Acme Corp");
  EXPECT_TRUE(std::regex_match(std::string(body.at("createdAt").as_string()), kTimestamp));
  EXPECT_EQ(body.at("createdAt"), body.at("updatedAt"));
  EXPECT_EQ(r.header("Location"), "/api/v1/organizations/" + id);

  auto got = srv_.get(r.header("Location"));
  ASSERT_EQ(got.status, 200u) << got.body;
  EXPECT_EQ(got.json(), r.json());
}

TEST_F(admin_api_test, list_organizations_oldest_first) {
  auto a = srv_.create_organization("First");
  auto b = srv_.create_organization("Second");
  auto c = srv_.create_organization("Third");
  auto r = srv_.get("/api/v1/organizations");
  ASSERT_EQ(r.status, 200u) << r.body;
  auto list = r.json().as_array();
  ASSERT_EQ(list.size(), 3u);
  EXPECT_EQ(list[0].at("_id"), a.c_str());
  EXPECT_EQ(list[1].at("_id"), b.c_str());
  EXPECT_EQ(list[2].at("_id"), c.c_str());
}

TEST_F(admin_api_test, unknown_organization_is_404_and_malformed_id_is_400_naming_it) {
  expect_problem(srv_.get("/api/v1/organizations/0123456789abcdef01234567"), 404);
  auto r = srv_.get("/api/v1/organizations/not-an-id");
  expect_problem(r, 400);
  EXPECT_EQ(error_fields(r), std::vector<std::string>{"organizationId"});
  // 23 and 25 digits, and a non-hex digit, are all malformed.
  expect_problem(srv_.get("/api/v1/organizations/0123456789abcdef0123456"), 400);
  expect_problem(srv_.get("/api/v1/organizations/0123456789abcdef012345678"), 400);
  expect_problem(srv_.get("/api/v1/organizations/0123456789abcdef0123456g"), 400);
}

TEST_F(admin_api_test, organization_ids_in_paths_are_case_insensitive) {
  auto id = srv_.create_organization("Acme");
  std::string upper = id;
  std::transform(upper.begin(), upper.end(), upper.begin(), ::toupper);
  auto r = srv_.get("/api/v1/organizations/" + upper);
  ASSERT_EQ(r.status, 200u) << r.body;
  EXPECT_EQ(r.str("_id"), id);  // emitted lowercase
}

TEST_F(admin_api_test, organization_validation) {
  auto short_name = srv_.post("/api/v1/organizations", {{"name", "A"}});
  expect_problem(short_name, 400);
  EXPECT_EQ(error_fields(short_name), std::vector<std::string>{"name"});

  auto blank = srv_.post("/api/v1/organizations", {{"name", "    "}});
  expect_problem(blank, 400);
  EXPECT_TRUE(has(error_fields(blank), "name"));

  auto missing = srv_.post("/api/v1/organizations", json::object{});
  expect_problem(missing, 400);
  EXPECT_TRUE(has(error_fields(missing), "name"));

  auto wrong_type = srv_.post("/api/v1/organizations", {{"name", 42}});
  expect_problem(wrong_type, 400);
  EXPECT_TRUE(has(error_fields(wrong_type), "name"));

  auto unknown = srv_.post("/api/v1/organizations", {{"name", "Acme"}, {"color", "blue"}});
  expect_problem(unknown, 400);
  EXPECT_TRUE(has(error_fields(unknown), "color"));

  auto not_object = srv_.post("/api/v1/organizations", json::array{"Acme"});
  expect_problem(not_object, 400);

  // Nothing was created by the refused requests.
  EXPECT_EQ(srv_.get("/api/v1/organizations").json().as_array().size(), 0u);
}

// ---- projects

TEST_F(admin_api_test, create_project_is_201_with_defaults_and_location) {
  auto org = srv_.create_organization("Acme");
  auto r = srv_.post(test_server::projects_path(org), {{"name", "Shop"}, {"slug", "shop"}});
  ASSERT_EQ(r.status, 201u) << r.body;
  auto body = r.json().as_object();
  const std::string id(body.at("_id").as_string());
  EXPECT_TRUE(std::regex_match(id, kId));
  EXPECT_EQ(body.at("name"), "Shop");
  EXPECT_EQ(body.at("slug"), "shop");
  EXPECT_EQ(body.at("organization"), org.c_str());
  EXPECT_EQ(body.at("status"), "draft");
  EXPECT_TRUE(body.contains("createdAt"));
  EXPECT_TRUE(body.contains("updatedAt"));
  EXPECT_EQ(r.header("Location"), test_server::projects_path(org) + "/" + id);

  auto got = srv_.get(r.header("Location"));
  ASSERT_EQ(got.status, 200u) << got.body;
  EXPECT_EQ(got.json(), r.json());
}

TEST_F(admin_api_test, create_project_with_every_field) {
  auto org = srv_.create_organization("Acme");
  auto r = srv_.post(test_server::projects_path(org), {{"name", "Shop"},
                                                       {"slug", "shop-2"},
                                                       {"description", "The web shop"},
                                                       {"status", "active"},
                                                       {"appIconUrl", "https://acme.test/i.png"}});
  ASSERT_EQ(r.status, 201u) << r.body;
  auto body = r.json().as_object();
  EXPECT_EQ(body.at("description"), "The web shop");
  EXPECT_EQ(body.at("status"), "active");
  EXPECT_EQ(body.at("appIconUrl"), "https://acme.test/i.png");
}

TEST_F(admin_api_test, project_slug_taken_in_the_organization_is_409) {
  auto org = srv_.create_organization("Acme");
  auto other = srv_.create_organization("Other");
  srv_.create_project(org, "shop");
  auto r = srv_.post(test_server::projects_path(org), {{"name", "Shop again"}, {"slug", "shop"}});
  expect_problem(r, 409);
  // Another organization may use the same slug.
  auto elsewhere =
      srv_.post(test_server::projects_path(other), {{"name", "Shop"}, {"slug", "shop"}});
  EXPECT_EQ(elsewhere.status, 201u) << elsewhere.body;
}

TEST_F(admin_api_test, project_validation_names_each_field) {
  auto org = srv_.create_organization("Acme");
  const auto path = test_server::projects_path(org);
  struct bad_case {
    json::object body;
    std::string field;
  };
  const std::vector<bad_case> cases = {
      {{{"name", "S"}, {"slug", "shop"}}, "name"},
      {{{"name", std::string(101, 'n')}, {"slug", "shop"}}, "name"},
      {{{"slug", "shop"}}, "name"},
      {{{"name", "Shop"}}, "slug"},
      {{{"name", "Shop"}, {"slug", "Shop"}}, "slug"},
      {{{"name", "Shop"}, {"slug", "s"}}, "slug"},
      {{{"name", "Shop"}, {"slug", "my shop"}}, "slug"},
      {{{"name", "Shop"}, {"slug", std::string(101, 'a')}}, "slug"},
      {{{"name", "Shop"}, {"slug", "shop"}, {"description", std::string(256, 'd')}}, "description"},
      {{{"name", "Shop"}, {"slug", "shop"}, {"status", "deleted"}}, "status"},
      {{{"name", "Shop"}, {"slug", "shop"}, {"appIconUrl", "ftp://x.test/i.png"}}, "appIconUrl"},
      {{{"name", "Shop"}, {"slug", "shop"}, {"owner", "me"}}, "owner"},
      {{{"name", "Shop"}, {"slug", 7}}, "slug"},
  };
  for (const auto& c : cases) {
    auto r = srv_.post(path, c.body);
    expect_problem(r, 400);
    EXPECT_TRUE(has(error_fields(r), c.field)) << json::serialize(c.body) << " -> " << r.body;
  }
  // Several faults are reported together.
  auto r = srv_.post(path, {{"name", "S"}, {"slug", "S S"}});
  EXPECT_TRUE(has(error_fields(r), "name") && has(error_fields(r), "slug")) << r.body;
  EXPECT_EQ(srv_.get(path).json().as_array().size(), 0u);

  // The limits themselves are accepted.
  auto ok = srv_.post(path, {{"name", std::string(100, 'n')},
                             {"slug", std::string(100, 'a')},
                             {"description", std::string(255, 'd')}});
  EXPECT_EQ(ok.status, 201u) << ok.body;
}

TEST_F(admin_api_test, projects_list_per_organization_and_foreign_project_is_404) {
  auto org = srv_.create_organization("Acme");
  auto other = srv_.create_organization("Other");
  auto a = srv_.create_project(org, "one");
  auto b = srv_.create_project(org, "two");
  auto foreign = srv_.create_project(other, "three");

  auto r = srv_.get(test_server::projects_path(org));
  ASSERT_EQ(r.status, 200u) << r.body;
  auto list = r.json().as_array();
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list[0].at("_id"), a.c_str());
  EXPECT_EQ(list[1].at("_id"), b.c_str());

  expect_problem(srv_.get(test_server::projects_path(org) + "/" + foreign), 404);
  expect_problem(srv_.get(test_server::projects_path(org) + "/0123456789abcdef01234567"), 404);
  auto bad = srv_.get(test_server::projects_path(org) + "/xyz");
  expect_problem(bad, 400);
  EXPECT_EQ(error_fields(bad), std::vector<std::string>{"projectId"});
}

TEST_F(admin_api_test, projects_of_an_unknown_organization_are_404) {
  const std::string missing = "0123456789abcdef01234567";
  expect_problem(srv_.get(test_server::projects_path(missing)), 404);
  expect_problem(
      srv_.post(test_server::projects_path(missing), {{"name", "Shop"}, {"slug", "shop"}}), 404);
}

// ---- tokens

TEST_F(admin_api_test, create_token_shows_the_secret_once) {
  auto org = srv_.create_organization("Acme");
  auto r =
      srv_.post("/api/v1/tokens", {{"name", "CI deploys"},
                                   {"organizations", json::array{org.c_str()}},
                                   {"scopes", json::array{"webhooks:read", "webhooks:write"}}});
  ASSERT_EQ(r.status, 201u) << r.body;
  auto body = r.json().as_object();
  const std::string id(body.at("_id").as_string());
  const std::string secret(body.at("token").as_string());
  EXPECT_TRUE(std::regex_match(id, kId));
  EXPECT_GE(secret.size(), 32u);
  EXPECT_EQ(body.at("name"), "CI deploys");
  EXPECT_EQ(body.at("organizations"), (json::array{org.c_str()}));
  EXPECT_EQ(body.at("scopes"), (json::array{"webhooks:read", "webhooks:write"}));
  EXPECT_TRUE(body.contains("createdAt"));
  EXPECT_EQ(r.header("Location"), "/api/v1/tokens/" + id);

  auto one = srv_.get(r.header("Location"));
  ASSERT_EQ(one.status, 200u) << one.body;
  EXPECT_EQ(one.str("_id"), id);
  EXPECT_FALSE(one.json().as_object().contains("token"));
  EXPECT_EQ(one.body.find(secret), std::string::npos);

  auto list = srv_.get("/api/v1/tokens");
  ASSERT_EQ(list.status, 200u) << list.body;
  EXPECT_EQ(list.body.find(secret), std::string::npos) << "the token string must not be listed";
  EXPECT_EQ(list.body.find(test_server::kAdminToken), std::string::npos);
  bool found = false;
  const auto tokens = list.json();
  for (const auto& t : tokens.as_array()) {
    EXPECT_FALSE(t.as_object().contains("token"));
    found = found || t.at("_id") == id.c_str();
  }
  EXPECT_TRUE(found);
}

TEST_F(admin_api_test, token_validation) {
  auto org = srv_.create_organization("Acme");
  struct bad_case {
    json::object body;
    std::string field;
  };
  const std::vector<bad_case> cases = {
      {{{"organizations", json::array{org.c_str()}}, {"scopes", json::array{"webhooks:read"}}},
       "name"},
      {{{"name", "x"}, {"scopes", json::array{"webhooks:read"}}}, "name"},
      {{{"name", "ok name"}, {"scopes", json::array{"webhooks:admin"}}}, "scopes[0]"},
      {{{"name", "ok name"}, {"scopes", json::array{}}}, "scopes"},
      {{{"name", "ok name"}, {"scopes", "admin"}}, "scopes"},
      {{{"name", "ok name"},
        {"organizations", json::array{"nope"}},
        {"scopes", json::array{"admin"}}},
       "organizations[0]"},
      // An organization that does not exist is the catalog's check, reported the same way.
      {{{"name", "ok name"},
        {"organizations", json::array{org.c_str(), "0123456789abcdef01234567"}},
        {"scopes", json::array{"webhooks:read"}}},
       "organizations[1]"},
      {{{"name", "ok name"}, {"scopes", json::array{"admin"}}, {"expires", 3}}, "expires"},
  };
  for (const auto& c : cases) {
    auto r = srv_.post("/api/v1/tokens", c.body);
    expect_problem(r, 400);
    EXPECT_TRUE(has(error_fields(r), c.field)) << json::serialize(c.body) << " -> " << r.body;
  }
  // Only the bootstrap admin token exists.
  EXPECT_EQ(srv_.get("/api/v1/tokens").json().as_array().size(), 1u);
}

TEST_F(admin_api_test, delete_token_is_204_then_404) {
  auto token = srv_.create_token({}, {"admin"});
  // The new admin token works before it is deleted.
  EXPECT_EQ(srv_.get("/api/v1/tokens", token.secret).status, 200u);
  auto r = srv_.del("/api/v1/tokens/" + token.id);
  EXPECT_EQ(r.status, 204u) << r.body;
  EXPECT_TRUE(r.body.empty());
  expect_problem(srv_.del("/api/v1/tokens/" + token.id), 404);
  expect_problem(srv_.get("/api/v1/tokens/" + token.id), 404);
  expect_problem(srv_.get("/api/v1/tokens", token.secret), 401);
  auto bad = srv_.del("/api/v1/tokens/123");
  expect_problem(bad, 400);
  EXPECT_EQ(error_fields(bad), std::vector<std::string>{"tokenId"});
}

// ---- deleting organizations and projects

TEST_F(admin_api_test, delete_project_is_204_and_takes_its_webhooks) {
  auto org = srv_.create_organization("Acme");
  auto shop = srv_.create_project(org, "shop");
  auto blog = srv_.create_project(org, "blog");
  auto hook = srv_.create_webhook(org, shop, test_server::webhook_body());
  const std::string hook_id(hook.at("_id").as_string());
  const std::string shop_path = test_server::projects_path(org) + "/" + shop;

  auto r = srv_.del(shop_path);
  EXPECT_EQ(r.status, 204u) << r.body;
  EXPECT_TRUE(r.body.empty());
  EXPECT_FALSE(r.header("X-Request-Id").empty());
  expect_problem(srv_.get(shop_path), 404);
  expect_problem(srv_.get(test_server::webhooks_path(org, shop)), 404);
  expect_problem(srv_.get(test_server::webhook_path(org, shop, hook_id)), 404);
  expect_problem(srv_.post(test_server::webhooks_path(org, shop), test_server::webhook_body()),
                 404);
  auto list = srv_.get(test_server::projects_path(org)).json().as_array();
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0].at("_id"), blog.c_str());
  expect_problem(srv_.del(shop_path), 404);

  // The slug is free again, and the deletion outlives a restart.
  auto reborn = srv_.create_project(org, "shop");
  EXPECT_NE(reborn, shop);
  srv_.restart();
  expect_problem(srv_.get(shop_path), 404);
  EXPECT_EQ(srv_.get(test_server::projects_path(org)).json().as_array().size(), 2u);
}

TEST_F(admin_api_test, delete_project_of_another_organization_or_unknown_is_404) {
  auto org = srv_.create_organization("Acme");
  auto other = srv_.create_organization("Other");
  auto foreign = srv_.create_project(other, "foreign");
  const std::string missing = "0123456789abcdef01234567";

  expect_problem(srv_.del(test_server::projects_path(org) + "/" + foreign), 404);
  expect_problem(srv_.del(test_server::projects_path(org) + "/" + missing), 404);
  expect_problem(srv_.del(test_server::projects_path(missing) + "/" + foreign), 404);
  expect_problem(srv_.del(test_server::org_path(missing)), 404);
  EXPECT_EQ(srv_.get(test_server::projects_path(other) + "/" + foreign).status, 200u);

  auto bad = srv_.del(test_server::projects_path(org) + "/xyz");
  expect_problem(bad, 400);
  EXPECT_EQ(error_fields(bad), std::vector<std::string>{"projectId"});
  auto bad_org = srv_.del("/api/v1/organizations/xyz");
  expect_problem(bad_org, 400);
  EXPECT_EQ(error_fields(bad_org), std::vector<std::string>{"organizationId"});
}

TEST_F(admin_api_test, delete_organization_is_204_and_takes_everything_under_it) {
  auto org = srv_.create_organization("Acme");
  auto other = srv_.create_organization("Other");
  auto shop = srv_.create_project(org, "shop");
  auto blog = srv_.create_project(org, "blog");
  srv_.create_webhook(org, shop, test_server::webhook_body());
  srv_.create_webhook(org, blog, test_server::webhook_body());
  auto kept = srv_.create_project(other, "kept");
  srv_.create_webhook(other, kept, test_server::webhook_body());
  auto both = srv_.create_token({org, other}, {"webhooks:read"});
  auto only = srv_.create_token({org}, {"webhooks:read"});
  ASSERT_EQ(srv_.get(test_server::webhooks_path(org, shop), both.secret).status, 200u);

  auto r = srv_.del(test_server::org_path(org));
  EXPECT_EQ(r.status, 204u) << r.body;
  EXPECT_TRUE(r.body.empty());
  expect_problem(srv_.get(test_server::org_path(org)), 404);
  expect_problem(srv_.get(test_server::projects_path(org)), 404);
  expect_problem(srv_.get(test_server::projects_path(org) + "/" + shop), 404);
  expect_problem(srv_.get(test_server::webhooks_path(org, blog)), 404);
  auto orgs = srv_.get("/api/v1/organizations").json().as_array();
  ASSERT_EQ(orgs.size(), 1u);
  EXPECT_EQ(orgs[0].at("_id"), other.c_str());
  expect_problem(srv_.del(test_server::org_path(org)), 404);

  // A token keeps working for its other organization; the organization left its lists.
  const auto check_tokens = [&] {
    EXPECT_EQ(srv_.get(test_server::webhooks_path(other, kept), both.secret).status, 200u);
    expect_problem(srv_.get(test_server::webhooks_path(org, shop), both.secret), 403);
    EXPECT_EQ(srv_.get("/api/v1/tokens/" + both.id).json().at("organizations"),
              (json::array{other.c_str()}));
    // One left with no organization stays (it reaches nothing) until an admin revokes it.
    EXPECT_EQ(srv_.get("/api/v1/tokens/" + only.id).json().at("organizations"), json::array{});
    expect_problem(srv_.get(test_server::webhooks_path(org, shop), only.secret), 403);
    expect_problem(srv_.get(test_server::webhooks_path(other, kept), only.secret), 403);
  };
  check_tokens();
  srv_.restart();
  expect_problem(srv_.get(test_server::org_path(org)), 404);
  check_tokens();
  EXPECT_EQ(srv_.del("/api/v1/tokens/" + only.id).status, 204u);
}

TEST_F(admin_api_test, deleting_organizations_and_projects_needs_admin) {
  auto org = srv_.create_organization("Acme");
  auto proj = srv_.create_project(org, "shop");
  auto writer = srv_.create_token({org}, {"webhooks:read", "webhooks:write", "events:write"});
  const std::string proj_path = test_server::projects_path(org) + "/" + proj;

  expect_problem(srv_.del(proj_path, writer.secret), 403);
  expect_problem(srv_.del(test_server::org_path(org), writer.secret), 403);
  expect_problem(srv_.del(proj_path, ""), 401);
  expect_problem(srv_.del(test_server::org_path(org), ""), 401);
  EXPECT_EQ(srv_.get(proj_path).status, 200u);
  EXPECT_EQ(srv_.get(test_server::org_path(org)).status, 200u);
}

TEST_F(admin_api_test, organization_and_project_paths_allow_get_and_delete_only) {
  auto org = srv_.create_organization("Acme");
  auto proj = srv_.create_project(org, "shop");
  for (const std::string& path :
       {test_server::org_path(org), test_server::projects_path(org) + "/" + proj}) {
    for (verb method : {verb::put, verb::patch, verb::post}) {
      auto r = srv_.call(method, path, std::string("{}"));
      expect_problem(r, 405);
      EXPECT_NE(r.header("Allow").find("GET"), std::string::npos) << r.header("Allow");
      EXPECT_NE(r.header("Allow").find("DELETE"), std::string::npos) << r.header("Allow");
    }
  }
  EXPECT_EQ(srv_.get(test_server::projects_path(org) + "/" + proj).status, 200u);
}

TEST_F(admin_api_test, wrong_methods_are_405_with_allow) {
  auto org = srv_.create_organization("Acme");
  auto r = srv_.call(verb::delete_, "/api/v1/organizations");
  expect_problem(r, 405);
  EXPECT_NE(r.header("Allow").find("GET"), std::string::npos) << r.header("Allow");
  EXPECT_NE(r.header("Allow").find("POST"), std::string::npos) << r.header("Allow");

  auto t = srv_.call(verb::put, "/api/v1/tokens/0123456789abcdef01234567");
  expect_problem(t, 405);
  EXPECT_NE(t.header("Allow").find("DELETE"), std::string::npos) << t.header("Allow");
}

// ---- deleting, with the delivery engine (docs/delivery.md, "Deleting")

std::string webhook_to(delivery_stack& stack, const std::string& org, const std::string& proj,
                       const receiver& sink, const std::string& path) {
  auto hook = stack.create_webhook(
      org, proj,
      {{"name", "Hook " + path.substr(1)}, {"url", sink.url(path)}, {"events", json::array{"*"}}});
  return hook.contains("_id") ? std::string(hook.at("_id").as_string()) : std::string();
}

// The project's history as the delivery log itself holds it, under the API (which answers 404
// for a project that is gone).
std::size_t deliveries_in_log(delivery_stack& stack, const std::string& proj) {
  delivery_query q;
  q.project = object_id::parse(proj).value();
  q.limit = kMaxDeliveryPage;
  auto page = stack.log().list_deliveries(q);
  EXPECT_TRUE(page) << page.error().detail;
  return page ? page->items.size() : 0;
}

TEST(admin_api_delivery_test, deleting_a_project_cancels_its_pending_deliveries_and_its_history) {
  receiver sink;
  sink.set_default("/doomed", {503, {}, "later"});
  sink.set_default("/kept", {503, {}, "later"});
  delivery_stack_options options;
  options.retry_schedule = {2000ms, 3600s};  // a failed attempt is retried after 1.6 s to 2.4 s
  delivery_stack stack(options);
  auto org = stack.create_organization("Acme");
  auto doomed = stack.create_project(org, "doomed");
  auto kept = stack.create_project(org, "kept");
  webhook_to(stack, org, doomed, sink, "/doomed");
  webhook_to(stack, org, doomed, sink, "/done");  // answers 200: history
  webhook_to(stack, org, kept, sink, "/kept");
  std::vector<std::string> events;
  for (int i = 0; i < 3; ++i) {
    auto r = stack.ingest(org, doomed, {{"type", "order.created"}, {"data", {{"seq", i}}}});
    ASSERT_EQ(r.status, 202u) << r.body;
    events.push_back(r.str("_id"));
  }
  ASSERT_EQ(stack.ingest(org, kept, {{"type", "order.created"}, {"data", {{"seq", 9}}}}).status,
            202u);
  // Every first attempt is recorded: three deliveries succeeded, four wait for their retry.
  ASSERT_TRUE(eventually([&] {
    const delivery_counters c = stack.log().counters();
    return c.succeeded == 3 && c.retries == 4;
  }));
  ASSERT_EQ(deliveries_in_log(stack, doomed), 6u);
  const std::size_t doomed_requests = sink.count("/doomed");
  ASSERT_EQ(doomed_requests, 3u);

  auto r = stack.del(test_server::projects_path(org) + "/" + doomed);
  ASSERT_EQ(r.status, 204u) << r.body;
  // At the 204 its pending deliveries have left memory and the scheduler, as deleted (not
  // failed), and its history is gone.
  EXPECT_EQ(stack.log().pending_count(), 1u);
  const delivery_counters c = stack.log().counters();
  EXPECT_EQ(c.deleted, 3u);
  EXPECT_EQ(c.cancelled, 0u);
  EXPECT_NE(stack.get("/metrics", "").body.find("hookd_deliveries_total{outcome=\"deleted\"} 3\n"),
            std::string::npos);
  EXPECT_EQ(deliveries_in_log(stack, doomed), 0u);
  auto event =
      stack.log().find_event(object_id::parse(doomed).value(), object_id::parse(events[0]).value());
  ASSERT_TRUE(event);
  EXPECT_FALSE(*event);
  expect_problem(stack.get(delivery_stack::project_deliveries_path(org, doomed)), 404);
  expect_problem(stack.get(delivery_stack::event_path(org, doomed, events[0])), 404);

  // The other project's retry comes, due about when the deleted ones' were; well after it, none of
  // those has.
  ASSERT_TRUE(sink.wait_for("/kept", 2));
  std::this_thread::sleep_for(1s);
  EXPECT_EQ(sink.count("/doomed"), doomed_requests);
  EXPECT_EQ(deliveries_in_log(stack, kept), 1u);
}

// The process stopped after the catalog deleted the project and before the delivery log did: the
// next start finishes the deletion, and the pending deliveries are never attempted.
TEST(admin_api_delivery_test, a_start_finishes_a_project_deletion_the_delivery_log_missed) {
  receiver sink;
  sink.set_default("/doomed", {503, {}, "later"});
  delivery_stack_options options;
  options.retry_schedule = {2000ms, 3600s};
  delivery_stack stack(options);
  auto org = stack.create_organization("Acme");
  auto doomed = stack.create_project(org, "doomed");
  webhook_to(stack, org, doomed, sink, "/doomed");
  for (int i = 0; i < 2; ++i) {
    ASSERT_EQ(stack.ingest(org, doomed, {{"type", "order.created"}, {"data", {{"seq", i}}}}).status,
              202u);
  }
  ASSERT_TRUE(eventually([&] { return stack.log().counters().retries == 2; }));
  const auto org_id = object_id::parse(org).value();
  const auto proj_id = object_id::parse(doomed).value();
  ASSERT_TRUE(wait_for<void>(
      [&](auto done) { stack.cat().delete_project(org_id, proj_id, std::move(done)); }));
  stack.restart();  // well before the retries are due

  ASSERT_TRUE(eventually([&] { return stack.log().counters().deleted == 2; }));
  EXPECT_EQ(stack.log().pending_count(), 0u);
  EXPECT_EQ(stack.log().counters().cancelled, 0u);
  EXPECT_EQ(deliveries_in_log(stack, doomed), 0u);
  std::this_thread::sleep_for(2500ms);  // past the retries' time
  EXPECT_EQ(sink.count("/doomed"), 2u);
}

}  // namespace
}  // namespace hookd::test
