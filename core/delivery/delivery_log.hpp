#pragma once
// The delivery log: hookd's durable record of events, deliveries and attempts, the pending work it
// keeps in memory, and the single path by which they change (docs/delivery.md).
//
// Memory holds what is still to do, and nothing else: every pending delivery with the event it
// sends (shared by the event's deliveries), per-webhook and per-project indexes of them, the
// scheduler's jobs, and the idempotency keys inside their window. A delivery that reaches a final
// state (succeeded, failed) leaves memory in the same step that makes it durable in the history
// table; its event leaves memory with the last of its pending deliveries.
//
// Storage (see delivery.hpp and history_keys.hpp): pending deliveries in the `queue` table
// (start-up reads only that table, the events they need and the idempotency keys, so its time does
// not grow with history); events, attempts and finished deliveries in the `history` table under
// keys that start with a time bucket and the project, so that retention drops whole buckets with a
// range delete and reads of a project's history are range scans.
//
// Writes (ingest, record_attempt, cancel_webhook, sweep) are mutations committed by a
// commit_writer of the log's own (group commit, see commit_writer.hpp): each becomes part of ONE
// write_batch, is made durable, is published to memory and to the scheduler, and only then
// completes. So a 202 for an event is sent only after the event and all its delivery jobs are
// fsynced, and a reader that sees the 202 can read what it created.
//
// Reads of history (find_delivery, list_deliveries, find_event) go to storage: they may wait on
// the disk and must run off the threads that serve the catalog (the HTTP layer runs them on a small
// reader pool). find_pending, counts and metrics read memory only.
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
#include <boost/json/value.hpp>

#include <array>
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
  // older key is treated as new, and leaves memory and disk at the next sweep.
  std::chrono::milliseconds idempotency_ttl{24LL * 3600 * 1000};
  // In-flight caps and the held-job recheck period of the scheduler.
  scheduler_options scheduling{};
  // When the outcome of an attempt could not be made durable (or was refused), the delivery is
  // attempted again after this long. Default 5 s: soon, without spinning on a failing disk.
  std::chrono::milliseconds unrecorded_retry_delay{5000};
  // Expired idempotency records erased by one ingest, at most. Default 64: pruning keeps up with
  // any ingest rate (each ingest adds at most one record) while keeping each batch small.
  std::size_t idempotency_prune_per_ingest = 64;
  // --retention: events, finished deliveries and their attempts older than this (counted from the
  // event's time) leave the read API at once and the disk at the next sweep. Pending deliveries
  // are kept however old. Default 30 days, what webhook services commonly keep.
  std::chrono::milliseconds retention{30LL * 24 * 3600 * 1000};
  // How often start()'s sweeper thread runs sweep() and then reclaim_history(). 0 (the default):
  // a quarter of a history bucket (a sixteenth of the retention), from 1 s to 1 min, so that what
  // outlives the window on disk stays within about one bucket. Tests that sweep by hand turn the
  // thread off with automatic_sweeps = false.
  std::chrono::milliseconds sweep_interval{0};
  bool automatic_sweeps = true;
};

using clock_function = std::function<timestamp()>;

// Idempotency keys are opaque client strings of 1..255 bytes (Stripe's limit).
inline constexpr std::size_t kMaxIdempotencyKeyBytes = 255;

struct ingest_request {
  object_id token;  // idempotency keys are scoped per token
  object_id organization;
  object_id project;
  std::string type;  // an event type (check_event_type)
  // The event's data: compact JSON text (what boost::json::serialize of the parsed value gives).
  // The idempotency fingerprint is over this text. Not parsed again: the HTTP layer parsed it.
  std::string data;
  std::optional<std::string> idempotency_key;
  std::optional<std::string> subject;       // see event::subject
  std::optional<std::string> ordering_key;  // see event::ordering_key
  // `data` as the HTTP layer parsed it, for webhooks' filters (docs/delivery.md, "Filtering by
  // payload"); null: `data` is parsed once, at fan-out, if a webhook of the project has a filter.
  std::shared_ptr<const boost::json::value> parsed_data;
  // A valid W3C traceparent of the request (parse_traceparent's form), or nullopt: the event
  // then starts a trace of its own. Not part of the idempotency fingerprint.
  std::optional<std::string> traceparent;
};

// The type of the event a test ping sends (docs/delivery.md, "Test pings").
inline constexpr std::string_view kTestEventType = "webhook.ping";

