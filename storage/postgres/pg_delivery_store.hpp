#pragma once
// Events, deliveries and attempts in PostgreSQL for cluster mode (docs/cluster.md, "Deliveries,
// leases and retention"): the SQL layer a node's delivery log runs on. Many nodes share one
// database; each has its own store (its own `node` name, the lease owner it writes).
//
// - A webhook is delivered by one node at a time: the node that holds its row of
//   `webhook_leases` (docs/cluster.md, "Ordering and flow control across nodes"). Ingest and
//   claim_due take a webhook's lease in their own statement when nobody holds it (or it expired)
//   and lease its deliveries only to its holder; renew_webhooks/release_webhooks keep and give it
//   up. The same row keeps the webhook's failure streak (endpoint health).
// - Ingest takes a group of events (each with its deliveries and optional idempotency key) in ONE
//   statement, so ONE transaction: the key is claimed with INSERT ... ON CONFLICT, so that two
//   nodes taking one key at once make one event. The deliveries of webhooks this node holds are
//   inserted already leased to it, which may dispatch them at once; the others are left to their
//   webhook's holder, woken by NOTIFY hookd_deliveries (payload: the webhook ids) at commit.
// - claim_due leases due pending deliveries nobody holds (or whose lease expired) of webhooks this
//   node holds or takes, with FOR UPDATE SKIP LOCKED; a node that lost a lease cannot record an
//   attempt for it (lease_lost).
// - Pending deliveries live in `deliveries` (the queue); a finished one moves to
//   `delivery_history`. Events, attempts and finished deliveries are partitioned by the event's
//   UTC day: retention drops whole day partitions, no per-row deletes.
//
// Lease times are the database's clock (one clock for all nodes); due times and the partition
// day are the store's clock (injectable for tests). Thread safety: one blocking connection; use
// a store from one thread at a time (a node runs several stores for parallel work).

