#pragma once
// Online backup: a copy of a running hookd's data dir that hookd can start from
// (docs/operations.md, "Backup and restore").

#include "core/common/error.hpp"
#include "core/durable/backup.hpp"
#include "core/durable/storage.hpp"

#include <filesystem>

namespace hookd {

// Writes a new data dir at `target`: the store's checkpoint in <target>/db, and <target>/master.key
// and <target>/admin-token copied from `data_dir` where they exist there (the key only when
// `master_key_in_file`: with HOOKD_MASTER_KEY set, <data-dir>/master.key is not the key in use).
// `target` must be an absolute path that does not exist (a conflict otherwise) in an existing
// directory (validation otherwise, naming the field "directory"); it is created 0700 and everything
// in it is made private (directories 0700, files 0600). On failure nothing is left at `target`.
//
// Blocking (see storage::checkpoint); `store` keeps serving reads and writes meanwhile. Thread
// safety: any thread; backups taken at once each get a whole copy.
result<backup_report> take_backup(storage& store, const std::filesystem::path& data_dir,
                                  const std::filesystem::path& target, bool master_key_in_file);

}  // namespace hookd
