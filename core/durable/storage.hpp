#pragma once
// The storage interface the catalog and the delivery log write through. It is a dumb, durable,
// ordered key-value store with tables; they own the encoding of keys and values. storage/
// implements it on RocksDB (one column family per table); tests/support/memory_storage.hpp in
// memory.

#include "core/common/error.hpp"

#include <atomic>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace hookd {

enum class table : std::uint8_t {
  meta,           // key: name (e.g. "schema_version") -> value
  organizations,  // key: id (12 raw bytes) -> encoded organization
  projects,       // key: id -> encoded project
  tokens,         // key: id -> encoded token (digest only)
  webhooks,       // key: id -> encoded webhook (secret sealed with AES-256-GCM)
  index,          // secondary index entries, prefixed keys (e.g. "ps" + org + slug -> project id)
  events,         // before the history layout: key: id -> encoded event (read once, to migrate)
  deliveries,     // before the history layout: key: id -> encoded delivery (likewise)
  attempts,       // before the history layout: delivery id + attempt number (likewise)
  idempotency,    // key: token id + key -> encoded first answer
  queue,          // pending deliveries: key: delivery id -> encoded delivery (see delivery/)
  history,        // events, attempts and finished deliveries, keyed by time bucket and project
};
inline constexpr std::size_t kTableCount = 12;
std::string_view table_name(table t) noexcept;  // the column family name, e.g. "webhooks"

// One logical change: every put and delete in it becomes durable together, or none does.
struct write_batch {
  struct op {
    table where;
    std::string key;
    std::optional<std::string> value;      // nullopt deletes `key` (or, with range_end, the range)
    std::optional<std::string> range_end;  // engaged: deletes every key in [key, range_end)
  };
  std::vector<op> ops;

  void put(table t, std::string key, std::string value) {
    ops.push_back({t, std::move(key), std::move(value), std::nullopt});
  }
  void erase(table t, std::string key) {
    ops.push_back({t, std::move(key), std::nullopt, std::nullopt});
  }
  // Deletes every key k with begin <= k < end, whatever is stored there, at the cost of one
  // record (a range tombstone), not one per key. begin < end.
  void erase_range(table t, std::string begin, std::string end) {
    ops.push_back({t, std::move(begin), std::nullopt, std::move(end)});
  }
  bool empty() const noexcept { return ops.empty(); }
  void clear() noexcept { ops.clear(); }
};

struct storage_stats {
  std::uint64_t batches = 0;  // write() calls that succeeded
  std::uint64_t records = 0;  // puts and deletes inside them
  std::uint64_t syncs = 0;    // fsyncs performed (one per batch unless sync is off)
  std::uint64_t failures = 0;
  // Writes are failing (a full disk, an I/O error) and have not succeeded since; reads still
  // work. Cleared once the store has recovered (docs/operations.md, "Storage faults").
  bool degraded = false;
  std::uint64_t degraded_episodes = 0;  // times the store went from healthy to degraded
  // RocksDB's background jobs (docs/operations.md, "RocksDB's background work"), counted for the
  // whole process: begun under the idle policy; its threads put back to normal because a job
  // ran longer than the bound, because writes stalled, or because a memtable filled halfway
  // while the one before it waited for its flush. Zero for stores without such jobs.
  std::uint64_t background_idle_jobs = 0;
  std::uint64_t background_raised_waited = 0;
  std::uint64_t background_raised_stalled = 0;
  std::uint64_t background_raised_filling = 0;
};

// What checkpoint() wrote.
struct checkpoint_result {
  std::uint64_t sequence = 0;  // the store's sequence number the copy holds everything up to
  bool linked = false;         // the table files are hard links (same file system), not copies
};

// What one table holds, as the store estimates it cheaply (no scan).
struct table_size {
  std::uint64_t bytes = 0;  // on disk and in memory buffers, compressed where the store compresses
  std::uint64_t keys = 0;   // live keys, estimated
};

enum class scan_order : std::uint8_t { ascending, descending };

using scan_visitor = std::function<bool(std::string_view key, std::string_view value)>;

// Thread safety: write(), scan*(), get() and the rest may run concurrently from several threads
// (the catalog and the delivery log each have a writer thread; RocksDB groups their synced writes
// itself; history reads run on a reader pool). Implementations must make a successful write()
// durable (fsync'd) before returning.
class storage {
 public:
  virtual ~storage() = default;
  virtual result<void> write(const write_batch& batch) = 0;
  // Visits every record of `t` in key order (optionally only keys starting with `prefix`) until
  // the visitor returns false. Start-up loading: what it reads is not kept in any cache.
  virtual result<void> scan(table t, std::string_view prefix, const scan_visitor& visit) const = 0;
  // Visits the records with lower <= key < upper (an empty `upper`: to the end of the table) in
  // `order` until the visitor returns false: one seek, then one step per record, so a page of n
  // costs n reads whatever the table holds. For request-time reads: what it reads is cached like
  // point reads.
  virtual result<void> scan_range(table t, std::string_view lower, std::string_view upper,
                                  scan_order order, const scan_visitor& visit) const = 0;
  virtual result<std::optional<std::string>> get(table t, std::string_view key) const = 0;
  virtual storage_stats stats() const = 0;
  virtual table_size size(table t) const = 0;
  // Rewrites the table's files so that overwritten and deleted values leave the disk (after a
  // migration that sealed what was stored in plain text). Blocking; start-up only. The default
  // does nothing, for stores that keep no old versions.
  virtual result<void> compact(table t) {
    (void)t;
    return {};
  }
  // Frees now, rather than at some later compaction, the disk space of [begin, end) of `t`,
  // whose keys a committed erase_range deleted: files wholly inside the range are dropped and
  // the rest of it is compacted. Blocking and slow (seconds, minutes for a large range on a busy
  // machine): never on a request's path. Once `*stop` (when given) is true, it ends soon and
  // returns success with part of the space still held: the keys are deleted already, and what
  // is left is freed by a later reclaim or the store's own compactions; a stop sets it rather
  // than wait. The default does nothing, for stores that hold nothing on disk.
  virtual result<void> reclaim(table t, std::string_view begin, std::string_view end,
                               std::atomic<bool>* stop) {
    (void)t;
    (void)begin;
    (void)end;
    (void)stop;
    return {};
  }
  // Writes a consistent copy of the whole store into `dir` (an absolute path that must not
  // exist; its parent must), which a store can be opened from. It holds every write that
  // returned before the call and, of the writes running meanwhile, each whole or not at all.
  // Writes go on meanwhile. Blocking (a flush, then links or copies): never on an I/O thread.
  // The default refuses, for stores that keep nothing on disk.
  virtual result<checkpoint_result> checkpoint(const std::string& dir) {
    (void)dir;
    return make_problem(error_kind::internal, "this store cannot write a checkpoint");
  }
};

}  // namespace hookd
