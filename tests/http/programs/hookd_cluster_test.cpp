// Cluster mode with real processes (docs/cluster.md, "Running a node on PostgreSQL"): three hookd
// nodes on one private PostgreSQL (tests/support/pg_cluster.hpp). What one node writes is read on
// the others, a token revoked on one is refused by the others, a node started later loads what
// was written before it, and when PostgreSQL stops the nodes report not ready, refuse writes with
// a 503 problem, keep serving reads, and come back by themselves with nothing acknowledged lost.
//
// Propagation times are printed, not asserted: the bound below (5 s) only catches a node that
// never learns of a change.

#include "support/hookd_cluster_nodes.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace hookd::test {
namespace {

namespace fs = std::filesystem;
using hookd::testing::shared_pg_cluster;

constexpr std::string_view kAdmin = "hkd_cluster-test-admin-token-0123456789abcdef";
constexpr auto kBound = 5s;  // generous: the target is 100 ms

class HookdClusterTest : public hookd_cluster_nodes {
 protected:
  HookdClusterTest() : hookd_cluster_nodes("hookd-cluster", kAdmin) {}

  static http_reply call(hookd_process& node, bhttp::verb verb, const std::string& target,
                         std::optional<json::object> body = {}, std::string_view token = kAdmin) {
    http_client client(node.endpoint());
    header_list headers{{"Authorization", "Bearer " + std::string(token)}};
    if (body) headers.emplace_back("Content-Type", "application/json");
    return client.request(verb, target,
                          body ? std::optional<std::string>(json::serialize(*body)) : std::nullopt,
                          headers);
  }

  // Waits until `done` holds; the time it took, or nullopt after kBound.
  template <class Condition>
  static std::optional<std::chrono::microseconds> time_until(
      Condition done, std::chrono::milliseconds limit = kBound) {
    const auto start = std::chrono::steady_clock::now();
    while (!done()) {
      if (std::chrono::steady_clock::now() - start > limit) return std::nullopt;
      std::this_thread::sleep_for(1ms);
    }
    return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() -
                                                                 start);
  }

  static unsigned readyz(hookd_process& node) {
    http_client client(node.endpoint());
    auto r = client.try_request(bhttp::verb::get, "/readyz");
    return r ? r->status : 0;
  }
  static std::string readyz_body(hookd_process& node) {
    http_client client(node.endpoint());
    auto r = client.try_request(bhttp::verb::get, "/readyz");
    return r ? r->body : std::string();
  }

  static std::string webhook_path(const std::string& org, const std::string& project,
                                  const std::string& hook = {}) {
    return "/api/v1/organizations/" + org + "/projects/" + project + "/settings/webhooks" +
           (hook.empty() ? "" : "/" + hook);
  }

  static json::object webhook_body(const std::string& name) {
    return {{"name", name},
            {"url", "https://example.com/" + name},
            {"events", json::array{"order.created"}}};
  }
};

// Exit 2 and a line naming what to fix: no HOOKD_MASTER_KEY (each node would make its own, and
// none could open the others' secrets), or a --storage that is neither rocksdb nor a URI.
TEST_F(HookdClusterTest, ANodeWithoutTheSharedMasterKeyOrWithABadStorageIsRefused) {
  const std::string binary = std::string(HOOKD_BIN_DIR) + "/hookd";
  child_process no_key(
      binary,
      {"--listen", "127.0.0.1:0", "--data-dir", (dir_ / "nokey").string(), "--storage", uri_},
      dir_ / "nokey", {"HOOKD_ADMIN_TOKEN=" + std::string(kAdmin)});
  EXPECT_EQ(no_key.wait_exit(), 2);
  EXPECT_NE(no_key.output(true).find("HOOKD_MASTER_KEY"), std::string::npos) << no_key.output(true);
  EXPECT_EQ(shared_pg_cluster()->query_value(database(),
                                             "SELECT count(*) FROM pg_tables WHERE tablename = "
                                             "'webhooks'"),
            "0");  // refused before touching the database
  child_process bad(binary,
                    {"--listen", "127.0.0.1:0", "--data-dir", (dir_ / "bad").string(), "--storage",
                     "mysql://db/hookd"},
                    dir_ / "bad", {"HOOKD_MASTER_KEY=" + std::string(kMasterKey)});
  EXPECT_EQ(bad.wait_exit(), 2);
  EXPECT_NE(bad.output(true).find("--storage"), std::string::npos) << bad.output(true);
}

