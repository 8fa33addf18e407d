// A full disk under the real hookd (docs/operations.md, "Storage faults"): hookd's data dir on a
// 64 MiB tmpfs, mounted in a private mount namespace, is filled with acknowledged creates until
// they fail. The 503 names no file, the log has the cause under the request id, /readyz and
// /metrics say degraded while reads go on; once space is freed, writes work again without a
// restart, and after one every acknowledged write is there.
//
// Needs CAP_SYS_ADMIN (unshare a mount namespace, mount tmpfs); skipped with the reason without.

#include "support/hookd_process.hpp"
#include "support/test_util.hpp"

#include <gtest/gtest.h>

#include <sched.h>
#include <sys/mount.h>

#include <cerrno>
#include <cstring>
#include <set>

namespace hookd::test {
namespace {

using hookd::testing::metric_value;

namespace fs = std::filesystem;

constexpr std::string_view kToken = "hkd_storage-fault-admin-token-0123456789abc";

// hookd's JSON log lines (stderr) with this `event`.
std::vector<json::object> log_events(child_process& hookd, std::string_view event) {
  std::vector<json::object> out;
  for (const auto& line : hookd.lines(true)) {
    boost::system::error_code ec;
    auto v = json::parse(line, ec);
    if (ec || !v.is_object()) continue;
    const auto* e = v.as_object().if_contains("event");
    if (e && e->is_string() && e->as_string() == event) out.push_back(v.as_object());
  }
  return out;
}

class StorageFaultTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "hookd-fault-XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
    mount_ = dir_ / "disk";
    fs::create_directory(mount_);
    // A mount namespace of this process alone (its children share it): the tmpfs is invisible
    // to the rest of the machine and goes away with the process, whatever happens to the test.
    if (::unshare(CLONE_NEWNS) != 0) {
      GTEST_SKIP() << "cannot unshare a mount namespace (" << std::strerror(errno)
                   << "): needs root or CAP_SYS_ADMIN; the full-disk test did not run";
    }
    if (::mount("none", "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0 ||
        ::mount("tmpfs", mount_.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, "size=64m,mode=0700") !=
            0) {
      GTEST_SKIP() << "cannot mount a 64 MiB tmpfs (" << std::strerror(errno)
                   << "); the full-disk test did not run";
    }
    mounted_ = true;
  }
  void TearDown() override {
    if (mounted_) ::umount2(mount_.c_str(), MNT_DETACH);
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  fs::path dir_, mount_;
  bool mounted_ = false;
};

TEST_F(StorageFaultTest, AFullDiskDegradesWritesOnlyAndTheyResumeWhenSpaceReturns) {
  // Space to give back later: written out, so that the tmpfs really holds its pages. 40 MiB:
  // RocksDB resumes writes only once the free space reaches its largest memtable (32 MiB).
  const fs::path filler = mount_ / "filler";
  {
    std::ofstream out(filler, std::ios::binary);
    const std::string chunk(1 << 20, 'f');
    for (int i = 0; i < 40; ++i) out << chunk;
    ASSERT_TRUE(out.good());
  }
  const fs::path data = mount_ / "data";
  const std::vector<std::string> args{"--max-webhooks-per-project", "1000000"};
  const std::vector<std::string> env{"HOOKD_ADMIN_TOKEN=" + std::string(kToken)};
  const header_list admin{{"Authorization", "Bearer " + std::string(kToken)},
                          {"Content-Type", "application/json"}};
  auto hookd = std::make_unique<hookd_process>(data, dir_ / "first", args, env);
  http_client client(hookd->endpoint());

  auto r = client.request(bhttp::verb::post, "/api/v1/organizations",
                          json::serialize(json::object{{"name", "Full disk"}}), admin);
  ASSERT_EQ(r.status, 201u) << r.body;
  const std::string org = r.str("_id");
  r = client.request(bhttp::verb::post, test_server::projects_path(org),
                     json::serialize(json::object{{"name", "Fill"}, {"slug", "fill"}}), admin);
  ASSERT_EQ(r.status, 201u) << r.body;
  const std::string hooks = test_server::webhooks_path(org, r.str("_id"));

  // ~20 KiB a webhook (twenty sealed 1000-character header values): the disk fills in about a
  // thousand creates.
  auto body = [](std::size_t n) {
    json::object headers;
    for (int h = 0; h < 20; ++h) {
      headers["x-fill-" + std::to_string(h)] = std::string(1000, static_cast<char>('a' + h));
    }
    return json::serialize(json::object{{"name", "fill " + std::to_string(n)},
                                        {"url", "https://example.com/fill"},
                                        {"headers", headers},
                                        {"events", json::array{"fill.up"}}});
  };
  std::set<std::string> acked;
  http_reply refused;
  for (std::size_t n = 0; n < 20000; ++n) {
    r = client.request(bhttp::verb::post, hooks, body(n), admin);
    if (r.status == 201) {
      acked.insert(r.str("_id"));
      continue;
    }
    refused = r;
    break;
  }
  ASSERT_EQ(refused.status, 503u) << "the disk never filled; last answer: " << refused.body;
  ASSERT_GT(acked.size(), 10u);
  const std::size_t before_full = acked.size();

  // The client learns what happened and what to do, never where.
  expect_problem(refused, 503);
  EXPECT_EQ(refused.str("type"), "https://hookd.dev/problems/storage-failure");
  EXPECT_EQ(refused.body.find(mount_.string()), std::string::npos) << refused.body;
  EXPECT_EQ(refused.body.find("No space"), std::string::npos) << refused.body;
  EXPECT_EQ(refused.body.find(".log"), std::string::npos) << refused.body;
  EXPECT_FALSE(refused.json().as_object().contains("errors")) << refused.body;
  // The log has it, under the request id.
  const std::string request_id = refused.header("X-Request-Id");
  bool logged = false;
  for (const auto& line : log_events(hookd->child(), "storage_failure")) {
    if (line.at("requestId").as_string() != request_id) continue;
    logged = true;
    EXPECT_NE(line.at("detail").as_string().find(data.string()), std::string::npos) << line;
  }
  EXPECT_TRUE(logged) << hookd->child().output(true);

  // Degraded: in the log, in /readyz (still 200: reads work) and in /metrics.
  ASSERT_TRUE(eventually([&] { return log_events(hookd->child(), "storage_degraded").size(); }));
  r = client.request(bhttp::verb::get, "/readyz");
  EXPECT_EQ(r.status, 200u);
  EXPECT_EQ(r.str("storage"), "degraded") << r.body;
  r = client.request(bhttp::verb::get, "/metrics");
  EXPECT_EQ(metric_value(r.body, "hookd_storage_degraded"), 1) << r.body;
  EXPECT_GE(metric_value(r.body, "hookd_storage_write_failures_total"), 1);
  r = client.request(bhttp::verb::get, hooks, std::nullopt, admin);
  ASSERT_EQ(r.status, 200u) << "reads must go on";
  EXPECT_EQ(r.json().as_array().size(), acked.size());
  // More writes while the disk is full: refused alike, and no second log line.
  r = client.request(bhttp::verb::post, hooks, body(99999), admin);
  EXPECT_EQ(r.status, 503u) << r.body;

  // Space again: writes work without a restart (RocksDB checks for it every few seconds).
  fs::remove(filler);
  std::size_t refused_after_free = 0;
  ASSERT_TRUE(eventually(
      [&] {
        auto again = client.request(bhttp::verb::post, hooks, body(acked.size()), admin);
        if (again.status == 201) {
          acked.insert(again.str("_id"));
          return true;
        }
        ++refused_after_free;
        std::this_thread::sleep_for(200ms);
        return false;
      },
      60s))
      << hookd->child().output(true);
  for (int i = 0; i < 5; ++i) {
    r = client.request(bhttp::verb::post, hooks, body(100000 + static_cast<std::size_t>(i)), admin);
    ASSERT_EQ(r.status, 201u) << r.body;
    acked.insert(r.str("_id"));
  }
  ASSERT_TRUE(eventually([&] { return log_events(hookd->child(), "storage_recovered").size(); }));
  r = client.request(bhttp::verb::get, "/readyz");
  EXPECT_EQ(r.str("storage"), "ok") << r.body;
  r = client.request(bhttp::verb::get, "/metrics");
  EXPECT_EQ(metric_value(r.body, "hookd_storage_degraded"), 0) << r.body;
  // One log line each way per episode. Usually one episode; RocksDB may free space of its own
  // (obsolete files after a flush) while the disk is full, end the episode, and fill it again:
  // then there are two, each logged once.
  const double episodes = metric_value(r.body, "hookd_storage_degraded_episodes_total");
  EXPECT_GE(episodes, 1) << r.body;
  EXPECT_EQ(static_cast<double>(log_events(hookd->child(), "storage_degraded").size()), episodes);
  EXPECT_EQ(static_cast<double>(log_events(hookd->child(), "storage_recovered").size()), episodes);
  std::printf("full disk: %zu creates acknowledged before it, %zu refused after space was freed\n",
              before_full, refused_after_free);

  // A restart finds every acknowledged write.
  client.close();
  EXPECT_EQ(hookd->stop(), std::optional<int>(0)) << hookd->child().output(true);
  hookd = std::make_unique<hookd_process>(data, dir_ / "second", args, env);
  client.set_endpoint(hookd->endpoint());
  r = client.request(bhttp::verb::get, hooks, std::nullopt, admin);
  ASSERT_EQ(r.status, 200u) << r.body;
  std::set<std::string> present;
  const json::value listing = r.json();  // the loop must not range over a temporary's array
  for (const auto& w : listing.as_array()) present.insert(std::string(w.at("_id").as_string()));
  EXPECT_EQ(present, acked);
  client.close();
  EXPECT_EQ(hookd->stop(), std::optional<int>(0));
}

}  // namespace
}  // namespace hookd::test
