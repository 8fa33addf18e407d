#pragma once
// What the rest of hookd uses of a node's events and deliveries: ingest, attempts, cancelling,
// erasing, sending again, the reads of the API, the scheduler the dispatcher drives, and the
// counts /metrics shows. Two engines implement it: delivery_log (the embedded store, one node,
// core/delivery/delivery_log.hpp) and pg_delivery_log (PostgreSQL, many nodes sharing the
// deliveries, storage/postgres/pg_delivery_log.hpp; docs/cluster.md). The contracts below are
// those of both; each engine's header says how it keeps them.
//
// Thread safety: every method may be called from any thread; writes complete through their
// completion exactly once (on an engine thread, or inline when refused before queueing).

#include "core/catalog/catalog.hpp"
#include "core/common/clock.hpp"
#include "core/common/error.hpp"
#include "core/delivery/delivery.hpp"
#include "core/delivery/retry_policy.hpp"
#include "core/delivery/scheduler.hpp"

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
  // When the HTTP layer took the request, for the stage latencies on /metrics
  // (docs/operations.md, "Where a delivery's time goes"); the epoch when unknown.
  std::chrono::steady_clock::time_point received{};
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
  // When the event's write became durable (steady clock); the epoch for a replay.
  std::chrono::steady_clock::time_point committed{};
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
  // For a delivery this process created by an ingest: when the ingest request was taken and when
  // its write became durable (steady clock), for the stage latencies of its first attempt
  // (docs/operations.md, "Where a delivery's time goes"). The epoch otherwise (loaded at start,
  // claimed from another node, redelivered, a test ping).
  std::chrono::steady_clock::time_point received{};
  std::chrono::steady_clock::time_point committed{};
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

class delivery_engine {
 public:
  virtual ~delivery_engine() = default;

  // Start-up: reads (or claims) what is pending and puts it on the scheduler. Once, before
  // start().
  virtual result<delivery_log_counts> load() = 0;
  virtual void start() = 0;  // starts the engine's threads
  virtual void stop() = 0;   // drains queued writes, then stops them

  // ---- writes (see delivery_log.hpp for each one's outcomes)

  // The event and one pending delivery, due now, per webhook fan_out() chooses; the idempotency
  // key replays the first answer or is a `conflict`.
  virtual void ingest(ingest_request request, completion<ingest_result> done) = 0;
  // Records attempt `a` of a pending delivery and applies `decision`; keeps the scheduler in step.
  virtual void record_attempt(std::shared_ptr<const delivery> attempted, attempt a,
                              attempt_decision decision,
                              completion<std::shared_ptr<const delivery>> done) = 0;
  // Fails every pending delivery of `webhook` ("webhook deleted"); completes with how many.
  virtual void cancel_webhook(object_id webhook, completion<std::size_t> done) = 0;
  // Erases every event of `subject` in `project`; completes with how many.
  virtual void erase_subject(object_id project, std::string subject,
                             completion<std::size_t> done) = 0;
  // Removes everything of `project`; completes with the pending deliveries cancelled.
  virtual void delete_project(object_id project, completion<std::size_t> done) = 0;
  // Delivery `id` back to pending, due now, with a fresh retry schedule.
  virtual void redeliver(object_id project, object_id webhook, object_id id,
                         completion<std::shared_ptr<const delivery>> done) = 0;
  // Redelivers the failed deliveries of `webhook` created in [since, until).
  virtual void recover(object_id project, object_id webhook, timestamp since,
                       std::optional<timestamp> until, completion<std::size_t> done) = 0;
  // A `webhook.ping` event with one delivery to that webhook alone, active or not.
  virtual void send_test(object_id organization, object_id project, object_id webhook,
                         completion<std::shared_ptr<const delivery>> done) = 0;
  // Writes (value) or erases (nullopt) one record of state kept next to the deliveries (endpoint
  // health's failure streaks).
  virtual void write_meta(std::string key, std::optional<std::string> value,
                          completion<void> done) = 0;
  // The webhook's paused deliveries are due now, oldest first (call before making it active).
  virtual void resume_webhook(const object_id& webhook) = 0;

  // decide() with this engine's retry policy and clock.
  virtual attempt_decision decide(const attempt_response& response, std::uint32_t attempt_number,
                                  const random_source& random = uniform_random) const = 0;

  // ---- reads of history: any thread, may wait on storage.
  virtual result<std::optional<delivery_detail>> find_delivery(const object_id& project,
                                                               const object_id& id) const = 0;
  virtual result<delivery_page> list_deliveries(const delivery_query& query) const = 0;
  virtual result<std::optional<event_detail>> find_event(const object_id& project,
                                                         const object_id& id) const = 0;

  // ---- reads of memory: any thread, never storage.
  // A delivery this node holds (the dispatcher attempts it), with its event.
  virtual std::optional<pending_delivery> find_pending(const object_id& id) const = 0;
  virtual std::size_t pending_count() const = 0;
  virtual std::size_t pending_count(const object_id& webhook) const = 0;
  // A pending delivery whose webhook is inactive: shown as `paused` by the read API.
  virtual bool is_paused(const delivery& d) const = 0;
  virtual std::optional<std::chrono::milliseconds> oldest_pending_age() const = 0;
  virtual delivery_counters counters() const = 0;
  virtual delivery_log_counts counts() const = 0;
  virtual history_stats history() const = 0;
  virtual commit_stats stats() const = 0;  // of the engine's writer

  // The scheduler the dispatcher drives; the engine keeps it in step with its writes.
  virtual scheduler& jobs() noexcept = 0;
  virtual const retry_policy& policy() const noexcept = 0;
  virtual const delivery_log_options& options() const noexcept = 0;
  virtual timestamp now() const = 0;
};

}  // namespace hookd
