// Signing and payload filters end to end (docs/delivery.md, "Signing", "Rotating the secret",
// "Filtering by payload"), over real loopback receivers. Signatures are checked by code that is
// not hookd's: `v1` entries by the npm `standardwebhooks` library and `v1a` entries by Node's
// `crypto.verify`, both in tests/node/standardwebhooks-receiver.js. Needs `npm ci --prefix
// tests/node` (tools/test.sh runs it) and node; the tests that use them are skipped without.

#include "core/common/crypto.hpp"
#include "core/delivery/signing.hpp"
#include "support/delivery_fixture.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <optional>
#include <string>
#include <vector>

namespace hookd::test {
namespace {

const std::filesystem::path& node_dir() {
  static const std::filesystem::path dir = std::filesystem::path(HOOKD_SOURCE_DIR) / "tests/node";
  return dir;
}

// Why the Node receiver cannot run here, or nullopt when it can.
std::optional<std::string> node_missing() {
  if (!std::filesystem::exists(node_dir() / "node_modules/standardwebhooks/package.json")) {
    return "tests/node/node_modules is missing: run `npm ci --prefix tests/node` (tools/test.sh "
           "does)";
  }
  if (!find_node()) return "node is not on PATH; tools/setup.sh installs it";
  return std::nullopt;
}

#define SKIP_WITHOUT_NODE()                                    \
  do {                                                         \
    if (const auto why = node_missing()) GTEST_SKIP() << *why; \
  } while (false)

// tests/node/standardwebhooks-receiver.js as a child process: each request is checked with every
// key (`--secret whsec_…` or `--public-key whpk_…`, in order) and reported as a JSON line with
// one result per key.
class node_receiver {
 public:
  explicit node_receiver(const std::vector<std::string>& keys) {
    std::string pattern =
        (std::filesystem::temp_directory_path() / "hookd-signing-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    dir_ = pattern;
    std::vector<std::string> args{(node_dir() / "standardwebhooks-receiver.js").string()};
    args.insert(args.end(), keys.begin(), keys.end());
    args.insert(args.end(), {"--max-seconds", "120"});
    process_.emplace(*find_node(), std::move(args), dir_ / "receiver");
    auto listening = process_->wait_for_json(
        [](const json::object& o) {
          const auto* e = o.if_contains("event");
          return e != nullptr && e->is_string() && e->as_string() == "listening";
        },
        false, 30s);
    if (!listening) throw std::runtime_error("receiver did not start: " + process_->output(true));
    port_ = static_cast<std::uint16_t>(listening->at("port").as_int64());
  }
  ~node_receiver() {
    process_->signal(SIGTERM);
    (void)process_->wait_exit();
    process_.reset();
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }
  node_receiver(const node_receiver&) = delete;
  node_receiver& operator=(const node_receiver&) = delete;

  std::string url(const std::string& path = "/hooks") const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }
  std::uint16_t port() const { return port_; }

  std::vector<json::object> requests() const {
    std::vector<json::object> out;
    for (const auto& line : process_->lines()) {
      boost::system::error_code ec;
      auto v = json::parse(line, ec);
      const json::value* e = !ec && v.is_object() ? v.as_object().if_contains("event") : nullptr;
      if (e != nullptr && e->is_string() && e->as_string() == "request") {
        out.push_back(v.as_object());
      }
    }
    return out;
  }
  // The n-th request (0-based), waiting for it (bounded).
  json::object request(std::size_t n) const {
    const bool arrived = eventually([&] { return requests().size() > n; }, 30s);
    if (!arrived) {
      ADD_FAILURE() << "request " << n << " never arrived: " << process_->output()
                    << process_->output(true);
      return {};
    }
    return requests()[n];
  }
  std::string output() const { return process_->output() + process_->output(true); }

