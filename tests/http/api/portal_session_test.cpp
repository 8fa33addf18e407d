// Portal sessions and the portal's files (docs/portal.md): POST …/portal-sessions answers a
// signed token for one project and the URL that opens the portal with it; the token reaches that
// project's webhooks and deliveries and nothing else, expires, and outlives a restart; /portal/
// is served from the binary with its security headers. A real stack over loopback.

#include "support/test_server.hpp"

#include "core/common/clock.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <thread>

namespace hookd::test {
namespace {

using namespace std::chrono_literals;

class PortalSessions : public ::testing::Test {
 protected:
  PortalSessions() {
    org = srv.create_organization("Acme");
    proj = srv.create_project(org, "shop");
    other_proj = srv.create_project(org, "billing");
    other_org = srv.create_organization("Globex");
    foreign_proj = srv.create_project(other_org, "globex-shop");
  }

  static std::string sessions_path(const std::string& o, const std::string& p) {
    return test_server::projects_path(o) + "/" + p + "/portal-sessions";
  }

  http_reply open_session(std::optional<std::string> body = std::nullopt,
                          std::string_view token = test_server::kAdminToken) {
    return srv.call(bhttp::verb::post, sessions_path(org, proj), std::move(body), token);
  }

  // A fresh session's token (asserting the 201).
  std::string session_token(std::optional<std::string> body = std::nullopt) {
    auto r = open_session(std::move(body));
    EXPECT_EQ(r.status, 201u) << r.body;
    return r.str("token");
  }

  static std::string first_error_field(const http_reply& r) {
    auto v = r.json();
    if (!v.is_object() || !v.as_object().contains("errors")) return {};
    const auto& errors = v.at("errors").as_array();
    return errors.empty() ? std::string() : std::string(errors[0].at("field").as_string());
  }

