// Crash safety of the RocksDB storage: a child process writes numbered batches and reports each
// one only after write() returned success; the test SIGKILLs it at random points, reopens the
// database and checks that every acknowledged batch is there and every batch is whole or absent.
//
// The child is a separate program (crash_child.cpp, fork+exec) so that the kill hits a real
// RocksDB instance mid-write, mid-fsync or mid-flush, with nothing shared with this process.
// SIGKILL loses what the process had not handed to the kernel; it does not lose the page cache,
// so this checks the software's protocol (WAL, sync, recovery), not the disk's.

#include "core/catalog/catalog.hpp"
#include "crash_workload.hpp"
#include "storage/data_dir.hpp"
#include "storage/rocksdb_storage.hpp"

#include <gtest/gtest.h>

#include <signal.h>
#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <map>
#include <random>
#include <set>
#include <sstream>

namespace hookd {
namespace {

namespace fs = std::filesystem;
namespace wl = hookd::crash_workload;

class CrashTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "hookd-crash-XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    db_path_ = (dir_ / "db").string();
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  // Opens the database the child left behind and checks the invariants of crash_workload.hpp
  // against `acked`. Sets `newest` to the newest batch on disk.
  void verify(const std::set<std::uint64_t>& acked, std::uint64_t& newest) {
    auto opened = open_rocksdb_storage(db_path_);
    ASSERT_TRUE(opened) << opened.error().detail;
    const storage& store = **opened;

    std::map<std::uint64_t, std::size_t> markers;  // seq -> record count
    auto scanned = store.scan(table::meta, "batch/", [&](std::string_view k, std::string_view v) {
      const auto seq = wl::parse_u64(k.substr(6));
      const auto count = wl::parse_u64(v);
      EXPECT_TRUE(seq && count) << "bad marker " << k << " = " << v;
      if (seq && count) markers[*seq] = static_cast<std::size_t>(*count);
      return true;
    });
    ASSERT_TRUE(scanned) << scanned.error().detail;
    newest = markers.empty() ? 0 : markers.rbegin()->first;
    // Batches were written one after the other, so what survived is a prefix with no holes.
    EXPECT_EQ(markers.size(), newest) << "a batch in the middle is missing";
    for (std::uint64_t seq : acked) {
      EXPECT_TRUE(markers.contains(seq)) << "acknowledged batch " << seq << " was lost";
    }

    std::map<std::uint64_t, std::set<std::size_t>> seen;  // seq -> record numbers found
    for (std::size_t ti = 0; ti < wl::kRecordTables.size(); ++ti) {
      auto records =
          store.scan(wl::kRecordTables[ti], "b", [&](std::string_view k, std::string_view v) {
            // "b" + 10 digits + "-" + 4 digits
            const auto seq = wl::parse_u64(k.substr(1, 10));
            const auto j = k.size() == 16 ? wl::parse_u64(k.substr(12)) : std::nullopt;
            EXPECT_TRUE(seq && j) << "bad record key " << k;
            if (!seq || !j) return true;
            EXPECT_EQ(*j % wl::kRecordTables.size(), ti) << k << " is in the wrong table";
            EXPECT_TRUE(wl::valid_record_value(v, *seq, static_cast<std::size_t>(*j)))
                << k << " has a damaged value of " << v.size() << " bytes";
            EXPECT_TRUE(seen[*seq].insert(static_cast<std::size_t>(*j)).second);
            return true;
          });
      ASSERT_TRUE(records) << records.error().detail;
    }
    for (const auto& [seq, count] : markers) {
      std::set<std::size_t> expected;
      for (std::size_t j = 0; j < count; ++j) expected.insert(j);
      EXPECT_EQ(seen[seq], expected) << "batch " << seq << " is not whole";
    }
    for (const auto& [seq, found] : seen) {
      EXPECT_TRUE(markers.contains(seq))
          << "records of batch " << seq << " exist without its marker (a torn batch)";
    }

    if (newest > 0) {
      auto last = store.get(table::meta, "last");
      ASSERT_TRUE(last);
      EXPECT_EQ(*last, std::optional<std::string>(std::to_string(newest)));
      std::vector<std::string> tmp;
      auto tmps = store.scan(table::queue, "tmp/", [&](std::string_view k, std::string_view) {
        tmp.emplace_back(k);
        return true;
      });
      ASSERT_TRUE(tmps);
      // The put of tmp/<seq> and the erase of tmp/<seq - 1> were in the same batch.
      EXPECT_EQ(tmp, std::vector<std::string>{wl::tmp_key(newest)});
    }
  }

