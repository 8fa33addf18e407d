#pragma once
// The delivery log: hookd's durable record of events, deliveries and attempts, its in-memory
// index, and the single path by which they change (docs/openapi.yaml).
//
// Writes (ingest, record_attempt, cancel_webhook) are mutations committed by a commit_writer of
// the log's own (group commit, see commit_writer.hpp): each one becomes part of ONE write_batch,
// is made durable, is published to the index and to the scheduler, and only then completes. So a
// 202 for an event is sent only after the event and all its delivery jobs are fsynced, and a
// reader that sees the 202 can read what it created. The log's writer and the catalog's writer
// each call storage::write from their own thread; RocksDB's DB::Write is thread-safe and groups
// concurrent sync writers into one WAL write itself (its write-group leader), so two writers
// cost no extra fsync under load.
//
// In-memory index (readers: any thread; the writer thread publishes):
//   events       hash map id -> shared_ptr<const event>
//   deliveries   hash map id -> {shared_ptr<const delivery>, shared_ptr<const vector<attempt>>}
//   by webhook   hash map webhook id -> ordered sets of delivery ids: all of them, and one per
//                status. Ids grow with time, so "newest first, strictly older than the cursor"
//                is a reverse walk from lower_bound(cursor): O(log n + limit), with or without a
//                status filter.
//   pending      ordered set of (createdAt, id) of pending deliveries: count and oldest age.
// One std::shared_mutex guards them: readers hold it shared while they copy a few shared_ptrs;
// the writer holds it exclusively only to install already-built objects (no I/O, no encoding
// under the lock). Published objects are immutable, so what a reader holds stays valid.
// Idempotency records are read and written by the writer thread only (and load()), so they
// need no lock.
//
// Known limit (retention): the whole history (every event with its data, every delivery and
// attempt) stays in memory and in storage for now; a retention window that prunes old succeeded
// and failed deliveries, their attempts and their events is future work. Idempotency records are
// pruned: each ingest erases a few records older than the TTL, in its own batch.
//
// Delivery guarantee: at least once. A job is durable before its 202; load() puts every pending
// delivery back on the scheduler with its stored nextAttemptAt. An attempt in flight when the
// process died (kill -9) was never recorded, so after the restart it is simply attempted again;
// receivers deduplicate on `webhook-id` (the delivery id), which does not change.

#include "core/catalog/catalog.hpp"
#include "core/common/clock.hpp"
#include "core/common/error.hpp"
#include "core/delivery/delivery.hpp"
#include "core/delivery/retry_policy.hpp"
#include "core/delivery/scheduler.hpp"
#include "core/durable/storage.hpp"

#include <boost/json/object.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace hookd {

struct delivery_log_options {
  // When failed attempts are retried (--retry-schedule). Default 5s,5m,30m,2h,5h,10h,10h.
  retry_policy retry{};
  // How long an idempotency key remembers its first answer (docs/openapi.yaml). Default 24 h; an
  // older key is treated as new.
  std::chrono::milliseconds idempotency_ttl{24LL * 3600 * 1000};
  // In-flight caps and the held-job recheck period of the scheduler.
  scheduler_options scheduling{};
  // When the outcome of an attempt could not be made durable (or was refused), the delivery is
  // attempted again after this long. Default 5 s: soon, without spinning on a failing disk.
  std::chrono::milliseconds unrecorded_retry_delay{5000};
  // Expired idempotency records erased by one ingest, at most. Default 64: pruning keeps up with
  // any ingest rate (each ingest adds at most one record) while keeping each batch small.
  std::size_t idempotency_prune_per_ingest = 64;
};

using clock_function = std::function<timestamp()>;

// Idempotency keys are opaque client strings of 1..255 bytes (Stripe's limit).
inline constexpr std::size_t kMaxIdempotencyKeyBytes = 255;

struct ingest_request {
  object_id token;  // idempotency keys are scoped per token
  object_id organization;
  object_id project;
  std::string type;  // an event type (check_event_type)
  // The event's data as JSON text. Pass the compact serialization of the parsed value
  // (boost::json::serialize): the idempotency fingerprint is over this text, so formatting
  // differences would otherwise count as another body.
  std::string data;
  std::optional<std::string> idempotency_key;
};

// The 202 answer: {_id, type, timestamp, deliveries}.
struct ingest_result {
  object_id event;
  std::string type;
  timestamp time{};
  std::uint32_t deliveries = 0;
  bool replay = false;  // answered from the idempotency record; nothing was created
};
boost::json::object to_json(const ingest_result& r);

struct delivery_detail {
  std::shared_ptr<const delivery> record;
  std::shared_ptr<const std::vector<attempt>> attempts;  // oldest first; never null
};

struct delivery_query {
  std::optional<delivery_status> status;  // only deliveries in this status
  std::size_t limit = 20;                 // 1..100
  std::optional<object_id> after;         // cursor: only deliveries older than this id
};
inline constexpr std::size_t kMaxDeliveryPage = 100;

