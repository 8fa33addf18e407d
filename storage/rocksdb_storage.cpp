// hookd's storage on RocksDB. See rocksdb_storage.hpp for the contract.
//
// Layout: one column family per core table (named by table_name()), plus RocksDB's mandatory
// "default" family, which hookd never writes. Every write() is one rocksdb::WriteBatch across
// families, so a batch is atomic through the WAL no matter how many tables it touches.

#include "storage/rocksdb_storage.hpp"

#include "core/common/object_id.hpp"
#include "core/delivery/history_keys.hpp"

#include <rocksdb/cache.h>
#include <rocksdb/convenience.h>
#include <rocksdb/db.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/listener.h>
#include <rocksdb/memtablerep.h>
#include <rocksdb/options.h>
#include <rocksdb/slice_transform.h>
#include <rocksdb/table.h>
#include <rocksdb/utilities/checkpoint.h>
#include <rocksdb/write_batch.h>

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <future>
#include <mutex>
#include <optional>
#include <system_error>
#include <utility>

namespace hookd {
namespace {

namespace fs = std::filesystem;

rocksdb::Slice to_slice(std::string_view s) noexcept {
  return {s.data(), s.size()};
}
std::string_view to_view(const rocksdb::Slice& s) noexcept {
  return {s.data(), s.size()};
}

bool contains(std::string_view haystack, std::string_view needle) noexcept {
  return haystack.find(needle) != std::string_view::npos;
}

// ---- error mapping ------------------------------------------------------------------------
// rocksdb::Status carries no errno, so the few cases an operator must tell apart are recognised
// by the messages RocksDB 7.8's POSIX file system produces for them.

problem in_use_problem(const std::string& path, std::string_view message) {
  // The LOCK is taken with fcntl(F_SETLK), which a process never conflicts with itself on, so
  // RocksDB also keeps a process-wide set of locked files and reports a second open in the same
  // process separately. Both mean the same to the operator; the text says which one it was.
  if (contains(message, "lock hold by current process")) {
    return make_problem(error_kind::storage_failure,
                        "data dir " + path +
                            " is in use by this process already (RocksDB LOCK held): close the "
                            "storage that has it open first, or choose another --data-dir");
  }
  return make_problem(error_kind::storage_failure,
                      "data dir " + path +
                          " is in use by another process (RocksDB LOCK held): stop the other "
                          "hookd or choose another --data-dir");
}

problem corrupt_problem(const std::string& path, std::string_view why) {
  return make_problem(error_kind::storage_failure,
                      "database at " + path + " is corrupt or unreadable (" + std::string(why) +
                          "): restore from backup; hookd will not start on an empty database "
                          "over it");
}

problem permission_problem(const std::string& path, std::string_view why) {
  return make_problem(error_kind::storage_failure,
                      "database at " + path + " is not accessible to this user (" +
                          std::string(why) +
                          "): give the user running hookd read and write access to it (owner "
                          "and mode of the data dir), or choose another --data-dir");
}

// Maps a failure of DB::Open or DB::ListColumnFamilies. `existing` is whether the directory held
// a database before we tried: then anything that is not a lock or a permission problem means the
// files cannot be trusted, and the operator must not get an empty database instead.
problem open_problem(const std::string& path, const rocksdb::Status& status, bool existing) {
  const std::string message = status.ToString();
  if (status.IsIOError() &&
      (contains(message, "While lock file") || contains(message, "lock hold by current process"))) {
    return in_use_problem(path, message);
  }
  if (contains(message, "Permission denied") || contains(message, "Read-only file system")) {
    return permission_problem(path, message);
  }
  if (existing || status.IsCorruption()) return corrupt_problem(path, message);
  return make_problem(error_kind::storage_failure,
                      "cannot open database at " + path + " (" + message + ")");
}

problem write_problem(const rocksdb::Status& status) {
  return make_problem(error_kind::storage_failure,
                      "the write did not become durable (RocksDB: " + status.ToString() + ")");
}

// ---- what is on disk before we open ------------------------------------------------------

// Files that only exist once a database has held data. LOCK, LOG and IDENTITY are left behind by
// a failed first open too, so they prove nothing.
bool is_data_file(const std::string& name) noexcept {
  auto ends_with = [&](std::string_view suffix) {
    return name.ends_with(suffix);
  };
  return ends_with(".sst") || ends_with(".log") || ends_with(".blob") ||
         name.starts_with("MANIFEST-") || name.starts_with("OPTIONS-");
}

struct disk_state {
  bool has_current = false;      // CURRENT names the live MANIFEST
  std::string orphan_data_file;  // a data file found although CURRENT is missing
  std::size_t orphan_count = 0;
};

result<disk_state> inspect(const std::string& path) {
  disk_state state;
  std::error_code ec;
  const fs::file_status st = fs::status(path, ec);
  if (ec && ec != std::errc::no_such_file_or_directory) {
    if (ec == std::errc::permission_denied) return permission_problem(path, ec.message());
    return make_problem(error_kind::storage_failure,
                        "cannot inspect database directory " + path + " (" + ec.message() + ")");
  }
  if (!fs::exists(st)) return state;
  if (!fs::is_directory(st)) {
    return make_problem(error_kind::storage_failure,
                        "database path " + path +
                            " exists but is not a directory: move it away or choose another "
                            "--data-dir");
  }
  // Checked explicitly because RocksDB would otherwise report the first file it failed to
  // create, and root passes these checks anyway (so they only ever help).
  if (::access(path.c_str(), R_OK | W_OK | X_OK) != 0) {
    return permission_problem(path, std::error_code(errno, std::generic_category()).message());
  }
  state.has_current = fs::exists(fs::path(path) / "CURRENT", ec);
  if (state.has_current) return state;
  for (fs::directory_iterator it(path, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (!is_data_file(name)) continue;
    if (state.orphan_count++ == 0) state.orphan_data_file = name;
  }
  if (ec) {
    return make_problem(error_kind::storage_failure,
                        "cannot list database directory " + path + " (" + ec.message() + ")");
  }
  return state;
}

// The database directory is private: RocksDB would create it 0755 (its own CreateDirIfMissing),
// and it holds hookd's records (token digests, sealed secrets, event payloads). Created 0700
// before RocksDB opens it; an existing one with group or other bits is made 0700, since it is
// hookd's own directory (inside the data dir, which data_dir.cpp keeps private too). Anything
// that is not a plain directory is left to inspect(), which names the problem.
result<void> make_private_dir(const std::string& path, bool create) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    const int err = errno;
    if (err != ENOENT || !create) return {};  // inspect() and RocksDB report these
    if (::mkdir(path.c_str(), 0700) == 0 || errno == EEXIST) return {};
    const std::error_code ec(errno, std::generic_category());
    if (ec == std::errc::permission_denied) return permission_problem(path, ec.message());
    return make_problem(error_kind::storage_failure,
                        "cannot create database directory " + path + " (" + ec.message() + ")");
  }
  if (!S_ISDIR(st.st_mode) || (st.st_mode & 077) == 0) return {};
  if (::chmod(path.c_str(), 0700) != 0) {
    return permission_problem(path, "cannot make it private: " +
                                        std::error_code(errno, std::generic_category()).message());
  }
  return {};
}

// ---- health ------------------------------------------------------------------------------

// Whether writes work, as the results of write() and RocksDB's background-error events tell.
// Shared by the storage and its event listener. Thread safety: any thread; a transition and its
// notification happen under one mutex, so notifications come in the order of the transitions.
class health_tracker {
 public:
  explicit health_tracker(std::function<void(const storage_health_change&)> notify)
      : notify_(std::move(notify)) {}

