#include "http/server/router.hpp"

#include <gtest/gtest.h>

#include <stdexcept>

namespace hookd::http {
namespace {

handler stub() {
  return [](request_context&) -> asio::awaitable<response> {
    co_return response{};
  };
}

using kind = router::match::kind;

class RouterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    r.add(bhttp::verb::get, "/healthz", stub());
    r.add(bhttp::verb::get, "/api/v1/organizations", stub());
    r.add(bhttp::verb::post, "/api/v1/organizations", stub());
    r.add(bhttp::verb::get, "/api/v1/organizations/{organizationId}", stub());
    r.add(bhttp::verb::get, "/w/{webhookId}", stub());
    r.add(bhttp::verb::patch, "/w/{webhookId}", stub());
    r.add(bhttp::verb::delete_, "/w/{webhookId}", stub());
    r.add(bhttp::verb::get, "/o/{organizationId}/p/{projectId}", stub(), "project");
  }
  router r;
};

TEST_F(RouterTest, FindsLiteralRouteAndLabelsItWithThePattern) {
  const auto m = r.find(bhttp::verb::get, "/healthz");
  ASSERT_EQ(m.outcome, kind::found);
  ASSERT_NE(m.target, nullptr);
  EXPECT_EQ(m.route, "/healthz");
  EXPECT_EQ(m.params.size(), 0u);
}

TEST_F(RouterTest, ExtractsParametersByName) {
  const auto m = r.find(bhttp::verb::get, "/o/abc/p/def");
  ASSERT_EQ(m.outcome, kind::found);
  EXPECT_EQ(m.params.get("organizationId"), "abc");
  EXPECT_EQ(m.params.get("projectId"), "def");
  EXPECT_EQ(m.params.get("webhookId"), "");
  EXPECT_EQ(m.route, "project");  // the explicit label wins over the pattern
}

TEST_F(RouterTest, DistinguishesMethodsOnOnePath) {
  const auto get = r.find(bhttp::verb::get, "/api/v1/organizations");
  const auto post = r.find(bhttp::verb::post, "/api/v1/organizations");
  ASSERT_EQ(get.outcome, kind::found);
  ASSERT_EQ(post.outcome, kind::found);
  EXPECT_NE(get.target, post.target);
}

TEST_F(RouterTest, UnknownPathIsNotFound) {
  for (const auto* path : {"/nope", "/", "", "/healthz/extra", "/api/v1", "healthz", "*"}) {
    const auto m = r.find(bhttp::verb::get, path);
    EXPECT_EQ(m.outcome, kind::not_found) << path;
    EXPECT_EQ(m.target, nullptr) << path;
    EXPECT_EQ(m.route, "") << path;
    EXPECT_EQ(m.allow, "") << path;
  }
}

TEST_F(RouterTest, ParametersNeverSpanSlashesOrMatchEmpty) {
  EXPECT_EQ(r.find(bhttp::verb::get, "/w/a/b").outcome, kind::not_found);
  EXPECT_EQ(r.find(bhttp::verb::get, "/w/").outcome, kind::not_found);
  EXPECT_EQ(r.find(bhttp::verb::get, "/o//p/x").outcome, kind::not_found);
  EXPECT_EQ(r.find(bhttp::verb::get, "/healthz/").outcome, kind::not_found);
}

TEST_F(RouterTest, KnownPathOtherMethodIsMethodNotAllowedWithAllowInRegistrationOrder) {
  const auto m = r.find(bhttp::verb::post, "/w/123");
  EXPECT_EQ(m.outcome, kind::method_not_allowed);
  EXPECT_EQ(m.target, nullptr);
  EXPECT_EQ(m.allow, "GET, HEAD, PATCH, DELETE");
  EXPECT_EQ(m.route, "/w/{webhookId}");

  // A GET route serves HEAD too (the server drops the body), and says so in Allow.
  const auto head = r.find(bhttp::verb::head, "/healthz");
  EXPECT_EQ(head.outcome, kind::found);
  EXPECT_EQ(head.route, "/healthz");
  const auto post_of_healthz = r.find(bhttp::verb::post, "/healthz");
  EXPECT_EQ(post_of_healthz.allow, "GET, HEAD");

  const auto put = r.find(bhttp::verb::put, "/api/v1/organizations");
  EXPECT_EQ(put.allow, "GET, HEAD, POST");
}

