#pragma once
// A node's delivery engine in cluster mode (docs/cluster.md, "A node's deliveries"): events,
// deliveries and attempts in PostgreSQL (pg_delivery_store), shared by every node; in this
// node's memory only the deliveries it holds a lease on, and its scheduler.
//
// - Ingest: requests go to a writer thread that takes everything queued and makes ONE
//   store ingest (one transaction) per group; the deliveries it creates are leased to this node
//   and go at once to memory and the scheduler, so a first attempt needs no claim.
// - A claimer thread leases due deliveries nobody holds (claim_due, as many as the scheduler has
//   room for) every claim_interval, and at once when this node's held jobs run out; it renews the
//   held leases every lease/3 and drops those another node took.
// - A webhook is this node's to deliver while it holds the webhook's lease (pg_delivery_store):
//   its in-flight caps, rate limit, pauses, adaptive concurrency and ordering keys are this
//   node's scheduler's alone. Leases are renewed with the deliveries' (every lease/3); a webhook
//   idle for twice the lease is given up. Another node's ingest of a webhook this node holds
//   wakes the claimer (a listener thread, LISTEN hookd_deliveries).
// - record_attempt: batched like ingest (one record_attempts per group). A retry stays held
//   (queued for its next attempt); a lost lease or a delivery no longer pending leaves memory
//   and the scheduler.
// - stop() releases the held leases and webhooks, so that another node takes them at once;
//   destroying the engine without stop() leaves them to expire (as a dead node does).
//
// Threads and connections: the writer, the claimer, the listener and the readers each have their
// own connection; readers share one behind a mutex. No connection is used on an Asio thread.

#include "core/catalog/catalog.hpp"
#include "core/delivery/delivery_engine.hpp"
#include "storage/postgres/pg_delivery_store.hpp"

#include <chrono>
#include <memory>

namespace hookd::pg {

using streak_sink = std::function<void(const object_id& webhook, const failure_streak& streak)>;

struct pg_delivery_log_options {
  delivery_log_options log{};  // retry, scheduling, idempotency TTL, retention
  // uri, node name (--node-name), lease (--cluster-lease); store.clock is set to `clock`
  delivery_store_options store{};
  // How often the claimer looks for due deliveries nobody holds (--cluster-claim-interval; the
  // held leases are renewed on these rounds). Default 250 ms: a retry or a
  // dead node's job waits at most this long past its time (plus the lease, for a dead node).
  std::chrono::milliseconds claim_interval{250};
  // Deliveries held at most (claimed and not yet finished): the claimer asks for no more than
  // this minus those held. 0 (the default): 4 × scheduling.max_in_flight, a few rounds of work.
  std::size_t max_held = 0;
  // How often retention runs (drop_expired, then ensure_partitions). Default 1 h: partitions are
  // days, and a node that runs it finds nothing to do most times.
  std::chrono::milliseconds retention_interval{3'600'000};
  // load() removes the deliveries of projects no longer in the `projects` table (a deletion
  // the node removing them did not finish). Default on; off only for a database without the
  // catalog's tables filled (the engine's own tests, whose catalog is in memory).
  bool finish_deleted_projects = true;
};

class pg_delivery_log final : public delivery_engine {
 public:
  // `cat` supplies the webhooks at fan-out and the scheduler's lookups; it must outlive this.
  pg_delivery_log(const catalog& cat, pg_delivery_log_options options,
                  clock_function clock = now_ms);
  // Stops the threads; queued completions get `unavailable`. Held leases are NOT released.
  ~pg_delivery_log() override;
  pg_delivery_log(const pg_delivery_log&) = delete;
  pg_delivery_log& operator=(const pg_delivery_log&) = delete;

  // Opens the stores (migrating the schema, creating partitions), removes what is left of
  // projects deleted meanwhile (delete_project), drops expired partitions once, and claims what
  // is due. storage_failure naming the cause when the database cannot be used.
  result<delivery_log_counts> load() override;
  void start() override;
  // Stops claiming, drains queued writes, releases the held leases, stops the threads.
  void stop() override;

  void ingest(ingest_request request, completion<ingest_result> done) override;
  void record_attempt(std::shared_ptr<const delivery> attempted, attempt a,
                      attempt_decision decision,
                      completion<std::shared_ptr<const delivery>> done) override;
  void cancel_webhook(object_id webhook, completion<std::size_t> done) override;
  void erase_subject(object_id project, std::string subject, completion<std::size_t> done) override;
  void delete_project(object_id project, completion<std::size_t> done) override;
  void redeliver(object_id project, object_id webhook, object_id id,
                 completion<std::shared_ptr<const delivery>> done) override;
  void recover(object_id project, object_id webhook, timestamp since,
               std::optional<timestamp> until, completion<std::size_t> done) override;
  void send_test(object_id organization, object_id project, object_id webhook,
                 completion<std::shared_ptr<const delivery>> done) override;
  // Failure streaks go to webhook_leases (shared, docs/cluster.md); other keys stay in memory.
  void write_meta(std::string key, std::optional<std::string> value,
                  completion<void> done) override;
  void resume_webhook(const object_id& webhook) override;
  attempt_decision decide(const attempt_response& response, std::uint32_t attempt_number,
                          const random_source& random = uniform_random) const override;

  result<std::optional<delivery_detail>> find_delivery(const object_id& project,
                                                       const object_id& id) const override;
  result<delivery_page> list_deliveries(const delivery_query& query) const override;
  result<std::optional<event_detail>> find_event(const object_id& project,
                                                 const object_id& id) const override;

  // Of the deliveries this node holds.
  std::optional<pending_delivery> find_pending(const object_id& id) const override;
  std::size_t pending_count() const override;
  std::size_t pending_count(const object_id& webhook) const override;
  bool is_paused(const delivery& d) const override;
  std::optional<std::chrono::milliseconds> oldest_pending_age() const override;
  delivery_counters counters() const override;
  delivery_log_counts counts() const override;
  // The day partitions' size on disk, their rows (estimated) and the oldest day holding rows, as
  // of the last retention sweep (at load and every retention_interval): never a query per call.
  history_stats history() const override;
  commit_stats stats() const override;  // of the writer's groups

  scheduler& jobs() noexcept override;
  const retry_policy& policy() const noexcept override;
  const delivery_log_options& options() const noexcept override;
  timestamp now() const override;

  // Runs the claimer's work once now (claim and renew), for tests and start-up.
  result<std::size_t> claim_now();

  // Endpoint health's failure streaks in cluster mode (docs/cluster.md): hands `sink` every
  // stored streak of a webhook in the catalog now, and later the stored streak of each webhook
  // this node takes over from another node. Returns how many it handed over at once.
  result<std::size_t> set_streak_sink(streak_sink sink);
  // The webhooks whose lease this node holds.
  std::vector<object_id> held_webhooks() const;

  struct impl;

 private:
  std::unique_ptr<impl> impl_;
};

}  // namespace hookd::pg
