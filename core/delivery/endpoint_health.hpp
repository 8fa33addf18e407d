#pragma once
// Endpoint health (docs/delivery.md, "Endpoint health", "Auto-disable" and "Paused deliveries"):
// what hookd knows of each webhook's receiver from the attempts it made, and what it does about a
// receiver that is gone or keeps failing.
//
// - health_tracker (pure, no I/O, the caller's clock): per webhook the failure streak that the
//   auto-disable rule follows, a one-hour window of attempts in one-minute slots, and counters for
//   the per-webhook series of /metrics. It says when the streak must be written (so that a
//   restart keeps it without a write per attempt) and when the webhook must be disabled.
// - endpoint_health: the tracker wired to the catalog and the delivery log. It loads the streaks
//   at start-up, writes them with the delivery log's group commit, disables webhooks (the catalog)
//   and announces it with a `hookd.webhook.disabled` event (the delivery log's ingest), and
//   forgives a webhook's failures when a client switches it back on.

#include "core/catalog/catalog.hpp"
#include "core/common/clock.hpp"
#include "core/common/error.hpp"
#include "core/common/object_id.hpp"
#include "core/durable/storage.hpp"

#include <boost/json/object.hpp>

#include <array>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace hookd {

class delivery_engine;

// A webhook's `disabledReason` when hookd set it inactive: its receiver answered 410 Gone, or
// every attempt failed for --disable-after (and at least health_options::min_failures times).
inline constexpr std::string_view kDisabledGone = "gone";
inline constexpr std::string_view kDisabledFailing = "failing";
// The event hookd ingests into the webhook's project when it disables a webhook:
// data {webhookId, reason}.
inline constexpr std::string_view kWebhookDisabledEvent = "hookd.webhook.disabled";

struct health_options {
  // --disable-after: a webhook whose attempts have all failed for this long (counted from the
  // first failure after its last success) is set inactive. Default 5 days, as Svix does: long
  // enough for a receiver's owner to notice and fix an outage over a weekend.
  std::chrono::milliseconds disable_after{5LL * 24 * 3600 * 1000};
  // However long the failures last, fewer than this never disable: a webhook that gets one event
  // a week is not disabled by the retries of that one event. Default 10.
  std::uint64_t min_failures = 10;
  // While a streak (or a run of successes) only changes its count and times, its record is
  // written at most this often per webhook. Default 1 min: a kill -9 loses at most a minute of
  // counts, which moves an auto-disable by a minute out of days.
  std::chrono::milliseconds persist_every{60'000};
};

// One webhook's run of failed attempts, as stored (meta table, key failure_streak_key).
struct failure_streak {
  std::uint64_t failures = 0;                 // consecutive failed attempts, up to now
  std::optional<timestamp> first_failure_at;  // the first of them; engaged iff failures > 0
  std::optional<timestamp> last_failure_at;
  std::optional<timestamp> last_success_at;
  friend bool operator==(const failure_streak&, const failure_streak&) = default;
};

inline constexpr std::string_view kFailureStreakPrefix = "wh";  // + webhook id (12 bytes)
std::string failure_streak_key(const object_id& webhook);
// {"v":1,"failures":n,"firstFailureAt":ms,"lastFailureAt":ms,"lastSuccessAt":ms} (times only
// when set).
std::string encode(const failure_streak& s);
result<failure_streak> decode_failure_streak(std::string_view value);

// The auto-disable rule: at least o.min_failures failures, the first of them at least
// o.disable_after before `now`, and no success since.
[[nodiscard]] bool should_disable(const failure_streak& s, timestamp now,
                                  const health_options& o) noexcept;

// What one attempt told about its receiver.
struct attempt_report {
  bool succeeded = false;          // the delivery succeeded with it (a 2xx in time)
  std::optional<int> status_code;  // nullopt: no response (refused, timeout, ...)
  std::chrono::milliseconds duration{0};
  timestamp at{};  // when it ended
};

// One minute of the last hour that had attempts.
struct minute_summary {
  timestamp at{};  // the minute's start
  std::uint64_t successes = 0;
  std::uint64_t failures = 0;
  std::optional<std::uint64_t> p50_ms;  // of its attempts that got a response; nullopt: none did
};

// What the window says about the last hour.
struct window_summary {
  std::uint64_t successes = 0;
  std::uint64_t failures = 0;
  std::optional<std::uint64_t> p50_ms;  // of attempts that got a response; nullopt: none did
  std::optional<std::uint64_t> p99_ms;
  std::vector<minute_summary> minutes;  // the minutes with attempts, oldest first (at most 60)
};

// The attempts of the last hour of one webhook: 60 one-minute slots in a ring, each with its
// successes, its failures and a latency histogram of 64 log-linear buckets of milliseconds (4 per
// power of two: exact below 4 ms, within 25 % above, up to 2^17 ms). A slot older than an hour is
// reused. A bucket's 16-bit count that would overflow halves every count of its slot instead,
// which keeps the slot's shape (what percentiles read) at any rate. Fixed size: sizeof(hour_window)
// is its whole cost (about 8.4 KiB). Not thread-safe.
class hour_window {
 public:
  static constexpr std::size_t kSlots = 60;
  static constexpr std::size_t kLatencyBuckets = 64;

