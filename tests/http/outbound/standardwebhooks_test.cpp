// hookd's deliveries verify with the npm `standardwebhooks` library (docs/openapi.yaml): a Node
// receiver (tests/node/standardwebhooks-receiver.js) checks each request with
// `new Webhook(secret).verify(body, headers)` and prints one JSON line per request.
// Needs `npm ci --prefix tests/node` (tools/test.sh runs it); skipped with a message without it.

#include "core/delivery/signing.hpp"
#include "support/delivery_fixture.hpp"

#include <gtest/gtest.h>

#include <cstdlib>
#include <map>
#include <set>
#include <sstream>

namespace hookd::test {
namespace {

bool is_event(const json::object& o, std::string_view name) {
  const auto* e = o.if_contains("event");
  return e && e->is_string() && e->as_string() == name;
}

TEST(StandardWebhooks, EveryDeliveryVerifiesWithTheNpmLibrary) {
  const std::filesystem::path node_dir = std::filesystem::path(HOOKD_SOURCE_DIR) / "tests/node";
  if (!std::filesystem::exists(node_dir / "node_modules/standardwebhooks/package.json")) {
    GTEST_SKIP() << "tests/node/node_modules is missing: run `npm ci --prefix tests/node` "
                    "(tools/test.sh does) to verify deliveries with the standardwebhooks package";
  }
  const auto node = find_node();
  if (!node) GTEST_SKIP() << "node is not on PATH; tools/setup.sh installs it";

  delivery_stack stack;
  const auto org = stack.create_organization("Verify");
  const auto proj = stack.create_project(org, "verify");
  // Created inactive with a placeholder URL: the receiver needs the secret before it listens.
  auto hook = stack.create_webhook(org, proj,
                                   {{"name", "Node receiver"},
                                    {"url", "http://127.0.0.1:9/placeholder"},
                                    {"active", false},
                                    {"headers", {{"X-Source", "hookd-test"}}},
                                    {"events", json::array{"order.*", "ping"}}});
  const std::string hook_id(hook.at("_id").as_string());
  const std::string secret(hook.at("secret").as_string());

  std::string pattern =
      (std::filesystem::temp_directory_path() / "hookd-standardwebhooks-XXXXXX").string();
  ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
  const std::filesystem::path dir = pattern;
  child_process receiver_process(*node,
                                 {(node_dir / "standardwebhooks-receiver.js").string(), "--secret",
                                  secret, "--max-seconds", "120"},
                                 dir / "receiver");
  auto listening = receiver_process.wait_for_json(
      [](const json::object& o) { return is_event(o, "listening"); }, false, 30s);
  ASSERT_TRUE(listening) << receiver_process.output(true);
  const auto port = listening->at("port").as_int64();
  const std::string url = "http://127.0.0.1:" + std::to_string(port) + "/hooks";

  auto patched =
      stack.patch(test_server::webhook_path(org, proj, hook_id), {{"url", url}, {"active", true}});
  ASSERT_EQ(patched.status, 200u) << patched.body;
  // Signed after a restart: the secret is loaded sealed and opened at its first signing.
  stack.restart();

  // Bodies that exercise the byte-exactness of the signed content: non-ASCII text, escapes,
  // numbers, nesting, null, and a larger payload.
  const std::vector<std::pair<std::string, json::value>> events = {
      {"order.created", {{"id", 1}, {"total", 12.5}, {"currency", "EUR"}}},
      {"order.updated", {{"note", "Grüße, 東京, emoji \xF0\x9F\x8E\x89, quote \" and \\ slash"}}},
      {"order.deleted", nullptr},
      {"ping", json::array{1, "two", json::object{{"three", 3}}, true, false}},
      {"order.bulk", {{"blob", std::string(8000, 'x')}}},
  };
  for (const auto& [type, data] : events) {
    auto r = stack.ingest(org, proj, {{"type", type}, {"data", data}});
    ASSERT_EQ(r.status, 202u) << r.body;
    ASSERT_EQ(r.json().at("deliveries").as_int64(), 1);
  }
  // A test ping is signed like any other delivery.
  auto ping = stack.post(test_server::webhook_path(org, proj, hook_id) + "/test", json::object{});
  ASSERT_EQ(ping.status, 202u) << ping.body;
  std::map<std::string, json::value> sent(events.begin(), events.end());
  sent.emplace("webhook.ping", json::object{{"webhookId", hook_id}});

  auto requests = [&] {
    std::vector<json::object> out;
    for (const auto& line : receiver_process.lines()) {
      boost::system::error_code ec;
      auto v = json::parse(line, ec);
      if (!ec && v.is_object() && is_event(v.as_object(), "request")) out.push_back(v.as_object());
    }
    return out;
  };
  ASSERT_TRUE(eventually([&] { return requests().size() >= sent.size(); }, 30s))
      << receiver_process.output() << receiver_process.output(true);

  std::set<std::string> ids;
  for (const auto& got : requests()) {
    EXPECT_TRUE(got.at("verified").as_bool()) << json::serialize(got);
    EXPECT_EQ(got.at("path").as_string(), "/hooks");
    ASSERT_TRUE(got.at("type").is_string()) << json::serialize(got);
    const std::string type(got.at("type").as_string());
    ASSERT_TRUE(sent.contains(type)) << type;
    EXPECT_EQ(got.at("data"), sent.at(type)) << type;
    ids.insert(std::string(got.at("id").as_string()));
  }
  EXPECT_EQ(ids.size(), sent.size());

  // The receiver answered 204, so every delivery succeeded, under the id the receiver saw.
  ASSERT_TRUE(eventually([&] {
    auto r = stack.get(delivery_stack::deliveries_path(org, proj, hook_id) +
                       "?status=succeeded&limit=100");
    return r.status == 200 && r.json().at("data").as_array().size() == sent.size();
  }));
  const json::value listed =
      stack.get(delivery_stack::deliveries_path(org, proj, hook_id) + "?limit=100").json();
  for (const auto& d : listed.at("data").as_array()) {
    EXPECT_TRUE(ids.contains(std::string(d.at("_id").as_string())));
  }

  // The receiver does reject what it should: the same body with a signature by another secret.
  http_client direct({asio::ip::make_address("127.0.0.1"), static_cast<std::uint16_t>(port)});
  auto other = webhook_signer::create("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
  ASSERT_TRUE(other);
  const std::string body = R"({"type":"ping","timestamp":"2026-01-01T00:00:00.000Z","data":1})";
  const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count();
  auto forged = direct.request(bhttp::verb::post, "/forged", body,
                               {{"content-type", "application/json"},
                                {"webhook-id", "msg_forged"},
                                {"webhook-timestamp", std::to_string(now)},
                                {"webhook-signature", other->sign("msg_forged", now, body)}});
  EXPECT_EQ(forged.status, 401u);
  direct.close();

  receiver_process.signal(SIGTERM);
  EXPECT_EQ(receiver_process.wait_exit(), 0);
  std::error_code ignored;
  std::filesystem::remove_all(dir, ignored);
}

}  // namespace
}  // namespace hookd::test
