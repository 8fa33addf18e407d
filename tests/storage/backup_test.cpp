// Online backup (storage/backup.hpp) over a real RocksDB store: what the copy holds, its modes,
// the files besides the database, and every way the target directory can be refused.

#include "storage/backup.hpp"
#include "storage/data_dir.hpp"
#include "storage/rocksdb_storage.hpp"

#include <gtest/gtest.h>

#include <sys/stat.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

namespace hookd {
namespace {

namespace fs = std::filesystem;

class BackupTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "hookd-backup-XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    root_ = tmpl;
    data_ = root_ / "data";
    ASSERT_TRUE(ensure_data_dir(data_));
    auto opened = open_rocksdb_storage((data_ / "db").string());
    ASSERT_TRUE(opened) << opened.error().detail;
    store_ = std::move(*opened);
  }
  void TearDown() override {
    store_.reset();
    std::error_code ec;
    fs::remove_all(root_, ec);
  }

  void put(std::string key, std::string value) {
    write_batch b;
    b.put(table::webhooks, std::move(key), std::move(value));
    ASSERT_TRUE(store_->write(b));
  }

  static unsigned mode_of(const fs::path& p) {
    struct stat st {};
    EXPECT_EQ(::stat(p.c_str(), &st), 0) << p;
    return st.st_mode & 07777;
  }
  static std::string read(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), {}};
  }

  fs::path root_, data_;
  std::unique_ptr<storage> store_;
};

TEST_F(BackupTest, TheCopyOpensWithEverythingWrittenBeforeAndTheKeyFilesBeside) {
  auto key = load_or_create_master_key(data_, std::nullopt);
  ASSERT_TRUE(key);
  ASSERT_TRUE(write_admin_token_file(data_, "hkd_the-admin-token"));
  for (int i = 0; i < 100; ++i) put("k" + std::to_string(i), "v" + std::to_string(i));

  const fs::path target = root_ / "backup";
  auto made = take_backup(*store_, data_, target, /*master_key_in_file=*/true);
  ASSERT_TRUE(made) << made.error().detail;
  EXPECT_EQ(made->directory, target.string());
  EXPECT_GE(made->sequence, 100u);
  EXPECT_TRUE(made->linked);  // the same file system as the data dir
  EXPECT_EQ(made->master_key, "file");
  EXPECT_TRUE(made->admin_token_file);
  EXPECT_GE(made->files, 4u);  // CURRENT, MANIFEST, OPTIONS, tables, master.key, admin-token
  EXPECT_GT(made->bytes, 0u);

  put("after", "the backup");  // not in the copy
  EXPECT_EQ(read(target / "master.key"), read(data_ / "master.key"));
  EXPECT_EQ(read(target / "admin-token"), "hkd_the-admin-token");
  // Directories 0700, files 0600, all the way down: the copy holds what the data dir holds.
  std::uint64_t files = 0, bytes = 0;
  EXPECT_EQ(mode_of(target), 0700u);
  for (const auto& e : fs::recursive_directory_iterator(target)) {
    EXPECT_EQ(mode_of(e.path()), e.is_directory() ? 0700u : 0600u) << e.path();
    if (!e.is_directory()) {
      ++files;
      bytes += e.file_size();
    }
  }
  EXPECT_EQ(made->files, files);
  EXPECT_EQ(made->bytes, bytes);

  // The copy is a data dir hookd can start from: its key opens, its store holds the writes.
  auto copied_key = load_or_create_master_key(target, std::nullopt);
  ASSERT_TRUE(copied_key) << copied_key.error().detail;
  EXPECT_EQ(copied_key->raw(), key->raw());
  auto copy = open_rocksdb_storage((target / "db").string());
  ASSERT_TRUE(copy) << copy.error().detail;
  for (int i = 0; i < 100; ++i) {
    auto got = (*copy)->get(table::webhooks, "k" + std::to_string(i));
    ASSERT_TRUE(got);
    EXPECT_EQ(*got, std::optional<std::string>("v" + std::to_string(i)));
  }
  auto after = (*copy)->get(table::webhooks, "after");
  ASSERT_TRUE(after);
  EXPECT_FALSE(*after);
}

