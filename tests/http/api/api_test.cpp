// The API as a whole (docs/openapi.yaml): the problem format and request ids, the OpenAPI document,
// persistence across a restart, and what reaches the disk.

#include "support/test_server.hpp"

#include <gtest/gtest.h>

#include <fstream>
#include <set>
#include <thread>

namespace hookd::test {
namespace {

using bhttp::verb;

TEST(api_test, errors_are_problem_json_with_the_request_id) {
  test_server srv;
  // One of each kind the API answers with, each through a different path of the code.
  auto org = srv.create_organization("Acme");
  const std::vector<std::pair<http_reply, unsigned>> replies = {
      {srv.get("/api/v1/organizations", ""), 401},
      {srv.get("/api/v1/organizations/xyz"), 400},
      {srv.get("/api/v1/organizations/0123456789abcdef01234567"), 404},
      {srv.get("/api/v1/no-such-route"), 404},
      {srv.post("/api/v1/organizations", {{"name", 1}}), 400},
      {srv.call(verb::post, "/api/v1/organizations", "{oops"), 400},
      {srv.call(verb::put, "/api/v1/organizations"), 405},
  };
  for (const auto& [reply, status] : replies) expect_problem(reply, status);
}

TEST(api_test, an_incoming_request_id_is_echoed_in_header_and_problem) {
  test_server srv;
  const std::string rid = "req-0123456789-abcdef";
  auto r = srv.client().request(
      verb::get, "/api/v1/organizations/0123456789abcdef01234567", std::nullopt,
      {{"Authorization", "Bearer " + std::string(test_server::kAdminToken)},
       {"X-Request-Id", rid}});
  expect_problem(r, 404);
  EXPECT_EQ(r.header("X-Request-Id"), rid);
  EXPECT_EQ(r.str("requestId"), rid);

  // Successful responses carry one too.
  auto ok = srv.get("/api/v1/organizations");
  EXPECT_EQ(ok.status, 200u);
  EXPECT_FALSE(ok.header("X-Request-Id").empty());
}

TEST(api_test, one_keep_alive_connection_serves_many_requests) {
  test_server srv;
  auto org = srv.create_organization("Acme");
  for (int i = 0; i < 20; ++i) {
    EXPECT_EQ(srv.get(test_server::org_path(org)).status, 200u);
    ASSERT_TRUE(srv.client().connected()) << "the server closed a keep-alive connection";
  }
}

// Many clients writing at once: every write is answered on its own connection, after the
// catalog's writer thread committed it, and each is acknowledged exactly once.
TEST(api_test, concurrent_writes_from_many_connections_all_land) {
  test_server srv;
  constexpr int kClients = 6;
  constexpr int kPerClient = 10;
  std::vector<std::vector<std::string>> ids(kClients);
  std::vector<std::thread> threads;
  for (int c = 0; c < kClients; ++c) {
    threads.emplace_back([&srv, &ids, c] {
      http_client client(asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), srv.port()));
      for (int i = 0; i < kPerClient; ++i) {
        auto r = client.request(
            verb::post, "/api/v1/organizations",
            json::serialize(
                json::object{{"name", "Org " + std::to_string(c) + "-" + std::to_string(i)}}),
            {{"Authorization", "Bearer " + std::string(test_server::kAdminToken)},
             {"Content-Type", "application/json"}});
        EXPECT_EQ(r.status, 201u) << r.body;
        ids[static_cast<std::size_t>(c)].push_back(r.str("_id"));
      }
    });
  }
  for (auto& t : threads) t.join();

  std::set<std::string> unique;
  for (const auto& per_client : ids) unique.insert(per_client.begin(), per_client.end());
  EXPECT_EQ(unique.size(), static_cast<std::size_t>(kClients * kPerClient));
  auto list = srv.get("/api/v1/organizations").json();
  ASSERT_TRUE(list.is_array());
  std::set<std::string> listed;
  for (const auto& o : list.as_array()) listed.emplace(o.at("_id").as_string());
  EXPECT_EQ(listed, unique);
}

TEST(api_test, openapi_document_is_served) {
  test_server srv;
  auto r = srv.get("/api/v1/openapi.yaml", "");
  ASSERT_EQ(r.status, 200u) << r.body;
  EXPECT_NE(r.header("Content-Type").find("yaml"), std::string::npos) << r.header("Content-Type");

  std::ifstream file(std::string(HOOKD_SOURCE_DIR) + "/docs/openapi.yaml", std::ios::binary);
  ASSERT_TRUE(file) << "docs/openapi.yaml is missing";
  const std::string expected{std::istreambuf_iterator<char>(file), {}};
  // Compared as a boolean: a failure should not print two copies of the whole document.
  EXPECT_TRUE(r.body == expected) << "the served document (" << r.body.size()
                                  << " bytes) differs from docs/openapi.yaml (" << expected.size()
                                  << " bytes)";
  EXPECT_TRUE(r.body.rfind("openapi: 3", 0) == 0 ||
              r.body.find("\nopenapi: 3") != std::string::npos);
}