struct delivery_page {
  std::vector<std::shared_ptr<const delivery>> items;  // newest first
  std::optional<object_id> next;  // the `after` of the next page; nullopt on the last page
};

// Since start(), not persisted: for /metrics.
struct delivery_counters {
  std::uint64_t events = 0;      // events created (replays not counted)
  std::uint64_t deliveries = 0;  // deliveries created by fan-out
  std::uint64_t replays = 0;     // ingests answered from an idempotency record
  std::uint64_t attempts = 0;    // attempts recorded
  std::uint64_t retries = 0;     // attempts after which the delivery was rescheduled
  std::uint64_t succeeded = 0;   // deliveries that succeeded
  std::uint64_t failed = 0;      // deliveries that failed (410, exhausted, webhook deleted)
  std::uint64_t cancelled = 0;   // of those, failed by cancel_webhook
};

struct delivery_log_counts {
  std::size_t events = 0, deliveries = 0, pending = 0, attempts = 0, idempotency_keys = 0;
};

class delivery_log {
 public:
  // `cat` supplies the webhooks at fan-out time and the scheduler's active/missing lookups; it
  // must outlive the log. `clock` is injectable for tests.
  delivery_log(storage& store, const catalog& cat, delivery_log_options options = {},
               clock_function clock = now_ms);
  ~delivery_log();  // stops the writer; queued completions get `unavailable`
  delivery_log(const delivery_log&) = delete;
  delivery_log& operator=(const delivery_log&) = delete;

  // Start-up: fills the index from storage and puts every pending delivery on the scheduler at
  // its stored nextAttemptAt. Call once, before start(). A record that does not decode, an
  // attempt or a delivery whose parent is missing, an attempt count that does not match, or a
  // "dw" index entry (written by earlier versions) that names no delivery of its webhook is an
  // error naming the table and key.
  result<delivery_log_counts> load();
  void start();  // starts the writer thread
  void stop();   // drains queued writes, then stops the writer thread

  // ---- writes: the completion runs exactly once, on the writer thread (or inline on the caller
  // when the request is refused before queueing).

  // Creates the event and one pending delivery (due now) per active webhook of the project whose
  // `events` match the type, with the idempotency record, in one batch. With a key already used by
  // this token within the TTL: the same request fingerprint (project, type, data) completes with
  // the first answer (replay = true) and writes nothing; another fingerprint is a `conflict`.
  // Outcomes: validation (type, data, idempotencyKey), not_found (project not in organization),
  // conflict, storage_failure, unavailable.
  void ingest(ingest_request request, completion<ingest_result> done);

  // Appends attempt `a` (a.number must be the delivery's attempts + 1, else `conflict`) and
  // applies `decision` to a pending delivery: succeeded, pending with nextAttemptAt, or failed
  // with its reason. A delivery no longer pending (its webhook was deleted while the attempt was
  // in flight) keeps its status; the attempt is still recorded. On success the scheduler's slot
  // is released and a retried delivery is queued at its new time. When the outcome cannot be
  // recorded, the slot is released too and a still-pending delivery is queued again after
  // unrecorded_retry_delay. Outcomes: the updated delivery, not_found, conflict,
  // storage_failure, unavailable.
  void record_attempt(object_id delivery_id, attempt a, attempt_decision decision,
                      completion<std::shared_ptr<const delivery>> done);

  // Fails every pending delivery of `webhook` with "webhook deleted" and takes them off the
  // scheduler. Call after the catalog deleted the webhook, and for jobs take_due dropped.
  // Completes with the number of deliveries failed.
  void cancel_webhook(object_id webhook, completion<std::size_t> done);

  // decide() with this log's retry policy and clock.
  attempt_decision decide(const attempt_response& response, std::uint32_t attempt_number,
                          const random_source& random = uniform_random) const;

  // ---- reads: any thread, never storage
  std::shared_ptr<const event> find_event(const object_id& id) const;
  std::optional<delivery_detail> find_delivery(const object_id& id) const;
  // Newest first. `validation` (field "limit") when limit is outside 1..100. An unknown webhook
  // has no deliveries.
  result<delivery_page> list_deliveries(const object_id& webhook,
                                        const delivery_query& query) const;
  std::size_t pending_count() const;
  // now - createdAt of the oldest pending delivery; nullopt when none is pending.
  std::optional<std::chrono::milliseconds> oldest_pending_age() const;
  delivery_counters counters() const;
  delivery_log_counts counts() const;
  commit_stats stats() const;  // of the log's writer

  // The scheduler the dispatcher drives (take_due / done / next_due). record_attempt and
  // cancel_webhook keep it in step; the dispatcher only takes jobs and reports outcomes.
  scheduler& jobs() noexcept;
  const retry_policy& policy() const noexcept;
  timestamp now() const;

  struct impl;

 private:
  std::unique_ptr<impl> impl_;
};

}  // namespace hookd