TEST_F(HookdClusterTest, WritesOnOneNodeAreReadOnTheOthersAndANewNodeLoadsThem) {
  auto& one = start_node();
  auto& two = start_node();
  auto& three = start_node();

  auto org = call(one, bhttp::verb::post, "/api/v1/organizations", json::object{{"name", "Acme"}});
  ASSERT_EQ(org.status, 201u) << org.body;
  const auto org_id = org.str("_id");
  auto project = call(one, bhttp::verb::post, "/api/v1/organizations/" + org_id + "/projects",
                      json::object{{"name", "Shop"}, {"slug", "shop"}});
  ASSERT_EQ(project.status, 201u) << project.body;
  const auto project_id = project.str("_id");
  auto hook =
      call(one, bhttp::verb::post, webhook_path(org_id, project_id), webhook_body("orders"));
  ASSERT_EQ(hook.status, 201u) << hook.body;
  const auto hook_id = hook.str("_id");
  const auto secret = hook.str("secret");

  for (auto* node : {&two, &three}) {
    const auto took = time_until([&] {
      return call(*node, bhttp::verb::get, webhook_path(org_id, project_id, hook_id)).status == 200;
    });
    ASSERT_TRUE(took) << "the webhook never reached another node";
    std::printf("webhook created on node 1, readable on another node after %.1f ms\n",
                static_cast<double>(took->count()) / 1000.0);
    auto read = call(*node, bhttp::verb::get, webhook_path(org_id, project_id, hook_id));
    EXPECT_EQ(read.str("name"), "orders");
    EXPECT_EQ(read.str("url"), "https://example.com/orders");
  }
  // The secret was sealed by node 1 and opens on node 2 (same master key).
  auto secret_read =
      call(two, bhttp::verb::get, webhook_path(org_id, project_id, hook_id) + "/secret");
  ASSERT_EQ(secret_read.status, 200u) << secret_read.body;
  EXPECT_EQ(secret_read.str("secret"), secret);

  // An update and a delete on node 2 reach nodes 1 and 3.
  auto patched = call(two, bhttp::verb::patch, webhook_path(org_id, project_id, hook_id),
                      json::object{{"name", "orders-v2"}});
  ASSERT_EQ(patched.status, 200u) << patched.body;
  for (auto* node : {&one, &three}) {
    EXPECT_TRUE(time_until([&] {
      return call(*node, bhttp::verb::get, webhook_path(org_id, project_id, hook_id)).str("name") ==
             "orders-v2";
    })) << "the update never reached another node";
  }
  auto second =
      call(three, bhttp::verb::post, webhook_path(org_id, project_id), webhook_body("refunds"));
  ASSERT_EQ(second.status, 201u) << second.body;
  ASSERT_EQ(call(three, bhttp::verb::delete_, webhook_path(org_id, project_id, hook_id)).status,
            204u);
  for (auto* node : {&one, &two}) {
    EXPECT_TRUE(time_until([&] {
      return call(*node, bhttp::verb::get, webhook_path(org_id, project_id, hook_id)).status == 404;
    })) << "the delete never reached another node";
  }

  // A node started after the writes loads them.
  auto& four = start_node();
  auto listed = call(four, bhttp::verb::get, webhook_path(org_id, project_id));
  ASSERT_EQ(listed.status, 200u) << listed.body;
  EXPECT_NE(listed.body.find(second.str("_id")), std::string::npos) << listed.body;
  EXPECT_EQ(listed.body.find(hook_id), std::string::npos) << listed.body;
  // The nodes made one admin token between them: the first one's; the others loaded it.
  auto tokens = call(four, bhttp::verb::get, "/api/v1/tokens");
  ASSERT_EQ(tokens.status, 200u) << tokens.body;
  EXPECT_EQ(shared_pg_cluster()->query_value(database(), "SELECT count(*) FROM tokens"), "1");
}

