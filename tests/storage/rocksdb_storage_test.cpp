// The RocksDB storage against a real database in a temp dir: round trips, atomicity, reopen,
// prefix scans, and the refusals an operator relies on (directory in use, corrupt files).

#include "storage/rocksdb_storage.hpp"
#include "crash_workload.hpp"

#include <rocksdb/db.h>
#include <rocksdb/options.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <sys/stat.h>
#include <sys/wait.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <latch>
#include <map>
#include <thread>

namespace hookd {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

constexpr std::array<table, kTableCount> kAllTables = {
    table::meta,  table::organizations, table::projects,   table::tokens,   table::webhooks,
    table::index, table::events,        table::deliveries, table::attempts, table::idempotency,
};

using records = std::vector<std::pair<std::string, std::string>>;

class RocksdbStorageTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "hookd-storage-XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    db_path_ = (dir_ / "db").string();
  }
  void TearDown() override {
    store_.reset();
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  // Closes the open storage (if any) and opens it again, in the manner of DBTestBase::Reopen.
  void reopen(const rocksdb_options& options = {}) {
    store_.reset();
    auto opened = open_rocksdb_storage(db_path_, options);
    ASSERT_TRUE(opened) << opened.error().detail;
    store_ = std::move(*opened);
  }

  records scan(table t, std::string_view prefix = {}) const {
    records out;
    auto scanned = store_->scan(t, prefix, [&](std::string_view k, std::string_view v) {
      out.emplace_back(k, v);
      return true;
    });
    EXPECT_TRUE(scanned) << scanned.error().detail;
    return out;
  }

  std::optional<std::string> get(table t, std::string_view key) const {
    auto got = store_->get(t, key);
    EXPECT_TRUE(got) << got.error().detail;
    return got ? *got : std::nullopt;
  }

  void write(const write_batch& batch) {
    auto written = store_->write(batch);
    ASSERT_TRUE(written) << written.error().detail;
  }

  std::string open_error(const rocksdb_options& options = {}) const {
    auto opened = open_rocksdb_storage(db_path_, options);
    EXPECT_FALSE(opened) << "open succeeded although it should have failed";
    return opened ? std::string() : opened.error().detail;
  }

  std::vector<std::string> files_in_db() const {
    std::vector<std::string> names;
    for (const auto& entry : fs::directory_iterator(db_path_)) {
      names.push_back(entry.path().filename().string());
    }
    std::sort(names.begin(), names.end());
    return names;
  }

  fs::path dir_;
  std::string db_path_;
  std::unique_ptr<storage> store_;
};

TEST_F(RocksdbStorageTest, EveryTableRoundTripsAndIsSeparate) {
  reopen();
  write_batch batch;
  for (table t : kAllTables) {
    const std::string name(table_name(t));
    batch.put(t, "k2", "second of " + name);
    batch.put(t, "k1", "first of " + name);
  }
  write(batch);

  for (table t : kAllTables) {
    const std::string name(table_name(t));
    EXPECT_EQ(get(t, "k1"), "first of " + name);
    EXPECT_EQ(get(t, "k2"), "second of " + name);
    // In key order, and only this table's records.
    EXPECT_EQ(scan(t), (records{{"k1", "first of " + name}, {"k2", "second of " + name}}));
  }
}

TEST_F(RocksdbStorageTest, BinaryKeysAndValuesRoundTrip) {
  reopen();
  const std::string key("\x00\x01\xff\x80id", 6);
  const std::string value("\x00value\xff\x00", 8);
  write_batch batch;
  batch.put(table::organizations, key, value);
  write(batch);
  EXPECT_EQ(get(table::organizations, key), value);
  EXPECT_EQ(get(table::organizations, key.substr(0, 1)), std::nullopt);
}

TEST_F(RocksdbStorageTest, MissingKeyIsNulloptAndEmptyValueIsNot) {
  reopen();
  write_batch batch;
  batch.put(table::meta, "empty", "");
  write(batch);
  EXPECT_EQ(get(table::meta, "absent"), std::nullopt);
  EXPECT_EQ(get(table::meta, "empty"), std::optional<std::string>(""));
}