  // string_view: every successful write calls recovered(), and the text is copied only on a
  // transition.
  void failed(std::string_view why) { set(true, why); }
  void recovered(std::string_view how) { set(false, how); }
  bool degraded() const noexcept { return degraded_.load(std::memory_order_relaxed); }
  std::uint64_t episodes() const noexcept { return episodes_.load(std::memory_order_relaxed); }

 private:
  void set(bool degraded, std::string_view why) {
    // Every successful write calls recovered(): without a transition it costs one atomic load.
    if (degraded_.load(std::memory_order_relaxed) == degraded) return;
    std::lock_guard lock(mutex_);
    if (degraded_.load(std::memory_order_relaxed) == degraded) return;
    degraded_.store(degraded, std::memory_order_relaxed);
    storage_health_change change{degraded, std::string(why), {}};
    const auto now = std::chrono::steady_clock::now();
    if (degraded) {
      episodes_.fetch_add(1, std::memory_order_relaxed);
      since_ = now;
    } else {
      change.degraded_for = std::chrono::duration_cast<std::chrono::milliseconds>(now - since_);
    }
    if (notify_) notify_(change);
  }

  std::function<void(const storage_health_change&)> notify_;
  std::mutex mutex_;
  std::atomic<bool> degraded_{false};
  std::atomic<std::uint64_t> episodes_{0};
  std::chrono::steady_clock::time_point since_;  // guarded by mutex_
};

// RocksDB's side of the health: a background error that stops writes (a failed WAL write,
// flush or compaction: severity hard or worse) degrades the store before any write() sees it;
// the end of an automatic recovery that left no error (a full disk that has space again) heals
// it even when no write comes to prove it. RocksDB calls these from its own threads, without
// its mutex held.
class health_listener final : public rocksdb::EventListener {
 public:
  explicit health_listener(std::shared_ptr<health_tracker> tracker)
      : tracker_(std::move(tracker)) {}

  void OnBackgroundError(rocksdb::BackgroundErrorReason, rocksdb::Status* error) override {
    if (error != nullptr && error->severity() >= rocksdb::Status::Severity::kHardError) {
      tracker_->failed("RocksDB stopped writes: " + error->ToString());
    }
  }
  void OnErrorRecoveryEnd(const rocksdb::BackgroundErrorRecoveryInfo& info) override {
    if (info.new_bg_error.ok()) {
      tracker_->recovered("RocksDB recovered from: " + info.old_bg_error.ToString());
    }
  }

 private:
  std::shared_ptr<health_tracker> tracker_;
};

// RocksDB's side of background_priority: its flushes and compactions begin and end on the
// thread that runs them, and a write stall (of any family) holds the normal policy until it
// ends.
class background_listener final : public rocksdb::EventListener {
 public:
  explicit background_listener(background_policy policy) : policy_(policy) {}
  ~background_listener() override {
    if (!stalled_.empty()) background_priority::instance().release();
  }

  void OnFlushBegin(rocksdb::DB*, const rocksdb::FlushJobInfo&) override {
    background_priority::instance().job_began(policy_);
  }
  void OnFlushCompleted(rocksdb::DB*, const rocksdb::FlushJobInfo&) override {
    background_priority::instance().job_ended();
  }
  void OnCompactionBegin(rocksdb::DB*, const rocksdb::CompactionJobInfo&) override {
    background_priority::instance().job_began(policy_);
  }
  void OnCompactionCompleted(rocksdb::DB*, const rocksdb::CompactionJobInfo&) override {
    background_priority::instance().job_ended();
  }
  void OnStallConditionsChanged(const rocksdb::WriteStallInfo& info) override {
    const bool stalled = info.condition.cur != rocksdb::WriteStallCondition::kNormal;
    std::lock_guard lock(mutex_);
    const auto found = std::find(stalled_.begin(), stalled_.end(), info.cf_name);
    if (stalled && found == stalled_.end()) {
      if (stalled_.empty()) background_priority::instance().hold(/*stall=*/true);
      stalled_.push_back(info.cf_name);
    } else if (!stalled && found != stalled_.end()) {
      stalled_.erase(found);
      if (stalled_.empty()) background_priority::instance().release();
    }
  }

