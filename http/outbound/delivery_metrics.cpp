#include "http/outbound/delivery_metrics.hpp"

#include "core/delivery/delivery_log.hpp"

#include <charconv>
#include <string_view>

namespace hookd::http {
namespace {

constexpr auto relaxed = std::memory_order_relaxed;

void append_number(std::string& out, double v) {
  char buf[64];
  const auto r = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::fixed);
  out.append(buf, r.ptr);
}

void append_number(std::string& out, std::uint64_t v) {
  char buf[24];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, r.ptr);
}

void header(std::string& out, std::string_view name, std::string_view type, std::string_view help) {
  out.append("# HELP ").append(name).append(" ").append(help).append("\n");
  out.append("# TYPE ").append(name).append(" ").append(type).append("\n");
}

void sample(std::string& out, std::string_view name, std::string_view labels, std::uint64_t v) {
  out.append(name);
  if (!labels.empty()) out.append("{").append(labels).append("}");
  out += ' ';
  append_number(out, v);
  out += '\n';
}

void single(std::string& out, std::string_view name, std::string_view type, std::string_view help,
            std::uint64_t v) {
  header(out, name, type, help);
  sample(out, name, {}, v);
}

constexpr std::string_view kClassLabels[delivery_metrics::kClasses] = {"2xx", "3xx", "4xx", "5xx",
                                                                       "error"};

void render_log(std::string& out, delivery_log& log) {
  const delivery_counters c = log.counters();
  single(out, "hookd_events_total", "counter", "Events accepted by ingest (replays not counted).",
         c.events);
  single(out, "hookd_event_replays_total", "counter",
         "Ingests answered from an idempotency record; nothing was created.", c.replays);
  single(out, "hookd_deliveries_created_total", "counter",
         "Deliveries created by fan-out (one per matching active webhook).", c.deliveries);

  // Mutually exclusive outcomes: failed counts neither 410/exhausted twice nor cancellations.
  header(out, "hookd_deliveries_total", "counter",
         "Deliveries that reached a final state, by outcome: succeeded, failed (410 Gone or "
         "retries exhausted), cancelled (webhook deleted).");
  sample(out, "hookd_deliveries_total", "outcome=\"succeeded\"", c.succeeded);
  sample(out, "hookd_deliveries_total", "outcome=\"failed\"",
         c.failed >= c.cancelled ? c.failed - c.cancelled : 0);
  sample(out, "hookd_deliveries_total", "outcome=\"cancelled\"", c.cancelled);
  single(out, "hookd_delivery_retries_total", "counter",
         "Attempts after which the delivery was scheduled again.", c.retries);

  single(out, "hookd_delivery_jobs_pending", "gauge",
         "Deliveries pending (waiting for their time, a slot, or in flight).",
         std::uint64_t{log.pending_count()});
  const auto oldest = log.oldest_pending_age();
  header(out, "hookd_delivery_oldest_pending_age_seconds", "gauge",
         "Age of the oldest pending delivery since it was created; 0 when none is pending.");
  out.append("hookd_delivery_oldest_pending_age_seconds ");
  append_number(out, oldest ? static_cast<double>(oldest->count()) / 1000.0 : 0.0);
  out += '\n';

  const scheduler_counts s = log.jobs().counts();
  single(out, "hookd_delivery_jobs_in_flight", "gauge", "Delivery attempts in flight.",
         std::uint64_t{s.in_flight});
  single(out, "hookd_delivery_jobs_held", "gauge",
         "Queued deliveries held because their webhook is inactive.", std::uint64_t{s.held});
  single(out, "hookd_delivery_organizations_at_cap", "gauge",
         "Organizations with all of their in-flight share taken (--max-inflight-per-organization).",
         std::uint64_t{s.organizations_at_cap});

  const commit_stats w = log.stats();
  single(out, "hookd_delivery_commit_groups_total", "counter",
         "Batches the delivery log's writer committed (one fsync each).", w.groups);
  single(out, "hookd_delivery_commit_failed_total", "counter",
         "Delivery log changes whose batch failed to become durable.", w.failed);
}

void render_dispatcher(std::string& out, const delivery_metrics& m) {
  header(out, "hookd_delivery_attempts_total", "counter",
         "Delivery attempts, by the class of the response status; error: no response (refused, "
         "timeout, reset, TLS, DNS, SSRF guard).");
  for (std::size_t i = 0; i < delivery_metrics::kClasses; ++i) {
    std::string labels = "class=\"";
    labels.append(kClassLabels[i]).append("\"");
    sample(out, "hookd_delivery_attempts_total", labels,
           m.attempts(static_cast<delivery_metrics::attempt_class>(i)));
  }
  single(out, "hookd_delivery_ssrf_refusals_total", "counter",
         "Attempts refused by the outbound address guard (no connection was made).",
         m.guard_refusals());
  single(out, "hookd_delivery_unrecorded_attempts_total", "counter",
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
  unrecorded_.fetch_add(1, relaxed);
}

std::uint64_t delivery_metrics::attempts(attempt_class c) const noexcept {
  return by_class_[static_cast<std::size_t>(c)].load(relaxed);
}
std::uint64_t delivery_metrics::guard_refusals() const noexcept {
  return guard_refusals_.load(relaxed);
}
std::uint64_t delivery_metrics::unrecorded() const noexcept {
  return unrecorded_.load(relaxed);
}

void render_delivery_metrics(std::string& out, delivery_log* log, const delivery_metrics* stats) {
  if (log != nullptr) render_log(out, *log);
  if (stats == nullptr) return;
  render_dispatcher(out, *stats);

  constexpr std::string_view name = "hookd_delivery_attempt_duration_seconds";
  header(out, name, "histogram",
         "Time from the start of a delivery attempt to its end (response read, error or timeout).");
  std::uint64_t cumulative = 0;
  for (std::size_t i = 0; i <= delivery_metrics::kAttemptBuckets.size(); ++i) {
    cumulative += stats->buckets_[i].load(relaxed);
    out.append(name).append("_bucket{le=\"");
    if (i < delivery_metrics::kAttemptBuckets.size()) {
      append_number(out, delivery_metrics::kAttemptBuckets[i]);
    } else {
      out.append("+Inf");
    }
    out.append("\"} ");
    append_number(out, cumulative);
    out += '\n';
  }
  out.append(name).append("_sum ");
  append_number(out, static_cast<double>(stats->duration_ms_sum_.load(relaxed)) / 1000.0);
  out.append("\n").append(name).append("_count ");
  append_number(out, cumulative);
  out += '\n';
}

}  // namespace hookd::http