TEST_F(RocksdbStorageTest, ReopenPreservesEverything) {
  reopen();
  write_batch first;
  first.put(table::webhooks, "w1", "one");
  first.put(table::index, "ps/org/slug", "project");
  write(first);
  write_batch second;
  second.put(table::webhooks, "w1", "one, updated");
  second.put(table::tokens, "t1", "digest");
  write(second);

  reopen();
  EXPECT_EQ(scan(table::webhooks), (records{{"w1", "one, updated"}}));
  EXPECT_EQ(get(table::index, "ps/org/slug"), "project");
  EXPECT_EQ(get(table::tokens, "t1"), "digest");

  reopen();  // a second reopen, after RocksDB flushed the recovered WAL into table files
  EXPECT_EQ(get(table::webhooks, "w1"), "one, updated");
}

TEST_F(RocksdbStorageTest, EraseRemovesAndStaysRemovedAfterReopen) {
  reopen();
  write_batch put;
  put.put(table::tokens, "a", "1");
  put.put(table::tokens, "b", "2");
  write(put);
  write_batch erase;
  erase.erase(table::tokens, "a");
  erase.erase(table::tokens, "never-existed");  // erasing what is not there is not an error
  write(erase);
  EXPECT_EQ(get(table::tokens, "a"), std::nullopt);
  EXPECT_EQ(scan(table::tokens), (records{{"b", "2"}}));

  reopen();
  EXPECT_EQ(scan(table::tokens), (records{{"b", "2"}}));
}

TEST_F(RocksdbStorageTest, PrefixScanStopsExactlyAtThePrefixBoundary) {
  reopen();
  const std::vector<std::string> keys = {
      "a", "ab", std::string("ab\0", 3), "ab\xff", "ab\xff\xff", "ac", "b", "\xff", "\xff\xff",
  };
  write_batch batch;
  for (const std::string& k : keys) batch.put(table::index, k, "v");
  batch.put(table::projects, "ab-in-another-table", "v");
  write(batch);

  auto keys_of = [&](std::string_view prefix) {
    std::vector<std::string> out;
    for (auto& [k, v] : scan(table::index, prefix)) out.push_back(k);
    return out;
  };
  EXPECT_EQ(keys_of("ab"),
            (std::vector<std::string>{"ab", std::string("ab\0", 3), "ab\xff", "ab\xff\xff"}));
  EXPECT_EQ(keys_of("ab\xff"), (std::vector<std::string>{"ab\xff", "ab\xff\xff"}));
  EXPECT_EQ(keys_of("\xff"), (std::vector<std::string>{"\xff", "\xff\xff"}));
  EXPECT_EQ(keys_of("a"), (std::vector<std::string>{"a", "ab", std::string("ab\0", 3), "ab\xff",
                                                    "ab\xff\xff", "ac"}));
  EXPECT_EQ(keys_of("abc"), std::vector<std::string>{});
  EXPECT_EQ(keys_of("zz"), std::vector<std::string>{});
  EXPECT_EQ(keys_of(""), keys);  // everything, in byte order
}

TEST_F(RocksdbStorageTest, ScanStopsWhenTheVisitorReturnsFalse) {
  reopen();
  write_batch batch;
  for (char c = 'a'; c <= 'j'; ++c) batch.put(table::events, std::string(1, c), "v");
  write(batch);
  std::vector<std::string> seen;
  auto scanned = store_->scan(table::events, "", [&](std::string_view k, std::string_view) {
    seen.emplace_back(k);
    return seen.size() < 3;
  });
  ASSERT_TRUE(scanned);
  EXPECT_EQ(seen, (std::vector<std::string>{"a", "b", "c"}));
}

TEST_F(RocksdbStorageTest, OneLargeBatchAcrossTablesIsWholeAfterReopen) {
  reopen();
  write_batch before;
  for (int i = 0; i < 100; ++i) before.put(table::attempts, "old" + std::to_string(i), "x");
  write(before);

  write_batch big;
  constexpr int kOps = 20000;
  for (int i = 0; i < kOps; ++i) {
    big.put(kAllTables[static_cast<std::size_t>(i) % kAllTables.size()], "key" + std::to_string(i),
            std::string(static_cast<std::size_t>(i % 300), 'v'));
  }
  for (int i = 0; i < 100; ++i) big.erase(table::attempts, "old" + std::to_string(i));
  write(big);

  reopen();
  std::size_t total = 0;
  for (table t : kAllTables) {
    for (auto& [k, v] : scan(t)) {
      ++total;
      const int i = std::stoi(k.substr(3));
      EXPECT_EQ(v.size(), static_cast<std::size_t>(i % 300)) << k;
    }
  }
  EXPECT_EQ(total, static_cast<std::size_t>(kOps));  // all puts, and none of the erased "old"
  EXPECT_EQ(scan(table::attempts, "old"), records{});
}

