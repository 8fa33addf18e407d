#pragma once
// hookd's storage on RocksDB: one column family per core table, every write a WriteBatch with
// sync=true, so that a successful write() has been fsync'd. RocksDB appears only in the .cpp.

#include "core/common/error.hpp"
#include "core/durable/storage.hpp"
#include "storage/background_priority.hpp"

#include <chrono>
#include <functional>
#include <memory>
#include <string>

namespace hookd {

// A change of whether writes work (docs/operations.md, "Storage faults").
struct storage_health_change {
  bool degraded = false;  // true: writes started failing; false: they work again
  // What happened, in RocksDB's words: it names database files, so it is for the log only.
  std::string detail;
  std::chrono::milliseconds degraded_for{0};  // on recovery: how long writes were failing
};

struct rocksdb_options {
  // fsync every batch before write() returns. Off only for the benchmark that measures what
  // fsync costs; never in production (an acknowledged write could be lost on power failure).
  bool sync = true;
  // Create the database (and missing column families) when the directory is empty.
  bool create_if_missing = true;
  // Called once per transition between healthy and degraded, in order, from the thread that saw
  // it (a writer, or one of RocksDB's background threads): it must be thread-safe and must not
  // call back into the storage. Empty: nobody is told (stats().degraded still says).
  std::function<void(const storage_health_change&)> on_health_change;
  // RocksDB's flush and compaction threads: under SCHED_IDLE while they work, when this process
  // may take that back, or as any thread (docs/operations.md, "RocksDB's background work").
  background_policy background = background_policy::idle;
  // How long a job may run lowered before the next write puts the lowered threads back. 2 s: a
  // flush of history's 32 MiB memtable took 1.7 s lowered beside 8 000 events/s on one core,
  // while that memtable takes several seconds to fill again (bench/README.md).
  std::chrono::milliseconds background_bound{2000};
};

// Opens the database in `path` (e.g. "<data-dir>/db"), a private directory: created 0700, made
// 0700 when found with group or other bits. Fails, with a detail that says what to do,
// when another process holds the directory's LOCK, when the files are corrupt or unreadable, or
// when the directory is not writable; never opens an empty database over unreadable files.
//
// Faults: a failed write (a full disk, an I/O error) puts the store in a degraded state
// (stats().degraded) until a write succeeds again or RocksDB reports that it recovered. RocksDB
// stops writes after a failed WAL write or flush and, when the cause was a full disk, resumes
// them by itself once space is free again (it checks every few seconds); reads work throughout.
result<std::unique_ptr<storage>> open_rocksdb_storage(const std::string& path,
                                                      const rocksdb_options& options = {});

}  // namespace hookd