 private:
  const background_policy policy_;
  std::mutex mutex_;
  std::vector<std::string> stalled_;  // families whose writes are delayed or stopped
};

// The normal policy for RocksDB's threads while hookd waits for a flush of its own.
class normal_priority_scope {
 public:
  normal_priority_scope() { background_priority::instance().hold(/*stall=*/false); }
  ~normal_priority_scope() { background_priority::instance().release(); }
  normal_priority_scope(const normal_priority_scope&) = delete;
  normal_priority_scope& operator=(const normal_priority_scope&) = delete;
};

// ---- options -----------------------------------------------------------------------------

// The entity tables and the queue are read by id (get) or loaded whole at start-up, and history
// by key as well as by range; the index and attempts tables are read by prefix, where a
// whole-key bloom filter never helps, and meta holds a handful of keys.
bool wants_bloom_filter(table t) noexcept {
  switch (t) {
    case table::index:
    case table::attempts:
    case table::meta:
      return false;
    default:
      return true;
  }
}

struct compression_choice {
  rocksdb::CompressionType levels = rocksdb::kNoCompression;
  rocksdb::CompressionType bottommost = rocksdb::kDisableCompressionOption;
};

// LZ4 on every level (cheap to write and read), if this librocksdb was built with it (Debian's
// is); otherwise Snappy or nothing.
compression_choice choose_compression() {
  const std::vector<rocksdb::CompressionType> supported = rocksdb::GetSupportedCompressions();
  auto has = [&](rocksdb::CompressionType c) {
    return std::find(supported.begin(), supported.end(), c) != supported.end();
  };
  compression_choice choice;
  if (has(rocksdb::kLZ4Compression)) {
    choice.levels = rocksdb::kLZ4Compression;
  } else if (has(rocksdb::kSnappyCompression)) {
    choice.levels = rocksdb::kSnappyCompression;
  }
  // LZ4 at the bottom too, not ZSTD: hookd reads every table whole at start-up, and ZSTD's
  // decompression was 15 % of loading 1 M webhooks; the records are small and the disk cost of
  // the weaker compression is worth a faster restart.
  choice.bottommost = choice.levels;
  return choice;
}

rocksdb::DBOptions make_db_options(const rocksdb_options& options) {
  rocksdb::DBOptions db;
  db.create_if_missing = options.create_if_missing;
  // A database made by an older hookd may lack a table added since; creating the family is the
  // migration. Existing families are always opened, so this never drops anything.
  db.create_missing_column_families = options.create_if_missing;
  // Default true already; stated because hookd relies on it: verify checksums and fail the open
  // (rather than skip files) when something on disk is inconsistent.
  db.paranoid_checks = true;
  // Default -1 (unbounded). hookd shares its fd budget with client sockets; 256 table files is
  // far more than a catalog of small values needs, and RocksDB closes the least recently used.
  db.max_open_files = 256;
  // Default 0 (derived from write buffers, i.e. unbounded in practice). With ten families, one
  // that is rarely written would pin old WAL files forever; at 64 MiB RocksDB flushes it instead.
  db.max_total_wal_size = 64u << 20;
  // Default 0 (no cap). The memtables of all families together stay under 64 MiB.
  db.db_write_buffer_size = 64u << 20;
  // Default 2. Stated so that it is clear hookd does not tune background work per core: the
  // write load is small values in fsync'd batches, and flush + compaction fit in two jobs.
  db.max_background_jobs = 2;
  // Default 1000 info LOG files and unbounded size. Keep the operator's data dir tidy.
  db.keep_log_file_num = 5;
  db.max_log_file_size = 16u << 20;
  // Default kPointInTimeRecovery, stated because the crash guarantee rests on it: recovery
  // replays the WAL up to the first torn record. Every acknowledged batch was fsync'd before
  // write() returned, so it lies before any torn tail and survives.
  db.wal_recovery_mode = rocksdb::WALRecoveryMode::kPointInTimeRecovery;
  // Default true. A memtable that is not a skip list (the queue's, see make_cf_options) cannot
  // take inserts from several writers at once, and RocksDB refuses to open it unless this is
  // off. hookd's writes come from a writer thread each for the catalog and the delivery log,
  // small batches whose memtable inserts are a fraction of a microsecond: the group's leader
  // applies them one after the other.
  db.allow_concurrent_memtable_write = false;
  return db;
}

// ---- memtable insert hints ------------------------------------------------------------------
// RocksDB can start a memtable insert where the previous insert of the same prefix went
// (memtable_insert_with_hint_prefix_extractor), which suits keys that grow with time. RocksDB 7.8
// keeps one map of those places per memtable for point keys and range tombstones alike, and a
// range tombstone whose start key has a hinted prefix is linked into the wrong skip list (fixed
// upstream in 2024, RocksDB PR 12558). So only keys of the exact shapes of point records get a
// hint, and write() refuses a range erase that starts at such a key (none of hookd's does: they
// start at "", at a bucket, a bucket + project, an attempt prefix or just after a key).

// History: the keys of one record (is_record_key: an event, an attempt, a finished delivery or
// its entry by webhook; not subject entries).
bool hinted_key(table t, std::string_view key) noexcept {
  return t == table::history && is_record_key(key);
}

class insert_hint_prefix final : public rocksdb::SliceTransform {
 public:
  const char* Name() const override { return "hookd.history_insert_hint.1"; }
  // One place per bucket, project and kind of record.
  rocksdb::Slice Transform(const rocksdb::Slice& key) const override {
    return {key.data(), kHistoryPrefixBytes + 1};
  }
  bool InDomain(const rocksdb::Slice& key) const override {
    return hinted_key(table::history, to_view(key));
  }
};

// A family's memtable size (write_buffer_size; see make_cf_options).
std::uint64_t memtable_bytes(std::optional<table> t) noexcept {
  return t == table::history ? 32u << 20 : 8u << 20;
}

// The history table differs from the others: it takes most of hookd's writes (every event,
// attempt and finished delivery), appended at the end of its key space (keys start with a
// big-endian time bucket); it is read a page at a time by range scans, newest first, and by
// point gets; and it is deleted a whole range of old buckets at a time, from its beginning. It
// grows to gigabytes where the other tables hold megabytes. The options below that mention it
// are chosen for that.
rocksdb::ColumnFamilyOptions make_cf_options(std::optional<table> t,
                                             const std::shared_ptr<rocksdb::Cache>& cache,
                                             const compression_choice& compression) {
  const bool history = t == table::history;
  rocksdb::ColumnFamilyOptions cf;
  // Default already; stated because hookd's reads are point gets and ordered scans, which level
  // compaction serves with the lowest read and space amplification.
  cf.compaction_style = rocksdb::kCompactionStyleLevel;
  // Default false. Sizes the levels from the bottom up, which keeps space amplification near
  // 1.1x while the database grows from nothing, as every hookd database does. For history it
  // also means that ~90 % of the data sits in the last level, in files of disjoint key ranges
  // that reclaim() can drop whole once a range delete covers them.
  cf.level_compaction_dynamic_level_bytes = true;
  // Default 64 MiB per family; a dozen families do not need 768 MiB of memtables, and
  // db_write_buffer_size above caps the total at 64 MiB anyway. 8 MiB suits the tables of small,
  // rarely written records. History gets half of the cap: it takes most of the writes, and a
  // larger memtable means fewer flushes and fewer level-0 files to merge for the same data.
  // When all memtables together reach the cap, RocksDB flushes the largest early.
  cf.write_buffer_size = memtable_bytes(t);
  // Default: a skip list (every insert finds its place in key order). The queue takes a put as
  // each delivery is accepted and an erase as it finishes, and is read only by the scan at
  // start-up (pending work lives in memory), so its memtable is an unsorted vector: an insert is
  // an append, and the sort is paid once, by the flush (on RocksDB's background thread) or by the
  // start-up scan. A point read of it would copy and sort the vector each time: hookd does none.
  // Measured with bench/cost.sh (bench/README.md, "The queue's memtable as a vector").
  if (t == table::queue) cf.memtable_factory = std::make_shared<rocksdb::VectorRepFactory>();
  if (history) {
    // Default: none (every insert searches the memtable's skip list from its top). The keys of
    // one bucket, project and kind of history record (event, attempt, finished delivery...) grow
    // with time, so each insert lands just after the previous one of its kind: RocksDB keeps the
    // place of the last insert per prefix (bucket + project + kind) and starts the next there.
    // Inserts only: reads do not use it. Measured with bench/cost.sh (bench/README.md, "The
    // memtable's insert hints"): a memtable insert from ~8 000 instructions to ~3 800.
    // Only keys of the point records' shapes (hinted_key above: RocksDB 7.8 mixes up range
    // tombstones that share a hinted prefix).
    cf.memtable_insert_with_hint_prefix_extractor = std::make_shared<insert_hint_prefix>();
    // Default: off (files are compacted only when their level overflows). Every history file is
    // rewritten at least once a day, so that records deleted one by one (an erased subject) leave
    // the disk within a day even where no new data overlaps their file (docs/delivery.md,
    // "Erasing a subject"). Retention drops whole files and ranges and does not rely on this.
    cf.periodic_compaction_seconds = 24 * 3600;
  }
  // LZ4 for history too, although it is not loaded whole at start-up: ZSTD at the last level
  // would save disk, but would cost CPU on every compaction of the table that takes most
  // writes, on hosts where hookd shares two cores. Measure before changing it.
  cf.compression = compression.levels;
  cf.bottommost_compression = compression.bottommost;

  rocksdb::BlockBasedTableOptions table_options;
  // One cache for all families (default: 8 MiB per family), so memory is bounded by one knob.
  table_options.block_cache = cache;
  // Index and filter blocks count against that cache instead of growing outside it...
  table_options.cache_index_and_filter_blocks = true;
  // ...but the ones of level-0 files stay pinned, as those files are read on every lookup.
  table_options.pin_l0_filter_and_index_blocks_in_cache = true;
  if (t && wants_bloom_filter(*t)) {
    // Default: no filter. Ten bits per key give ~1% false positives, so a lookup of a missing
    // id (a 404) rarely reads a data block. A whole-key filter: history's range scans do not
    // consult it, its point gets skip every file but the one that holds the key.
    table_options.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  }
  if (history) {
    // Default 4 KiB. A page of a range scan reads neighbouring records, so larger blocks mean
    // fewer reads per page and better compression of the payloads, and a quarter of the index
    // entries; a point get reads 16 KiB instead of 4, which costs an SSD about the same time.
    table_options.block_size = 16u << 10;
    // Default: one index block and one filter block per file, read whole. A 64 MiB history
    // file's filter and index are hundreds of KiB each; in the shared 32 MiB cache they would
    // evict the other tables' blocks and each other. Partitioned, a lookup reads only the
    // 4 KiB partitions it needs, and only the small top-level blocks stay pinned (the
    // pin_top_level_index_and_filter default).
    table_options.index_type = rocksdb::BlockBasedTableOptions::kTwoLevelIndexSearch;
    table_options.partition_filters = true;
  }
  cf.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table_options));
  return cf;
}

