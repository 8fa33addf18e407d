#pragma once
// What an online backup wrote (docs/operations.md, "Backup and restore"). storage/backup.hpp
// takes it; the HTTP layer reports it.

#include "core/common/error.hpp"

#include <boost/json/value.hpp>

#include <chrono>
#include <cstdint>
#include <string>

namespace hookd {

struct backup_report {
  std::string directory;       // the new data dir, absolute
  std::uint64_t sequence = 0;  // the store's sequence number the copy holds everything up to
  std::uint64_t bytes = 0;     // of every file written, links counted at their full size
  std::uint64_t files = 0;
  bool linked = false;  // the table files are hard links to the live ones (same file system)
  // "file": <data-dir>/master.key was copied; "environment": the key came from
  // HOOKD_MASTER_KEY and is not in the copy (whoever starts from it must set it too).
  std::string master_key;
  bool admin_token_file = false;  // <data-dir>/admin-token existed and was copied
  std::chrono::milliseconds duration{0};
};

// The longest `directory` accepted: PATH_MAX on Linux.
inline constexpr std::size_t kMaxBackupPathChars = 4096;

// The body of POST /api/v1/backups, {"directory": "/absolute/path"}: the directory as given, or
// a validation problem naming each field at fault (unknown fields too). Whether the path exists
// is for take_backup to find out. Pure; any thread.
result<std::string> parse_backup_request(const boost::json::value& body);

// The report as the API returns it (docs/openapi.yaml, BackupReport).
boost::json::value to_json(const backup_report& report);

}  // namespace hookd