// The 202 answer: {_id, type, timestamp, deliveries}.
struct ingest_result {
  object_id event;
  std::string type;
  timestamp time{};
  std::uint32_t deliveries = 0;
  bool replay = false;  // answered from the idempotency record; nothing was created
};
boost::json::object to_json(const ingest_result& r);

// A delivery with its attempts, oldest first.
struct delivery_detail {
  std::shared_ptr<const delivery> record;
  std::vector<attempt> attempts;
};

// A pending delivery as the dispatcher attempts it: its state and the event it sends.
struct pending_delivery {
  std::shared_ptr<const delivery> record;
  std::shared_ptr<const event> source_event;  // the event it sends, shared by its deliveries
};

// An event with the status of each delivery it fanned out to.
struct event_detail {
  event record;
  struct entry {
    object_id delivery;
    object_id webhook;
    delivery_status status = delivery_status::pending;
  };
  std::vector<entry> deliveries;
};
boost::json::object to_json(const event_detail& e);

// The statuses a query asks for: none set means all of them.
class status_filter {
 public:
  void add(delivery_status s) noexcept { bits_ |= bit(s); }
  [[nodiscard]] bool empty() const noexcept { return bits_ == 0; }
  [[nodiscard]] bool allows(delivery_status s) const noexcept {
    return bits_ == 0 || (bits_ & bit(s)) != 0;
  }
  // `paused`: a pending delivery of an inactive webhook (docs/delivery.md, "Paused deliveries").
  // Listed as paused, not as pending: `pending` then means pending to an active webhook.
  void add_paused() noexcept { bits_ |= kPausedBit; }
  [[nodiscard]] bool allows_paused() const noexcept {
    return bits_ == 0 || (bits_ & kPausedBit) != 0;
  }

 private:
  static constexpr std::uint8_t kPausedBit = 0x80;
  static std::uint8_t bit(delivery_status s) noexcept {
    return static_cast<std::uint8_t>(1u << static_cast<unsigned>(s));
  }
  std::uint8_t bits_ = 0;
};

struct delivery_query {
  object_id project;
  std::optional<object_id> webhook;  // only this webhook's deliveries
  status_filter statuses;
  std::optional<std::string> event_type;  // only deliveries of events of exactly this type
  std::optional<timestamp> since;         // created at or after
  std::optional<timestamp> until;         // created before
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
  std::uint64_t events = 0;          // events created (replays not counted)
  std::uint64_t deliveries = 0;      // deliveries created by fan-out
  std::uint64_t replays = 0;         // ingests answered from an idempotency record
  std::uint64_t attempts = 0;        // attempts recorded
  std::uint64_t retries = 0;         // attempts after which the delivery was rescheduled
  std::uint64_t succeeded = 0;       // deliveries that succeeded
  std::uint64_t failed = 0;          // deliveries that failed (410, exhausted, webhook deleted)
  std::uint64_t cancelled = 0;       // of those, failed by cancel_webhook
  std::uint64_t erased_events = 0;   // events erased with their subject
  std::uint64_t deleted = 0;         // pending deliveries dropped with their project
  std::uint64_t expired = 0;         // finished deliveries dropped by retention sweeps
  std::uint64_t sweeps = 0;          // retention sweeps committed
  std::uint64_t sweep_failures = 0;  // sweeps or reclaims that failed (retried at the next one)
};

// What memory holds (and, for history, what storage holds), for the start-up log and /metrics.
struct delivery_log_counts {
  std::size_t events = 0;                // events of pending deliveries, in memory
  std::size_t pending = 0;               // pending deliveries, in memory
  std::size_t idempotency_keys = 0;      // in memory, within their window
  std::uint64_t history_deliveries = 0;  // finished deliveries in the history table
};

struct history_stats {
  std::uint64_t bytes = 0;  // the history table on disk (an estimate, see storage::size)
  std::uint64_t keys = 0;   // its records (likewise)
  // now - the start of the oldest bucket on disk, as of the last sweep; nullopt when empty.
  std::optional<std::chrono::milliseconds> oldest_age;
};

// What one sweep did.
struct sweep_result {
  std::uint32_t cutoff_bucket = 0;  // every bucket before this one was dropped
  // The key ranges of the history table the sweep erased: everything before the cutoff bucket
  // but the records kept for pending deliveries. reclaim_history frees these, and only these.
  std::vector<std::pair<std::string, std::string>> erased;
  std::uint64_t expired_deliveries = 0;
  std::size_t pinned = 0;               // records kept for pending deliveries older than the window
  std::size_t expired_idempotency = 0;  // idempotency records erased
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