TEST_F(BackupTest, WithTheKeyFromTheEnvironmentNoKeyFileIsCopied) {
  ASSERT_TRUE(load_or_create_master_key(data_, std::nullopt));  // a stale file, not the key in use
  auto made = take_backup(*store_, data_, root_ / "backup", /*master_key_in_file=*/false);
  ASSERT_TRUE(made) << made.error().detail;
  EXPECT_EQ(made->master_key, "environment");
  EXPECT_FALSE(made->admin_token_file);
  EXPECT_FALSE(fs::exists(root_ / "backup" / "master.key"));
  EXPECT_FALSE(fs::exists(root_ / "backup" / "admin-token"));
}

// Every write that returned before the backup began is in it, while a writer keeps writing.
TEST_F(BackupTest, WritesAcknowledgedBeforeTheBackupAreInItWhileWritesGoOn) {
  std::atomic<int> acknowledged{0};
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    for (int i = 0; !stop.load(); ++i) {
      write_batch b;
      b.put(table::webhooks, "w" + std::to_string(i), std::string(200, 'x'));
      b.put(table::index, "i" + std::to_string(i), "w" + std::to_string(i));
      if (!store_->write(b)) return;
      acknowledged.store(i + 1);
    }
  });
  while (acknowledged.load() < 200) std::this_thread::yield();
  const int before = acknowledged.load();
  auto made = take_backup(*store_, data_, root_ / "backup", true);
  stop = true;
  writer.join();
  ASSERT_TRUE(made) << made.error().detail;

  auto copy = open_rocksdb_storage((root_ / "backup" / "db").string());
  ASSERT_TRUE(copy) << copy.error().detail;
  std::set<std::string> records, index;
  ASSERT_TRUE((*copy)->scan(table::webhooks, "w", [&](std::string_view k, std::string_view) {
    records.emplace(k);
    return true;
  }));
  ASSERT_TRUE((*copy)->scan(table::index, "i", [&](std::string_view k, std::string_view) {
    index.emplace(k.substr(1));
    return true;
  }));
  for (int i = 0; i < before; ++i) {
    EXPECT_TRUE(records.contains("w" + std::to_string(i))) << "acknowledged write " << i;
  }
  // A batch running during the checkpoint is in it whole or not at all.
  std::set<std::string> record_numbers;
  for (const auto& r : records) record_numbers.insert(r.substr(1));
  EXPECT_EQ(record_numbers, index);
}

TEST_F(BackupTest, AnExistingTargetIsAConflictAndIsLeftAlone) {
  const fs::path target = root_ / "taken";
  fs::create_directory(target);
  std::ofstream(target / "mine") << "keep";
  auto made = take_backup(*store_, data_, target, true);
  ASSERT_FALSE(made);
  EXPECT_EQ(made.error().kind, error_kind::conflict);
  EXPECT_NE(made.error().detail.find("already exists"), std::string::npos) << made.error().detail;
  ASSERT_EQ(made.error().errors.size(), 1u);
  EXPECT_EQ(made.error().errors[0].field, "directory");
  EXPECT_EQ(read(target / "mine"), "keep");
}

TEST_F(BackupTest, AMissingParentARelativePathAndTheDataDirItselfAreRefused) {
  for (const fs::path& target :
       {root_ / "missing" / "backup", fs::path("relative/backup"), data_ / "inside"}) {
    SCOPED_TRACE(target.string());
    auto made = take_backup(*store_, data_, target, true);
    ASSERT_FALSE(made);
    EXPECT_EQ(made.error().kind, error_kind::validation) << made.error().detail;
    ASSERT_EQ(made.error().errors.size(), 1u);
    EXPECT_EQ(made.error().errors[0].field, "directory");
  }
  EXPECT_FALSE(fs::exists(root_ / "missing"));
  EXPECT_FALSE(fs::exists(data_ / "inside"));
}

TEST_F(BackupTest, ATrailingSlashNamesTheSameDirectory) {
  auto made = take_backup(*store_, data_, (root_ / "slash").string() + "/", true);
  ASSERT_TRUE(made) << made.error().detail;
  EXPECT_EQ(made->directory, (root_ / "slash").string());
  EXPECT_TRUE(fs::exists(root_ / "slash" / "db" / "CURRENT"));
}

}  // namespace
}  // namespace hookd