TEST(Router, LiteralSegmentBeatsParameterWhateverTheOrder) {
  router r;
  r.add(bhttp::verb::get, "/tokens/{tokenId}", stub());
  r.add(bhttp::verb::get, "/tokens/current", stub());
  r.add(bhttp::verb::delete_, "/tokens/{tokenId}", stub());

  const auto literal = r.find(bhttp::verb::get, "/tokens/current");
  ASSERT_EQ(literal.outcome, kind::found);
  EXPECT_EQ(literal.route, "/tokens/current");
  EXPECT_EQ(literal.params.size(), 0u);

  const auto param = r.find(bhttp::verb::get, "/tokens/abc");
  ASSERT_EQ(param.outcome, kind::found);
  EXPECT_EQ(param.route, "/tokens/{tokenId}");
  EXPECT_EQ(param.params.get("tokenId"), "abc");

  // DELETE /tokens/current falls to the parameter route, which has DELETE.
  const auto del = r.find(bhttp::verb::delete_, "/tokens/current");
  ASSERT_EQ(del.outcome, kind::found);
  EXPECT_EQ(del.params.get("tokenId"), "current");

  // Allow lists every method of every pattern matching the path, once each.
  const auto post = r.find(bhttp::verb::post, "/tokens/current");
  EXPECT_EQ(post.outcome, kind::method_not_allowed);
  EXPECT_EQ(post.allow, "GET, HEAD, DELETE");  // HEAD with GET, once
}

TEST(Router, TheFirstDifferingSegmentDecidesSpecificityWhateverTheOrder) {
  for (const bool reversed : {false, true}) {
    router r;
    const auto add_a = [&] {
      r.add(bhttp::verb::get, "/a/{x}/c", stub());
    };
    const auto add_b = [&] {
      r.add(bhttp::verb::get, "/a/b/{y}", stub());
    };
    if (reversed) {
      add_b();
      add_a();
    } else {
      add_a();
      add_b();
    }
    const auto m = r.find(bhttp::verb::get, "/a/b/c");
    ASSERT_EQ(m.outcome, router::match::kind::found);
    EXPECT_EQ(m.route, "/a/b/{y}");  // literal "b" at the second segment beats {x}
    EXPECT_EQ(m.params.get("y"), "c");
    EXPECT_EQ(r.find(bhttp::verb::get, "/a/z/c").route, "/a/{x}/c");
  }
}

TEST(Router, RefusesBadPatternsAtStartUp) {
  router r;
  EXPECT_THROW(r.add(bhttp::verb::get, "healthz", stub()), std::invalid_argument);
  r.add(bhttp::verb::get, "/a/{x}", stub());
  EXPECT_THROW(r.add(bhttp::verb::get, "/a/{x}", stub()), std::invalid_argument);
  EXPECT_THROW(r.add(bhttp::verb::get, "/{a}/{b}/{c}/{d}/{e}/{f}/{g}", stub()),
               std::invalid_argument);
  EXPECT_NO_THROW(r.add(bhttp::verb::post, "/a/{x}", stub()));
}

TEST(PathParams, KeepsAtMostMaxAndFindsByName) {
  path_params p;
  for (std::size_t i = 0; i < path_params::kMax + 2; ++i) p.push("k", "v");
  EXPECT_EQ(p.size(), path_params::kMax);
  path_params q;
  q.push("a", "1");
  q.push("b", "2");
  EXPECT_EQ(q.get("a"), "1");
  EXPECT_EQ(q.get("b"), "2");
  EXPECT_EQ(q.get("c"), "");
}

}  // namespace
}  // namespace hookd::http
