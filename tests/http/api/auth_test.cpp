// Authentication and tenancy through HTTP (docs/openapi.yaml): where tokens come from, what a
// missing, unknown or revoked one gets, and how organization access and scopes are enforced.

#include "http/api/auth.hpp"
#include "http/api/token_digest_cache.hpp"
#include "support/test_server.hpp"

#include <gtest/gtest.h>

#include <cstdio>

namespace hookd::test {
namespace {

using bhttp::verb;

class auth_test : public ::testing::Test {
 protected:
  void SetUp() override {
    org_ = srv_.create_organization("Acme");
    proj_ = srv_.create_project(org_, "shop");
  }

  std::string hooks() const { return test_server::webhooks_path(org_, proj_); }

  test_server srv_;
  std::string org_, proj_;
};

TEST_F(auth_test, missing_token_is_401_with_www_authenticate) {
  auto r = srv_.get(hooks(), "");
  expect_problem(r, 401);
  EXPECT_EQ(r.header("WWW-Authenticate").rfind("Bearer", 0), 0u) << r.header("WWW-Authenticate");
  EXPECT_EQ(r.str("type"), "https://hookd.dev/problems/unauthorized");
}

TEST_F(auth_test, unknown_token_is_401) {
  auto r = srv_.get(hooks(), "hkd_not-a-token-anybody-issued");
  expect_problem(r, 401);
  EXPECT_FALSE(r.header("WWW-Authenticate").empty());
}

TEST_F(auth_test, admin_routes_need_a_token_too) {
  expect_problem(srv_.get("/api/v1/organizations", ""), 401);
  expect_problem(srv_.get("/api/v1/tokens", "wrong"), 401);
  expect_problem(srv_.post("/api/v1/organizations", {{"name", "Nope"}}, ""), 401);
}

TEST_F(auth_test, bearer_scheme_is_case_insensitive) {
  for (std::string scheme : {"Bearer", "bearer", "BEARER", "bEaReR"}) {
    auto r = srv_.client().request(
        verb::get, hooks(), std::nullopt,
        {{"Authorization", scheme + " " + std::string(test_server::kAdminToken)}});
    EXPECT_EQ(r.status, 200u) << scheme << ": " << r.body;
  }
}

TEST_F(auth_test, other_schemes_and_empty_bearer_are_401) {
  const std::string token(test_server::kAdminToken);
  for (std::string value :
       {"Basic " + token, token, std::string("Bearer"), std::string("Bearer ")}) {
    auto r = srv_.client().request(verb::get, hooks(), std::nullopt, {{"Authorization", value}});
    expect_problem(r, 401);
  }
}

TEST_F(auth_test, x_access_token_header_works) {
  auto r = srv_.client().request(verb::get, hooks(), std::nullopt,
                                 {{"x-access-token", std::string(test_server::kAdminToken)}});
  EXPECT_EQ(r.status, 200u) << r.body;

  auto bad =
      srv_.client().request(verb::get, hooks(), std::nullopt, {{"X-Access-Token", "hkd_unknown"}});
  expect_problem(bad, 401);
}

TEST_F(auth_test, authorization_header_wins_over_x_access_token) {
  const std::string admin(test_server::kAdminToken);
  auto good_first = srv_.client().request(
      verb::get, hooks(), std::nullopt,
      {{"Authorization", "Bearer " + admin}, {"x-access-token", "hkd_unknown"}});
  EXPECT_EQ(good_first.status, 200u) << good_first.body;
  auto bad_first =
      srv_.client().request(verb::get, hooks(), std::nullopt,
                            {{"Authorization", "Bearer hkd_unknown"}, {"x-access-token", admin}});
  expect_problem(bad_first, 401);
}

TEST_F(auth_test, issued_token_authenticates_and_revoked_token_fails_at_once) {
  auto token = srv_.create_token({org_}, {"webhooks:read"});
  ASSERT_FALSE(token.secret.empty());
  EXPECT_EQ(srv_.get(hooks(), token.secret).status, 200u);

  auto revoked = srv_.del("/api/v1/tokens/" + token.id);
  EXPECT_EQ(revoked.status, 204u) << revoked.body;

  auto r = srv_.get(hooks(), token.secret);
  expect_problem(r, 401);
  EXPECT_FALSE(r.header("WWW-Authenticate").empty());
}

// More tokens than the per-thread cache of token hashes has slots, used in turn, some revoked:
// each is still judged as itself, however the cache's slots collide.
TEST_F(auth_test, many_tokens_in_turn_are_each_judged_as_themselves) {
  std::vector<test_server::issued_token> tokens;
  for (int i = 0; i < 40; ++i) tokens.push_back(srv_.create_token({org_}, {"webhooks:read"}));
  for (std::size_t i = 0; i < tokens.size(); i += 3) {
    ASSERT_EQ(srv_.del("/api/v1/tokens/" + tokens[i].id).status, 204u);
  }
  for (int round = 0; round < 2; ++round) {
    for (std::size_t i = 0; i < tokens.size(); ++i) {
      const auto r = srv_.get(hooks(), tokens[i].secret);
      EXPECT_EQ(r.status, i % 3 == 0 ? 401u : 200u) << "token " << i << " round " << round;
    }
  }
}

// authenticate() on this thread, so that this thread's cache is the one it uses.
TEST_F(auth_test, an_unknown_or_revoked_token_does_not_stay_in_the_threads_digest_cache) {
  const auto token = srv_.create_token({org_}, {"webhooks:read"});
  http::token_digest_cache& cache = http::this_thread_token_digests();
  http::request req{verb::get, hooks(), 11};
  req.set(bhttp::field::authorization, "Bearer " + token.secret);
  ASSERT_TRUE(http::authenticate(srv_.cat(), req));
  EXPECT_TRUE(cache.contains(token.secret));

  ASSERT_EQ(srv_.del("/api/v1/tokens/" + token.id).status, 204u);
  EXPECT_FALSE(http::authenticate(srv_.cat(), req));
  EXPECT_FALSE(cache.contains(token.secret));

  const std::string unknown = "hkd_never-issued-0123456789abcdef0123456789";
  req.set(bhttp::field::authorization, "Bearer " + unknown);
  EXPECT_FALSE(http::authenticate(srv_.cat(), req));
  EXPECT_FALSE(cache.contains(unknown));
}

TEST_F(auth_test, token_without_the_organization_gets_the_same_403_whether_or_not_it_exists) {
  const std::string other_org = srv_.create_organization("Other");
  const std::string other_proj = srv_.create_project(other_org, "their-shop");
  auto token = srv_.create_token({org_}, {"webhooks:read", "webhooks:write"});

  auto existing = srv_.get(test_server::webhooks_path(other_org, other_proj), token.secret);
  auto missing =
      srv_.get(test_server::webhooks_path("0123456789abcdef01234567", "76543210fedcba9876543210"),
               token.secret);
  expect_problem(existing, 403);
  expect_problem(missing, 403);
  EXPECT_EQ(existing.str("detail"), missing.str("detail"));
  EXPECT_EQ(existing.str("type"), missing.str("type"));
  EXPECT_EQ(existing.str("title"), missing.str("title"));

  // The same on every route of the webhook API, writes included.
  const std::string hook = "aaaaaaaaaaaaaaaaaaaaaaaa";
  auto p1 = srv_.patch(test_server::webhook_path(other_org, other_proj, hook), {{"active", false}},
                       token.secret);
  auto p2 = srv_.patch(test_server::webhook_path("0123456789abcdef01234567", other_proj, hook),
                       {{"active", false}}, token.secret);
  expect_problem(p1, 403);
  expect_problem(p2, 403);
  EXPECT_EQ(p1.str("detail"), p2.str("detail"));
}

TEST_F(auth_test, token_without_the_scope_gets_403_naming_it) {
  auto reader = srv_.create_token({org_}, {"webhooks:read"});
  auto r = srv_.post(hooks(), test_server::webhook_body(), reader.secret);
  expect_problem(r, 403);
  EXPECT_NE(r.str("detail").find("webhooks:write"), std::string::npos) << r.body;

  auto writer = srv_.create_token({org_}, {"webhooks:write"});
  auto list = srv_.get(hooks(), writer.secret);
  expect_problem(list, 403);
  EXPECT_NE(list.str("detail").find("webhooks:read"), std::string::npos) << list.body;

  auto events_only = srv_.create_token({org_}, {"events:write"});
  expect_problem(srv_.get(hooks(), events_only.secret), 403);
}

TEST_F(auth_test, the_signing_secret_needs_webhooks_write) {
  // A read-only token could forge deliveries with the secret: it gets a 403 naming the scope.
  auto writer = srv_.create_token({org_}, {"webhooks:write"});
  auto created = srv_.post(hooks(), test_server::webhook_body(), writer.secret);
  ASSERT_EQ(created.status, 201u) << created.body;
  const std::string secret_path = hooks() + "/" + created.str("_id") + "/secret";

  auto reader = srv_.create_token({org_}, {"webhooks:read", "deliveries:read"});
  auto refused = srv_.get(secret_path, reader.secret);
  expect_problem(refused, 403);
  EXPECT_NE(refused.str("detail").find("webhooks:write"), std::string::npos) << refused.body;
  EXPECT_EQ(refused.body.find(created.str("secret")), std::string::npos);

  auto shown = srv_.get(secret_path, writer.secret);
  ASSERT_EQ(shown.status, 200u) << shown.body;
  EXPECT_EQ(shown.str("secret"), created.str("secret"));
}

TEST_F(auth_test, scoped_token_can_use_its_organization) {
  auto token = srv_.create_token({org_}, {"webhooks:read", "webhooks:write"});
  auto created = srv_.post(hooks(), test_server::webhook_body(), token.secret);
  ASSERT_EQ(created.status, 201u) << created.body;
  const std::string id = created.str("_id");

  EXPECT_EQ(srv_.get(hooks() + "/" + id, token.secret).status, 200u);
  EXPECT_EQ(srv_.get(hooks() + "/" + id + "/secret", token.secret).status, 200u);
  EXPECT_EQ(srv_.patch(hooks() + "/" + id, {{"active", false}}, token.secret).status, 200u);
  EXPECT_EQ(srv_.del(hooks() + "/" + id, token.secret).status, 204u);
}

TEST_F(auth_test, non_admin_token_cannot_use_the_admin_api) {
  auto token = srv_.create_token({org_}, {"webhooks:read", "webhooks:write", "events:write",
                                          "deliveries:read", "deliveries:write"});
  const std::vector<std::pair<verb, std::string>> routes = {
      {verb::get, "/api/v1/organizations"},
      {verb::get, test_server::org_path(org_)},
      {verb::get, test_server::projects_path(org_)},
      {verb::get, test_server::projects_path(org_) + "/" + proj_},
      {verb::get, "/api/v1/tokens"},
      {verb::delete_, "/api/v1/tokens/" + token.id},
  };
  for (const auto& [method, target] : routes) {
    auto r = srv_.call(method, target, std::nullopt, token.secret);
    expect_problem(r, 403);
    EXPECT_NE(r.str("detail").find("admin"), std::string::npos) << target << ": " << r.body;
  }
  auto r = srv_.post("/api/v1/organizations", {{"name", "Mine"}}, token.secret);
  expect_problem(r, 403);
  auto t = srv_.post(
      "/api/v1/tokens",
      {{"name", "escalate"}, {"organizations", json::array{}}, {"scopes", json::array{"admin"}}},
      token.secret);
  expect_problem(t, 403);
  // The token was not revoked by its own attempt above.
  EXPECT_EQ(srv_.get(hooks(), token.secret).status, 200u);
}

// Order of checks: token, then id syntax, then organization access, then scope, then existence.
TEST_F(auth_test, checks_run_in_the_documented_order) {
  // A token of another organization: it lacks access to org_.
  auto other = srv_.create_token({srv_.create_organization("Elsewhere")}, {"webhooks:read"});
  auto reader = srv_.create_token({org_}, {"webhooks:read"});

  // 401 beats a malformed id.
  expect_problem(srv_.get(test_server::webhooks_path("nope", proj_), "hkd_unknown"), 401);
  // A malformed id beats organization access.
  auto bad_id = srv_.get(test_server::webhooks_path(org_, "nope"), other.secret);
  expect_problem(bad_id, 400);
  // Organization access beats scope: no org and no scope reads as "no org".
  auto no_org = srv_.post(hooks(), test_server::webhook_body(), other.secret);
  expect_problem(no_org, 403);
  EXPECT_EQ(no_org.str("detail"), srv_.get(hooks(), other.secret).str("detail"));
  // Scope beats existence: an unknown project in the token's org is still 403 without the scope.
  auto no_scope = srv_.post(test_server::webhooks_path(org_, "ffffffffffffffffffffffff"),
                            test_server::webhook_body(), reader.secret);
  expect_problem(no_scope, 403);
  // With the scope, an unknown project is 404.
  expect_problem(
      srv_.get(test_server::webhooks_path(org_, "ffffffffffffffffffffffff"), reader.secret), 404);
  // Existence beats the body: a malformed body to an unknown project is 404.
  auto writer = srv_.create_token({org_}, {"webhooks:write"});
  auto r = srv_.call(verb::post, test_server::webhooks_path(org_, "ffffffffffffffffffffffff"),
                     "{not json", writer.secret);
  expect_problem(r, 404);
}

// ---- the cache of token digests itself (http/api/token_digest_cache.hpp)

// Token i of `length` bytes: "<iii>" repeated, so that any fragment left of it is recognisable.
std::string patterned_token(int i, std::size_t length) {
  char unit[8];
  std::snprintf(unit, sizeof unit, "<%03d>", i);
  std::string out;
  while (out.size() < length) out += unit;
  out.resize(length);
  return out;
}

// Whether the cache object's own bytes hold `fragment`. Its slots are inline, so this is what a
// dump of the thread's memory would show of the tokens it has seen.
bool memory_holds(const http::token_digest_cache& cache, std::string_view fragment) {
  const std::string_view bytes(reinterpret_cast<const char*>(&cache), sizeof cache);
  return bytes.find(fragment) != std::string_view::npos;
}

TEST(token_digest_cache, digest_is_the_sha256_and_the_token_is_remembered) {
  http::token_digest_cache cache;
  const std::string token = "hkd_some-token-0123456789abcdef";
  EXPECT_EQ(cache.digest(token), sha256(token));
  EXPECT_TRUE(cache.contains(token));
  EXPECT_EQ(cache.size(), 1u);
  EXPECT_EQ(cache.digest(token), sha256(token));

  const std::string long_token(http::token_digest_cache::kMaxTokenBytes + 1, 'x');
  EXPECT_EQ(cache.digest(long_token), sha256(long_token));
  EXPECT_FALSE(cache.contains(long_token));
  EXPECT_EQ(cache.size(), 1u);
}

// More tokens than slots, each shorter than the one before, so that a slot reused without a wipe
// would keep the tail of the longer token it held.
TEST(token_digest_cache, a_displaced_or_forgotten_token_leaves_no_text_behind) {
  http::token_digest_cache cache;
  std::vector<std::string> tokens;
  for (int i = 0; i < 24; ++i) {
    tokens.push_back(patterned_token(i, 250 - 10 * static_cast<std::size_t>(i)));
  }
  for (std::size_t i = 0; i < tokens.size(); ++i) {
    EXPECT_EQ(cache.digest(tokens[i]), sha256(tokens[i]));
    for (std::size_t j = 0; j <= i; ++j) {
      // The first unit of token j is the same text as all of its units.
      EXPECT_EQ(memory_holds(cache, tokens[j].substr(0, 5)), cache.contains(tokens[j]))
          << "token " << j << " after token " << i;
    }
  }
  EXPECT_LE(cache.size(), http::token_digest_cache::kSlots);
  EXPECT_LT(cache.size(), tokens.size());  // some slots were reused

  for (const auto& token : tokens) {
    cache.forget(token);
    EXPECT_FALSE(cache.contains(token));
    EXPECT_FALSE(memory_holds(cache, token.substr(0, 5)));
  }
  EXPECT_EQ(cache.size(), 0u);
}

}  // namespace
}  // namespace hookd::test