constexpr std::array<table, kTableCount> kAllTables = {
    table::meta,     table::organizations, table::projects, table::tokens,
    table::webhooks, table::index,         table::events,   table::deliveries,
    table::attempts, table::idempotency,   table::queue,    table::history,
};

// A table added to the enum but not here would leave a zero (table::meta) in its slot and open
// "meta" twice.
static_assert(
    [] {
      for (std::size_t i = 0; i < kAllTables.size(); ++i) {
        if (static_cast<std::size_t>(kAllTables[i]) != i) return false;
      }
      return true;
    }(),
    "kAllTables lists every table once, in enum order");

std::optional<table> table_of(std::string_view cf_name) noexcept {
  for (table t : kAllTables) {
    if (table_name(t) == cf_name) return t;
  }
  return std::nullopt;
}

// Smallest key greater than every key that starts with `prefix`; empty when there is none
// (the prefix is empty or all 0xff).
std::string prefix_successor(std::string_view prefix) {
  std::string next(prefix);
  while (!next.empty()) {
    auto& last = reinterpret_cast<unsigned char&>(next.back());
    if (last != 0xff) {
      ++last;
      return next;
    }
    next.pop_back();
  }
  return next;
}

// ---- the storage -------------------------------------------------------------------------

// Thread safety: every member from any thread, concurrently (rocksdb::DB is thread-safe and
// groups concurrent writes itself; the counters are atomics).
class rocksdb_storage final : public storage {
 public:
  rocksdb_storage(std::string path, rocksdb::DB* db,
                  std::vector<rocksdb::ColumnFamilyHandle*> all_handles,
                  std::array<rocksdb::ColumnFamilyHandle*, kTableCount> tables, bool sync,
                  std::shared_ptr<health_tracker> health,
                  std::chrono::steady_clock::duration background_bound)
      : path_(std::move(path)),
        db_(db),
        all_handles_(std::move(all_handles)),
        tables_(tables),
        sync_(sync),
        health_(std::move(health)),
        background_bound_(background_bound) {}

