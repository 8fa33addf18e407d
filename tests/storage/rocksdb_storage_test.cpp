// The RocksDB storage against a real database in a temp dir: round trips, atomicity, reopen,
// prefix and range scans, range deletes and the space they free, and the refusals an operator
// relies on (directory in use, corrupt files).

#include "storage/rocksdb_storage.hpp"
#include "core/delivery/history_keys.hpp"
#include "crash_workload.hpp"

#include <rocksdb/db.h>
#include <rocksdb/options.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <sys/stat.h>
#include <sys/wait.h>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <latch>
#include <limits>
#include <map>
#include <random>
#include <thread>

namespace hookd {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

constexpr std::array<table, kTableCount> kAllTables = {
    table::meta,     table::organizations, table::projects, table::tokens,
    table::webhooks, table::index,         table::events,   table::deliveries,
    table::attempts, table::idempotency,   table::queue,    table::history,
};

using records = std::vector<std::pair<std::string, std::string>>;
using key_list = std::vector<std::string>;

// A history-style key: a 4-byte big-endian time bucket, then a 4-byte big-endian sequence.
std::string bucket_key(std::uint32_t bucket, std::uint32_t n) {
  std::string key;
  for (std::uint32_t part : {bucket, n}) {
    for (int shift = 24; shift >= 0; shift -= 8) {
      key.push_back(static_cast<char>((part >> shift) & 0xff));
    }
  }
  return key;
}

// A database opened with RocksDB directly, to lay out what hookd itself would not (an older
// hookd's families, small files in chosen levels). Closed, handles first, when it goes.
struct raw_database {
  rocksdb::DB* db = nullptr;
  std::vector<rocksdb::ColumnFamilyHandle*> handles;  // in the order of the names given

  // "default" is opened too, first; `families` are created if missing.
  raw_database(const std::string& path, const std::vector<std::string>& families,
               const rocksdb::ColumnFamilyOptions& cf_options = {}) {
    rocksdb::DBOptions options;
    options.create_if_missing = true;
    options.create_missing_column_families = true;
    std::vector<rocksdb::ColumnFamilyDescriptor> descriptors{
        {rocksdb::kDefaultColumnFamilyName, rocksdb::ColumnFamilyOptions()}};
    for (const std::string& name : families) descriptors.emplace_back(name, cf_options);
    std::vector<rocksdb::ColumnFamilyHandle*> all;
    const rocksdb::Status s = rocksdb::DB::Open(options, path, descriptors, &all, &db);
    EXPECT_TRUE(s.ok()) << s.ToString();
    if (!s.ok()) return;
    (void)db->DestroyColumnFamilyHandle(all[0]);
    handles.assign(all.begin() + 1, all.end());
  }
  ~raw_database() {
    if (db == nullptr) return;
    for (rocksdb::ColumnFamilyHandle* h : handles) (void)db->DestroyColumnFamilyHandle(h);
    EXPECT_TRUE(db->Close().ok());
    delete db;
  }
  raw_database(const raw_database&) = delete;
  raw_database& operator=(const raw_database&) = delete;
};

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

  key_list scan_range(table t, std::string_view lower, std::string_view upper, scan_order order,
                      std::size_t limit = std::numeric_limits<std::size_t>::max()) const {
    key_list out;
    auto scanned =
        store_->scan_range(t, lower, upper, order, [&](std::string_view k, std::string_view) {
          out.emplace_back(k);
          return out.size() < limit;
        });
    EXPECT_TRUE(scanned) << scanned.error().detail;
    return out;
  }