  test_server srv;
  std::string org, proj, other_proj, other_org, foreign_proj;
};

TEST_F(PortalSessions, CreatedWithUrlTokenAndAnHourByDefault) {
  // A project token with webhooks:write may open one; the body is optional.
  const auto writer = srv.create_token({org}, {"webhooks:write"});
  const auto before = now_ms();
  auto r = open_session(std::nullopt, writer.secret);
  ASSERT_EQ(r.status, 201u) << r.body;
  const std::string token = r.str("token");
  const std::string url = r.str("url");
  EXPECT_TRUE(token.starts_with("hkp_")) << token;
  // The origin is the request's Host on this plain-HTTP listener; the token rides in the fragment.
  const std::string origin = "http://127.0.0.1:" + std::to_string(srv.port());
  EXPECT_EQ(url, origin + "/portal/#token=" + token + "&organization=" + org + "&project=" + proj);
  EXPECT_EQ(r.header("Location"), url);
  const auto expires = parse_rfc3339(r.str("expiresAt"));
  ASSERT_TRUE(expires.has_value()) << r.body;
  EXPECT_GE(*expires, before + 1h - 1s);
  EXPECT_LE(*expires, now_ms() + 1h + 1s);

  // {} and a chosen lifetime, in seconds or as a duration.
  EXPECT_EQ(open_session("{}").status, 201u);
  auto half = open_session(R"({"expiresIn": "30m"})");
  ASSERT_EQ(half.status, 201u) << half.body;
  EXPECT_LE(*parse_rfc3339(half.str("expiresAt")), now_ms() + 30min + 1s);
  EXPECT_EQ(open_session(R"({"expiresIn": 86400})").status, 201u);
}

TEST_F(PortalSessions, NeedsWebhooksWriteOnThatOrganization) {
  EXPECT_EQ(open_session(std::nullopt, "").status, 401u);
  const auto reader = srv.create_token({org}, {"webhooks:read", "deliveries:write"});
  auto r = open_session(std::nullopt, reader.secret);
  EXPECT_EQ(r.status, 403u) << r.body;
  EXPECT_NE(r.str("detail").find("webhooks:write"), std::string::npos) << r.body;
  const auto outsider = srv.create_token({other_org}, {"webhooks:write"});
  EXPECT_EQ(open_session(std::nullopt, outsider.secret).status, 403u);
  // A project of another organization is not found under this one.
  auto misplaced = srv.call(bhttp::verb::post, sessions_path(org, foreign_proj), std::nullopt);
  EXPECT_EQ(misplaced.status, 404u) << misplaced.body;
}

TEST_F(PortalSessions, BadExpiresInIsA400NamingTheField) {
  for (const char* body :
       {R"({"expiresIn": 0})", R"({"expiresIn": -5})", R"({"expiresIn": 86401})",
        R"({"expiresIn": "25h"})", R"({"expiresIn": "soon"})", R"({"expiresIn": true})",
        R"({"expiresIn": 60.5})", R"({"expiresIn": null})"}) {
    auto r = open_session(body);
    EXPECT_EQ(r.status, 400u) << body << " " << r.body;
    EXPECT_EQ(r.header("Content-Type"), "application/problem+json") << body;
    EXPECT_EQ(first_error_field(r), "expiresIn") << body << " " << r.body;
  }
  auto unknown = open_session(R"({"expiresIn": 60, "scope": "admin"})");
  EXPECT_EQ(unknown.status, 400u) << unknown.body;
  EXPECT_EQ(first_error_field(unknown), "scope") << unknown.body;
  EXPECT_EQ(open_session("[]").status, 400u);
  EXPECT_EQ(open_session("{").status, 400u);
}

TEST_F(PortalSessions, TokenReachesItsProjectsWebhooksAndDeliveriesOnly) {
  const std::string token = session_token();
  // Its own project: read and write webhooks, their secrets and deliveries.
  auto created =
      srv.post(test_server::webhooks_path(org, proj), test_server::webhook_body(), token);
  ASSERT_EQ(created.status, 201u) << created.body;
  const std::string hook = created.str("_id");
  EXPECT_EQ(srv.get(test_server::webhooks_path(org, proj), token).status, 200u);
  EXPECT_EQ(srv.get(test_server::webhook_path(org, proj, hook) + "/secret", token).status, 200u);
  EXPECT_EQ(
      srv.patch(test_server::webhook_path(org, proj, hook), {{"active", false}}, token).status,
      200u);
  EXPECT_EQ(srv.get(test_server::webhook_path(org, proj, hook) + "/deliveries", token).status,
            200u);
  EXPECT_EQ(srv.get(test_server::projects_path(org) + "/" + proj + "/deliveries", token).status,
            200u);

  // Another project of the same organization, one that does not exist, one of another
  // organization: refused alike, revealing nothing.
  auto sibling = srv.get(test_server::webhooks_path(org, other_proj), token);
  EXPECT_EQ(sibling.status, 403u) << sibling.body;
  EXPECT_EQ(
      srv.post(test_server::webhooks_path(org, other_proj), test_server::webhook_body(), token)
          .status,
      403u);
  EXPECT_EQ(
      srv.get(test_server::projects_path(org) + "/" + other_proj + "/deliveries", token).status,
      403u);
  auto nowhere = srv.get(test_server::webhooks_path(org, "0123456789abcdef01234567"), token);
  EXPECT_EQ(nowhere.status, 403u) << nowhere.body;
  EXPECT_EQ(nowhere.str("detail"), sibling.str("detail"));
  EXPECT_EQ(srv.get(test_server::webhooks_path(other_org, foreign_proj), token).status, 403u);

  // Organization-level and admin routes, events, and sessions of its own.
  for (const std::string& path :
       {test_server::org_path(org), test_server::projects_path(org),
        test_server::projects_path(org) + "/" + proj, std::string("/api/v1/tokens"),
        std::string("/api/v1/organizations")}) {
    auto r = srv.get(path, token);
    EXPECT_EQ(r.status, 403u) << path << " " << r.body;
  }
  auto ingest = srv.post(test_server::projects_path(org) + "/" + proj + "/events",
                         {{"type", "order.created"}, {"data", 1}}, token);
  EXPECT_EQ(ingest.status, 403u) << ingest.body;
  auto again = open_session(std::nullopt, token);
  EXPECT_EQ(again.status, 403u) << again.body;
}

TEST_F(PortalSessions, ExpiredAndForgedTokensAre401InWords) {
  const std::string token = session_token(R"({"expiresIn": 1})");
  ASSERT_EQ(srv.get(test_server::webhooks_path(org, proj), token).status, 200u);
  std::this_thread::sleep_for(1100ms);
  auto expired = srv.get(test_server::webhooks_path(org, proj), token);
  EXPECT_EQ(expired.status, 401u) << expired.body;
  EXPECT_EQ(expired.header("WWW-Authenticate").rfind("Bearer", 0), 0u);
  EXPECT_NE(expired.str("detail").find("expired"), std::string::npos) << expired.body;

  // One changed character anywhere: the tag no longer verifies.
  std::string forged = session_token();
  forged[forged.size() / 2] = forged[forged.size() / 2] == 'A' ? 'B' : 'A';
  auto bad = srv.get(test_server::webhooks_path(org, proj), forged);
  EXPECT_EQ(bad.status, 401u) << bad.body;
  EXPECT_NE(bad.str("detail").find("not valid"), std::string::npos) << bad.body;
  EXPECT_EQ(srv.get(test_server::webhooks_path(org, proj), "hkp_").status, 401u);
}

TEST_F(PortalSessions, SurviveARestart) {
  // Nothing is stored: the key comes from the master key, which the data dir keeps.
  const std::string token = session_token();
  srv.restart();
  EXPECT_EQ(srv.get(test_server::webhooks_path(org, proj), token).status, 200u);
}

// --public-url replaces the request's Host in session URLs.
class PublicUrlServer : public test_server {
 public:
  PublicUrlServer() : test_server(settings(), "hookd-portal-test") {}