TEST_F(RocksdbStorageTest, BatchWithAnInvalidOpWritesNothing) {
  reopen();
  write_batch batch;
  batch.put(table::webhooks, "w", "v");
  batch.put(static_cast<table>(200), "k", "v");
  auto written = store_->write(batch);
  ASSERT_FALSE(written);
  EXPECT_EQ(written.error().kind, error_kind::internal);
  EXPECT_EQ(get(table::webhooks, "w"), std::nullopt);
  const storage_stats stats = store_->stats();
  EXPECT_EQ(stats.failures, 1u);
  EXPECT_EQ(stats.batches, 0u);
  EXPECT_EQ(stats.records, 0u);
}

TEST_F(RocksdbStorageTest, StatsCountBatchesRecordsAndSyncs) {
  reopen();
  EXPECT_EQ(store_->stats().batches, 0u);
  for (std::size_t n : {2u, 3u, 1u}) {
    write_batch batch;
    for (std::size_t i = 0; i < n; ++i) batch.put(table::events, std::to_string(i), "v");
    write(batch);
  }
  write(write_batch{});  // empty: nothing to make durable, not counted
  storage_stats stats = store_->stats();
  EXPECT_EQ(stats.batches, 3u);
  EXPECT_EQ(stats.records, 6u);
  EXPECT_EQ(stats.syncs, 3u);
  EXPECT_EQ(stats.failures, 0u);

  rocksdb_options unsynced;
  unsynced.sync = false;
  reopen(unsynced);
  write_batch batch;
  batch.put(table::events, "x", "v");
  write(batch);
  stats = store_->stats();
  EXPECT_EQ(stats.batches, 1u);
  EXPECT_EQ(stats.records, 1u);
  EXPECT_EQ(stats.syncs, 0u);

  reopen();  // the clean close made even the unsynced batch durable
  EXPECT_EQ(get(table::events, "x"), "v");
}

TEST_F(RocksdbStorageTest, ReadersSeeWholeBatchesWhileTheWriterWrites) {
  rocksdb_options unsynced;  // the property under test is visibility, not durability
  unsynced.sync = false;
  reopen(unsynced);
  constexpr int kBatches = 300;
  std::atomic<bool> done{false};
  std::atomic<int> torn{0};
  std::atomic<int> scans{0};
  std::latch reader_started(1);
  std::thread reader([&] {
    reader_started.count_down();
    // Scans until the writer is done, and a few more after, so that it never ends unscanned.
    while (!done.load() || scans.load() < 20) {
      std::size_t a = 0, b = 0;
      auto scanned = store_->scan(table::deliveries, "", [&](std::string_view k, std::string_view) {
        (k.ends_with("/a") ? a : b) += 1;
        return true;
      });
      if (!scanned || a != b) torn.fetch_add(1);
      scans.fetch_add(1);
    }
  });
  reader_started.wait();
  for (int i = 0; i < kBatches; ++i) {
    write_batch batch;
    batch.put(table::deliveries, std::to_string(i) + "/a", "v");
    batch.put(table::deliveries, std::to_string(i) + "/b", "v");
    write(batch);
  }
  done = true;
  reader.join();
  EXPECT_EQ(torn.load(), 0);
  EXPECT_EQ(scan(table::deliveries).size(), 2u * kBatches);
}

TEST_F(RocksdbStorageTest, SecondOpenInTheSameProcessIsRefusedAsInUse) {
  reopen();
  write_batch batch;
  batch.put(table::meta, "k", "v");
  write(batch);

  const std::string detail = open_error();
  EXPECT_THAT(detail, HasSubstr("data dir " + db_path_ + " is in use"));
  EXPECT_THAT(detail, HasSubstr("RocksDB LOCK held"));

  // The refused open changed nothing: the first instance still works, and once it is closed
  // the directory opens again with the data in it.
  EXPECT_EQ(get(table::meta, "k"), "v");
  reopen();
  EXPECT_EQ(get(table::meta, "k"), "v");
}

