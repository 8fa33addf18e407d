#pragma once
// hookd's storage on RocksDB: one column family per core table, every write a WriteBatch with
// sync=true, so that a successful write() has been fsync'd. RocksDB appears only in the .cpp.

#include "core/common/error.hpp"
#include "core/durable/storage.hpp"

#include <memory>
#include <string>

namespace hookd {

struct rocksdb_options {
  // fsync every batch before write() returns. Off only for the benchmark that measures what
  // fsync costs; never in production (an acknowledged write could be lost on power failure).
  bool sync = true;
  // Create the database (and missing column families) when the directory is empty.
  bool create_if_missing = true;
};

// Opens the database in `path` (e.g. "<data-dir>/db"), a private directory: created 0700, made
// 0700 when found with group or other bits. Fails, with a detail that says what to do,
// when another process holds the directory's LOCK, when the files are corrupt or unreadable, or
// when the directory is not writable; never opens an empty database over unreadable files.
result<std::unique_ptr<storage>> open_rocksdb_storage(const std::string& path,
                                                      const rocksdb_options& options = {});

}  // namespace hookd