  key_list all_keys(table t) const {
    key_list out;
    for (auto& [k, v] : scan(t)) out.push_back(k);
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

  // What the table files in the directory occupy: the disk space that reclaim() is for.
  std::uintmax_t sst_bytes_on_disk() const {
    std::uintmax_t total = 0;
    for (const auto& entry : fs::directory_iterator(db_path_)) {
      if (entry.path().extension() == ".sst") total += entry.file_size();
    }
    return total;
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

// History takes memtable insert hints (storage/rocksdb_storage.cpp, hinted_key).
// Interleaved with them, range erases of the shapes hookd writes (a delivery's attempts, the
// records after an event, a bucket + project) delete exactly their ranges, in the memtable and
// after a reopen; a range erase from a key of a record's shape is refused, writing nothing.
TEST_F(RocksdbStorageTest, RangeErasesAmongHintedInsertsDeleteExactlyTheirRanges) {
  reopen();
  const object_id project = object_id::parse("65a0f1c2aabbccddee000001").value();
  std::vector<object_id> ids;
  for (int i = 0; i < 40; ++i) {
    char hex[25];
    std::snprintf(hex, sizeof hex, "65a0f1c2aabbccddee%06x", 0x100 + i);
    ids.push_back(object_id::parse(hex).value());
  }
  const std::uint32_t bucket = 1'700'000'000;
  std::map<std::string, std::string> want;
  const auto put = [&](write_batch& b, table t, std::string key) {
    b.put(t, key, "v" + std::to_string(want.size()));
    if (t == table::history) want[key] = "v" + std::to_string(want.size());
  };
  for (std::size_t i = 0; i < ids.size(); ++i) {
    write_batch b;
    put(b, table::history, event_key(bucket, project, ids[i]));
    put(b, table::history, attempt_key(bucket, project, ids[i], 1));
    put(b, table::history, attempt_key(bucket, project, ids[i], 2));
    put(b, table::queue, std::string(ids[i].binary()));
    if (i % 4 == 3) {
      // The attempts of an earlier delivery, as erasing a subject does, then its queue record.
      const std::string from = attempt_prefix(bucket, project, ids[i - 2]);
      b.erase_range(table::history, from, prefix_end(from));
      want.erase(attempt_key(bucket, project, ids[i - 2], 1));
      want.erase(attempt_key(bucket, project, ids[i - 2], 2));
      b.erase(table::queue, std::string(ids[i - 2].binary()));
    }
    write(b);
  }
  // After an event, as retention steps around a kept one: from just after it to the next one's.
  write_batch sweep;
  const std::string after = event_key(bucket, project, ids[5]) + '\0';
  const std::string upto = event_key(bucket, project, ids[9]);
  sweep.erase_range(table::history, after, upto);
  for (auto it = want.lower_bound(after); it != want.end() && it->first < upto;) {
    it = want.erase(it);
  }
  write(sweep);
  for (std::size_t i = 0; i < ids.size(); i += 5) {  // and inserts after it, in both ranges
    write_batch b;
    put(b, table::history, attempt_key(bucket, project, ids[i], 3));
    write(b);
  }
  const auto history = [&] {
    std::map<std::string, std::string> got;
    for (auto& [k, v] : scan(table::history)) got.emplace(k, v);
    return got;
  };
  EXPECT_EQ(history(), want);
  EXPECT_EQ(scan(table::queue).size(), ids.size() - ids.size() / 4);
  reopen();
  EXPECT_EQ(history(), want);

  // A whole bucket + project, then nothing of it is left.
  write_batch project_gone;
  const std::string all = history_prefix(bucket, project);
  project_gone.erase_range(table::history, all, prefix_end(all));
  write(project_gone);
  EXPECT_TRUE(scan(table::history).empty());

  for (const auto& [t, key] : std::vector<std::pair<table, std::string>>{
           {table::history, event_key(bucket, project, ids[0])},
           {table::history, attempt_key(bucket, project, ids[0], 1)}}) {
    write_batch refused;
    refused.put(table::webhooks, "w", "v");
    refused.erase_range(t, key, key + "\xff");
    auto written = store_->write(refused);
    ASSERT_FALSE(written);
    EXPECT_EQ(written.error().kind, error_kind::internal);
    EXPECT_EQ(get(table::webhooks, "w"), std::nullopt);
  }
}

// The queue's memtable is an unsorted vector (storage/rocksdb_storage.cpp, make_cf_options):
// keys put out of order, written again and erased scan in key order with their last values,
// from the memtable and from a table file after a reopen, and a range erase among them deletes
// exactly its range.
TEST_F(RocksdbStorageTest, QueueRecordsScanInKeyOrderWithTheirLastValues) {
  reopen();
  std::map<std::string, std::string> want;
  std::mt19937_64 random(7);
  const auto key_of = [](unsigned n) {
    char key[8];
    std::snprintf(key, sizeof key, "q%04u", n);
    return std::string(key);
  };
  for (int round = 0; round < 200; ++round) {
    write_batch b;
    for (int i = 0; i < 5; ++i) {
      const std::string key = key_of(static_cast<unsigned>(random() % 500));
      if (random() % 4 == 0) {
        b.erase(table::queue, key);
        want.erase(key);
      } else {
        const std::string value = "r" + std::to_string(round) + "." + std::to_string(i);
        b.put(table::queue, key, value);
        want[key] = value;
      }
    }
    if (round == 150) {
      b.erase_range(table::queue, "q0100", "q0200");
      want.erase(want.lower_bound("q0100"), want.lower_bound("q0200"));
    }
    write(b);
  }
  const auto queue = [&] {
    std::map<std::string, std::string> got;
    std::string previous;
    for (auto& [k, v] : scan(table::queue)) {
      EXPECT_LT(previous, k) << "scan out of key order";
      previous = k;
      got.emplace(k, v);
    }
    return got;
  };
  ASSERT_GT(want.size(), 100u);
  // Each key read alone too (hookd itself only scans the queue, at start-up).
  const auto each = [&] {
    for (unsigned n = 0; n < 500; ++n) {
      const std::string key = key_of(n);
      const auto it = want.find(key);
      EXPECT_EQ(get(table::queue, key),
                it == want.end() ? std::nullopt : std::optional<std::string>(it->second))
          << key;
    }
  };
  EXPECT_EQ(queue(), want);  // from the memtable
  each();
  reopen();  // a clean close flushes the memtable (the WAL's replay after a kill: crash_test)
  EXPECT_EQ(queue(), want);  // from a table file
  each();
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

// ---- the queue and history tables, range deletes, range scans, sizes, reclaim ---------------

// A database as the hookd before the queue and history tables left it: "default" and the ten
// older families (their names spelled out: they are on operators' disks), with a record.
TEST_F(RocksdbStorageTest, AStoreWithOnlyTheTenOlderTablesOpensAndGainsTheNewOnes) {
  const std::vector<std::string> older = {"meta",     "organizations", "projects", "tokens",
                                          "webhooks", "index",         "events",   "deliveries",
                                          "attempts", "idempotency"};
  {
    raw_database raw(db_path_, older);
    ASSERT_NE(raw.db, nullptr);
    ASSERT_TRUE(
        raw.db->Put(rocksdb::WriteOptions(), raw.handles[4], "w", "from an older hookd").ok());
  }

  reopen();
  EXPECT_EQ(get(table::webhooks, "w"), "from an older hookd");
  EXPECT_EQ(scan(table::queue), records{});
  EXPECT_EQ(scan(table::history), records{});
  write_batch batch;
  batch.put(table::queue, "d1", "pending");
  batch.put(table::history, "h1", "finished");
  write(batch);

  reopen();
  EXPECT_EQ(get(table::webhooks, "w"), "from an older hookd");
  EXPECT_EQ(get(table::queue, "d1"), "pending");
  EXPECT_EQ(get(table::history, "h1"), "finished");
  store_.reset();

  std::vector<std::string> families;
  ASSERT_TRUE(rocksdb::DB::ListColumnFamilies(rocksdb::DBOptions(), db_path_, &families).ok());
  std::vector<std::string> expected{std::string(rocksdb::kDefaultColumnFamilyName)};
  for (table t : kAllTables) expected.emplace_back(table_name(t));
  std::sort(families.begin(), families.end());
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(families, expected);
}

TEST_F(RocksdbStorageTest, EraseRangeDeletesExactlyTheRangeAndSurvivesAReopen) {
  reopen();
  // Keys at both edges of ["c", "m"): just below "c", "c" itself, just below "m", "m" and just
  // above it. Half of them reach a table file before the erase, half stay in the memtable.
  const key_list in_file = {"a", "b\xff", "c", std::string("c\0", 2), "l\xff\xff", "m", "z"};
  const key_list in_memtable = {"b", "c1", "k", std::string("m\0", 2)};
  write_batch first;
  for (const std::string& k : in_file) {
    first.put(table::history, k, "v");
    first.put(table::queue, k, "v");  // the same keys in another table
  }
  write(first);
  reopen();
  write_batch second;
  for (const std::string& k : in_memtable) second.put(table::history, k, "v");
  write(second);

  const storage_stats before = store_->stats();
  write_batch erase;
  erase.erase_range(table::history, "c", "m");
  ASSERT_EQ(erase.ops.size(), 1u);
  write(erase);
  EXPECT_EQ(store_->stats().records - before.records, 1u);  // one record, however many keys

  const key_list left = {"a", "b", "b\xff", "m", std::string("m\0", 2), "z"};
  auto expect_erased = [&] {
    EXPECT_EQ(all_keys(table::history), left);
    EXPECT_EQ(get(table::history, "c"), std::nullopt);
    EXPECT_EQ(get(table::history, "l\xff\xff"), std::nullopt);
    EXPECT_EQ(get(table::history, "m"), "v");
    EXPECT_EQ(scan_range(table::history, "", "", scan_order::descending),
              key_list(left.rbegin(), left.rend()));
    EXPECT_EQ(scan_range(table::history, "b\xff", "z", scan_order::descending),
              (key_list{std::string("m\0", 2), "m", "b\xff"}));
    EXPECT_EQ(all_keys(table::queue).size(), in_file.size());
  };
  expect_erased();
  reopen();  // the tombstone replayed from the WAL, then flushed into a table file
  expect_erased();
  ASSERT_TRUE(store_->compact(table::history));  // and once compaction applied it
  reopen();
  expect_erased();
}

TEST_F(RocksdbStorageTest, EraseRangeAppliesInBatchOrder) {
  reopen();
  write_batch existing;
  existing.put(table::history, "k1", "old");
  write(existing);
  write_batch batch;
  batch.put(table::history, "k2", "written before the erase");
  batch.erase_range(table::history, "k", "l");
  batch.put(table::history, "k3", "written after it");
  write(batch);
  EXPECT_EQ(scan(table::history), (records{{"k3", "written after it"}}));
  reopen();
  EXPECT_EQ(scan(table::history), (records{{"k3", "written after it"}}));
}

TEST_F(RocksdbStorageTest, AnEraseRangeThatEndsBeforeItBeginsWritesNothing) {
  reopen();
  write_batch existing;
  existing.put(table::history, "a", "1");
  existing.put(table::history, "b", "2");
  write(existing);

  write_batch backwards;
  backwards.put(table::history, "c", "3");
  backwards.erase_range(table::history, "b", "a");
  auto written = store_->write(backwards);
  ASSERT_FALSE(written);
  EXPECT_EQ(written.error().kind, error_kind::internal);
  EXPECT_EQ(store_->stats().failures, 1u);
  EXPECT_EQ(all_keys(table::history), (key_list{"a", "b"}));

  write_batch empty_range;  // begin == end: nothing to delete, and not an error
  empty_range.erase_range(table::history, "a", "a");
  write(empty_range);
  EXPECT_EQ(all_keys(table::history), (key_list{"a", "b"}));
}

TEST_F(RocksdbStorageTest, ScanRangeVisitsTheBoundsInEitherOrder) {
  reopen();
  // Half in a table file, half in the memtable: both orders merge the two.
  write_batch first;
  for (const char* k : {"a", "c", "e"}) first.put(table::history, k, std::string("value of ") + k);
  first.put(table::queue, "b2", "another table");
  write(first);
  reopen();
  write_batch second;
  for (const char* k : {"b", "d"}) second.put(table::history, k, std::string("value of ") + k);
  write(second);

  constexpr auto up = scan_order::ascending;
  constexpr auto down = scan_order::descending;
  const table h = table::history;
  EXPECT_EQ(scan_range(h, "", "", up), (key_list{"a", "b", "c", "d", "e"}));
  EXPECT_EQ(scan_range(h, "", "", down), (key_list{"e", "d", "c", "b", "a"}));
  EXPECT_EQ(scan_range(h, "b", "d", up), (key_list{"b", "c"}));  // lower in, upper out
  EXPECT_EQ(scan_range(h, "b", "d", down), (key_list{"c", "b"}));
  EXPECT_EQ(scan_range(h, "bb", "dd", up), (key_list{"c", "d"}));  // bounds between keys
  EXPECT_EQ(scan_range(h, "bb", "dd", down), (key_list{"d", "c"}));
  EXPECT_EQ(scan_range(h, "c", "", up), (key_list{"c", "d", "e"}));  // to the end
  EXPECT_EQ(scan_range(h, "c", "", down), (key_list{"e", "d", "c"}));
  EXPECT_EQ(scan_range(h, "", "c", up), (key_list{"a", "b"}));
  EXPECT_EQ(scan_range(h, "", "c", down), (key_list{"b", "a"}));
  // Stopping early: the first n in either order.
  EXPECT_EQ(scan_range(h, "", "", up, 2), (key_list{"a", "b"}));
  EXPECT_EQ(scan_range(h, "", "", down, 2), (key_list{"e", "d"}));
  EXPECT_EQ(scan_range(h, "b", "e", down, 1), (key_list{"d"}));
  // Empty ranges.
  for (scan_order order : {up, down}) {
    EXPECT_EQ(scan_range(h, "c", "c", order), key_list{});
    EXPECT_EQ(scan_range(h, "d", "b", order), key_list{});
    EXPECT_EQ(scan_range(h, "bb", "bc", order), key_list{});
    EXPECT_EQ(scan_range(h, "f", "", order), key_list{});
    EXPECT_EQ(scan_range(table::meta, "", "", order), key_list{});
  }
  // The values come with their keys.
  records seen;
  ASSERT_TRUE(store_->scan_range(h, "d", "", down, [&](std::string_view k, std::string_view v) {
    seen.emplace_back(k, v);
    return true;
  }));
  EXPECT_EQ(seen, (records{{"e", "value of e"}, {"d", "value of d"}}));
}

TEST_F(RocksdbStorageTest, ScanRangeOrdersTimeBucketsByTheirBytes) {
  reopen();
  const std::vector<std::uint32_t> buckets = {0,          1,          0xff,      0x100,
                                              0x7fffffff, 0x80000000, 0xffffffff};
  write_batch batch;
  for (std::uint32_t b : buckets) {
    for (std::uint32_t n : {0u, 1u}) batch.put(table::history, bucket_key(b, n), "v");
  }
  write(batch);
  // Newest first from bucket 0x80000000 (excluded) down to bucket 0xff (included).
  EXPECT_EQ(scan_range(table::history, bucket_key(0xff, 0), bucket_key(0x80000000, 0),
                       scan_order::descending),
            (key_list{bucket_key(0x7fffffff, 1), bucket_key(0x7fffffff, 0), bucket_key(0x100, 1),
                      bucket_key(0x100, 0), bucket_key(0xff, 1), bucket_key(0xff, 0)}));
  EXPECT_EQ(scan_range(table::history, bucket_key(0xffffffff, 1), "", scan_order::ascending),
            (key_list{bucket_key(0xffffffff, 1)}));
}

TEST_F(RocksdbStorageTest, UnknownTablesAreRefusedByTheNewOperations) {
  reopen();
  const auto bad = static_cast<table>(200);
  auto scanned = store_->scan_range(bad, "", "", scan_order::ascending,
                                    [](std::string_view, std::string_view) { return true; });
  ASSERT_FALSE(scanned);
  EXPECT_EQ(scanned.error().kind, error_kind::internal);
  auto reclaimed = store_->reclaim(bad, "a", "b", nullptr);
  ASSERT_FALSE(reclaimed);
  EXPECT_EQ(reclaimed.error().kind, error_kind::internal);
  EXPECT_EQ(store_->size(bad).bytes, 0u);
  EXPECT_EQ(store_->size(bad).keys, 0u);
}

// 20 000 records of 1 KiB of random bytes (LZ4 cannot shrink them), in 20 time buckets of 1000.
class HistorySizeTest : public RocksdbStorageTest {
 protected:
  static constexpr std::uint32_t kBuckets = 20;
  static constexpr std::uint32_t kPerBucket = 1000;
  static constexpr std::uint64_t kKeys = kBuckets * kPerBucket;
  static constexpr std::size_t kValueBytes = 1024;
  static constexpr std::uint64_t kDataBytes = kKeys * kValueBytes;

  static std::string value_of(std::uint32_t bucket, std::uint32_t n) {
    std::mt19937_64 random(bucket * kPerBucket + n);
    std::string value(kValueBytes, '\0');
    for (char& c : value) c = static_cast<char>(random() & 0xff);
    return value;
  }

  void fill() {
    for (std::uint32_t b = 0; b < kBuckets; ++b) {
      write_batch batch;
      for (std::uint32_t n = 0; n < kPerBucket; ++n) {
        batch.put(table::history, bucket_key(b, n), value_of(b, n));
      }
      write(batch);
    }
  }

  // Only buckets [first, kBuckets) are left, and intact.
  void expect_left_from(std::uint32_t first) {
    const key_list newest = scan_range(table::history, "", "", scan_order::descending, 1);
    ASSERT_EQ(newest, key_list{bucket_key(kBuckets - 1, kPerBucket - 1)});
    const key_list all = scan_range(table::history, "", "", scan_order::ascending);
    ASSERT_EQ(all.size(), (kBuckets - first) * kPerBucket);
    EXPECT_EQ(all.front(), bucket_key(first, 0));
    EXPECT_EQ(get(table::history, bucket_key(first - 1, kPerBucket - 1)), std::nullopt);
    EXPECT_EQ(get(table::history, bucket_key(first, 7)), value_of(first, 7));
    EXPECT_EQ(get(table::history, bucket_key(kBuckets - 1, 3)), value_of(kBuckets - 1, 3));
  }
};

TEST_F(HistorySizeTest, SizeGrowsWithWritesAndReclaimFreesMostOfAnErasedRange) {
  reopen();
  const table_size empty = store_->size(table::history);
  EXPECT_EQ(empty.keys, 0u);
  fill();
  const table_size in_memory = store_->size(table::history);
  EXPECT_GT(in_memory.bytes, kDataBytes);  // the memtable: uncompressed, with its overhead
  EXPECT_EQ(in_memory.keys, kKeys);        // exact while it is all in the memtable

  reopen();  // flushed into table files
  const table_size on_disk = store_->size(table::history);
  EXPECT_GT(on_disk.bytes, kDataBytes * 9 / 10);
  EXPECT_LT(on_disk.bytes, kDataBytes * 3 / 2);
  EXPECT_GT(on_disk.keys, kKeys * 9 / 10);
  EXPECT_LT(on_disk.keys, kKeys * 11 / 10);

  // The oldest 18 buckets of 20. The erase alone frees nothing: the data is still on disk, and
  // the key estimate still counts what the tombstone covers.
  const std::string begin = bucket_key(0, 0), end = bucket_key(18, 0);
  write_batch erase;
  erase.erase_range(table::history, begin, end);
  write(erase);
  expect_left_from(18);
  const table_size erased = store_->size(table::history);
  EXPECT_GE(erased.bytes, on_disk.bytes);
  EXPECT_GT(erased.keys, kKeys / 2);

  const std::uintmax_t files_before = sst_bytes_on_disk();
  ASSERT_TRUE(store_->reclaim(table::history, begin, end, nullptr));
  const table_size reclaimed = store_->size(table::history);
  EXPECT_LT(reclaimed.bytes, on_disk.bytes / 2);
  EXPECT_LT(reclaimed.keys, kKeys / 2);
  EXPECT_LT(sst_bytes_on_disk(), files_before - kDataBytes / 2);  // the files left the disk
  expect_left_from(18);

  reopen();
  EXPECT_LT(store_->size(table::history).bytes, on_disk.bytes / 2);
  expect_left_from(18);
}

// The same once the data has reached the last level and the tombstone is in a level-0 file above
// it, as it is after a long run: reclaim() compacts it down through the data without forcing
// a rewrite of the last level.
TEST_F(HistorySizeTest, ReclaimFreesAnErasedRangeThatLiesInTheLastLevel) {
  reopen();
  fill();
  ASSERT_TRUE(store_->compact(table::history));
  const table_size compacted = store_->size(table::history);
  const std::string begin = bucket_key(0, 0), end = bucket_key(18, 0);
  write_batch erase;
  erase.erase_range(table::history, begin, end);
  write(erase);
  reopen();
  ASSERT_TRUE(store_->reclaim(table::history, begin, end, nullptr));
  EXPECT_LT(store_->size(table::history).bytes, compacted.bytes / 2);
  expect_left_from(18);
}

// A layout that lets DeleteFilesInRange drop files, built with RocksDB directly since hookd's own
// files are 64 MiB: many 64 KiB files in the last two levels, the first version of every key
// in level 6 and the second in level 5 above it. Nothing of the erased range may come back,
// neither version, once the files wholly inside it are gone.
TEST_F(RocksdbStorageTest, ReclaimDropsWholeFilesAndNothingErasedResurfaces) {
  constexpr std::uint32_t kBuckets = 10, kPerBucket = 100;
  auto value = [](int version, std::uint32_t b, std::uint32_t n) {
    std::string v =
        "v" + std::to_string(version) + "/" + std::to_string(b) + "/" + std::to_string(n) + "/";
    v.resize(1024, 'x');
    return v;
  };
  {
    rocksdb::ColumnFamilyOptions cf_options;
    cf_options.disable_auto_compactions = true;
    cf_options.compression = rocksdb::kNoCompression;
    raw_database raw(db_path_, {"history"}, cf_options);
    ASSERT_NE(raw.db, nullptr);
    rocksdb::ColumnFamilyHandle* history = raw.handles[0];
    for (int version : {1, 2}) {
      for (std::uint32_t b = 0; b < kBuckets; ++b) {
        for (std::uint32_t n = 0; n < kPerBucket; ++n) {
          ASSERT_TRUE(
              raw.db->Put(rocksdb::WriteOptions(), history, bucket_key(b, n), value(version, b, n))
                  .ok());
        }
      }
      ASSERT_TRUE(raw.db->Flush(rocksdb::FlushOptions(), history).ok());
      rocksdb::ColumnFamilyMetaData meta;
      raw.db->GetColumnFamilyMetaData(history, &meta);
      std::vector<std::string> level0;
      for (const rocksdb::SstFileMetaData& f : meta.levels[0].files) level0.push_back(f.name);
      rocksdb::CompactionOptions compaction;
      compaction.compression = rocksdb::kNoCompression;  // its default is Snappy
      compaction.output_file_size_limit = 64u << 10;
      ASSERT_TRUE(raw.db->CompactFiles(compaction, history, level0, version == 1 ? 6 : 5).ok());
    }
    rocksdb::ColumnFamilyMetaData meta;
    raw.db->GetColumnFamilyMetaData(history, &meta);
    ASSERT_GT(meta.levels[5].files.size(), 10u);
    ASSERT_GT(meta.levels[6].files.size(), 10u);
  }

  reopen();
  const table_size before = store_->size(table::history);
  const std::string begin = bucket_key(1, 0), end = bucket_key(9, 0);
  write_batch erase;
  erase.erase_range(table::history, begin, end);
  write(erase);
  ASSERT_TRUE(store_->reclaim(table::history, begin, end, nullptr));

  // Buckets 0 and 9 are left, each key once, in its second version.
  std::size_t seen = 0;
  ASSERT_TRUE(store_->scan_range(table::history, "", "", scan_order::ascending,
                                 [&](std::string_view k, std::string_view v) {
                                   const bool kept = k < begin || k >= end;
                                   EXPECT_TRUE(kept) << "an erased key resurfaced";
                                   EXPECT_TRUE(v.starts_with("v2/")) << "an old version resurfaced";
                                   ++seen;
                                   return true;
                                 }));
  EXPECT_EQ(seen, 2u * kPerBucket);
  EXPECT_EQ(get(table::history, bucket_key(5, 5)), std::nullopt);
  EXPECT_EQ(get(table::history, bucket_key(9, 5)), value(2, 9, 5));
  EXPECT_LT(store_->size(table::history).bytes, before.bytes / 2);
  reopen();
  EXPECT_EQ(scan_range(table::history, begin, end, scan_order::descending), key_list{});
  EXPECT_EQ(scan_range(table::history, "", "", scan_order::ascending).size(), 2u * kPerBucket);
}

TEST_F(RocksdbStorageTest, ReclaimOfAnEmptyOrUnwrittenRangeSucceedsAndChangesNothing) {
  reopen();
  ASSERT_TRUE(store_->reclaim(table::history, "a", "b", nullptr));  // nothing ever written
  write_batch batch;
  for (const char* k : {"a", "b", "c"}) batch.put(table::history, k, "v");
  write(batch);
  reopen();
  ASSERT_TRUE(store_->reclaim(table::history, "", "", nullptr));
  ASSERT_TRUE(store_->reclaim(table::history, "b", "b", nullptr));
  ASSERT_TRUE(store_->reclaim(table::history, "c", "a", nullptr));  // end before begin: empty
  ASSERT_TRUE(store_->reclaim(table::history, "x", "z", nullptr));  // no keys there
  EXPECT_EQ(all_keys(table::history), (key_list{"a", "b", "c"}));
}

}  // namespace
}  // namespace hookd