TEST(api_test, everything_survives_a_restart) {
  test_server srv;
  auto org = srv.create_organization("Acme");
  auto proj = srv.create_project(org, "shop");
  json::object body = test_server::webhook_body("Orders");
  body["headers"] = {{"X-Team", "payments"}};
  auto hook = srv.create_webhook(org, proj, body);
  const std::string hook_id(hook.at("_id").as_string());
  const std::string secret(hook.at("secret").as_string());
  auto kept = srv.create_token({org}, {"webhooks:read", "webhooks:write"});
  auto revoked = srv.create_token({org}, {"webhooks:read"});
  ASSERT_EQ(srv.del("/api/v1/tokens/" + revoked.id).status, 204u);

  const auto org_before = srv.get(test_server::org_path(org)).json();
  const auto proj_before = srv.get(test_server::projects_path(org) + "/" + proj).json();
  const auto hooks_before = srv.get(test_server::webhooks_path(org, proj)).json();
  const auto tokens_before = srv.get("/api/v1/tokens").json();

  srv.restart();

  // The admin token is still valid, and everything reads back the same.
  EXPECT_EQ(srv.get(test_server::org_path(org)).json(), org_before);
  EXPECT_EQ(srv.get(test_server::projects_path(org) + "/" + proj).json(), proj_before);
  EXPECT_EQ(srv.get(test_server::webhooks_path(org, proj)).json(), hooks_before);
  EXPECT_EQ(srv.get("/api/v1/tokens").json(), tokens_before);
  auto secret_after =
      srv.get(test_server::webhook_path(org, proj, hook_id) + "/secret", kept.secret);
  ASSERT_EQ(secret_after.status, 200u) << secret_after.body;
  EXPECT_EQ(secret_after.str("secret"), secret);
  expect_problem(srv.get(test_server::webhooks_path(org, proj), revoked.secret), 401);

  // The slug index and the webhook limit were rebuilt too.
  expect_problem(srv.post(test_server::projects_path(org), {{"name", "Shop"}, {"slug", "shop"}}),
                 409);
  srv.create_webhook(org, proj, test_server::webhook_body("Two"));
  srv.create_webhook(org, proj, test_server::webhook_body("Three"));
  expect_problem(srv.post(test_server::webhooks_path(org, proj), test_server::webhook_body("Four")),
                 409);

  // Changes after a restart persist through the next one.
  auto patched = srv.patch(test_server::webhook_path(org, proj, hook_id), {{"active", false}});
  ASSERT_EQ(patched.status, 200u) << patched.body;
  srv.restart();
  EXPECT_EQ(srv.get(test_server::webhook_path(org, proj, hook_id)).json(), patched.json());
}

TEST(api_test, the_data_dir_holds_no_secret_or_token_in_plain_text) {
  test_server srv;
  auto org = srv.create_organization("Acme");
  auto proj = srv.create_project(org, "shop");
  std::vector<std::string> secrets;
  for (int i = 0; i < 2; ++i) {
    auto hook =
        srv.create_webhook(org, proj, test_server::webhook_body("Hook " + std::to_string(i)));
    secrets.emplace_back(hook.at("secret").as_string());
  }
  // Custom header values carry receivers' credentials: sealed like the secrets.
  auto with_headers = test_server::webhook_body("With headers");
  with_headers["headers"] = json::object{{"Authorization", "Bearer rcv_Zq8sLk2Pw9xT4vB7"},
                                         {"X-Api-Key", "key_Hn3Mf6Rt1Yc5Ud8W"}};
  secrets.emplace_back(srv.create_webhook(org, proj, with_headers).at("secret").as_string());
  secrets.emplace_back("rcv_Zq8sLk2Pw9xT4vB7");
  secrets.emplace_back("key_Hn3Mf6Rt1Yc5Ud8W");
  auto token = srv.create_token({org}, {"webhooks:read", "webhooks:write"});
  secrets.push_back(token.secret);
  secrets.emplace_back(test_server::kAdminToken);
  // Patching rewrites the record; the rewrite must be sealed too. The new name is what the scan
  // below must find in plain text: letters no JSON key or id holds, since the table files are
  // LZ4-compressed and a name such as "Renamed" may be stored as "Re" + a back-reference to an
  // earlier `"name"` + "d".
  constexpr std::string_view kPlainName = "Rq7Kx2Vw";
  auto first = srv.get(test_server::webhooks_path(org, proj)).json().as_array().at(0);
  srv.patch(test_server::webhook_path(org, proj, std::string(first.at("_id").as_string())),
            {{"name", kPlainName}});

  // Stop (flush memtables, close the WAL) and check everything on disk, then again while running.
  srv.restart();
  auto files = read_all_files(srv.data_dir());
  ASSERT_FALSE(files.empty());
  std::size_t bytes = 0;
  for (const auto& [path, content] : files) {
    bytes += content.size();
    for (const auto& s : secrets) {
      // The secret string, and its random part without the prefix.
      const std::string random_part = s.substr(s.find('_') + 1);
      EXPECT_EQ(content.find(s), std::string::npos) << path << " contains " << s;
      EXPECT_EQ(content.find(random_part), std::string::npos) << path << " contains " << s;
    }
  }
  EXPECT_GT(bytes, 0u);
  // The scan does see what is stored in plain text, so a leak would have been found.
  bool names_found = false;
  for (const auto& [path, content] : files) {
    names_found = names_found || content.find(kPlainName) != std::string::npos;
  }
  EXPECT_TRUE(names_found) << "the scan found not even the webhook name; is it reading the db?";
}

}  // namespace
}  // namespace hookd::test
