#pragma once
// hookd's PostgreSQL schema, versioned (docs/cluster.md, "Migrations"). The SQL files of
// storage/postgres/migrations/ (NNNN_name.sql) are compiled into the binary; a database records
// each one it applied in hookd_migrations (version, name, checksum, applied_at). migrate()
// applies the pending ones in ONE transaction under an advisory lock, so that nodes starting
// together apply each migration exactly once; a node that waited finds them applied.

#include "core/common/error.hpp"
#include "storage/postgres/connection.hpp"

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace hookd::pg {

struct migration {
  int version = 0;
  std::string_view name;  // "schema" for 0001_schema.sql
  std::string_view sql;
};

// The migrations built into this binary, by version (1, 2, ...).
std::span<const migration> embedded_migrations();

// SHA-256 of the migration's SQL text, as 64 hex digits: what hookd_migrations.checksum holds.
std::string checksum(const migration& m);

// The key of the transaction-scoped advisory lock migrate() holds ("hookd" in ASCII).
inline constexpr std::int64_t kMigrationLock = 0x686f6f6b64;

struct migration_state {
  int version = 0;
  std::string name;
  bool applied_now = false;               // applied by this call
  std::optional<std::string> applied_at;  // when it was applied (RFC 3339, UTC)
};

// Applies the pending migrations of `known` (sorted by version) and reports every one. Errors
// (storage_failure, nothing applied): an applied migration whose checksum differs from the
// binary's; a database with a migration newer than the binary knows; any failing statement.
result<std::vector<migration_state>> migrate(
    connection& c, std::span<const migration> known = embedded_migrations());

// The migrations migrate() would apply now, after the same checks; applies and locks nothing.
result<std::vector<migration>> pending_migrations(
    connection& c, std::span<const migration> known = embedded_migrations());

}  // namespace hookd::pg