TEST_F(RocksdbStorageTest, OpenWhileAnotherProcessHoldsTheDirectoryIsRefused) {
  reopen();
  write_batch batch;
  batch.put(table::meta, "k", "v");
  write(batch);
  store_.reset();

  crash_workload::child_process child;
  ASSERT_TRUE(crash_workload::spawn(child, HOOKD_CRASH_CHILD, {"hold", db_path_}));
  std::string line;
  ASSERT_TRUE(child.read_line(line));
  ASSERT_EQ(line, "ready");

  EXPECT_EQ(open_error(), "data dir " + db_path_ +
                              " is in use by another process (RocksDB LOCK held): stop the other "
                              "hookd or choose another --data-dir");

  // And the other way round: while this process holds it, the child is refused.
  const int status = child.wait();
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  reopen();
  crash_workload::child_process second;
  ASSERT_TRUE(crash_workload::spawn(second, HOOKD_CRASH_CHILD, {"hold", db_path_}));
  ASSERT_TRUE(second.read_line(line));
  EXPECT_THAT(line, HasSubstr("is in use by another process"));
  const int second_status = second.wait();
  EXPECT_TRUE(WIFEXITED(second_status) && WEXITSTATUS(second_status) == 1) << second_status;
  EXPECT_EQ(get(table::meta, "k"), "v");
}

// Writes a few records and closes, leaving a database whose files the tests then damage.
class DamagedDatabaseTest : public RocksdbStorageTest {
 protected:
  void SetUp() override {
    RocksdbStorageTest::SetUp();
    reopen();
    write_batch batch;
    batch.put(table::webhooks, "w1", "precious");
    write(batch);
    reopen();  // flushes the recovered WAL into a table file
    write_batch more;
    more.put(table::webhooks, "w2", "also precious");
    write(more);
    store_.reset();
  }

  void expect_corrupt(const std::string& detail) {
    EXPECT_THAT(detail, HasSubstr("database at " + db_path_ + " is corrupt or unreadable ("));
    EXPECT_THAT(detail, HasSubstr("): restore from backup; hookd will not start on an empty "
                                  "database over it"));
  }

  void expect_intact() {
    reopen();
    EXPECT_EQ(get(table::webhooks, "w1"), "precious");
    EXPECT_EQ(get(table::webhooks, "w2"), "also precious");
  }

  static std::string read(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), {}};
  }
  static void overwrite(const fs::path& p, std::string_view content) {
    std::ofstream out(p, std::ios::binary | std::ios::trunc);
    out << content;
  }
};

TEST_F(DamagedDatabaseTest, GarbageInCurrentIsReportedAsCorruptNotOpenedEmpty) {
  const fs::path current = fs::path(db_path_) / "CURRENT";
  const std::string saved = read(current);
  const std::vector<std::string> files_before = files_in_db();

  overwrite(current, "\x13\x37 not a manifest name");
  expect_corrupt(open_error());
  overwrite(current, "MANIFEST-999999\n");  // well-formed, names a file that does not exist
  expect_corrupt(open_error());
  EXPECT_EQ(files_in_db(), files_before);  // nothing was created or deleted

  overwrite(current, saved);
  expect_intact();
}

TEST_F(DamagedDatabaseTest, TruncatedManifestIsReportedAsCorrupt) {
  fs::path manifest;
  for (const std::string& name : files_in_db()) {
    if (name.starts_with("MANIFEST-")) manifest = fs::path(db_path_) / name;
  }
  ASSERT_FALSE(manifest.empty());
  const std::string saved = read(manifest);
  overwrite(manifest, "");
  expect_corrupt(open_error());
  overwrite(manifest, std::string_view(saved).substr(0, 10));  // a torn first record
  expect_corrupt(open_error());

  overwrite(manifest, saved);
  expect_intact();
}

TEST_F(DamagedDatabaseTest, MissingCurrentWithDataFilesIsRefusedAndFilesAreKept) {
  const fs::path current = fs::path(db_path_) / "CURRENT";
  const std::string saved = read(current);
  fs::remove(current);
  const std::vector<std::string> files_before = files_in_db();

  const std::string detail = open_error();
  expect_corrupt(detail);
  EXPECT_THAT(detail, HasSubstr("CURRENT is missing"));
  EXPECT_EQ(files_in_db(), files_before);  // RocksDB was not allowed to "clean up" the orphans

  overwrite(current, saved);
  expect_intact();
}

