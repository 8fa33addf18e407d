#pragma once
// Internal to core/delivery: the state of a delivery_log that its files share.
//   delivery_log.cpp          lifecycle, the public entry points, reads of memory
//   delivery_log_writes.cpp   the mutations: ingest, record_attempt, cancel_webhook, sweep
//   delivery_log_redelivery.cpp  the mutations that send again: redeliver, recover, test pings
//   delivery_log_load.cpp     start-up: the migration of an earlier layout, then pending work
//   delivery_log_history.cpp  reads of history from storage
//
// Locking: the published state (pending deliveries and their indexes) is read by any thread under
// `mutex` held shared and replaced by the writer thread (or load()) under `mutex` held
// exclusively, only to install objects built beforehand (no I/O, no encoding under the lock).
// Published objects are immutable, so what a reader holds stays valid. Idempotency records and
// the per-bucket counts are read and written by the writer thread only (and load()).
//
// Planning: every mutation plans against the published state plus `overlay`, a writer-private
// record of what the earlier accepted mutations of the same group will publish. So the mutations
// of one group behave as if run one after another: fifty ingests with the same token and key
// queued together create one event, and a cancel planned after an ingest of the same group fails
// the deliveries that ingest creates. The overlay is cleared after every group, committed or not.

#include "core/common/clock.hpp"
#include "core/common/id_map.hpp"
#include "core/common/lazy_sorted_set.hpp"
#include "core/delivery/delivery_log.hpp"
#include "core/delivery/history_keys.hpp"
#include "core/durable/commit_writer.hpp"

#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>
#include <set>
#include <shared_mutex>
#include <thread>
#include <unordered_map>

namespace hookd {

// Meta keys of the delivery log.
inline constexpr std::string_view kDeliveryLayoutKey = "delivery_layout";  // "2": history layout
inline constexpr std::string_view kDeliveryLayoutVersion = "2";
inline constexpr std::string_view kBucketCountPrefix = "hc";  // + bucket (4 BE) -> decimal count

template <class T>
void deliver(const completion<T>& done, result<void> outcome, T value) noexcept {
  if (outcome) {
    done(std::move(value));
  } else {
    done(std::move(outcome).error());
  }
}

struct delivery_log::impl {
  struct pending_entry {
    std::shared_ptr<const delivery> record;
    std::shared_ptr<const event> source_event;  // the event it sends, shared by its deliveries
    // Set by ingest only: see pending_delivery.
    std::chrono::steady_clock::time_point received{};
    std::chrono::steady_clock::time_point committed{};
  };

  impl(storage& s, const catalog& c, delivery_log_options o, clock_function clk);

  storage& store;
  const catalog& cat;
  const delivery_log_options options;
  const clock_function clock;
  object_id_generator ids;
  scheduler sched;
  // Set by load() and not changed after, so every thread reads it without a lock.
  bucket_plan buckets;

  // ---- published state: read by any thread under `mutex` (shared), written by the writer
  // thread (or load()) under `mutex` (exclusive).
  mutable std::shared_mutex mutex;
  id_map<pending_entry> pending;
  // Ids and creation times grow with time, and deliveries mostly finish oldest first: the sets
  // that suit that (lazy_sorted_set) rather than a node per key.
  id_map<lazy_sorted_set<object_id>> pending_by_webhook;
  id_map<lazy_sorted_set<object_id>> pending_by_project;
  lazy_sorted_set<std::pair<timestamp, object_id>> pending_by_age;  // (createdAt, id)
  id_map<std::size_t> event_refs;                                   // pending deliveries per event

  // ---- writer thread only (and load() before start)
  std::unordered_map<std::string, idempotency_record> idempotency;
  std::set<std::pair<timestamp, std::string>> idempotency_by_age;  // (createdAt, key)
  std::map<std::uint32_t, std::uint64_t> bucket_counts;            // finished deliveries per bucket

  // What the accepted mutations of the current group will publish.
  struct overlay {
    // nullopt: leaves memory in this group (finished).
    id_map<std::optional<pending_entry>> deliveries;
    // nullopt: erased in this group.
    std::unordered_map<std::string, std::optional<idempotency_record>> idempotency;
    std::map<std::uint32_t, std::uint64_t> bucket_counts;  // the counts after this group
    std::set<std::uint32_t> dropped_buckets;               // counts erased by a sweep
    // Where this group's batch sets each bucket's count (an index into its ops), so that the
    // group writes each count once.
    std::map<std::uint32_t, std::size_t> bucket_count_ops;
    void clear() { *this = overlay{}; }
  } overlay;