  rocksdb_storage(const rocksdb_storage&) = delete;
  rocksdb_storage& operator=(const rocksdb_storage&) = delete;

  ~rocksdb_storage() override {
    // A clean stop writes the memtables out, so that the next start opens without replaying the
    // WAL into them first (up to max_total_wal_size of writes, about half a second per 64 MiB).
    // Not needed for durability: the WAL holds all of it.
    const normal_priority_scope not_idle;
    rocksdb::FlushOptions flush;
    flush.wait = true;
    if (rocksdb::Status s = db_->Flush(flush, all_handles_); !s.ok()) {
      std::fprintf(stderr, "hookd: flushing the memtables of %s on close failed: %s\n",
                   path_.c_str(), s.ToString().c_str());
    }
    // With sync on, every acknowledged batch is on disk already; with sync off (benchmarks
    // only) this is what makes a clean shutdown durable. Close() itself does not fsync the WAL.
    if (rocksdb::Status s = db_->FlushWAL(/*sync=*/true); !s.ok()) {
      std::fprintf(stderr, "hookd: flushing the WAL of %s on close failed: %s\n", path_.c_str(),
                   s.ToString().c_str());
    }
    for (rocksdb::ColumnFamilyHandle* handle : all_handles_) {
      (void)db_->DestroyColumnFamilyHandle(handle);
    }
    if (rocksdb::Status s = db_->Close(); !s.ok()) {
      std::fprintf(stderr, "hookd: closing the database at %s failed: %s\n", path_.c_str(),
                   s.ToString().c_str());
    }
    delete db_;
  }

  result<void> write(const write_batch& batch) override {
    if (batch.empty()) return {};  // nothing to make durable; not counted as a batch
    // The batch's bytes reserved at once (RocksDB's record: a tag, the family, two varint
    // lengths; 12 bytes of header), instead of its buffer growing by doubling as ops are added.
    std::size_t reserve = 12;
    for (const write_batch::op& op : batch.ops) {
      reserve += 16 + op.key.size() + (op.value ? op.value->size() : 0) +
                 (op.range_end ? op.range_end->size() : 0);
    }
    rocksdb::WriteBatch wb(reserve);
    for (const write_batch::op& op : batch.ops) {
      rocksdb::ColumnFamilyHandle* cf = handle(op.where);
      if (cf == nullptr) {
        failures_.fetch_add(1, std::memory_order_relaxed);
        return make_problem(error_kind::internal, "write batch names an unknown table (" +
                                                      std::to_string(static_cast<int>(op.where)) +
                                                      "); nothing was written");
      }
      if (op.range_end && hinted_key(op.where, op.key)) {
        // See hinted_key: RocksDB would link the tombstone into the wrong skip list.
        failures_.fetch_add(1, std::memory_order_relaxed);
        return make_problem(error_kind::internal, "write batch erases a range of table " +
                                                      std::string(table_name(op.where)) +
                                                      " from a key of a record's shape, which "
                                                      "the memtable's insert hints cannot take; "
                                                      "nothing was written");
      }
      if (op.range_end && op.key > *op.range_end) {
        // RocksDB would refuse it too, but only while applying the batch to the memtable, after
        // the WAL holds it. An empty range (begin == end) deletes nothing and passes.
        failures_.fetch_add(1, std::memory_order_relaxed);
        return make_problem(error_kind::internal, "write batch erases a range of table " +
                                                      std::string(table_name(op.where)) +
                                                      " whose end comes before its beginning; "
                                                      "nothing was written");
      }
      rocksdb::Status s = op.range_end
                              ? wb.DeleteRange(cf, to_slice(op.key), to_slice(*op.range_end))
                          : op.value ? wb.Put(cf, to_slice(op.key), to_slice(*op.value))
                                     : wb.Delete(cf, to_slice(op.key));
      if (!s.ok()) {
        failures_.fetch_add(1, std::memory_order_relaxed);
        return write_problem(s);
      }
    }
    background_priority& background = background_priority::instance();
    background.check(background_bound_);
    if (background.lowered_job_running()) check_memtables(background);
    rocksdb::WriteOptions wo;
    wo.sync = sync_;
    if (rocksdb::Status s = db_->Write(wo, &wb); !s.ok()) {
      failures_.fetch_add(1, std::memory_order_relaxed);
      health_->failed("a write failed: " + s.ToString());
      return write_problem(s);
    }
    health_->recovered("a write succeeded");
    batches_.fetch_add(1, std::memory_order_relaxed);
    records_.fetch_add(batch.ops.size(), std::memory_order_relaxed);
    if (sync_) syncs_.fetch_add(1, std::memory_order_relaxed);
    return {};
  }