  void record(timestamp at, bool succeeded, std::optional<std::chrono::milliseconds> latency);
  [[nodiscard]] window_summary summary(timestamp now) const;

  // The bucket of a latency and the highest latency it holds (for tests).
  static std::size_t bucket_of(std::uint64_t ms) noexcept;
  static std::uint64_t highest_in_bucket(std::size_t bucket) noexcept;

 private:
  struct slot {
    std::int64_t minute = -1;  // minutes since the epoch this slot counts; -1: never used
    std::uint32_t successes = 0;
    std::uint32_t failures = 0;
    std::array<std::uint16_t, kLatencyBuckets> latency{};
  };
  std::array<slot, kSlots> slots_{};
};

// Upper bounds (seconds) of the per-webhook latency histogram on /metrics: those of
// hookd_delivery_attempt_duration_seconds.
inline constexpr std::array<double, 14> kWebhookLatencyBounds = {
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15, 30, 60};

// Since start, per webhook: for --metrics-per-webhook.
struct webhook_series {
  std::uint64_t succeeded = 0;
  std::uint64_t failed = 0;
  std::array<std::uint64_t, kWebhookLatencyBounds.size() + 1> latency{};  // non-cumulative
  std::uint64_t latency_ms_sum = 0;
};

// What record() asks of its caller.
struct health_step {
  std::optional<failure_streak> persist;    // write this streak record
  std::optional<std::string_view> disable;  // set the webhook inactive for this reason
};

// Thread safety: every member from any thread; one mutex.
class health_tracker {
 public:
  explicit health_tracker(health_options options = {});

  // Start-up: the stored streak of a webhook.
  void restore(const object_id& webhook, failure_streak s);
  // One attempt of one of the webhook's deliveries. Asks for the streak to be written when a
  // streak starts or ends, when it reaches min_failures, when it disables, and otherwise when the
  // last write is persist_every old; asks to disable on a 410, or when should_disable holds.
  health_step record(const object_id& webhook, const attempt_report& r);
  // A client switched the webhook back on: its streak starts afresh (the hour window stays).
  // True when a streak record may be stored for it (the caller erases it).
  bool reset(const object_id& webhook);
  // The webhook was deleted.
  void forget(const object_id& webhook);

  struct snapshot {
    failure_streak streak;
    window_summary hour;
  };
  [[nodiscard]] snapshot get(const object_id& webhook, timestamp now) const;
  [[nodiscard]] std::vector<std::pair<object_id, webhook_series>> series() const;
  [[nodiscard]] std::size_t tracked() const;
  // Memory one tracked webhook costs: its map entry and its window.
  [[nodiscard]] static std::size_t bytes_per_webhook() noexcept;
  [[nodiscard]] const health_options& options() const noexcept { return options_; }