  // Start-up: migrates a store written before the history layout (once), then reads the pending
  // deliveries, the events they send and the idempotency keys, and puts every pending delivery on
  // the scheduler at its stored nextAttemptAt. Call once, before start(). A record that does not
  // decode, or a pending delivery whose event is missing, is an error naming the table and key.
  result<delivery_log_counts> load();
  void start();  // starts the writer thread, and the sweeper thread (automatic_sweeps)
  void stop();   // stops the sweeper, drains queued writes, then stops the writer thread

  // ---- writes: the completion runs exactly once, on the writer thread (or inline on the caller
  // when the request is refused before queueing).

  // Creates the event and one pending delivery (due now) per active webhook of the project whose
  // `events` match the type, with the idempotency record, in one batch. With a key already used by
  // this token within the TTL: the same request fingerprint (project, type, data) completes with
  // the first answer (replay = true) and writes nothing; another fingerprint is a `conflict`.
  // Outcomes: validation (type, idempotencyKey), not_found (project not in organization),
  // conflict, storage_failure, unavailable.
  void ingest(ingest_request request, completion<ingest_result> done);

  // Records attempt `a` of a pending delivery (a.number must be its attempts + 1, else
  // `conflict`) and applies `decision`: pending again with nextAttemptAt (the queue record is
  // rewritten), or finished, succeeded or failed with its reason (the queue record goes, the
  // finished record goes to history, the delivery leaves memory). A delivery that finished while
  // the attempt was in flight (its webhook was deleted) keeps its status; the attempt is still
  // recorded and counted. On success the scheduler's slot is released and a retried delivery is
  // queued at its new time. When the outcome cannot be recorded, the slot is released too and a
  // still-pending delivery is queued again after unrecorded_retry_delay. Outcomes: the delivery
  // after the attempt, not_found, conflict, storage_failure, unavailable.
  // `attempted` is the delivery as the attempt found it (find_pending).
  void record_attempt(std::shared_ptr<const delivery> attempted, attempt a,
                      attempt_decision decision, completion<std::shared_ptr<const delivery>> done);

  // Fails every pending delivery of `webhook` with "webhook deleted" and takes them off the
  // scheduler. Call after the catalog deleted the webhook, and for jobs take_due dropped.
  // Completes with the number of deliveries failed.
  void cancel_webhook(object_id webhook, completion<std::size_t> done);

  // Erases every event of `subject` in `project` (docs/delivery.md, "Erasing a subject"), with
  // its deliveries and their attempts: gone from every read once this completes, pending ones
  // cancelled (never attempted after). Each event costs a few point deletes and one range (its
  // attempts); finding them costs one range scan of the subject's index per history bucket. The
  // records leave the disk at the next compaction of their files (at most a day: the history
  // table compacts every file at least that often). Completes with the number of events erased.
  void erase_subject(object_id project, std::string subject, completion<std::size_t> done);

  // Removes everything of `project` (docs/delivery.md, "Deleting"): its pending deliveries are
  // cancelled (out of the queue, memory and the scheduler: never attempted once this completes)
  // and its history goes with one range delete per history bucket, not a delete per record.
  // Call after the catalog deleted the project (so that nothing new is ingested for it); a start
  // that finds pending deliveries of a project the catalog no longer has finishes the job.
  // Completes with the number of pending deliveries cancelled.
  void delete_project(object_id project, completion<std::size_t> done);

  // ---- sending again (docs/delivery.md, "Redelivery and recovery", "Test pings")

  // Puts delivery `id` of `webhook` in `project` back to pending, due now, with a fresh retry
  // schedule (schedule_start = its attempts), under the same id; its attempts stay and new ones
  // are numbered after them. A finished one (within the retention) leaves history for the queue
  // and comes back to memory with its event, in one batch; a pending one is made due now (an
  // attempt in flight meanwhile still counts; if it fails, the redelivery's attempt follows at
  // once). Completes with the delivery as it is now. Outcomes: not_found (no such delivery of
  // that webhook and project, or older than the retention), conflict (it finished in the same
  // group: try again), storage_failure, unavailable.
  void redeliver(object_id project, object_id webhook, object_id id,
                 completion<std::shared_ptr<const delivery>> done);