  result<void> scan(table t, std::string_view prefix, const scan_visitor& visit) const override {
    rocksdb::ColumnFamilyHandle* cf = handle(t);
    if (cf == nullptr) return unknown_table(t);
    rocksdb::ReadOptions ro;
    // Scans are the start-up load: they read everything once, whole tables and the index's
    // prefixes alike, and caching what they read would only evict the blocks that later point
    // reads and range scans want.
    ro.fill_cache = false;
    // Stop the iterator at the end of the prefix instead of letting it step over whatever
    // (tombstones included) follows; the starts_with check below stays as the definition.
    const std::string upper = prefix_successor(prefix);
    rocksdb::Slice upper_slice(upper);
    if (!upper.empty()) ro.iterate_upper_bound = &upper_slice;

    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, cf));
    for (it->Seek(to_slice(prefix)); it->Valid(); it->Next()) {
      const std::string_view key = to_view(it->key());
      if (!key.starts_with(prefix)) break;
      if (!visit(key, to_view(it->value()))) break;
    }
    if (rocksdb::Status s = it->status(); !s.ok()) return read_problem(t, s);
    return {};
  }

  result<void> scan_range(table t, std::string_view lower, std::string_view upper, scan_order order,
                          const scan_visitor& visit) const override {
    rocksdb::ColumnFamilyHandle* cf = handle(t);
    if (cf == nullptr) return unknown_table(t);
    if (!upper.empty() && lower >= upper) return {};  // an empty range
    rocksdb::ReadOptions ro;
    // Default already; stated because these are request-time reads (a page of history), whose
    // blocks the next page or a get of the same records is likely to want again.
    ro.fill_cache = true;
    // The iterator itself stops at the bounds, in either direction, without stepping over
    // whatever (tombstones of a range delete included) lies beyond them.
    const rocksdb::Slice lower_slice = to_slice(lower);
    const rocksdb::Slice upper_slice = to_slice(upper);
    ro.iterate_lower_bound = &lower_slice;
    if (!upper.empty()) ro.iterate_upper_bound = &upper_slice;

    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, cf));
    if (order == scan_order::ascending) {
      for (it->Seek(lower_slice); it->Valid(); it->Next()) {
        if (!visit(to_view(it->key()), to_view(it->value()))) break;
      }
    } else {
      // With an upper bound, SeekToLast() lands on the last key below it.
      for (it->SeekToLast(); it->Valid(); it->Prev()) {
        if (!visit(to_view(it->key()), to_view(it->value()))) break;
      }
    }
    if (rocksdb::Status s = it->status(); !s.ok()) return read_problem(t, s);
    return {};
  }

  result<std::optional<std::string>> get(table t, std::string_view key) const override {
    rocksdb::ColumnFamilyHandle* cf = handle(t);
    if (cf == nullptr) return unknown_table(t);
    std::string value;
    rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), cf, to_slice(key), &value);
    if (s.IsNotFound()) return std::optional<std::string>();
    if (!s.ok()) return read_problem(t, s);
    return std::optional<std::string>(std::move(value));
  }

  // Runs `job`, a flush or a compaction that RocksDB's threads do while the caller waits, on a
  // thread of its own while this one looks every 10 ms whether stopped(): from then on RocksDB's
  // threads run at normal priority until it returns, since a job under the idle policy on a busy
  // core would be slow to finish (a flush) or to notice that it is cancelled (a compaction).
  // (Reclaims are rare: a thread each costs nothing worth saving.)
  template <typename Job, typename Stopped>
  static rocksdb::Status hurried_on_stop(Job job, const Stopped& stopped) {
    auto done = std::async(std::launch::async, std::move(job));
    std::optional<normal_priority_scope> hurry;
    while (done.wait_for(std::chrono::milliseconds(10)) != std::future_status::ready) {
      if (!hurry && stopped()) hurry.emplace();
    }
    return done.get();
  }

  result<void> compact(table t) override {
    rocksdb::ColumnFamilyHandle* cf = handle(t);
    if (cf == nullptr) return unknown_table(t);
    // The memtable first (its flush keeps only the newest version of each key, and lets the WAL
    // files that hold older ones go), then every level down to the last, rewritten even where
    // nothing overlaps, so that no file keeps an overwritten value.
    const normal_priority_scope not_idle;
    rocksdb::FlushOptions flush;
    flush.wait = true;
    rocksdb::Status s = db_->Flush(flush, cf);
    if (s.ok()) {
      rocksdb::CompactRangeOptions range;
      range.bottommost_level_compaction = rocksdb::BottommostLevelCompaction::kForce;
      s = db_->CompactRange(range, cf, nullptr, nullptr);
    }
    if (!s.ok()) {
      return make_problem(error_kind::storage_failure,
                          "compacting table " + std::string(table_name(t)) +
                              " failed (RocksDB: " + s.ToString() + ")");
    }
    return {};
  }

  result<void> reclaim(table t, std::string_view begin, std::string_view end,
                       std::atomic<bool>* stop) override {
    rocksdb::ColumnFamilyHandle* cf = handle(t);
    if (cf == nullptr) return unknown_table(t);
    if (begin >= end) return {};  // an empty range holds nothing
    const auto stopped = [stop] {
      return stop != nullptr && stop->load();
    };
    const rocksdb::Slice begin_slice = to_slice(begin);
    const rocksdb::Slice end_slice = to_slice(end);
    // First the files that lie wholly inside [begin, end), dropped without being read: for a
    // range of history that is most of it. DeleteFilesInRange drops them whatever they hold
    // (keys written into the range after the erase too), which is why the contract requires
    // the range erased first: that tombstone, written after everything it covers, keeps the
    // older versions in files that are not dropped from resurfacing; and the tombstone is never
    // in a dropped file, as the file that holds it reaches `end` (or beyond), which
    // include_end = false leaves alone. Level-0 files and files being compacted are skipped
    // (the compaction below takes them).
    rocksdb::Status s = rocksdb::DeleteFilesInRange(db_, cf, &begin_slice, &end_slice,
                                                    /*include_end=*/false);
    if (s.ok()) {
      // The memtable first (the range's tombstone is in it), by a flush of our own rather than
      // CompactRange's, so that a stop can hurry it.
      s = hurried_on_stop([this, cf] { return db_->Flush(rocksdb::FlushOptions(), cf); }, stopped);
      if (s.ok() && stopped()) return {};
    }
    if (s.ok()) {
      // Then the rest: the memtable if written into the range since (CompactRange flushes it), the
      // level-0 files, and the files that straddle `begin` or `end`, compacted level by level
      // down to the last. The tombstone lies above every key it covers, so on its way down it
      // meets them all and the compaction drops them, and at the last level the tombstone
      // itself. Rewriting the last level's files again (kForce, as compact() does) would only
      // copy their live keys once more, so the default, which skips that, is enough.
      rocksdb::CompactRangeOptions range;
      range.bottommost_level_compaction =
          rocksdb::BottommostLevelCompaction::kIfHaveCompactionFilter;
      range.canceled = stop;  // read only: DisableManualCompaction, which writes it, is not used
      s = hurried_on_stop([&] { return db_->CompactRange(range, cf, &begin_slice, &end_slice); },
                          stopped);
      if (s.IsManualCompactionPaused() && stopped()) return {};
    }
    if (!s.ok()) {
      return make_problem(error_kind::storage_failure,
                          "reclaiming space in table " + std::string(table_name(t)) +
                              " failed (RocksDB: " + s.ToString() + ")");
    }
    return {};
  }

  // bytes: the table files of the current version ("live-sst-files-size": what the table
  // occupies on disk now, deleted and overwritten records included until a compaction drops
  // them) plus the active and unflushed memtables ("cur-size-all-mem-tables": their memory,
  // uncompressed, with the skiplist's overhead; never zero, even for an empty table). Not
  // counted: the WAL, which all tables share (up to max_total_wal_size), and files that only an
  // open iterator still holds. keys: "rocksdb.estimate-num-keys", entries minus twice the point
  // deletes, from the memtables and the files' properties (sampled in large tables); it counts
  // an overwritten key once per version and every key a range delete covers until a compaction
  // drops them (reclaim() does), and it undercounts after deletes of absent keys.
  table_size size(table t) const override {
    rocksdb::ColumnFamilyHandle* cf = handle(t);
    if (cf == nullptr) return {};
    std::uint64_t files = 0, memtables = 0, keys = 0;
    // GetIntProperty fails only for a property it does not know, and leaves 0 then.
    (void)db_->GetIntProperty(cf, rocksdb::DB::Properties::kLiveSstFilesSize, &files);
    (void)db_->GetIntProperty(cf, rocksdb::DB::Properties::kCurSizeAllMemTables, &memtables);
    (void)db_->GetIntProperty(cf, rocksdb::DB::Properties::kEstimateNumKeys, &keys);
    return {files + memtables, keys};
  }

  storage_stats stats() const override {
    storage_stats out;
    out.batches = batches_.load(std::memory_order_relaxed);
    out.records = records_.load(std::memory_order_relaxed);
    out.syncs = syncs_.load(std::memory_order_relaxed);
    out.failures = failures_.load(std::memory_order_relaxed);
    out.degraded = health_->degraded();
    out.degraded_episodes = health_->episodes();
    const background_priority::counters background = background_priority::instance().stats();
    out.background_idle_jobs = background.idle_jobs;
    out.background_raised_waited = background.raised_waited;
    out.background_raised_stalled = background.raised_stalled;
    out.background_raised_filling = background.raised_filling;
    return out;
  }

  // RocksDB's Checkpoint, which makes the copy consistent: it stops the deletion of obsolete
  // files, flushes every memtable (log_size_for_flush 0: always), syncs the WAL, then takes the
  // list of live files, hard-links the table files (copies them when `dir` is on another file
  // system), copies the MANIFEST and the live WAL files up to their length at that moment, and
  // renames its staging directory to `dir`. A write that returned before the call was fsync'd to
  // the WAL, so it is in a flushed table file or in the copied WAL; a write running meanwhile is
  // in the copied WAL whole or not at all, as opening the copy replays only whole batches.
  result<checkpoint_result> checkpoint(const std::string& dir) override {
    const normal_priority_scope not_idle;  // its flush
    rocksdb::Checkpoint* raw = nullptr;
    rocksdb::Status s = rocksdb::Checkpoint::Create(db_, &raw);
    const std::unique_ptr<rocksdb::Checkpoint> maker(raw);
    checkpoint_result out;
    if (s.ok()) s = maker->CreateCheckpoint(dir, /*log_size_for_flush=*/0, &out.sequence);
    if (!s.ok()) {
      return make_problem(error_kind::storage_failure,
                          "writing a checkpoint of " + path_ + " to " + dir +
                              " failed (RocksDB: " + s.ToString() + ")");
    }
    // Checkpoint links where it can and falls back to copies across file systems.
    struct stat from {
    }, to{};
    out.linked = ::stat(path_.c_str(), &from) == 0 && ::stat(dir.c_str(), &to) == 0 &&
                 from.st_dev == to.st_dev;
    return out;
  }

 private:
  // A family whose memtable is half full while the one before it still waits for its flush
  // would have RocksDB stop writes once this one is full too (two memtables per family, its
  // default): that flush must not wait any longer under the idle policy (docs/operations.md,
  // "RocksDB's background work"). Looked at every 50 ms at most, while a lowered job runs.
  void check_memtables(background_priority& background) {
    const std::int64_t now = std::chrono::steady_clock::now().time_since_epoch().count();
    std::int64_t due = next_memtable_check_.load(std::memory_order_relaxed);
    if (now < due) return;
    const std::int64_t next =
        now + std::chrono::steady_clock::duration(std::chrono::milliseconds(50)).count();
    if (!next_memtable_check_.compare_exchange_strong(due, next, std::memory_order_relaxed)) {
      return;  // another writer is looking
    }
    for (table t : kAllTables) {
      rocksdb::ColumnFamilyHandle* cf = handle(t);
      std::uint64_t waiting = 0, active = 0;
      if (cf == nullptr ||
          !db_->GetIntProperty(cf, rocksdb::DB::Properties::kNumImmutableMemTable, &waiting) ||
          waiting == 0) {
        continue;
      }
      (void)db_->GetIntProperty(cf, rocksdb::DB::Properties::kCurSizeActiveMemTable, &active);
      if (active * 2 >= memtable_bytes(t)) {
        background.raise_filling();
        return;
      }
    }
  }

  rocksdb::ColumnFamilyHandle* handle(table t) const noexcept {
    const auto i = static_cast<std::size_t>(t);
    return i < tables_.size() ? tables_[i] : nullptr;
  }
  static problem unknown_table(table t) {
    return make_problem(error_kind::internal,
                        "unknown table " + std::to_string(static_cast<int>(t)));
  }
  static problem read_problem(table t, const rocksdb::Status& s) {
    return make_problem(error_kind::storage_failure, "reading table " + std::string(table_name(t)) +
                                                         " failed (RocksDB: " + s.ToString() + ")");
  }

  std::string path_;
  rocksdb::DB* db_;  // owned; closed and deleted by the destructor after the handles
  std::vector<rocksdb::ColumnFamilyHandle*> all_handles_;  // every family opened, "default" too
  std::array<rocksdb::ColumnFamilyHandle*, kTableCount> tables_;  // indexed by table
  bool sync_;
  std::shared_ptr<health_tracker> health_;  // shared with the listener RocksDB holds
  std::chrono::steady_clock::duration background_bound_;
  std::atomic<std::int64_t> next_memtable_check_{0};  // steady_clock ticks; see check_memtables
  std::atomic<std::uint64_t> batches_{0}, records_{0}, syncs_{0}, failures_{0};
};

}  // namespace