 private:
  struct state {
    failure_streak streak;
    std::optional<timestamp> written_at;  // the last time record() asked for a write
    bool stored = false;                  // a record may be on disk
    std::unique_ptr<hour_window> window;  // allocated at its first attempt
    webhook_series counters;
  };
  const health_options options_;
  mutable std::mutex mutex_;
  std::unordered_map<object_id, state> webhooks_;
};

// GET …/webhooks/{webhookId}/health.
struct health_report {
  std::string_view state;  // healthy, degraded, failing or disabled (docs/delivery.md)
  failure_streak streak;
  std::size_t pending = 0;  // pending deliveries while the webhook is active
  std::size_t paused = 0;   // pending deliveries while it is inactive
  std::size_t in_flight = 0;
  std::size_t concurrency = 0;
  window_summary hour;
};
// {state, lastSuccessAt, lastFailureAt, consecutiveFailures, pending, paused, inFlight,
// concurrency, successRate1h, latencyP50Ms1h, latencyP99Ms1h, minutes1h: [{at, successes,
// failures, latencyP50Ms}]}; null for what is unknown.
boost::json::object to_json(const health_report& r);

// The state of a webhook from its activity and what the tracker knows (docs/delivery.md,
// "Endpoint health"): disabled when inactive; failing when its last attempt failed and none
// succeeded in the last hour; degraded when its last attempt failed or one in the last hour did;
// healthy otherwise.
std::string_view health_state(bool active, const failure_streak& s, const window_summary& hour);

// Thread safety: any thread. `cat` and `log` must outlive it, and the catalog must be stopped
// (its queued writes completed) before it is destroyed: a disable's completion refers to it.
class endpoint_health {
 public:
  endpoint_health(catalog& cat, delivery_engine& log, health_options options = {});

  // Start-up, after the catalog's load and before attempts: reads the stored streaks (one prefix
  // scan of the meta table) and erases those of webhooks the catalog no longer has. Returns the
  // number kept.
  result<std::size_t> load(storage& store);
  // A webhook's streak as another store keeps it: cluster mode, at start-up and when this node
  // takes the webhook over from another node (docs/cluster.md).
  void restore(const object_id& webhook, failure_streak s) {
    tracker_.restore(webhook, std::move(s));
  }

  // An attempt of a delivery of `hook` was made. Writes the streak when the tracker asks (with the
  // delivery log's next group commit), and disables the webhook when the tracker says so: the
  // catalog sets it inactive with disabledReason and disabledAt, and, when that changed it, a
  // hookd.webhook.disabled event goes into its project (it is inactive by then, so it does not
  // get the event).
  void attempted(const webhook& hook, const attempt_report& r);

  // A client switched `webhook` from inactive to active: its streak starts afresh (its paused
  // deliveries are the delivery log's: delivery_log::resume_webhook).
  void reactivated(const object_id& webhook);
  // The webhook was deleted: its streak record goes.
  void deleted(const object_id& webhook);

  // True from the moment an attempt decided to disable the webhook until the catalog has it
  // inactive: the dispatcher holds the webhook's next jobs meanwhile, so that nothing more goes
  // to a receiver that answered 410.
  [[nodiscard]] bool disabling(const object_id& webhook) const;

  [[nodiscard]] health_report report(const webhook& hook) const;
  [[nodiscard]] const health_tracker& tracker() const noexcept { return tracker_; }

 private:
  void save(const object_id& webhook, std::optional<std::string> value);
  void disable(const webhook& hook, std::string_view reason, timestamp at);

  catalog& cat_;
  delivery_engine& log_;
  health_tracker tracker_;
  mutable std::mutex disabling_mutex_;
  std::unordered_map<object_id, std::size_t> disabling_;  // disable writes queued, per webhook
};

}  // namespace hookd