 private:
  static config settings() {
    config c;
    c.public_url = "https://hooks.example.com";
    return c;
  }
};

TEST(PortalPublicUrl, SessionUrlsStartWithIt) {
  PublicUrlServer srv;
  const auto o = srv.create_organization("Acme");
  const auto p = srv.create_project(o, "shop");
  auto r = srv.call(bhttp::verb::post, test_server::projects_path(o) + "/" + p + "/portal-sessions",
                    std::nullopt);
  ASSERT_EQ(r.status, 201u) << r.body;
  EXPECT_EQ(r.str("url").rfind("https://hooks.example.com/portal/#token=hkp_", 0), 0u) << r.body;
}

// ---- the files under /portal/

class PortalFiles : public ::testing::Test {
 protected:
  http_reply get(const std::string& path, header_list headers = {}) {
    return srv.call(bhttp::verb::get, path, std::nullopt, "", std::move(headers));
  }
  test_server srv;
};

TEST_F(PortalFiles, ServedWithoutTokenWithTypesAndSecurityHeaders) {
  struct file {
    std::string path;
    std::string type;
  };
  for (const auto& f : {file{"/portal/", "text/html; charset=utf-8"},
                        file{"/portal/app.js", "text/javascript; charset=utf-8"},
                        file{"/portal/style.css", "text/css; charset=utf-8"}}) {
    auto r = get(f.path);
    ASSERT_EQ(r.status, 200u) << f.path;
    EXPECT_EQ(r.header("Content-Type"), f.type) << f.path;
    EXPECT_EQ(r.header("Content-Security-Policy"),
              "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
              "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
        << f.path;
    EXPECT_EQ(r.header("X-Frame-Options"), "DENY") << f.path;
    EXPECT_EQ(r.header("X-Content-Type-Options"), "nosniff") << f.path;
    EXPECT_EQ(r.header("Cache-Control"), "no-cache") << f.path;
    EXPECT_FALSE(r.header("ETag").empty()) << f.path;
    EXPECT_FALSE(r.body.empty()) << f.path;

    // A revalidation with the ETag costs no body.
    auto again = get(f.path, {{"If-None-Match", r.header("ETag")}});
    EXPECT_EQ(again.status, 304u) << f.path;
    EXPECT_TRUE(again.body.empty()) << f.path;
    EXPECT_EQ(again.header("ETag"), r.header("ETag")) << f.path;
    EXPECT_EQ(get(f.path, {{"If-None-Match", "\"stale\""}}).status, 200u) << f.path;
  }
  auto bare = get("/portal");
  EXPECT_EQ(bare.status, 301u);
  EXPECT_EQ(bare.header("Location"), "/portal/");
  EXPECT_EQ(get("/portal/nothing.js").status, 404u);
}

TEST_F(PortalFiles, PageLoadsOnlyItsOwnScriptAndStyle) {
  // The CSP forbids inline code, so the page must have none, and no other origin.
  const std::string html = get("/portal/").body;
  EXPECT_NE(html.find(R"(<script type="module" src="app.js"></script>)"), std::string::npos);
  EXPECT_NE(html.find(R"(<link rel="stylesheet" href="style.css">)"), std::string::npos);
  EXPECT_EQ(html.find("<style"), std::string::npos);
  EXPECT_EQ(html.find(" style="), std::string::npos);
  EXPECT_EQ(html.find("http://"), std::string::npos);
  EXPECT_EQ(html.find("https://"), std::string::npos);
  EXPECT_EQ(html.find(" on"), std::string::npos);  // no onload= or similar handlers
  // The script never parses API strings as HTML.
  const std::string js = get("/portal/app.js").body;
  for (const char* sink : {"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write",
                           "eval(", "new Function", "localStorage", "sessionStorage"}) {
    EXPECT_EQ(js.find(sink), std::string::npos) << sink;
  }
}

}  // namespace
}  // namespace hookd::test