  std::atomic<std::uint64_t> n_events{0}, n_deliveries{0}, n_replays{0}, n_attempts{0},
      n_retries{0}, n_succeeded{0}, n_failed{0}, n_cancelled{0}, n_expired{0}, n_sweeps{0},
      n_deleted{0}, n_erased_events{0};
  std::atomic<std::size_t> idempotency_size{0};      // idempotency.size(), for readers
  std::atomic<std::uint64_t> history_deliveries{0};  // sum of bucket_counts, for readers
  std::atomic<std::int64_t> oldest_bucket{-1};       // the first bucket on disk; -1: none

  std::atomic<std::uint64_t> n_sweep_failures{0};

  bool loaded = false;

  // The sweeper thread (start() to stop()): sweep, then reclaim, every sweep_interval.
  std::thread sweeper;
  std::mutex sweeper_mutex;
  std::condition_variable sweeper_wake;
  // Set (under sweeper_mutex) when the sweeper is to stop; a reclaim in progress reads it too and
  // ends early (storage::reclaim), so that a stop does not wait for a large range's compaction.
  std::atomic<bool> sweeper_stopping{false};
  void run_sweeps();
  void stop_sweeper();

  // Declared last: destroyed first, so the writer thread is gone before the state it uses.
  commit_writer writer;

  // ---- buckets and keys
  std::uint32_t bucket_of(timestamp t) const noexcept { return buckets.start_of(unix_seconds(t)); }
  std::uint32_t bucket_of(const delivery& d) const noexcept { return bucket_of(d.created_at); }
  // The earliest creation time the read API shows (older history is gone from it at once).
  timestamp retention_cutoff() const { return clock() - options.retention; }

  // ---- the state as the next mutation of the group sees it (writer thread)
  std::optional<pending_entry> current_pending(const object_id& id) const;
  const idempotency_record* current_idempotency(const std::string& key) const;
  std::uint64_t current_bucket_count(std::uint32_t bucket) const;
  bool expired(const idempotency_record& rec, timestamp now) const {
    return now - rec.created_at > options.idempotency_ttl;
  }

  // ---- publishing (writer thread, or load()); the *_locked ones with `mutex` held exclusively
  void install_locked(const pending_entry& entry);
  void remove_locked(const object_id& id);
  void forget_idempotency(const std::string& key);
  void remember_idempotency(const std::string& key, const idempotency_record& rec);
  void set_bucket_count(std::uint32_t bucket, std::uint64_t count);

  // An attempt whose outcome was not recorded: free its slot, and try a pending delivery again.
  void requeue_unrecorded(const object_id& id);

  // Puts a pending delivery on the scheduler at `due`, in the line of its ordering key if it has
  // one (docs/delivery.md, "Ordering"). Every path that queues a pending delivery goes here.
  void schedule_job(const delivery& d, timestamp due);

  std::optional<pending_delivery> find_pending(const object_id& id) const;

  // ---- delivery_log_writes.cpp
  std::unique_ptr<commit_mutation> make_sweep(completion<sweep_result> done);
  std::unique_ptr<commit_mutation> make_delete_project(object_id project,
                                                       completion<std::size_t> done);
  result<void> reclaim(const sweep_result& swept, std::atomic<bool>* stop);

  // ---- delivery_log_load.cpp
  result<delivery_log_counts> load();
  result<void> migrate_earlier_layout();

  // ---- delivery_log_history.cpp
  result<std::vector<attempt>> read_attempts(std::uint32_t bucket, const object_id& project,
                                             const object_id& delivery) const;
  result<std::optional<delivery>> read_finished(std::uint32_t bucket, const object_id& project,
                                                const object_id& delivery) const;
};

std::string bucket_count_key(std::uint32_t bucket);

// Sets a bucket's count of finished deliveries in `batch`, once per bucket and group
// (delivery_log_writes.cpp).
void put_bucket_count(delivery_log::impl& log, write_batch& batch, std::uint32_t bucket,
                      std::uint64_t count);
// A finished delivery's two history records and one more in its bucket's count; returns the
// bucket and its count after this one.
std::pair<std::uint32_t, std::uint64_t> put_finished(delivery_log::impl& log, write_batch& batch,
                                                     const delivery& d);

}  // namespace hookd
