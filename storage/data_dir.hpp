#pragma once
// Files in the data directory besides the database: the master key and the admin-token file.
//
//   <data-dir>/             mode 0700; refused when open to group or others
//   <data-dir>/db/          RocksDB (LOCK held while hookd runs), mode 0700
//   <data-dir>/master.key   base64 of 32 random bytes, mode 0600 (unless HOOKD_MASTER_KEY is set)
//   <data-dir>/admin-token  the generated admin token, mode 0600, written once on first start

#include "core/common/crypto.hpp"
#include "core/common/error.hpp"

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

namespace hookd {

// Creates the directory (mode 0700) when missing; fails when it is not a writable directory, or
// when it has any group or other permission bits (the detail names the chmod that fixes it).
result<void> ensure_data_dir(const std::filesystem::path& dir);

// The master key: from `env_value` (HOOKD_MASTER_KEY: base64 or 64 hex digits of 32 bytes) when
// given, else from <dir>/master.key, else generated and written there with mode 0600.
// A malformed key, or a key file with group/other permissions, is an error naming the fix.
result<aes256gcm_key> load_or_create_master_key(const std::filesystem::path& dir,
                                                std::optional<std::string_view> env_value);

// Writes <dir>/admin-token with mode 0600 (atomically: temp file, fsync, rename).
result<void> write_admin_token_file(const std::filesystem::path& dir, std::string_view token);

}  // namespace hookd
