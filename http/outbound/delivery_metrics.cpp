#include "http/outbound/delivery_metrics.hpp"

#include "core/delivery/delivery_engine.hpp"
#include "core/delivery/endpoint_health.hpp"
#include "http/server/prometheus.hpp"

#include <string_view>

namespace hookd::http {
namespace {

constexpr auto relaxed = std::memory_order_relaxed;

constexpr std::string_view kClassLabels[delivery_metrics::kClasses] = {"2xx", "3xx", "4xx", "5xx",
                                                                       "error"};

void render_log(prometheus_writer& w, delivery_engine& log) {
  const delivery_counters c = log.counters();
  w.single("hookd_events_total", metric_type::counter,
           "Events accepted by ingest (replays not counted).", c.events);
  w.single("hookd_event_replays_total", metric_type::counter,
           "Ingests answered from an idempotency record; nothing was created.", c.replays);
  w.single("hookd_deliveries_created_total", metric_type::counter,
           "Deliveries created by fan-out (one per matching active webhook).", c.deliveries);

  // Mutually exclusive outcomes: failed counts neither 410/exhausted twice nor cancellations.
  w.family("hookd_deliveries_total", metric_type::counter,
           "Deliveries that reached a final state, by outcome: succeeded, failed (410 Gone or "
           "retries exhausted), cancelled (webhook deleted), deleted (pending when its project was "
           "deleted).");
  w.sample("hookd_deliveries_total", {{"outcome", "succeeded"}}, c.succeeded);
  w.sample("hookd_deliveries_total", {{"outcome", "failed"}},
           c.failed >= c.cancelled ? c.failed - c.cancelled : 0);
  w.sample("hookd_deliveries_total", {{"outcome", "cancelled"}}, c.cancelled);
  w.sample("hookd_deliveries_total", {{"outcome", "deleted"}}, c.deleted);
  w.single("hookd_delivery_retries_total", metric_type::counter,
           "Attempts after which the delivery was scheduled again.", c.retries);

  w.single("hookd_delivery_jobs_pending", metric_type::gauge,
           "Deliveries pending (waiting for their time, a slot, or in flight).",
           std::uint64_t{log.pending_count()});
  const auto oldest = log.oldest_pending_age();
  w.single("hookd_delivery_oldest_pending_age_seconds", metric_type::gauge,
           "Age of the oldest pending delivery since it was created; 0 when none is pending.",
           oldest ? static_cast<double>(oldest->count()) / 1000.0 : 0.0);

  const scheduler_counts s = log.jobs().counts();
  w.single("hookd_delivery_jobs_in_flight", metric_type::gauge, "Delivery attempts in flight.",
           std::uint64_t{s.in_flight});
  w.single("hookd_delivery_jobs_held", metric_type::gauge,
           "Queued deliveries held because their webhook is inactive.", std::uint64_t{s.held});
  w.single(
      "hookd_delivery_organizations_at_cap", metric_type::gauge,
      "Organizations with all of their in-flight share taken (--max-inflight-per-organization).",
      std::uint64_t{s.organizations_at_cap});

  // History and retention (docs/delivery.md).
  const delivery_log_counts counts = log.counts();
  w.single("hookd_history_deliveries", metric_type::gauge,
           "Finished deliveries kept in the history table (within --retention).",
           counts.history_deliveries);
  w.single("hookd_history_expired_deliveries_total", metric_type::counter,
           "Finished deliveries dropped by retention sweeps, since start.", c.expired);
  w.single("hookd_history_sweeps_total", metric_type::counter,
           "Retention sweeps committed, since start.", c.sweeps);
  w.single("hookd_history_sweep_failures_total", metric_type::counter,
           "Retention sweeps (or the freeing of their disk space) that failed; the next one "
           "tries again.",
           c.sweep_failures);
  const history_stats h = log.history();
  w.single("hookd_history_bytes", metric_type::gauge,
           "The history's size: the history table on disk and in memory buffers as RocksDB "
           "estimates it, or on PostgreSQL the day partitions on disk (docs/cluster.md).",
           h.bytes);
  w.single("hookd_history_oldest_age_seconds", metric_type::gauge,
           "Age of the oldest history bucket on disk (as of the last sweep); 0 when empty.",
           h.oldest_age ? static_cast<double>(h.oldest_age->count()) / 1000.0 : 0.0);
  w.single("hookd_idempotency_keys", metric_type::gauge,
           "Idempotency keys remembered (used within their 24-hour window).",
           std::uint64_t{counts.idempotency_keys});

  const commit_stats st = log.stats();
  w.single("hookd_delivery_commit_groups_total", metric_type::counter,
           "Batches the delivery log's writer committed (one fsync each).", st.groups);
  w.single("hookd_delivery_commit_failed_total", metric_type::counter,
           "Delivery log changes whose batch failed to become durable.", st.failed);
}

void render_dispatcher(prometheus_writer& w, const delivery_metrics& m) {
  w.family("hookd_delivery_attempts_total", metric_type::counter,
           "Delivery attempts, by the class of the response status; error: no response (refused, "
           "timeout, reset, TLS, DNS, SSRF guard).");
  for (std::size_t i = 0; i < delivery_metrics::kClasses; ++i) {
    w.sample("hookd_delivery_attempts_total", {{"class", kClassLabels[i]}},
             m.attempts(static_cast<delivery_metrics::attempt_class>(i)));
  }
  w.single("hookd_delivery_ssrf_refusals_total", metric_type::counter,
           "Attempts refused by the outbound address guard (no connection was made).",
           m.guard_refusals());
  w.single("hookd_delivery_unrecorded_attempts_total", metric_type::counter,
           "Attempts whose outcome could not be recorded; the delivery is tried again.",
           m.unrecorded());
}

}  // namespace

delivery_metrics::attempt_class delivery_metrics::classify(std::optional<int> status) noexcept {
  if (!status || *status < 200 || *status > 599) return attempt_class::error;
  return static_cast<attempt_class>(*status / 100 - 2);
}

void delivery_metrics::record_attempt(std::optional<int> status_code,
                                      std::chrono::milliseconds duration,
                                      bool refused_by_guard) noexcept {
  by_class_[static_cast<std::size_t>(classify(status_code))].fetch_add(1, relaxed);
  if (refused_by_guard) guard_refusals_.fetch_add(1, relaxed);
  const auto ms =
      duration.count() < 0 ? std::uint64_t{0} : static_cast<std::uint64_t>(duration.count());
  const double seconds = static_cast<double>(ms) / 1000.0;
  std::size_t bucket = 0;
  while (bucket < kAttemptBuckets.size() && seconds > kAttemptBuckets[bucket]) ++bucket;
  buckets_[bucket].fetch_add(1, relaxed);
  duration_ms_sum_.fetch_add(ms, relaxed);
}

void delivery_metrics::record_unrecorded() noexcept {
  unrecorded_->fetch_add(1, relaxed);
}

std::uint64_t delivery_metrics::attempts(attempt_class c) const noexcept {
  return by_class_[static_cast<std::size_t>(c)].load(relaxed);
}
std::uint64_t delivery_metrics::guard_refusals() const noexcept {
  return guard_refusals_.load(relaxed);
}
std::uint64_t delivery_metrics::unrecorded() const noexcept {
  return unrecorded_->load(relaxed);
}

void render_delivery_metrics(prometheus_writer& w, delivery_engine* log,
                             const delivery_metrics* stats) {
  if (log != nullptr) render_log(w, *log);
  if (stats == nullptr) return;
  render_dispatcher(w, *stats);

  constexpr std::string_view name = "hookd_delivery_attempt_duration_seconds";
  w.family(
      name, metric_type::histogram,
      "Time from the start of a delivery attempt to its end (response read, error or timeout).");
  std::array<std::uint64_t, delivery_metrics::kAttemptBuckets.size() + 1> counts;
  for (std::size_t i = 0; i < counts.size(); ++i) counts[i] = stats->buckets_[i].load(relaxed);
  w.histogram(name, {}, delivery_metrics::kAttemptBuckets, counts,
              static_cast<double>(stats->duration_ms_sum_.load(relaxed)) / 1000.0);

  // Where a delivery's time goes (docs/operations.md).
  const auto single_histogram = [&w](std::string_view family, std::string_view help,
                                     const duration_histogram& h) {
    w.family(family, metric_type::histogram, help);
    const auto s = h.read();
    w.histogram(family, {}, duration_histogram::kBounds, s.counts, s.sum_seconds);
  };
  single_histogram("hookd_delivery_dispatch_delay_seconds",
                   "Time from a delivery job ready (its ingest durable, or its due time) to its "
                   "attempt handed to the outbound client.",
                   stats->dispatch_delay_);
  constexpr std::string_view exchange = "hookd_delivery_attempt_seconds";
  w.family(exchange, metric_type::histogram,
           "Time from an attempt's request written to its response read (or its error), by the "
           "class of the response status.");
  for (std::size_t i = 0; i < delivery_metrics::kClasses; ++i) {
    const auto s = stats->exchange_[i].read();
    w.histogram(exchange, {{"class", kClassLabels[i]}}, duration_histogram::kBounds, s.counts,
                s.sum_seconds);
  }
  single_histogram("hookd_delivery_first_attempt_seconds",
                   "Time from an ingest request taken to the first attempt of each of its "
                   "deliveries over (deliveries ingested by this process).",
                   stats->first_attempt_);
}

void render_webhook_metrics(prometheus_writer& w, const endpoint_health& health) {
  const auto series = health.tracker().series();
  w.family("hookd_webhook_attempts_total", metric_type::counter,
           "Delivery attempts per webhook, by outcome: succeeded (the delivery succeeded with it) "
           "or failed.");
  for (const auto& [id, s] : series) {
    const std::string webhook = id.to_string();
    w.sample("hookd_webhook_attempts_total", {{"webhook", webhook}, {"outcome", "succeeded"}},
             s.succeeded);
    w.sample("hookd_webhook_attempts_total", {{"webhook", webhook}, {"outcome", "failed"}},
             s.failed);
  }
  w.family("hookd_webhook_attempt_duration_seconds", metric_type::histogram,
           "Duration of delivery attempts per webhook.");
  for (const auto& [id, s] : series) {
    const std::string webhook = id.to_string();
    w.histogram("hookd_webhook_attempt_duration_seconds", {{"webhook", webhook}},
                kWebhookLatencyBounds, s.latency, static_cast<double>(s.latency_ms_sum) / 1000.0);
  }
}

}  // namespace hookd::http
