#include "core/catalog/entities.hpp"

#include <gtest/gtest.h>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <atomic>
#include <thread>
#include <vector>

namespace hookd {
namespace {

namespace json = boost::json;
using std::chrono::milliseconds;

const timestamp kCreated{milliseconds{1'796'004'000'000}};  // 2026-11-30T02:00:00.000Z
const timestamp kUpdated{milliseconds{1'796'004'061'234}};  // 2026-11-30T02:01:01.234Z

object_id id(std::string_view hex) {
  return *object_id::parse(hex);
}

std::vector<std::string> keys(const json::object& o) {
  std::vector<std::string> out;
  for (const auto& m : o) out.emplace_back(m.key());
  return out;
}

TEST(Entities, OrganizationShape) {
  const organization org{id("AAAAAAAAAAAAAAAAAAAAAAAA"), "Acme", kCreated, kUpdated};
  const json::object j = to_json(org);
  EXPECT_EQ(keys(j), (std::vector<std::string>{"_id", "name", "createdAt", "updatedAt"}));
  EXPECT_EQ(j.at("_id"), "aaaaaaaaaaaaaaaaaaaaaaaa");
  EXPECT_EQ(j.at("name"), "Acme");
  EXPECT_EQ(j.at("createdAt"), "2026-11-30T02:00:00.000Z");
  EXPECT_EQ(j.at("updatedAt"), "2026-11-30T02:01:01.234Z");
}

TEST(Entities, ProjectShapeOmitsAbsentOptionals) {
  project p;
  p.id = id("0123456789abcdef01234567");
  p.organization = id("aaaaaaaaaaaaaaaaaaaaaaaa");
  p.name = "Shop";
  p.slug = "shop";
  p.created_at = kCreated;
  p.updated_at = kUpdated;
  json::object j = to_json(p);
  EXPECT_EQ(keys(j), (std::vector<std::string>{"_id", "name", "slug", "organization", "status",
                                               "createdAt", "updatedAt"}));
  EXPECT_EQ(j.at("status"), "draft");
  EXPECT_EQ(j.at("organization"), "aaaaaaaaaaaaaaaaaaaaaaaa");

  p.description = "The shop";
  p.app_icon_url = "https://example.com/icon.png";
  p.status = project_status::archived;
  j = to_json(p);
  EXPECT_EQ(j.at("description"), "The shop");
  EXPECT_EQ(j.at("appIconUrl"), "https://example.com/icon.png");
  EXPECT_EQ(j.at("status"), "archived");
  EXPECT_FALSE(j.contains("credential"));
  EXPECT_FALSE(j.contains("lastActivityAt"));
}

TEST(Entities, ProjectStatusNames) {
  for (auto s : {project_status::draft, project_status::active, project_status::archived}) {
    EXPECT_EQ(parse_project_status(to_string(s)), s);
  }
  EXPECT_EQ(to_string(project_status::active), "active");
  EXPECT_FALSE(parse_project_status("Active"));
  EXPECT_FALSE(parse_project_status("deleted"));
  EXPECT_FALSE(parse_project_status(""));
}

TEST(Entities, TokenShapeNeverHasTheDigest) {
  api_token t;
  t.id = id("bbbbbbbbbbbbbbbbbbbbbbbb");
  t.name = "ci";
  t.organizations = {id("aaaaaaaaaaaaaaaaaaaaaaaa"), id("cccccccccccccccccccccccc")};
  t.scopes.add(scope::webhooks_write);
  t.scopes.add(scope::webhooks_read);
  t.digest = sha256("hkd_supersecret");
  t.created_at = kCreated;
  const json::object j = to_json(t);
  EXPECT_EQ(keys(j),
            (std::vector<std::string>{"_id", "name", "organizations", "scopes", "createdAt"}));
  EXPECT_EQ(j.at("organizations"),
            (json::array{"aaaaaaaaaaaaaaaaaaaaaaaa", "cccccccccccccccccccccccc"}));
  EXPECT_EQ(j.at("scopes"), (json::array{"webhooks:read", "webhooks:write"}));
  const std::string text = json::serialize(j);
  const std::string digest_hex =
      hex_encode({reinterpret_cast<const char*>(t.digest.data()), t.digest.size()});
  EXPECT_EQ(text.find(digest_hex), std::string::npos);
  EXPECT_EQ(
      text.find(base64_encode({reinterpret_cast<const char*>(t.digest.data()), t.digest.size()})),
      std::string::npos);
  EXPECT_EQ(text.find("digest"), std::string::npos);
  EXPECT_EQ(text.find("supersecret"), std::string::npos);
}

TEST(Entities, TokenAccess) {
  api_token t;
  const object_id a = id("aaaaaaaaaaaaaaaaaaaaaaaa");
  const object_id c = id("cccccccccccccccccccccccc");
  t.organizations = {a};
  t.scopes.add(scope::webhooks_read);
  EXPECT_TRUE(t.can_access(a));
  EXPECT_FALSE(t.can_access(c));
  t.scopes.add(scope::admin);
  EXPECT_TRUE(t.can_access(c));
  api_token none;
  none.scopes.add(scope::events_write);
  EXPECT_FALSE(none.can_access(a));
}

webhook sample_webhook() {
  webhook w;
  w.id = id("dddddddddddddddddddddddd");
  w.organization = id("aaaaaaaaaaaaaaaaaaaaaaaa");
  w.project = id("0123456789ABCDEF01234567");
  w.name = "Orders";
  w.url = "https://example.com/hooks";
  w.headers = {{"X-Zeta", "1"}, {"X-Alpha", "two"}};
  w.active = true;
  w.events = {"order.created", "invoice.*"};
  w.secret = "whsec_c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0";
  w.created_at = kCreated;
  w.updated_at = kUpdated;
  return w;
}

TEST(Entities, WebhookShapeNeverHasTheSecret) {
  const webhook w = sample_webhook();
  const json::object j = to_json(w);
  EXPECT_EQ(keys(j), (std::vector<std::string>{"_id", "organization", "project", "name", "url",
                                               "headers", "active", "events", "createdAt",
                                               "updatedAt", "signing", "filter"}));
  EXPECT_EQ(j.at("signing"), "v1");
  EXPECT_TRUE(j.at("filter").is_null());
  EXPECT_EQ(j.at("project"), "0123456789abcdef01234567");
  EXPECT_EQ(j.at("active"), true);
  EXPECT_EQ(j.at("events"), (json::array{"order.created", "invoice.*"}));
  // Headers keep the client's order, not a sorted one.
  EXPECT_EQ(json::serialize(j.at("headers")), R"({"X-Zeta":"1","X-Alpha":"two"})");
  const std::string text = json::serialize(j);
  EXPECT_EQ(text.find("whsec_"), std::string::npos);
  EXPECT_EQ(text.find("secret"), std::string::npos);
}

// A v1a webhook shows its scheme and filter, never its key or the secrets of a rotation.
TEST(Entities, V1aWebhookShapeNeverHasItsKeyOrPreviousSecrets) {
  webhook w = sample_webhook();
  w.signing = signing_scheme::v1a;
  w.secret = "whsk_nWGxne/9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A=";
  w.previous_secrets = {{"whsec_b2xkLXNpZ25pbmcta2V5LWJ5dGVzLTI0IQ==", kUpdated}};
  std::vector<field_error> errors;
  w.filter = event_filter::parse(json::parse(R"({"data.country":"TR"})"), errors);
  const json::object j = to_json(w);
  EXPECT_EQ(j.at("signing"), "v1a");
  EXPECT_EQ(j.at("filter"), (json::object{{"data.country", "TR"}}));
  const std::string text = json::serialize(j);
  EXPECT_EQ(text.find("whsk_"), std::string::npos);
  EXPECT_EQ(text.find("whsec_"), std::string::npos);
  EXPECT_EQ(text.find("nWGxne"), std::string::npos);
  EXPECT_EQ(text.find("revious"), std::string::npos);
}

TEST(Entities, WebhookDisabledFieldsOnlyWhenSet) {
  webhook w = sample_webhook();
  w.headers.clear();
  EXPECT_EQ(to_json(w).at("headers"), json::object{});
  EXPECT_FALSE(to_json(w).contains("disabledReason"));
  EXPECT_FALSE(to_json(w).contains("disabledAt"));
  w.active = false;
  w.disabled_reason = "failing for 5 days";
  w.disabled_at = kUpdated;
  const json::object j = to_json(w);
  EXPECT_EQ(j.at("active"), false);
  EXPECT_EQ(j.at("disabledReason"), "failing for 5 days");
  EXPECT_EQ(j.at("disabledAt"), "2026-11-30T02:01:01.234Z");
}

TEST(Entities, WebhookJsonTextIsItsSerializedShapeMadeOnce) {
  const webhook w = sample_webhook();
  const std::string& text = to_json_text(w);
  EXPECT_EQ(text, json::serialize(to_json(w)));
  EXPECT_EQ(&to_json_text(w), &text);  // the second read reuses the first text
  EXPECT_EQ(text.find("whsec_"), std::string::npos);
}

TEST(Entities, ACopiedWebhookDoesNotInheritTheCachedText) {
  // The catalog makes a webhook's next version by copying the published one and editing it.
  const webhook published = sample_webhook();
  const std::string before = to_json_text(published);
  webhook next = published;
  next.name = "Renamed";
  next.active = false;
  const json::value parsed = json::parse(to_json_text(next));
  EXPECT_EQ(parsed.at("name"), "Renamed");
  EXPECT_EQ(parsed.at("active"), false);
  EXPECT_EQ(to_json_text(published), before);

  webhook assigned = sample_webhook();
  (void)to_json_text(assigned);
  assigned = next;  // assignment drops the old text as well
  EXPECT_EQ(to_json_text(assigned), to_json_text(next));
}

TEST(Entities, ConcurrentFirstReadsAgreeOnOneText) {
  const webhook w = sample_webhook();
  constexpr int kThreads = 8;
  std::vector<const std::string*> seen(kThreads, nullptr);
  std::atomic<bool> go{false};
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      while (!go.load()) std::this_thread::yield();
      seen[static_cast<std::size_t>(i)] = &to_json_text(w);
    });
  }
  go.store(true);
  for (auto& t : threads) t.join();
  for (const std::string* text : seen) {
    ASSERT_EQ(text, seen[0]);  // every racer returns the one text that was kept
  }
  EXPECT_EQ(*seen[0], json::serialize(to_json(w)));
}

TEST(Entities, GeneratedWebhookSecretIsWhsecBase64Of24Bytes) {
  const std::string s = generate_webhook_secret();
  ASSERT_EQ(s.rfind("whsec_", 0), 0u);
  const auto raw = base64_decode(std::string_view(s).substr(6));
  ASSERT_TRUE(raw.has_value());
  EXPECT_EQ(raw->size(), 24u);
  EXPECT_NE(generate_webhook_secret(), s);
}

TEST(Entities, GeneratedApiTokenIsHkdBase64UrlOf32Bytes) {
  const std::string t = generate_api_token();
  ASSERT_EQ(t.rfind("hkd_", 0), 0u);
  EXPECT_EQ(t.size(), 4u + 43u);
  EXPECT_EQ(t.find_first_of("+/="), std::string::npos);
  EXPECT_NE(generate_api_token(), t);
}

}  // namespace
}  // namespace hookd