TEST_F(DamagedDatabaseTest, CorruptTableFileFailsTheOpenOrTheRead) {
  // paranoid_checks: a damaged table file must not read as "no such key". RocksDB verifies
  // table files lazily, so the failure may surface at open or at the first read of the block.
  std::vector<fs::path> tables;
  for (const std::string& name : files_in_db()) {
    if (name.ends_with(".sst")) tables.push_back(fs::path(db_path_) / name);
  }
  ASSERT_FALSE(tables.empty());
  for (const fs::path& p : tables) {
    std::string bytes = read(p);
    for (std::size_t i = 0; i < bytes.size(); i += 7) bytes[i] = static_cast<char>(~bytes[i]);
    overwrite(p, bytes);
  }
  auto opened = open_rocksdb_storage(db_path_);
  if (!opened) {
    expect_corrupt(opened.error().detail);
    return;
  }
  auto got = (*opened)->get(table::webhooks, "w1");
  ASSERT_FALSE(got && *got == std::nullopt) << "a corrupt table file read as a missing key";
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error().kind, error_kind::storage_failure);
}

TEST_F(RocksdbStorageTest, UnknownColumnFamiliesAreOpenedAndKept) {
  {  // a database written by a future hookd with one more table
    rocksdb::Options options;
    options.create_if_missing = true;
    rocksdb::DB* raw = nullptr;
    ASSERT_TRUE(rocksdb::DB::Open(options, db_path_, &raw).ok());
    std::unique_ptr<rocksdb::DB> db(raw);
    rocksdb::ColumnFamilyHandle* cf = nullptr;
    ASSERT_TRUE(db->CreateColumnFamily(rocksdb::ColumnFamilyOptions(), "future_table", &cf).ok());
    ASSERT_TRUE(db->Put(rocksdb::WriteOptions(), cf, "k", "v").ok());
    ASSERT_TRUE(db->DestroyColumnFamilyHandle(cf).ok());
    ASSERT_TRUE(db->Close().ok());
  }
  reopen();  // only "default" and "future_table" existed: the tables are created on open
  write_batch batch;
  batch.put(table::webhooks, "w", "v");
  write(batch);
  reopen();
  EXPECT_EQ(get(table::webhooks, "w"), "v");
  store_.reset();

  std::vector<std::string> families;
  ASSERT_TRUE(rocksdb::DB::ListColumnFamilies(rocksdb::DBOptions(), db_path_, &families).ok());
  EXPECT_THAT(families, ::testing::Contains("future_table"));
  for (table t : kAllTables) {
    EXPECT_THAT(families, ::testing::Contains(std::string(table_name(t))));
  }
}

TEST_F(RocksdbStorageTest, WithoutCreateIfMissingAnEmptyDirIsAnError) {
  rocksdb_options options;
  options.create_if_missing = false;
  const std::string detail = open_error(options);
  EXPECT_THAT(detail, HasSubstr(db_path_));
  EXPECT_FALSE(fs::exists(fs::path(db_path_) / "CURRENT"));
}

// The database directory holds hookd's records (secrets sealed, token digests): it is private
// whether the open creates it or finds it wider (RocksDB alone would create it 0755).
TEST_F(RocksdbStorageTest, TheDatabaseDirectoryIsCreatedPrivateAndTightenedWhenWider) {
  const auto mode = [&] {
    struct stat st {};
    EXPECT_EQ(::stat(db_path_.c_str(), &st), 0);
    return st.st_mode & 07777;
  };
  const mode_t old_umask = ::umask(022);
  reopen();
  ::umask(old_umask);
  EXPECT_EQ(mode(), 0700u);

  store_.reset();
  ASSERT_EQ(::chmod(db_path_.c_str(), 0755), 0);
  reopen();
  EXPECT_EQ(mode(), 0700u);
  EXPECT_TRUE(scan(table::meta).empty());  // the same database, opened as before
}

TEST_F(RocksdbStorageTest, APathThatIsAFileIsRefused) {
  std::ofstream(db_path_) << "not a database";
  EXPECT_THAT(open_error(), HasSubstr("is not a directory"));
  EXPECT_EQ(fs::file_size(db_path_), 14u);
}

}  // namespace
}  // namespace hookd