  // Redelivers every `failed` delivery of `webhook` in `project` created in [since, until)
  // (until: now when nullopt), within the retention, oldest first. Works through the history in
  // batches of kRecoverBatch deliveries, one write each, never holding more than a batch in
  // memory; each batch is durable before the next is read. Completes with the number redelivered,
  // after the last batch; a failure stops it there (the batches before it stay done).
  void recover(object_id project, object_id webhook, timestamp since,
               std::optional<timestamp> until, completion<std::size_t> done);
  static constexpr std::size_t kRecoverBatch = 256;

  // Creates a `webhook.ping` event in the webhook's project with data {"webhookId": "<id>"} and
  // one delivery of it, to that webhook alone and whether or not it is active (the scheduler lets
  // this job out while the webhook's others are held), due now. No fan-out, no filter, no
  // idempotency key. Outcomes: not_found (no such webhook in that organization and project),
  // storage_failure, unavailable.
  void send_test(object_id organization, object_id project, object_id webhook,
                 completion<std::shared_ptr<const delivery>> done);

  // One retention pass: drops every history bucket that ended before now - retention, with range
  // deletes around the records of pending deliveries older than that (kept until they finish),
  // and erases the idempotency records past their window. Completes once durable; the disk space
  // is freed by reclaim_history(), which the caller runs after (off the writer: it is slow).
  void sweep(completion<sweep_result> done);
  // Frees the disk space of the ranges the sweep erased (storage::reclaim, range by range, so that
  // no file holding a kept record is dropped). Blocking.
  result<void> reclaim_history(const sweep_result& swept);

  // Writes (value) or erases (nullopt) one record of the meta table with the log's next group
  // commit, so that state kept next to the deliveries (endpoint health's failure streaks,
  // endpoint_health.hpp) costs no fsync of its own.
  void write_meta(std::string key, std::optional<std::string> value, completion<void> done);

  // The webhook is being switched from inactive back to active: its paused deliveries are due
  // now, in the order they were created (docs/delivery.md, "Paused deliveries"). Call it before the
  // catalog makes the webhook active: the scheduler holds them until then, and none can go at its
  // older time ahead of the others. Memory only: the queue records keep their times, so after a
  // restart they go at those (mostly past) times instead.
  void resume_webhook(const object_id& webhook);

  // decide() with this log's retry policy and clock.
  attempt_decision decide(const attempt_response& response, std::uint32_t attempt_number,
                          const random_source& random = uniform_random) const;

  // ---- reads of history: any thread, storage (may wait on the disk). Records older than the
  // retention are not found, whether or not a sweep has dropped them yet.

  // The delivery of `project` with this id, with its attempts; nullopt when there is none.
  result<std::optional<delivery_detail>> find_delivery(const object_id& project,
                                                       const object_id& id) const;
  // Newest first across every webhook of the project (or one), pending ones from memory and
  // finished ones from history, merged. `validation` (field "limit") when limit is outside
  // 1..100.
  result<delivery_page> list_deliveries(const delivery_query& query) const;
  // The event of `project` with this id and the status of each of its deliveries.
  result<std::optional<event_detail>> find_event(const object_id& project,
                                                 const object_id& id) const;

  // ---- reads of memory: any thread, never storage.
  std::optional<pending_delivery> find_pending(const object_id& id) const;
  std::size_t pending_count() const;
  // Pending deliveries of one webhook (paused ones included).
  std::size_t pending_count(const object_id& webhook) const;
  // A pending delivery whose webhook is inactive: shown as `paused` by the read API.
  bool is_paused(const delivery& d) const;
  // now - createdAt of the oldest pending delivery; nullopt when none is pending.
  std::optional<std::chrono::milliseconds> oldest_pending_age() const;
  delivery_counters counters() const;
  delivery_log_counts counts() const;
  history_stats history() const;  // asks storage for its size estimates (cheap, no scan)
  commit_stats stats() const;     // of the log's writer

  // The scheduler the dispatcher drives (take_due / done / next_due). record_attempt and
  // cancel_webhook keep it in step; the dispatcher only takes jobs and reports outcomes.
  scheduler& jobs() noexcept;
  const retry_policy& policy() const noexcept;
  const delivery_log_options& options() const noexcept;
  timestamp now() const;

  struct impl;

 private:
  std::unique_ptr<impl> impl_;
};

}  // namespace hookd
