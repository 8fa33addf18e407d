#pragma once
// The storage interface the catalog writes through. It is a dumb, durable, ordered key-value
// store with tables; the catalog owns the encoding of values. storage/ implements it on RocksDB
// (one column family per table).

#include "core/common/error.hpp"

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
  events,         // delivery issue: key: id -> encoded event
  deliveries,     // delivery issue: key: id -> encoded delivery
  attempts,       // delivery issue: key: delivery id + attempt number -> encoded attempt
  idempotency,    // delivery issue: key: token id + key -> encoded first answer
};
inline constexpr std::size_t kTableCount = 10;
std::string_view table_name(table t) noexcept;  // the column family name, e.g. "webhooks"

// One logical change: every put and delete in it becomes durable together, or none does.
struct write_batch {
  struct op {
    table where;
    std::string key;
    std::optional<std::string> value;  // nullopt deletes `key`
  };
  std::vector<op> ops;

  void put(table t, std::string key, std::string value) {
    ops.push_back({t, std::move(key), std::move(value)});
  }
  void erase(table t, std::string key) { ops.push_back({t, std::move(key), std::nullopt}); }
  bool empty() const noexcept { return ops.empty(); }
  void clear() noexcept { ops.clear(); }
};

struct storage_stats {
  std::uint64_t batches = 0;  // write() calls that succeeded
  std::uint64_t records = 0;  // puts and deletes inside them
  std::uint64_t syncs = 0;    // fsyncs performed (one per batch unless sync is off)
  std::uint64_t failures = 0;
};

// Thread safety: write(), scan() and get() may run concurrently from several threads (the catalog
// and the delivery log each have a writer thread; RocksDB groups their synced writes itself).
// Implementations must make a successful write() durable (fsync'd) before returning.
class storage {
 public:
  virtual ~storage() = default;
  virtual result<void> write(const write_batch& batch) = 0;
  // Visits every record of `t` in key order (optionally only keys starting with `prefix`) until
  // the visitor returns false. Used at start-up to load the catalog.
  virtual result<void> scan(
      table t, std::string_view prefix,
      const std::function<bool(std::string_view key, std::string_view value)>& visit) const = 0;
  virtual result<std::optional<std::string>> get(table t, std::string_view key) const = 0;
  virtual storage_stats stats() const = 0;
  // Rewrites the table's files so that overwritten and deleted values leave the disk (after a
  // migration that sealed what was stored in plain text). Blocking; start-up only. The default
  // does nothing, for stores that keep no old versions.
  virtual result<void> compact(table t) {
    (void)t;
    return {};
  }
};

}  // namespace hookd