// Nodes started together on an empty database each load a catalog without an admin token; the
// first to take the bootstrap lock creates it, the others find it in the database ("existing").
// With HOOKD_ADMIN_TOKEN every node then accepts it; without, one node generates a token (its
// data dir's admin-token) and no other node makes a second one.
TEST_F(HookdClusterTest, NodesStartingTogetherOnAnEmptyDatabaseMakeOneAdminToken) {
  const auto start_together = [&](const std::string& uri, const std::string& name,
                                  const std::vector<std::string>& env) {
    std::vector<std::unique_ptr<hookd_process>> started(3);
    std::vector<std::string> failures(3);
    std::vector<std::thread> threads;
    for (std::size_t i = 0; i < started.size(); ++i) {
      threads.emplace_back([&, i] {
        const fs::path at = dir_ / (name + std::to_string(i + 1));
        try {
          started[i] = std::make_unique<hookd_process>(
              at, at, std::vector<std::string>{"--storage", uri}, env);
        } catch (const std::exception& e) {
          failures[i] = e.what();
        }
      });
    }
    for (auto& t : threads) t.join();
    for (const std::string& f : failures) EXPECT_EQ(f, "") << "every node starts";
    return started;
  };
  const auto sources = [](std::vector<std::unique_ptr<hookd_process>>& nodes) {
    std::multiset<std::string> out;
    for (auto& n : nodes) {
      if (!n) continue;
      auto line = n->child().wait_for_json(
          [](const json::object& o) {
            const auto* e = o.if_contains("event");
            return e && e->is_string() && e->as_string() == "admin_token";
          },
          true, 5s);
      out.insert(line ? std::string(line->at("source").as_string()) : "none");
    }
    return out;
  };
  const std::string master = "HOOKD_MASTER_KEY=" + std::string(kMasterKey);

  auto given = start_together(uri_, "given", {master, "HOOKD_ADMIN_TOKEN=" + std::string(kAdmin)});
  EXPECT_EQ(shared_pg_cluster()->query_value(database(), "SELECT count(*) FROM tokens"), "1");
  EXPECT_EQ(sources(given),
            (std::multiset<std::string>{"HOOKD_ADMIN_TOKEN", "existing", "existing"}));
  for (auto& n : given) {
    if (!n) continue;
    EXPECT_TRUE(time_until([&] {
      return call(*n, bhttp::verb::get, "/api/v1/tokens").status == 200;
    })) << "every node accepts the admin token";
  }

  const std::string generated_db = shared_pg_cluster()->create_database();
  auto generated = start_together(shared_pg_cluster()->uri(generated_db), "generated", {master});
  EXPECT_EQ(shared_pg_cluster()->query_value(generated_db, "SELECT count(*) FROM tokens"), "1");
  EXPECT_EQ(sources(generated), (std::multiset<std::string>{"generated", "existing", "existing"}));
  std::string token;
  int files = 0;
  for (int i = 1; i <= 3; ++i) {
    const fs::path file = dir_ / ("generated" + std::to_string(i)) / "admin-token";
    if (!fs::exists(file)) continue;
    ++files;
    std::ifstream in(file);
    std::getline(in, token);
  }
  EXPECT_EQ(files, 1) << "one node wrote the generated token";
  for (auto& n : generated) {
    if (!n || token.empty()) continue;
    EXPECT_TRUE(time_until([&] {
      return call(*n, bhttp::verb::get, "/api/v1/tokens", std::nullopt, token).status == 200;
    })) << "every node accepts the generated token";
  }
}

TEST_F(HookdClusterTest, ATokenRevokedOnOneNodeIsRefusedByTheOthers) {
  auto& one = start_node();
  auto& two = start_node();
  auto& three = start_node();

  auto org = call(one, bhttp::verb::post, "/api/v1/organizations", json::object{{"name", "Acme"}});
  ASSERT_EQ(org.status, 201u) << org.body;
  const auto org_id = org.str("_id");
  auto project = call(one, bhttp::verb::post, "/api/v1/organizations/" + org_id + "/projects",
                      json::object{{"name", "Shop"}, {"slug", "shop"}});
  ASSERT_EQ(project.status, 201u) << project.body;
  auto token = call(one, bhttp::verb::post, "/api/v1/tokens",
                    json::object{{"name", "ci"},
                                 {"organizations", json::array{json::value(org_id)}},
                                 {"scopes", json::array{"webhooks:read"}}});
  ASSERT_EQ(token.status, 201u) << token.body;
  const auto secret = token.str("token");
  const std::string hooks = webhook_path(org_id, project.str("_id"));
  for (auto* node : {&two, &three}) {
    EXPECT_TRUE(time_until([&] {
      return call(*node, bhttp::verb::get, hooks, {}, secret).status == 200;
    })) << "the new token never worked on another node";
  }

  ASSERT_EQ(call(one, bhttp::verb::delete_, "/api/v1/tokens/" + token.str("_id")).status, 204u);
  for (auto* node : {&two, &three}) {
    const auto took =
        time_until([&] { return call(*node, bhttp::verb::get, hooks, {}, secret).status == 401; });
    ASSERT_TRUE(took) << "a token revoked on node 1 still works on another node";
    std::printf("token revoked on node 1, refused (401) on another node after %.1f ms\n",
                static_cast<double>(took->count()) / 1000.0);
  }
}