 private:
  std::filesystem::path dir_;
  std::optional<child_process> process_;
  std::uint16_t port_ = 0;
};

json::array results(const json::object& request) {
  const auto* r = request.if_contains("results");
  return r != nullptr && r->is_array() ? r->as_array() : json::array{};
}

std::size_t entries(const json::object& request) {
  const std::string header(request.at("signature").as_string());
  return static_cast<std::size_t>(std::count(header.begin(), header.end(), ' ')) + 1;
}

// A webhook made inactive with a placeholder URL: a receiver needs its secret before it listens.
json::object placeholder_webhook(delivery_stack& stack, const std::string& org,
                                 const std::string& proj, json::object extra = {}) {
  json::object body{{"name", "Signed"},
                    {"url", "http://127.0.0.1:9/placeholder"},
                    {"active", false},
                    {"events", json::array{"order.*"}}};
  for (auto& member : extra) body[member.key()] = member.value();
  return stack.create_webhook(org, proj, body);
}

void point_at(delivery_stack& stack, const std::string& org, const std::string& proj,
              const std::string& hook, const std::string& url) {
  auto r =
      stack.patch(test_server::webhook_path(org, proj, hook), {{"url", url}, {"active", true}});
  ASSERT_EQ(r.status, 200u) << r.body;
}

void send(delivery_stack& stack, const std::string& org, const std::string& proj,
          const std::string& type, json::value data = json::object{{"n", 1}},
          std::int64_t deliveries = 1) {
  auto r = stack.ingest(org, proj, {{"type", type}, {"data", std::move(data)}});
  ASSERT_EQ(r.status, 202u) << r.body;
  EXPECT_EQ(r.json().at("deliveries").as_int64(), deliveries) << type;
}

std::string str(const json::value& v, std::string_view key) {
  return std::string(v.at(key).as_string());
}

std::string fresh_v1_secret() {
  return "whsec_" + base64_encode(random_bytes(32));
}

// ---------------------------------------------------------------- rotation

TEST(SigningE2e, RotationSignsWithBothSecretsDuringTheGraceThenOnlyWithTheNewOne) {
  SKIP_WITHOUT_NODE();
  delivery_stack_options options;
  options.secret_grace = 3s;  // --secret-grace
  delivery_stack stack(options);
  const auto org = stack.create_organization("Rotate");
  const auto proj = stack.create_project(org, "rotate");
  const auto hook = placeholder_webhook(stack, org, proj);
  const std::string id = str(hook, "_id");
  const std::string old_secret = str(hook, "secret");
  const std::string new_secret = fresh_v1_secret();  // chosen, so the receiver knows it already
  const std::string path = test_server::webhook_path(org, proj, id);

  node_receiver rx({"--secret", old_secret, "--secret", new_secret});
  point_at(stack, org, proj, id, rx.url());

  send(stack, org, proj, "order.before");
  const auto before = rx.request(0);
  EXPECT_EQ(results(before), (json::array{true, false})) << json::serialize(before);
  EXPECT_EQ(entries(before), 1u);

  auto rotated = stack.post(path + "/secret/rotate", {{"secret", new_secret}});
  ASSERT_EQ(rotated.status, 200u) << rotated.body;
  const auto rotated_at = std::chrono::steady_clock::now();
  EXPECT_EQ(rotated.json(), (json::object{{"secret", new_secret}}));
  EXPECT_EQ(stack.get(path + "/secret").json(), (json::object{{"secret", new_secret}}));

  // Within the grace: both secrets sign, each verifies with the npm library on its own.
  send(stack, org, proj, "order.during");
  const auto during = rx.request(1);
  EXPECT_EQ(results(during), (json::array{true, true})) << json::serialize(during);
  EXPECT_EQ(entries(during), 2u);

  // After it: only the new one.
  std::this_thread::sleep_until(rotated_at + options.secret_grace + 500ms);
  send(stack, org, proj, "order.after");
  const auto after = rx.request(2);
  EXPECT_EQ(results(after), (json::array{false, true})) << json::serialize(after);
  EXPECT_EQ(entries(after), 1u);

  // Without a body, or with {}, hookd makes the new secret.
  auto generated = stack.call(bhttp::verb::post, path + "/secret/rotate");
  ASSERT_EQ(generated.status, 200u) << generated.body;
  const std::string made = generated.str("secret");
  EXPECT_TRUE(made.starts_with("whsec_")) << made;
  EXPECT_NE(made, new_secret);
  auto empty = stack.post(path + "/secret/rotate", json::object{});
  ASSERT_EQ(empty.status, 200u) << empty.body;
  EXPECT_NE(empty.str("secret"), made);
  EXPECT_EQ(stack.get(path + "/secret").str("secret"), empty.str("secret"));
}

// ---------------------------------------------------------------- v1a

TEST(SigningE2e, V1aDeliveriesVerifyWithThePublicKeyInNodeCrypto) {
  SKIP_WITHOUT_NODE();
  delivery_stack stack;
  const auto org = stack.create_organization("Ed25519");
  const auto proj = stack.create_project(org, "ed");
  const auto hook = placeholder_webhook(stack, org, proj, {{"signing", "v1a"}});
  const std::string id = str(hook, "_id");
  const std::string secret = str(hook, "secret");
  const std::string public_key = str(hook, "publicKey");
  EXPECT_EQ(str(hook, "signing"), "v1a");
  ASSERT_TRUE(secret.starts_with("whsk_")) << secret;
  ASSERT_TRUE(public_key.starts_with("whpk_")) << public_key;
  EXPECT_EQ(base64_decode(secret.substr(5)).value_or("").size(), 32u);
  EXPECT_EQ(base64_decode(public_key.substr(5)).value_or("").size(), 32u);
  const std::string path = test_server::webhook_path(org, proj, id);
  EXPECT_EQ(stack.get(path + "/secret").json(),
            (json::object{{"secret", secret}, {"publicKey", public_key}}));
  const json::value shown = stack.get(path).json();
  EXPECT_EQ(str(shown, "signing"), "v1a");
  EXPECT_FALSE(shown.as_object().contains("secret"));
  EXPECT_FALSE(shown.as_object().contains("publicKey"));

  node_receiver rx({"--public-key", public_key});
  point_at(stack, org, proj, id, rx.url());
  send(stack, org, proj, "order.created", {{"id", 1}, {"note", "Grüße, 東京 \" \\"}});
  send(stack, org, proj, "order.bulk", {{"blob", std::string(6000, 'x')}});
  for (std::size_t i = 0; i < 2; ++i) {
    const auto got = rx.request(i);
    EXPECT_EQ(results(got), (json::array{true})) << json::serialize(got);
    EXPECT_TRUE(str(got, "signature").starts_with("v1a,")) << json::serialize(got);
    EXPECT_EQ(entries(got), 1u);
  }

  // The receiver does refuse: the same content signed by another Ed25519 key.
  http_client direct({asio::ip::make_address("127.0.0.1"), rx.port()});
  const auto stranger =
      webhook_signer::create("whsk_" + base64_encode(ed25519_key::generate().seed())).value();
  const std::string body = R"({"type":"order.x","timestamp":"2026-01-01T00:00:00.000Z","data":1})";
  const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count();
  auto forged = direct.request(bhttp::verb::post, "/forged", body,
                               {{"content-type", "application/json"},
                                {"webhook-id", "msg_forged"},
                                {"webhook-timestamp", std::to_string(now)},
                                {"webhook-signature", stranger.sign("msg_forged", now, body)}});
  EXPECT_EQ(forged.status, 401u);
  direct.close();
}

TEST(SigningE2e, SwitchingToV1aAndRotatingSignWithEveryKeyInItsGrace) {
  SKIP_WITHOUT_NODE();
  delivery_stack stack;
  const auto org = stack.create_organization("Switch");
  const auto proj = stack.create_project(org, "switch");
  const auto hook = placeholder_webhook(stack, org, proj);
  const std::string id = str(hook, "_id");
  const std::string hmac = str(hook, "secret");
  const std::string path = test_server::webhook_path(org, proj, id);
  EXPECT_EQ(str(hook, "signing"), "v1");
  EXPECT_FALSE(hook.contains("publicKey"));

  auto switched = stack.patch(path, {{"signing", "v1a"}});
  ASSERT_EQ(switched.status, 200u) << switched.body;
  EXPECT_EQ(switched.str("signing"), "v1a");
  const json::value keys = stack.get(path + "/secret").json();
  const std::string first_key = str(keys, "publicKey");
  EXPECT_TRUE(str(keys, "secret").starts_with("whsk_"));

  {
    node_receiver rx({"--secret", hmac, "--public-key", first_key});
    point_at(stack, org, proj, id, rx.url());
    send(stack, org, proj, "order.switched");
    const auto got = rx.request(0);
    EXPECT_EQ(results(got), (json::array{true, true})) << json::serialize(got);
    EXPECT_TRUE(str(got, "signature").starts_with("v1a,"));  // the new scheme first
    EXPECT_EQ(entries(got), 2u);
  }

  auto rotated = stack.post(path + "/secret/rotate", json::object{});
  ASSERT_EQ(rotated.status, 200u) << rotated.body;
  const std::string second_key = rotated.str("publicKey");
  EXPECT_TRUE(rotated.str("secret").starts_with("whsk_"));
  EXPECT_NE(second_key, first_key);
  EXPECT_EQ(stack.get(path + "/secret").json(), rotated.json());

  node_receiver rx({"--secret", hmac, "--public-key", first_key, "--public-key", second_key});
  point_at(stack, org, proj, id, rx.url());
  send(stack, org, proj, "order.rotated");
  const auto got = rx.request(0);
  EXPECT_EQ(results(got), (json::array{true, true, true})) << json::serialize(got);
  EXPECT_EQ(entries(got), 3u);
}

// ---------------------------------------------------------------- restart and sealing

TEST(SigningE2e, ARestartKeepsThePreviousSecretsAndTheV1aKeysWhichTheDataDirDoesNotShow) {
  SKIP_WITHOUT_NODE();
  delivery_stack stack;
  const auto org = stack.create_organization("Restart");
  const auto proj = stack.create_project(org, "restart");
  const auto a = placeholder_webhook(stack, org, proj);
  const auto b = placeholder_webhook(stack, org, proj, {{"signing", "v1a"}});
  const std::string a_path = test_server::webhook_path(org, proj, str(a, "_id"));
  const std::string b_path = test_server::webhook_path(org, proj, str(b, "_id"));
  auto a_rotated = stack.post(a_path + "/secret/rotate", json::object{});
  auto b_rotated = stack.post(b_path + "/secret/rotate", json::object{});
  ASSERT_EQ(a_rotated.status, 200u) << a_rotated.body;
  ASSERT_EQ(b_rotated.status, 200u) << b_rotated.body;
  const std::vector<std::string> secrets{str(a, "secret"), a_rotated.str("secret"),
                                         str(b, "secret"), b_rotated.str("secret")};

  stack.restart();
  EXPECT_EQ(stack.get(a_path + "/secret").json(), a_rotated.json());
  EXPECT_EQ(stack.get(b_path + "/secret").json(), b_rotated.json());

  // Both old secrets still sign next to the new ones after the restart.
  node_receiver rx({"--secret", secrets[0], "--secret", secrets[1], "--public-key",
                    str(b, "publicKey"), "--public-key", b_rotated.str("publicKey")});
  point_at(stack, org, proj, str(a, "_id"), rx.url("/a"));
  point_at(stack, org, proj, str(b, "_id"), rx.url("/b"));
  send(stack, org, proj, "order.after-restart", json::object{{"n", 1}}, 2);
  ASSERT_TRUE(eventually([&] { return rx.requests().size() >= 2; })) << rx.output();
  for (const auto& got : rx.requests()) {
    const json::array expected = got.at("path").as_string() == "/a"
                                     ? json::array{true, true, false, false}
                                     : json::array{false, false, true, true};
    EXPECT_EQ(results(got), expected) << json::serialize(got);
  }

  // On disk neither the secrets nor the Ed25519 seeds, nor their random parts, are readable.
  stack.restart();
  // With the catalog in PostgreSQL the data dir holds none of it: the sealing of its columns is
  // checked in tests/storage/postgres (the first restart above checked that the secrets survive).
  if (test_server::on_postgresql()) return;
  const auto files = read_all_files(stack.data_dir());
  bool names_found = false;
  for (const auto& [file, content] : files) {
    names_found = names_found || content.find("Signed") != std::string::npos;
    for (const std::string& s : secrets) {
      const std::string random_part = s.substr(s.find('_') + 1);
      EXPECT_EQ(content.find(random_part), std::string::npos) << file << " holds " << s;
      const std::string raw = base64_decode(random_part).value_or("");
      ASSERT_GE(raw.size(), 24u);
      EXPECT_EQ(content.find(raw), std::string::npos) << file << " holds the bytes of " << s;
    }
  }
  EXPECT_TRUE(names_found) << "the scan found not even the webhook name; is it reading the db?";
}

// ---------------------------------------------------------------- filters

TEST(SigningE2e, AFilterLetsOnlyMatchingEventsThrough) {
  delivery_stack stack;
  receiver rx;
  const auto org = stack.create_organization("Filter");
  const auto proj = stack.create_project(org, "filter");
  const json::object filter{{"data.country", "TR"}, {"data.total", 10}};
  const auto filtered = stack.create_webhook(org, proj,
                                             {{"name", "Turkey, 10"},
                                              {"url", rx.url("/filtered")},
                                              {"events", json::array{"order.*"}},
                                              {"filter", filter}});
  const auto all = stack.create_webhook(
      org, proj,
      {{"name", "Everything"}, {"url", rx.url("/all")}, {"events", json::array{"order.*"}}});
  EXPECT_EQ(filtered.at("filter"), json::value(filter));
  EXPECT_TRUE(all.at("filter").is_null());
  const std::string filtered_id = str(filtered, "_id");
  const std::string all_id = str(all, "_id");

  struct sample {
    json::value data;
    bool passes;
  };
  const std::vector<sample> samples = {
      {json::parse(R"({"country":"TR","total":10})"), true},
      {json::parse(R"({"country":"TR","total":10.0})"), true},
      {json::parse(R"({"country":"TR","total":1e1,"extra":[1]})"), true},
      {json::parse(R"({"country":"DE","total":10})"), false},
      {json::parse(R"({"country":"TR"})"), false},
      {json::parse(R"({"country":"TR","total":"10"})"), false},
      {nullptr, false},
  };
  std::vector<std::string> refused_events;
  for (const auto& s : samples) {
    auto r = stack.ingest(org, proj, {{"type", "order.created"}, {"data", s.data}});
    ASSERT_EQ(r.status, 202u) << r.body;
    EXPECT_EQ(r.json().at("deliveries").as_int64(), s.passes ? 2 : 1) << json::serialize(s.data);
    if (!s.passes) refused_events.push_back(r.str("_id"));
  }
  ASSERT_TRUE(rx.wait_for("/all", samples.size()));
  ASSERT_TRUE(rx.wait_for("/filtered", 3));
  // Every delivery of the filtered webhook is listed, and its receiver got just those.
  ASSERT_TRUE(eventually([&] {
    auto r = stack.get(delivery_stack::deliveries_path(org, proj, filtered_id) + "?limit=100");
    return r.status == 200 && r.json().at("data").as_array().size() == 3 &&
           stack.get(delivery_stack::deliveries_path(org, proj, all_id) + "?status=succeeded")
                   .json()
                   .at("data")
                   .as_array()
                   .size() == samples.size();
  }));
  EXPECT_EQ(rx.count("/filtered"), 3u);
  for (const auto& got : rx.requests("/filtered")) {
    const json::value body = json::parse(got.body);
    EXPECT_EQ(body.at("data").at("country").as_string(), "TR") << got.body;
  }
  // An event the filter kept out lists no delivery of that webhook.
  for (const std::string& event : refused_events) {
    const json::value e = stack.get(delivery_stack::event_path(org, proj, event)).json();
    const json::array& deliveries = e.at("deliveries").as_array();
    ASSERT_EQ(deliveries.size(), 1u) << json::serialize(e);
    EXPECT_EQ(str(deliveries[0], "webhook"), all_id);
  }

  // PATCH replaces the filter: the event type and an array element.
  const std::string path = test_server::webhook_path(org, proj, filtered_id);
  auto patched =
      stack.patch(path, {{"filter", {{"type", "order.paid"}, {"data.items.0.sku", "A1"}}}});
  ASSERT_EQ(patched.status, 200u) << patched.body;
  send(stack, org, proj, "order.paid", json::parse(R"({"items":[{"sku":"A1"},{"sku":"B2"}]})"), 2);
  send(stack, org, proj, "order.created", json::parse(R"({"items":[{"sku":"A1"}]})"), 1);
  send(stack, org, proj, "order.paid", json::parse(R"({"items":[{"sku":"B2"}]})"), 1);
  ASSERT_TRUE(rx.wait_for("/filtered", 4));

  // null removes it: everything its events match goes through again.
  auto cleared = stack.patch(path, {{"filter", nullptr}});
  ASSERT_EQ(cleared.status, 200u) << cleared.body;
  EXPECT_TRUE(cleared.json().at("filter").is_null());
  send(stack, org, proj, "order.created", json::parse(R"({"country":"DE"})"), 2);
  ASSERT_TRUE(rx.wait_for("/filtered", 5));
  ASSERT_TRUE(rx.wait_for("/all", samples.size() + 4));
  EXPECT_EQ(rx.count("/filtered"), 5u);
}

// ---------------------------------------------------------------- validation

// The fields a 400 problem names; a failed test unless it is one.
std::vector<std::string> problem_fields(const http_reply& r) {
  EXPECT_EQ(r.status, 400u) << r.body;
  EXPECT_EQ(r.header("Content-Type"), "application/problem+json") << r.body;
  std::vector<std::string> fields;
  const json::value v = r.json();
  if (!v.is_object() || !v.as_object().contains("errors")) return fields;
  for (const auto& e : v.at("errors").as_array()) fields.push_back(str(e, "field"));
  return fields;
}

TEST(SigningE2e, BadSigningFilterAndRotationInputsAre400sNamingTheField) {
  delivery_stack stack;
  const auto org = stack.create_organization("Bad");
  const auto proj = stack.create_project(org, "bad");
  const auto hook = stack.create_webhook(org, proj, test_server::webhook_body("Fine"));
  const std::string path = test_server::webhook_path(org, proj, str(hook, "_id"));
  const std::string hooks = test_server::webhooks_path(org, proj);

  using fields = std::vector<std::string>;
  json::object too_many;
  for (int i = 0; i < 11; ++i) too_many["data.k" + std::to_string(i)] = i;
  const std::string long_path = "data." + std::string(252, 'p');  // 257 characters
  json::object too_long;
  too_long[long_path] = 1;
  json::object too_big;
  too_big["data.x"] = json::string(std::string(1100, 'v'));
  const std::vector<std::pair<json::value, fields>> cases = {
      {{{"signing", "v2"}}, {"signing"}},
      {{{"signing", nullptr}}, {"signing"}},
      {{{"filter", "data.country"}}, {"filter"}},
      {{{"filter", too_many}}, {"filter"}},
      {{{"filter", {{"data..x", 1}}}}, {"filter.data..x"}},
      {{{"filter", {{"timestamp", 1}}}}, {"filter.timestamp"}},
      {{{"filter", {{"country", "TR"}}}}, {"filter.country"}},
      {{{"filter", too_long}}, {"filter." + long_path}},
      {{{"filter", too_big}}, {"filter.data.x"}},
  };
  for (const auto& [change, expected] : cases) {
    json::object create = test_server::webhook_body("Bad");
    for (const auto& member : change.as_object()) create[member.key()] = member.value();
    EXPECT_EQ(problem_fields(stack.post(hooks, create)), expected) << json::serialize(change);
    EXPECT_EQ(problem_fields(stack.patch(path, change)), expected) << json::serialize(change);
  }

  const std::string rotate = path + "/secret/rotate";
  const std::string v1a_seed = "whsk_" + base64_encode(std::string(32, 's'));
  EXPECT_EQ(problem_fields(stack.post(rotate, {{"secret", 1}})), fields{"secret"});
  EXPECT_EQ(problem_fields(stack.post(rotate, {{"secret", "whsec_short"}})), fields{"secret"});
  EXPECT_EQ(problem_fields(stack.post(rotate, {{"secret", v1a_seed}})), fields{"secret"});
  EXPECT_EQ(problem_fields(stack.post(rotate, {{"grace", "1h"}})), fields{"grace"});
  EXPECT_EQ(problem_fields(stack.call(bhttp::verb::post, rotate, std::string("[]"))),
            fields{"body"});
  EXPECT_EQ(stack.get(path + "/secret").str("secret"), str(hook, "secret"));  // all refused

  // A v1 secret for a v1a webhook is refused likewise.
  const auto ed = stack.create_webhook(org, proj, [] {
    auto b = test_server::webhook_body("Ed");
    b["signing"] = "v1a";
    return b;
  }());
  const std::string ed_rotate =
      test_server::webhook_path(org, proj, str(ed, "_id")) + "/secret/rotate";
  EXPECT_EQ(problem_fields(stack.post(ed_rotate, {{"secret", fresh_v1_secret()}})),
            fields{"secret"});
  auto chosen = stack.post(ed_rotate, {{"secret", v1a_seed}});
  ASSERT_EQ(chosen.status, 200u) << chosen.body;
  EXPECT_EQ(chosen.str("secret"), v1a_seed);
  EXPECT_EQ(chosen.str("publicKey"), signing_public_key(v1a_seed).value());

  // Rotation takes webhooks:write; an unknown webhook is a 404.
  auto reader = stack.create_token({org}, {"webhooks:read"});
  EXPECT_EQ(stack.post(rotate, json::object{}, reader.secret).status, 403u);
  EXPECT_EQ(
      stack
          .post(test_server::webhook_path(org, proj, "65a0f1c2aabbccddee000001") + "/secret/rotate",
                json::object{})
          .status,
      404u);
}

}  // namespace
}  // namespace hookd::test
