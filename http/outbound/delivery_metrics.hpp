#pragma once
// Delivery metrics for /metrics (Prometheus text format 0.0.4): what the dispatcher saw of each
// attempt (status class, latency, SSRF refusals), and what the delivery log knows (deliveries by
// outcome, jobs pending, the age of the oldest pending job).
//
// Thread-safe and lock-free: counters are relaxed atomics, written by the dispatcher's thread (the
// unrecorded attempts by the delivery log's writer) and read by whichever thread renders /metrics.

#include "core/common/duration_histogram.hpp"

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>

namespace hookd {
class delivery_engine;
class endpoint_health;
}  // namespace hookd

namespace hookd::http {

class prometheus_writer;

class delivery_metrics {
 public:
  // Upper bounds of the attempt latency histogram, in seconds. Wider than the request histogram:
  // an attempt waits on someone else's server, up to the delivery timeout (15 s by default).
  static constexpr std::array<double, 14> kAttemptBuckets = {
      0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15, 30, 60};

  // The `class` label of hookd_delivery_attempts_total.
  // 2xx, 3xx, 4xx, 5xx, and `error` for attempts without a response (the client skips 1xx
  // interim responses, so a final status is always 200..599).
  enum class attempt_class : std::uint8_t { success, redirect, client, server, error };
  static constexpr std::size_t kClasses = 5;

  // The class of an attempt: by the status code when a response arrived, else `error`.
  static attempt_class classify(std::optional<int> status_code) noexcept;

  // One attempt that was made (or refused by the guard before any connection).
  void record_attempt(std::optional<int> status_code, std::chrono::milliseconds duration,
                      bool refused_by_guard) noexcept;
  // Attempts whose outcome could not be recorded in the delivery log (storage failure, stop).
  void record_unrecorded() noexcept;
  // The same count, shared with a completion that the delivery log's writer runs once the
  // attempt's record is written, possibly after the dispatcher (and this object) are gone.
  [[nodiscard]] std::shared_ptr<std::atomic<std::uint64_t>> unrecorded_counter() const {
    return unrecorded_;
  }

  // The stages of a delivery (docs/operations.md, "Where a delivery's time goes"), steady clock:
  // - dispatch delay: from the job ready (its ingest durable, or its due time) to the attempt
  //   handed to the outbound client;
  // - exchange: from the request written to the response read, by the attempt's class (only
  //   attempts that wrote their request);
  // - first attempt: from the ingest request taken to its delivery's first attempt over (only
  //   deliveries this process ingested).
  void record_dispatch_delay(std::chrono::nanoseconds d) noexcept { dispatch_delay_.record(d); }
  void record_exchange(std::optional<int> status_code, std::chrono::nanoseconds d) noexcept {
    exchange_[static_cast<std::size_t>(classify(status_code))].record(d);
  }
  void record_first_attempt(std::chrono::nanoseconds d) noexcept { first_attempt_.record(d); }

  std::uint64_t attempts(attempt_class c) const noexcept;
  std::uint64_t guard_refusals() const noexcept;
  std::uint64_t unrecorded() const noexcept;

 private:
  friend void render_delivery_metrics(prometheus_writer&, delivery_engine*,
                                      const delivery_metrics*);

  std::array<std::atomic<std::uint64_t>, kClasses> by_class_{};
  // Non-cumulative counts per bucket; the last slot is "above the highest bound".
  std::array<std::atomic<std::uint64_t>, kAttemptBuckets.size() + 1> buckets_{};
  std::atomic<std::uint64_t> duration_ms_sum_{0};
  std::atomic<std::uint64_t> guard_refusals_{0};
  std::shared_ptr<std::atomic<std::uint64_t>> unrecorded_ =
      std::make_shared<std::atomic<std::uint64_t>>(0);
  duration_histogram dispatch_delay_;
  std::array<duration_histogram, kClasses> exchange_;
  duration_histogram first_attempt_;
};

// Appends the delivery series for /metrics: the log's (when `log` is set) and the dispatcher's
// (when `stats` is set). Called by metrics::render.
// Non-const `log` because its scheduler is reached through delivery_log::jobs(); nothing changes.
void render_delivery_metrics(prometheus_writer& w, delivery_engine* log,
                             const delivery_metrics* stats);

// The per-webhook series of --metrics-per-webhook (docs/operations.md, "Per-webhook metrics"):
// hookd_webhook_attempts_total{webhook,outcome} (succeeded, failed) and the histogram
// hookd_webhook_attempt_duration_seconds{webhook}, for each webhook attempted since the start.
void render_webhook_metrics(prometheus_writer& w, const endpoint_health& health);

}  // namespace hookd::http
