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

#include "core/delivery/delivery_engine.hpp"
#include "core/durable/storage.hpp"

#include <memory>

namespace hookd {

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

class delivery_log final : public delivery_engine {
 public:
  // `cat` supplies the webhooks at fan-out time and the scheduler's active/missing lookups; it
  // must outlive the log. `clock` is injectable for tests.
  delivery_log(storage& store, const catalog& cat, delivery_log_options options = {},
               clock_function clock = now_ms);
  ~delivery_log() override;  // stops the writer; queued completions get `unavailable`
  delivery_log(const delivery_log&) = delete;
  delivery_log& operator=(const delivery_log&) = delete;

  // Start-up: migrates a store written before the history layout (once), then reads the pending
  // deliveries, the events they send and the idempotency keys, and puts every pending delivery on
  // the scheduler at its stored nextAttemptAt. Call once, before start(). A record that does not
  // decode, or a pending delivery whose event is missing, is an error naming the table and key.
  result<delivery_log_counts> load() override;
  void start() override;  // starts the writer thread, and the sweeper thread (automatic_sweeps)
  void stop() override;   // stops the sweeper, drains queued writes, then stops the writer thread

  // ---- writes: the completion runs exactly once, on the writer thread (or inline on the caller
  // when the request is refused before queueing).

  // Creates the event and one pending delivery (due now) per active webhook of the project whose
  // `events` match the type, with the idempotency record, in one batch. With a key already used by
  // this token within the TTL: the same request fingerprint (project, type, data) completes with
  // the first answer (replay = true) and writes nothing; another fingerprint is a `conflict`.
  // Outcomes: validation (type, idempotencyKey), not_found (project not in organization),
  // conflict, storage_failure, unavailable.
  void ingest(ingest_request request, completion<ingest_result> done) override;

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
                      attempt_decision decision,
                      completion<std::shared_ptr<const delivery>> done) override;

  // Fails every pending delivery of `webhook` with "webhook deleted" and takes them off the
  // scheduler. Call after the catalog deleted the webhook, and for jobs take_due dropped.
  // Completes with the number of deliveries failed.
  void cancel_webhook(object_id webhook, completion<std::size_t> done) override;

  // Erases every event of `subject` in `project` (docs/delivery.md, "Erasing a subject"), with
  // its deliveries and their attempts: gone from every read once this completes, pending ones
  // cancelled (never attempted after). Each event costs a few point deletes and one range (its
  // attempts); finding them costs one range scan of the subject's index per history bucket. The
  // records leave the disk at the next compaction of their files (at most a day: the history
  // table compacts every file at least that often). Completes with the number of events erased.
  void erase_subject(object_id project, std::string subject, completion<std::size_t> done) override;

  // Removes everything of `project` (docs/delivery.md, "Deleting"): its pending deliveries are
  // cancelled (out of the queue, memory and the scheduler: never attempted once this completes)
  // and its history goes with one range delete per history bucket, not a delete per record.
  // Call after the catalog deleted the project (so that nothing new is ingested for it); a start
  // that finds pending deliveries of a project the catalog no longer has finishes the job.
  // Completes with the number of pending deliveries cancelled.
  void delete_project(object_id project, completion<std::size_t> done) override;

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
                 completion<std::shared_ptr<const delivery>> done) override;

  // Redelivers every `failed` delivery of `webhook` in `project` created in [since, until)
  // (until: now when nullopt), within the retention, oldest first. Works through the history in
  // batches of kRecoverBatch deliveries, one write each, never holding more than a batch in
  // memory; each batch is durable before the next is read. Completes with the number redelivered,
  // after the last batch; a failure stops it there (the batches before it stay done).
  void recover(object_id project, object_id webhook, timestamp since,
               std::optional<timestamp> until, completion<std::size_t> done) override;
  static constexpr std::size_t kRecoverBatch = 256;

  // Creates a `webhook.ping` event in the webhook's project with data {"webhookId": "<id>"} and
  // one delivery of it, to that webhook alone and whether or not it is active (the scheduler lets
  // this job out while the webhook's others are held), due now. No fan-out, no filter, no
  // idempotency key. Outcomes: not_found (no such webhook in that organization and project),
  // storage_failure, unavailable.
  void send_test(object_id organization, object_id project, object_id webhook,
                 completion<std::shared_ptr<const delivery>> done) override;

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
  void write_meta(std::string key, std::optional<std::string> value,
                  completion<void> done) override;

  // The webhook is being switched from inactive back to active: its paused deliveries are due
  // now, in the order they were created (docs/delivery.md, "Paused deliveries"). Call it before the
  // catalog makes the webhook active: the scheduler holds them until then, and none can go at its
  // older time ahead of the others. Memory only: the queue records keep their times, so after a
  // restart they go at those (mostly past) times instead.
  void resume_webhook(const object_id& webhook) override;

  // decide() with this log's retry policy and clock.
  attempt_decision decide(const attempt_response& response, std::uint32_t attempt_number,
                          const random_source& random = uniform_random) const override;

  // ---- reads of history: any thread, storage (may wait on the disk). Records older than the
  // retention are not found, whether or not a sweep has dropped them yet.

  // The delivery of `project` with this id, with its attempts; nullopt when there is none.
  result<std::optional<delivery_detail>> find_delivery(const object_id& project,
                                                       const object_id& id) const override;
  // Newest first across every webhook of the project (or one), pending ones from memory and
  // finished ones from history, merged. `validation` (field "limit") when limit is outside
  // 1..100.
  result<delivery_page> list_deliveries(const delivery_query& query) const override;
  // The event of `project` with this id and the status of each of its deliveries.
  result<std::optional<event_detail>> find_event(const object_id& project,
                                                 const object_id& id) const override;

  // ---- reads of memory: any thread, never storage.
  std::optional<pending_delivery> find_pending(const object_id& id) const override;
  std::size_t pending_count() const override;
  // Pending deliveries of one webhook (paused ones included).
  std::size_t pending_count(const object_id& webhook) const override;
  // A pending delivery whose webhook is inactive: shown as `paused` by the read API.
  bool is_paused(const delivery& d) const override;
  // now - createdAt of the oldest pending delivery; nullopt when none is pending.
  std::optional<std::chrono::milliseconds> oldest_pending_age() const override;
  delivery_counters counters() const override;
  delivery_log_counts counts() const override;
  history_stats history() const override;  // asks storage for its size estimates (cheap, no scan)
  commit_stats stats() const override;     // of the log's writer

  // The scheduler the dispatcher drives (take_due / done / next_due). record_attempt and
  // cancel_webhook keep it in step; the dispatcher only takes jobs and reports outcomes.
  scheduler& jobs() noexcept override;
  const retry_policy& policy() const noexcept override;
  const delivery_log_options& options() const noexcept override;
  timestamp now() const override;

  struct impl;

 private:
  std::unique_ptr<impl> impl_;
};

}  // namespace hookd
