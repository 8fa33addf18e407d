// The admin API through HTTP (docs/openapi.yaml): organizations, projects and tokens.

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

}  // namespace
}  // namespace hookd::test
