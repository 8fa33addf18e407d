#pragma once
// The catalog's entities in PostgreSQL (docs/cluster.md, "Tables"): catalog_store over the
// tables organizations, projects, tokens (+ token_organizations) and webhooks, one row per
// entity, with the embedded store's sealing (webhook secrets, header values and previous secrets
// under the master key, the same associated data as core/catalog/codec.hpp).
//
// commit() is one transaction: the ops in order, as typed upserts and deletes, one `changes` row
// per op, and a NOTIFY hookd_changes carrying the last change's seq, which PostgreSQL delivers to
// listeners at commit. One blocking connection, used by the catalog's writer thread
// (docs/cluster.md, "Threads").

#include "core/catalog/catalog_store.hpp"
#include "core/common/crypto.hpp"
#include "storage/postgres/connection.hpp"

#include <cstdint>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace hookd::pg {

class pg_catalog_store final : public catalog_store {
 public:
  // Connects to `uri` and brings its schema up to date (migrate()); storage_failure when either
  // fails.
  static result<std::unique_ptr<pg_catalog_store>> open(std::string uri,
                                                        const aes256gcm_key& master_key);

  result<void> commit(const catalog_change& change) override;
  result<void> load(const catalog_load_sink& sink, unsigned threads) override;

  // The last change (`changes.seq`) the last load() saw: where a change feed starts.
  std::int64_t loaded_seq() const noexcept { return loaded_seq_; }

  // Whether `seq` is a `changes` row this store wrote (commit()): the node's own change, which
  // its index holds already, so that its change feed passes it over (docs/cluster.md). Any
  // thread.
  bool committed_here(std::int64_t seq) const;
  // Forgets the seqs up to `seq`, which the feed has read.
  void forget_through(std::int64_t seq);

 private:
  pg_catalog_store(connection conn, const aes256gcm_key& key) : conn_(std::move(conn)), key_(key) {}
  // One try; `began`: BEGIN succeeded (something of the change may have reached the server).
  result<void> commit_once(const catalog_change& change, bool& began);

  connection conn_;
  aes256gcm_key key_;
  std::int64_t loaded_seq_ = 0;
  mutable std::mutex own_mutex_;
  std::set<std::int64_t> own_seqs_;  // guarded by own_mutex_
};

// The key of the transaction-scoped advisory lock every catalog commit holds ("hookd_c").
inline constexpr std::int64_t kChangesLock = 0x686f6f6b645f63;

// The admin token's bootstrap one node at a time (docs/cluster.md, "Running a node on
// PostgreSQL"): nodes starting together on an empty database each load a catalog without an
// admin token. A node about to create it first takes the session-level advisory lock
// kAdminBootstrapLock on a connection of its own and asks the database, not the catalog it
// loaded, whether a node has made one meanwhile; it holds the lock (keeps this object) until its
// own token is committed. Dropping the object closes the connection, which releases the lock.
class admin_bootstrap_lock {
 public:
  // Connects to `uri` and waits for the lock; storage_failure when either fails.
  static result<admin_bootstrap_lock> acquire(std::string uri);
  // Whether the tokens table holds a token with the admin scope.
  result<bool> admin_token_exists();

 private:
  explicit admin_bootstrap_lock(connection conn) : conn_(std::move(conn)) {}
  connection conn_;
};

// The key of admin_bootstrap_lock's advisory lock ("hookd_a").
inline constexpr std::int64_t kAdminBootstrapLock = 0x686f6f6b645f61;

// Hands `sink` the rows of `entity` ("organization", "project", "token", "webhook", as in
// changes.entity) whose id is one of `ids`, opened like load() does. Ids without a row are
// simply not handed over. For the change feed.
result<void> read_entities(connection& c, std::string_view entity,
                           const std::vector<std::string>& ids, const catalog_load_sink& sink,
                           const aes256gcm_key& key);

}  // namespace hookd::pg