  fs::path dir_;
  std::string db_path_;
};

TEST_F(CrashTest, AcknowledgedBatchesSurviveSigkillAndNoBatchIsTorn) {
  const std::uint64_t seed = std::random_device{}();
  SCOPED_TRACE("seed " + std::to_string(seed));  // rerun with this seed to reproduce the rounds
  std::mt19937_64 rng(seed);

  constexpr int kRounds = 5;
  std::set<std::uint64_t> acked;
  std::uint64_t newest = 0;
  for (int round = 0; round < kRounds; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    const std::uint64_t first = newest + 1;
    const std::size_t kill_after = 20 + static_cast<std::size_t>(rng() % 181);

    wl::child_process child;
    ASSERT_TRUE(wl::spawn(child, HOOKD_CRASH_CHILD,
                          {"write", db_path_, std::to_string(first), std::to_string(seed)}));
    std::uint64_t expected = first;
    std::string line;
    auto take_ack = [&] {
      const auto seq = wl::parse_u64(line);
      ASSERT_TRUE(seq) << "child printed " << line;
      ASSERT_EQ(*seq, expected) << "acknowledgements out of order";
      acked.insert(*seq);
      ++expected;
    };
    for (std::size_t n = 0; n < kill_after; ++n) {
      ASSERT_TRUE(child.read_line(line))
          << "the child stopped after " << n << " acknowledgements (see its stderr)";
      take_ack();
    }
    ASSERT_EQ(::kill(child.pid, SIGKILL), 0);
    // Whatever the child printed before it died was acknowledged too.
    while (child.read_line(line)) take_ack();
    const int status = child.wait();
    ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << "status " << status;

    const std::uint64_t newest_acked = expected - 1;
    verify(acked, newest);
    if (HasFatalFailure()) return;
    // At most the one batch in flight at the kill can be durable without an acknowledgement.
    EXPECT_GE(newest, newest_acked);
    EXPECT_LE(newest, newest_acked + 1);
  }
  EXPECT_GE(acked.size(), static_cast<std::size_t>(kRounds * 20));
}

// The same through the catalog: the child creates webhooks with several in flight (so the
// writer commits them in shared groups) and prints each id from its completion; after each kill
// the catalog must load every acknowledged webhook, secret included, from what is on disk.
TEST_F(CrashTest, AcknowledgedWebhooksSurviveSigkillThroughTheCatalog) {
  const std::uint64_t seed = std::random_device{}();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);

  constexpr int kRounds = 5;
  std::map<std::string, std::string> acked;  // webhook id -> name
  std::string project_id;
  std::size_t unacknowledged = 0;  // durable webhooks whose completion the kill pre-empted
  for (int round = 0; round < kRounds; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    const std::size_t kill_after = 20 + static_cast<std::size_t>(rng() % 181);

    wl::child_process child;
    ASSERT_TRUE(wl::spawn(child, HOOKD_CRASH_CHILD, {"catalog", dir_.string()}));
    std::string line;
    ASSERT_TRUE(child.read_line(line)) << "the child did not start (see its stderr)";
    ASSERT_TRUE(line.starts_with("ready ")) << line;
    if (round == 0) project_id = line.substr(6);
    ASSERT_EQ(line.substr(6), project_id) << "the child did not find the project it made";

    auto take_ack = [&] {
      std::istringstream in(line);
      std::string tag, id, name;
      ASSERT_TRUE(in >> tag >> id >> name && tag == "wh") << "child printed " << line;
      ASSERT_TRUE(acked.emplace(id, name).second) << "id acknowledged twice: " << id;
    };
    for (std::size_t n = 0; n < kill_after; ++n) {
      ASSERT_TRUE(child.read_line(line))
          << "the child stopped after " << n << " acknowledgements (see its stderr)";
      take_ack();
    }
    ASSERT_EQ(::kill(child.pid, SIGKILL), 0);
    while (child.read_line(line)) take_ack();
    const int status = child.wait();
    ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << "status " << status;

    auto key = load_or_create_master_key(dir_, std::nullopt);
    ASSERT_TRUE(key) << key.error().detail;
    auto opened = open_rocksdb_storage(db_path_);
    ASSERT_TRUE(opened) << opened.error().detail;
    catalog_options options;
    options.master_key = *key;
    catalog cat(**opened, options);
    auto loaded = cat.load();  // every record decodes and every secret opens, or this fails
    ASSERT_TRUE(loaded) << loaded.error().detail;

    for (const auto& [id, name] : acked) {
      const auto parsed = object_id::parse(id);
      ASSERT_TRUE(parsed) << id;
      const auto hook = cat.find_webhook(*parsed);
      ASSERT_TRUE(hook) << "acknowledged webhook " << id << " was lost";
      EXPECT_EQ(hook->name, name);
      EXPECT_EQ(hook->project.to_string(), project_id);
      EXPECT_TRUE(hook->secret.value().starts_with("whsec_"));
    }
    // Only creates that were in flight at a kill may be on disk without an acknowledgement
    // (at most kCatalogWindow more per round), and the per-project list (the index written in the
    // same batches) agrees with the records.
    const auto project = object_id::parse(project_id);
    ASSERT_TRUE(project);
    const std::size_t listed = cat.list_webhooks(*project)->size();
    EXPECT_EQ(loaded->webhooks, listed);
    EXPECT_GE(listed, acked.size());
    EXPECT_LE(listed, acked.size() + unacknowledged + static_cast<std::size_t>(wl::kCatalogWindow));
    unacknowledged = listed - acked.size();
    EXPECT_EQ(loaded->organizations, 1u);
    EXPECT_EQ(loaded->projects, 1u);
  }
}

}  // namespace
}  // namespace hookd