// A change whose parent the node never heard of (here an organization written without its
// `changes` row, as a lost change would look) is refused by the index; the node then re-reads the
// whole catalog and serves both.
TEST_F(HookdClusterTest, AChangeWhoseParentTheNodeMissedMakesItReReadTheCatalog) {
  auto& node = start_node();
  const std::string db = database();
  const std::string org = "65a0c3e1f2a4b5c6d7e8f901", project = "65a0c3e1f2a4b5c6d7e8f902";
  shared_pg_cluster()->execute(
      db, "INSERT INTO organizations VALUES ('" + org + "', 'Missed', now(), now())");
  shared_pg_cluster()->execute(
      db,
      "BEGIN; INSERT INTO projects (id, organization_id, name, slug, status, created_at, "
      "updated_at) VALUES ('" +
          project + "', '" + org +
          "', 'Shop', 'shop', 'active', now(), now()); INSERT INTO changes (entity, id) "
          "VALUES ('project', '" +
          project + "'); NOTIFY hookd_changes; COMMIT");
  const auto took = time_until([&] {
    return call(node, bhttp::verb::get, "/api/v1/organizations/" + org + "/projects/" + project)
               .status == 200;
  });
  ASSERT_TRUE(took) << "the node did not re-read the catalog: " << node.child().output(true);
  EXPECT_EQ(call(node, bhttp::verb::get, "/api/v1/organizations/" + org).str("name"), "Missed");
  // The re-read is logged once it is done, which may be just after the read above answered.
  EXPECT_TRUE(time_until([&] {
    return node.child().output(true).find("cluster_catalog_reread") != std::string::npos;
  })) << node.child().output(true);
  EXPECT_EQ(readyz(node), 200u);
}

TEST_F(HookdClusterTest, PostgresqlStoppedAndRestartedUnderReads) {
  auto& one = start_node();
  auto& two = start_node();
  auto& three = start_node();
  for (auto* node : {&one, &two, &three}) ASSERT_EQ(readyz(*node), 200u);

  auto org = call(one, bhttp::verb::post, "/api/v1/organizations", json::object{{"name", "Acme"}});
  ASSERT_EQ(org.status, 201u) << org.body;
  const auto org_id = org.str("_id");
  auto project = call(one, bhttp::verb::post, "/api/v1/organizations/" + org_id + "/projects",
                      json::object{{"name", "Shop"}, {"slug", "shop"}});
  ASSERT_EQ(project.status, 201u) << project.body;
  const auto project_id = project.str("_id");
  std::vector<std::string> acknowledged;
  for (int i = 0; i < 5; ++i) {
    auto r = call(one, bhttp::verb::post, webhook_path(org_id, project_id),
                  webhook_body("before-" + std::to_string(i)));
    ASSERT_EQ(r.status, 201u) << r.body;
    acknowledged.push_back(r.str("_id"));
  }
  for (auto* node : {&two, &three}) {
    ASSERT_TRUE(time_until([&] {
      return call(*node, bhttp::verb::get, webhook_path(org_id, project_id, acknowledged.back()))
                 .status == 200;
    }));
  }

  shared_pg_cluster()->stop();
  for (auto* node : {&one, &two, &three}) {
    EXPECT_TRUE(time_until([&] { return readyz(*node) == 503; }, 10s))
        << "a node stayed ready with its PostgreSQL down";
    // The 503 says what is wrong, not that the node is starting.
    const auto body = readyz_body(*node);
    EXPECT_NE(body.find("storage unreachable"), std::string::npos) << body;
  }
  // Reads are served from memory; writes are refused, naming the cause, and not acknowledged.
  for (auto* node : {&one, &two, &three}) {
    EXPECT_EQ(
        call(*node, bhttp::verb::get, webhook_path(org_id, project_id, acknowledged[0])).status,
        200u);
  }
  auto refused =
      call(two, bhttp::verb::post, webhook_path(org_id, project_id), webhook_body("during-outage"));
  EXPECT_EQ(refused.status, 503u) << refused.body;
  EXPECT_EQ(refused.header("Content-Type"), "application/problem+json");
  EXPECT_NE(refused.str("type").find("storage-failure"), std::string::npos) << refused.body;

  shared_pg_cluster()->start();
  for (auto* node : {&one, &two, &three}) {
    const auto took = time_until([&] { return readyz(*node) == 200; }, 30s);
    ASSERT_TRUE(took) << "a node did not become ready again after PostgreSQL came back";
    std::printf("ready again %.0f ms after PostgreSQL restarted\n",
                static_cast<double>(took->count()) / 1000.0);
  }
  // Writes work again (the store reconnects by itself) and reach the others; everything
  // acknowledged before the outage is there on every node, the refused write nowhere.
  auto after =
      call(two, bhttp::verb::post, webhook_path(org_id, project_id), webhook_body("after"));
  ASSERT_EQ(after.status, 201u) << after.body;
  acknowledged.push_back(after.str("_id"));
  for (auto* node : {&one, &two, &three}) {
    EXPECT_TRUE(time_until([&] {
      return call(*node, bhttp::verb::get, webhook_path(org_id, project_id, acknowledged.back()))
                 .status == 200;
    }));
    auto listed = call(*node, bhttp::verb::get, webhook_path(org_id, project_id));
    for (const auto& id : acknowledged) {
      EXPECT_NE(listed.body.find(id), std::string::npos) << id << " missing: " << listed.body;
    }
    EXPECT_EQ(listed.body.find("during-outage"), std::string::npos) << listed.body;
  }
}

}  // namespace
}  // namespace hookd::test
