// Online backup of the real hookd under load (docs/operations.md, "Backup and restore"): writers
// create webhooks over keep-alive connections without pause while POST /api/v1/backups runs;
// hookd started on the copy has every webhook acknowledged before the backup request was sent,
// with its secret (the master key came along), and the admin token of its admin-token file works.

#include "support/hookd_process.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <thread>

namespace hookd::test {
namespace {

namespace fs = std::filesystem;

std::string read_text(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

class BackupUnderLoadTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "hookd-backup-load-XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  fs::path dir_;
};

// What the writers were told, in the order they were told it.
struct acknowledged_ids {
  std::mutex mutex;
  std::vector<std::string> ids;
  std::atomic<std::size_t> failures{0};

  void add(std::string id) {
    std::lock_guard lock(mutex);
    ids.push_back(std::move(id));
  }
  std::vector<std::string> snapshot() {
    std::lock_guard lock(mutex);
    return ids;
  }
};

void writer(asio::ip::tcp::endpoint at, std::string token, std::string path, int number,
            acknowledged_ids& acked, const std::atomic<bool>& stop) {
  http_client client(at);  // one keep-alive connection for the whole run
  const header_list headers{{"Authorization", "Bearer " + token},
                            {"Content-Type", "application/json"}};
  for (int i = 0; !stop.load(); ++i) {
    const std::string name = "w" + std::to_string(number) + "-" + std::to_string(i);
    const json::object body{{"name", name},
                            {"url", "https://example.com/" + name},
                            {"events", json::array{"backup.test"}}};
    auto r = client.try_request(bhttp::verb::post, path, json::serialize(body), headers);
    if (!r || r->status != 201) {
      acked.failures.fetch_add(1);
      continue;
    }
    acked.add(r->str("_id"));
  }
}

TEST_F(BackupUnderLoadTest, HookdStartsFromTheCopyWithEveryWriteAcknowledgedBeforeIt) {
  const std::vector<std::string> options{"--max-webhooks-per-project", "1000000"};
  // HOOKD_ADMIN_TOKEN empty: hookd generates the admin token into <data-dir>/admin-token.
  hookd_process original(dir_ / "data", dir_ / "original", options, {"HOOKD_ADMIN_TOKEN="});
  const std::string token = read_text(dir_ / "data" / "admin-token");
  ASSERT_GE(token.size(), 32u);
  const header_list admin{{"Authorization", "Bearer " + token},
                          {"Content-Type", "application/json"}};

  http_client client(original.endpoint());
  auto r = client.request(bhttp::verb::post, "/api/v1/organizations",
                          json::serialize(json::object{{"name", "Backed up"}}), admin);
  ASSERT_EQ(r.status, 201u) << r.body;
  const std::string org = r.str("_id");
  r = client.request(bhttp::verb::post, test_server::projects_path(org),
                     json::serialize(json::object{{"name", "Load"}, {"slug", "load"}}), admin);
  ASSERT_EQ(r.status, 201u) << r.body;
  const std::string proj = r.str("_id");
  const std::string hooks = test_server::webhooks_path(org, proj);

  acknowledged_ids acked;
  std::atomic<bool> stop{false};
  std::vector<std::thread> writers;
  for (int n = 0; n < 4; ++n) {
    writers.emplace_back(writer, original.endpoint(), token, hooks, n, std::ref(acked),
                         std::cref(stop));
  }
  ASSERT_TRUE(eventually([&] { return acked.snapshot().size() >= 300; }, 60s));
  // Every id in `before` was answered with a 201 before the backup request left.
  const std::vector<std::string> before = acked.snapshot();
  const fs::path copy = dir_ / "copy";
  r = client.request(bhttp::verb::post, "/api/v1/backups",
                     json::serialize(json::object{{"directory", copy.string()}}), admin);
  const std::size_t during = acked.snapshot().size() - before.size();
  // The writers go on a little after it, then stop.
  const std::size_t target = acked.snapshot().size() + 100;
  EXPECT_TRUE(eventually([&] { return acked.snapshot().size() >= target; }, 60s));
  stop = true;
  for (auto& t : writers) t.join();
  ASSERT_EQ(r.status, 201u) << r.body;
  const json::value report = r.json();
  EXPECT_EQ(report.at("directory"), json::value(copy.string()));
  EXPECT_TRUE(report.at("adminTokenFile").as_bool());
  EXPECT_EQ(report.at("masterKey"), "file");
  EXPECT_EQ(acked.failures.load(), 0u) << "writes failed while the backup ran";
  client.close();
  const std::size_t total = acked.snapshot().size();
  EXPECT_EQ(original.stop(), std::optional<int>(0)) << original.child().output(true);

  // hookd on the copy, as its own data dir; no HOOKD_ADMIN_TOKEN: the copied token is the one.
  EXPECT_EQ(read_text(copy / "admin-token"), token);
  hookd_process restored(copy, dir_ / "restored", options, {"HOOKD_ADMIN_TOKEN="});
  http_client on_copy(restored.endpoint());
  r = on_copy.request(bhttp::verb::get, hooks, std::nullopt, admin);
  ASSERT_EQ(r.status, 200u) << r.body;
  std::set<std::string> present;
  const json::value listing = r.json();  // the loop must not range over a temporary's array
  for (const auto& w : listing.as_array()) present.insert(std::string(w.at("_id").as_string()));
  std::size_t missing = 0;
  for (const auto& id : before) {
    if (!present.contains(id)) ++missing;
  }
  EXPECT_EQ(missing, 0u) << "of " << before.size() << " acknowledged before the backup";
  // Nothing the writers did not create, and not everything they created after it began.
  EXPECT_LE(present.size(), total);
  // A secret sealed under the master key opens on the copy.
  r = on_copy.request(bhttp::verb::get,
                      test_server::webhook_path(org, proj, before.front()) + "/secret",
                      std::nullopt, admin);
  ASSERT_EQ(r.status, 200u) << r.body;
  EXPECT_EQ(r.str("secret").rfind("whsec_", 0), 0u) << r.body;
  std::printf(
      "backup under load: %zu webhooks acknowledged before the request, %zu while it ran, "
      "%zu in the copy, %zu in all; the backup took %lld ms\n",
      before.size(), during, present.size(), total,
      static_cast<long long>(report.at("durationMs").as_int64()));
  on_copy.close();
  EXPECT_EQ(restored.stop(), std::optional<int>(0)) << restored.child().output(true);
}

}  // namespace
}  // namespace hookd::test