#include "core/common/clock.hpp"
#include "core/common/crypto.hpp"
#include "core/common/error.hpp"
#include "core/common/object_id.hpp"
#include "core/delivery/delivery.hpp"
#include "core/delivery/delivery_log.hpp"
#include "core/delivery/endpoint_health.hpp"
#include "storage/postgres/connection.hpp"

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace hookd::pg {

struct delivery_store_options {
  std::string uri;  // libpq's postgresql://...
  // This node's name as lease owner: unique per running node (e.g. host:pid). Required.
  std::string node;
  // How long a claim (or an ingest's deliveries) stays with this node unless renewed. Default
  // 30 s: a dead node's jobs go to the others within 30 s plus one claim poll.
  std::chrono::milliseconds lease{30000};
  // How long an idempotency key answers with its first result. Default 24 h, as the embedded
  // store's; an expired key is taken over by the next request that uses it.
  std::chrono::milliseconds idempotency_ttl{24LL * 3600 * 1000};
  // Day partitions ensure_partitions() creates past today. Default 2: a node that is down for a
  // day still finds tomorrow's partitions when it comes back.
  int partition_days_ahead = 2;
  // Reads answer as if gone for events, finished deliveries and their attempts older than this
  // (the embedded store's --retention), though their day partition is dropped only later, at
  // the next sweep after the day ends. Pending deliveries are never hidden. 0: nothing hidden.
  std::chrono::milliseconds retention{0};
  std::function<timestamp()> clock = now_ms;
  // record_attempts sends one statement per attempt in libpq's pipeline mode (one round trip,
  // one implicit transaction) instead of one statement for the whole batch. Default off: the
  // single statement was measured faster (docs/cluster.md); kept to measure again.
  bool pipeline_records = false;
};

// One event of an ingest group. `record.deliveries` lists the deliveries to create (id and
// webhook), due at once.
struct ingest_item {
  event record;
  struct idempotency {
    object_id token;
    std::string key;
    sha256_digest fingerprint{};  // of the request; another fingerprint under the key: conflict
  };
  std::optional<idempotency> key;
  bool test = false;  // test pings (docs/delivery.md, "Test pings")
};

enum class ingest_outcome : std::uint8_t { created, replay, conflict };

// Per item of a group, in the group's order. For replay: the first answer under the key.
struct ingest_answer {
  ingest_outcome outcome = ingest_outcome::created;
  object_id event;
  std::string type;
  timestamp time{};
  std::uint32_t deliveries = 0;
};

// A webhook whose lease this node holds after a statement (taken or kept), with the failure
// streak stored with it.
struct webhook_held {
  object_id webhook;
  failure_streak streak;
};

// What a statement did to webhook leases besides its main work.
struct lease_news {
  std::vector<webhook_held> held;  // the webhooks of the statement this node holds now
  // ingest: deliveries NOT leased to this node (their webhook is another node's, or an earlier
  // delivery of their ordering key is not this node's yet): a claim takes them.
  std::vector<object_id> not_leased;
};

// The channel ingest notifies when it leaves deliveries to another node; payload: the webhook
// ids, comma-separated, or "*" when they do not fit.
inline constexpr std::string_view kDeliveriesChannel = "hookd_deliveries";
inline constexpr std::string_view kStreakPayloadPrefix = "streak:";

// One attempt to record and the delivery's state after it.
struct attempt_record {
  object_id delivery;
  attempt value;  // value.number must be the delivery's attempts + 1
  delivery_state after;
};

enum class record_outcome : std::uint8_t {
  recorded,
  // Recorded, but the delivery had finished meanwhile (cancelled: its webhook was deleted) and
  // keeps its status; the attempt is counted.
  recorded_late,
  lease_lost,   // another node holds the delivery now (this node's lease expired and was taken)
  conflict,     // the attempt number is not the delivery's next
  not_pending,  // no pending delivery with this id (finished, cancelled or erased meanwhile)
};

// What drop_expired did.
struct retention_result {
  // partitions dropped, e.g. events_20261101, idempotency_keys_20261205 (keys past their TTL)
  std::vector<std::string> dropped;
  std::uint64_t pinned_events = 0;  // events of still-pending deliveries moved to today
};

// The history's size (history_size()), read from the catalog's statistics, not by counting.
struct history_size {
  // Day partitions of events, attempts and delivery_history on disk: pg_total_relation_size,
  // their indexes and TOAST included.
  std::uint64_t bytes = 0;
  // Their rows as pg_class.reltuples estimates them (as of the last VACUUM or ANALYZE).
  std::uint64_t rows = 0;
  // The finished deliveries: the rows of delivery_history's day partitions, estimated likewise.
  std::uint64_t deliveries = 0;
  // The start of the oldest day partition that holds rows; nullopt when none does.
  std::optional<timestamp> oldest_day;
};

class pg_delivery_store {
 public:
  // Connects, brings the schema up to date (migrate()) and creates the day partitions ahead
  // (ensure_partitions()); storage_failure naming the cause when any fails.
  static result<std::unique_ptr<pg_delivery_store>> open(delivery_store_options options);

  // ---- writes

  // The group's events, their deliveries (leased to this node) and idempotency keys, in one
  // statement. Items of one group sharing a key: the first decides, the others replay it or
  // conflict. A day without its partition is created and the group tried again once.
  // The deliveries are leased to this node when it holds (or takes) their webhook's lease and no
  // earlier pending delivery of their webhook and ordering key is another node's or nobody's;
  // `news` (when given) says which webhooks it holds and which deliveries it was not leased.
  result<std::vector<ingest_answer>> ingest(const std::vector<ingest_item>& group,
                                            lease_news* news = nullptr);

  // Leases up to `n` due pending deliveries (due at or before the store's clock) that nobody
  // holds or whose lease expired, of webhooks this node holds or takes (nobody's, or expired),
  // earliest due first, with the events they send. `news` (when given): the webhooks held.
  result<std::vector<pending_delivery>> claim_due(std::size_t n, lease_news* news = nullptr);
  // Extends this node's leases of `webhooks`; returns those it still held, with their stored
  // failure streaks.
  result<std::vector<webhook_held>> renew_webhooks(const std::vector<object_id>& webhooks);
  // Gives up this node's leases of `webhooks` of which it holds no delivery (the failure
  // streaks stay). Returns how many.
  result<std::size_t> release_webhooks(const std::vector<object_id>& webhooks);
  // Stores `webhook`'s failure streak (nullopt: none), whoever holds it; another node holding
  // it is notified ("streak:" + the id on hookd_deliveries) so that it reads the streak again.
  result<void> save_streak(const object_id& webhook, const std::optional<failure_streak>& s);
  // Every stored failure streak with failures or a success (start-up).
  result<std::vector<webhook_held>> load_streaks();
  // Extends this node's leases of `ids`; returns those it still held (the rest were taken).
  result<std::vector<object_id>> renew(const std::vector<object_id>& ids);
  // Gives up this node's leases of `ids` (e.g. at shutdown): claimable at once. Returns how many.
  result<std::size_t> release(const std::vector<object_id>& ids);

  // Each attempt inserted and its delivery updated, in one statement for the batch: still
  // pending (attempts, due time; the lease is renewed: a retry stays with this node, which holds
  // its webhook), or finished
  // (moved to delivery_history). Only a delivery this node holds is recorded (or one that was
  // cancelled while the attempt was in flight: recorded_late); per-item outcomes in the batch's
  // order.
  result<std::vector<record_outcome>> record_attempts(const std::vector<attempt_record>& batch);

  // Fails every pending delivery of `webhook` with "webhook deleted" and removes its lease row.
  // Returns how many deliveries.
  result<std::size_t> cancel_webhook(const object_id& webhook);
  // Erases the events of `subject` in `project`, their deliveries and attempts. Returns the
  // number of events.
  result<std::size_t> erase_subject(const object_id& project, const std::string& subject);
  // Erases everything of `project`. Returns the number of pending deliveries dropped.
  result<std::size_t> delete_project(const object_id& project);

  // Puts deliveries `ids` of `webhook` in `project` back to pending, due now, with a fresh retry
  // schedule (schedule_start = attempts), held by nobody, in one statement: finished ones move
  // from delivery_history back to the queue, pending ones are made due now (a node holding one
  // keeps its lease). Returns the ids it changed; the others are not deliveries of that webhook
  // and project (or are gone with their day's partition). `since`: the deliveries were created
  // at or after it (recover's window), so that only the day partitions from then on are read;
  // without it one id is looked for where its id points first, like find_delivery.
  result<std::vector<object_id>> redeliver(const object_id& project, const object_id& webhook,
                                           const std::vector<object_id>& ids,
                                           std::optional<timestamp> since = std::nullopt);
  // Up to `n` failed deliveries of `webhook` in `project` created in [since, until), oldest
  // first, after `after` (a cursor: the last id of the previous batch).
  result<std::vector<object_id>> failed_between(const object_id& project, const object_id& webhook,
                                                timestamp since, timestamp until, std::size_t n,
                                                const std::optional<object_id>& after);

  // Projects that have pending deliveries but no row in `projects` any more (deleted while the
  // node that was removing their deliveries stopped): what delete_project is still to do.
  result<std::vector<object_id>> orphaned_projects();

  // ---- reads

  // Lookups by id read the day partition the id's creation second points at (see
  // lookup_window in the .cpp), and every partition only when that finds nothing.
  result<std::optional<delivery_detail>> find_delivery(const object_id& project,
                                                       const object_id& id);
  // Newest first (by id). `paused` is not known here: a status filter with paused includes the
  // pending ones and the caller tells paused from pending by its webhooks. `validation` (field
  // "limit") when limit is outside 1..100.
  result<delivery_page> list_deliveries(const delivery_query& query);
  result<std::optional<event_detail>> find_event(const object_id& project, const object_id& id);

  // The statements find_delivery and find_event run: $1 the id, $2 the project, $3 and $4 the
  // partition times [from, to) looked in, $5 the retention cutoff (timestamptz text, RFC 3339).
  // Public so that tests can EXPLAIN them.
  static const std::string& find_delivery_sql();
  static const std::string& find_event_sql();
  // The partition times [from, to) a lookup of `id` reads first (never before `visible_from`).
  static std::pair<timestamp, timestamp> lookup_window(const object_id& id, timestamp visible_from);

  // ---- partitions and retention

  // The day partitions of events, attempts, delivery_history and idempotency_keys from today to
  // partition_days_ahead days after, unless they exist. Call at start and daily.
  result<void> ensure_partitions();
  // Drops every day partition that ended before now - retention (whole tables, no row deletes);
  // events still needed by pending deliveries are first moved, with their deliveries and
  // attempts, to today's partitions. Also drops the day partitions of idempotency_keys that
  // ended before now - the TTL (every key in them expired).
  result<retention_result> drop_expired(std::chrono::milliseconds retention);
  // Cheap (the catalog's figures and file sizes, no scan of a table); for /metrics.
  result<history_size> measure_history();

  const delivery_store_options& options() const noexcept { return options_; }
  connection& native() noexcept { return conn_; }

 private:
  pg_delivery_store(connection conn, delivery_store_options options)
      : conn_(std::move(conn)), options_(std::move(options)) {}
  result<std::vector<ingest_answer>> ingest_once(const std::vector<ingest_item>& group,
                                                 lease_news* news);
  result<std::vector<record_outcome>> record_pipelined(const std::vector<attempt_record>& batch,
                                                       const std::vector<std::size_t>& items,
                                                       std::vector<record_outcome> outcomes);
  // What reads still show: rows at or after this (now - retention; the epoch when retention is 0).
  timestamp visible_from() const;
  // `whole`: set when a delivery was found with all its attempts (its event's partition time
  // within [from, to)).
  result<std::optional<delivery_detail>> find_delivery_in(const object_id& project,
                                                          const object_id& id, timestamp from,
                                                          timestamp to, bool& whole);
  result<std::optional<event_detail>> find_event_in(const object_id& project, const object_id& id,
                                                    timestamp from, timestamp to);
  // redeliver() over the history rows whose partition time is in [from, to).
  result<std::vector<object_id>> redeliver_in(const object_id& project, const object_id& webhook,
                                              const std::vector<object_id>& ids, timestamp from,
                                              timestamp to);

  connection conn_;
  delivery_store_options options_;
};

// The transaction-scoped advisory lock partition changes hold, so that nodes creating or
// dropping partitions at once queue instead of failing ("hookd_p").
inline constexpr std::int64_t kPartitionLock = 0x686f6f6b645f70;

}  // namespace hookd::pg