result<std::unique_ptr<storage>> open_rocksdb_storage(const std::string& path,
                                                      const rocksdb_options& options) {
  if (result<void> made = make_private_dir(path, options.create_if_missing); !made) {
    return made.error();
  }
  result<disk_state> disk = inspect(path);
  if (!disk) return disk.error();
  if (!disk->has_current && disk->orphan_count > 0) {
    // RocksDB would create a fresh database here and delete the orphans as obsolete files.
    return corrupt_problem(path, "CURRENT is missing but " + std::to_string(disk->orphan_count) +
                                     " data file(s) remain, e.g. " + disk->orphan_data_file);
  }
  const bool existing = disk->has_current;

  rocksdb::DBOptions db_options = make_db_options(options);
  auto health = std::make_shared<health_tracker>(options.on_health_change);
  db_options.listeners.push_back(std::make_shared<health_listener>(health));
  db_options.listeners.push_back(std::make_shared<background_listener>(options.background));

  std::vector<std::string> names;
  if (existing) {
    rocksdb::Status s = rocksdb::DB::ListColumnFamilies(db_options, path, &names);
    if (!s.ok()) return open_problem(path, s, existing);
  }
  // Every table's family, then whatever else is on disk (RocksDB refuses an open that leaves a
  // family out, and a newer hookd may have added one this build does not know).
  std::vector<std::string> wanted{std::string(rocksdb::kDefaultColumnFamilyName)};
  for (table t : kAllTables) wanted.emplace_back(table_name(t));
  for (std::string& name : names) {
    if (std::find(wanted.begin(), wanted.end(), name) == wanted.end()) {
      wanted.push_back(std::move(name));
    }
  }

  // 32 MiB for the whole database: a catalog of small values fits many times over.
  const std::shared_ptr<rocksdb::Cache> cache = rocksdb::NewLRUCache(32u << 20);
  const compression_choice compression = choose_compression();
  std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
  descriptors.reserve(wanted.size());
  for (const std::string& name : wanted) {
    descriptors.emplace_back(name, make_cf_options(table_of(name), cache, compression));
  }

  rocksdb::DB* raw = nullptr;
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::Status s = rocksdb::DB::Open(db_options, path, descriptors, &handles, &raw);
  if (!s.ok()) {
    delete raw;  // null on failure; harmless
    return open_problem(path, s, existing);
  }

  std::array<rocksdb::ColumnFamilyHandle*, kTableCount> tables{};
  for (rocksdb::ColumnFamilyHandle* h : handles) {
    if (std::optional<table> t = table_of(h->GetName())) {
      tables[static_cast<std::size_t>(*t)] = h;
    }
  }
  return std::unique_ptr<storage>(
      std::make_unique<rocksdb_storage>(path, raw, std::move(handles), tables, options.sync,
                                        std::move(health), options.background_bound));
}

}  // namespace hookd
