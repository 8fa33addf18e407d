#include "storage/postgres/migrations.hpp"

#include "core/common/crypto.hpp"

#include <map>
#include <utility>

namespace hookd::pg {

namespace {

constexpr std::string_view kCreateTable =
    "CREATE TABLE IF NOT EXISTS hookd_migrations ("
    " version integer PRIMARY KEY,"
    " name text NOT NULL,"
    " checksum text NOT NULL,"
    " applied_at timestamptz NOT NULL DEFAULT now())";

struct applied_row {
  std::string name;
  std::string checksum;
  std::string applied_at;
};

std::string file_name(int version, std::string_view name) {
  std::string digits = std::to_string(version);
  if (digits.size() < 4) digits.insert(0, 4 - digits.size(), '0');
  return digits + "_" + std::string(name) + ".sql";
}

// The rows of hookd_migrations (none when the table does not exist yet).
result<std::map<int, applied_row>> read_applied(connection& c) {
  auto exists = c.exec("SELECT to_regclass('hookd_migrations') IS NOT NULL");
  if (!exists) return exists.error();
  std::map<int, applied_row> out;
  if (exists->text(0, 0) != "t") return out;
  auto rows = c.exec(
      "SELECT version, name, checksum,"
      " to_char(applied_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"
      " FROM hookd_migrations ORDER BY version");
  if (!rows) return rows.error();
  for (int i = 0; i < rows->size(); ++i) {
    out[std::stoi(std::string(rows->text(i, 0)))] =
        applied_row{std::string(rows->text(i, 1)), std::string(rows->text(i, 2)),
                    std::string(rows->text(i, 3))};
  }
  return out;
}

// The checks every run makes before applying anything: no applied migration unknown to (newer
// than) this binary, none whose SQL differs from the binary's.
result<void> check(const std::map<int, applied_row>& applied, std::span<const migration> known) {
  const int newest_known = known.empty() ? 0 : known.back().version;
  if (!applied.empty() && applied.rbegin()->first > newest_known) {
    const auto& [version, row] = *applied.rbegin();
    return storage_problem(
        "schema too new",
        "the database has migration " + file_name(version, row.name) +
            " applied, but this hookd knows migrations up to version " +
            std::to_string(newest_known) +
            " only; run a hookd at least as new as the one that migrated this database");
  }
  for (const migration& m : known) {
    const auto it = applied.find(m.version);
    if (it == applied.end()) continue;
    const std::string sum = checksum(m);
    if (it->second.checksum != sum) {
      return storage_problem(
          "migration changed",
          "migration " + file_name(m.version, m.name) + " was applied on " + it->second.applied_at +
              " with checksum " + it->second.checksum + ", but this hookd's copy has checksum " +
              sum +
              "; an applied migration must never change: run the hookd release that applied it, "
              "or put its change into a new migration");
    }
  }
  return {};
}

std::vector<migration> pending_of(const std::map<int, applied_row>& applied,
                                  std::span<const migration> known) {
  std::vector<migration> out;
  for (const migration& m : known) {
    if (!applied.contains(m.version)) out.push_back(m);
  }
  return out;
}

}  // namespace

std::string checksum(const migration& m) {
  const sha256_digest d = sha256(m.sql);
  return hex_encode(std::string_view(reinterpret_cast<const char*>(d.data()), d.size()));
}

result<std::vector<migration>> pending_migrations(connection& c, std::span<const migration> known) {
  auto applied = read_applied(c);
  if (!applied) return applied.error();
  if (auto ok = check(*applied, known); !ok) return ok.error();
  return pending_of(*applied, known);
}

result<std::vector<migration_state>> migrate(connection& c, std::span<const migration> known) {
  std::vector<migration_state> report;
  auto done = in_transaction(c, [&]() -> result<void> {
    // Nodes starting together queue here; the lock goes with the transaction.
    if (auto locked =
            c.exec("SELECT pg_advisory_xact_lock(" + std::to_string(kMigrationLock) + ")");
        !locked) {
      return locked.error();
    }
    if (auto created = c.exec(kCreateTable); !created) return created.error();
    auto applied = read_applied(c);
    if (!applied) return applied.error();
    if (auto ok = check(*applied, known); !ok) return ok.error();
    for (const migration& m : known) {
      if (const auto it = applied->find(m.version); it != applied->end()) {
        report.push_back({m.version, std::string(m.name), false, it->second.applied_at});
        continue;
      }
      if (auto ran = c.exec_script(m.sql); !ran) {
        return storage_problem("migration " + file_name(m.version, m.name) + " failed",
                               ran.error().detail);
      }
      auto recorded = c.exec(
          "INSERT INTO hookd_migrations (version, name, checksum) VALUES ($1, $2, $3)"
          " RETURNING to_char(applied_at AT TIME ZONE 'UTC',"
          " 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')",
          {param::text(std::to_string(m.version)), param::text(std::string(m.name)),
           param::text(checksum(m))});
      if (!recorded) return recorded.error();
      report.push_back({m.version, std::string(m.name), true, std::string(recorded->text(0, 0))});
    }
    return {};
  });
  if (!done) return done.error();
  return report;
}

}  // namespace hookd::pg
