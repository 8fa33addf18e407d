#include "http/server/metrics.hpp"

#include "core/catalog/catalog.hpp"
#include "core/durable/storage.hpp"
#include "hookd/version.hpp"
#include "http/api/app.hpp"
#include "http/outbound/delivery_metrics.hpp"
#include "http/server/prometheus.hpp"

#include <mutex>

namespace hookd::http {

// Status codes 100..599 each get a slot, so counting a request is one atomic increment with no
// map lookup beyond the route's.
struct metrics::route_stats {
  static constexpr unsigned kFirstStatus = 100, kLastStatus = 599;
  std::array<std::atomic<std::uint64_t>, kLastStatus - kFirstStatus + 1> by_status{};
  // Non-cumulative counts per bucket; the last slot is "above the highest bound" (+Inf only).
  std::array<std::atomic<std::uint64_t>, kLatencyBuckets.size() + 1> buckets{};
  std::atomic<std::uint64_t> sum_ns{0};
  std::atomic<std::uint64_t> count{0};
};

namespace {

constexpr std::string_view kUnmatched = "unmatched";

}  // namespace

metrics::metrics() = default;
metrics::~metrics() = default;

metrics::route_stats& metrics::stats_for(std::string_view route) {
  if (route.empty()) route = kUnmatched;
  {
    std::shared_lock lock(mutex_);
    if (const auto it = routes_.find(route); it != routes_.end()) return *it->second;
  }
  std::unique_lock lock(mutex_);
  auto& slot = routes_[std::string(route)];
  if (!slot) slot = std::make_unique<route_stats>();
  return *slot;
}

void metrics::record_request(std::string_view route, unsigned status,
                             std::chrono::nanoseconds latency) {
  auto& s = stats_for(route);
  if (status < route_stats::kFirstStatus || status > route_stats::kLastStatus) {
    status = route_stats::kLastStatus;  // Beast allows 0..999; nothing in hookd sends those
  }
  s.by_status[status - route_stats::kFirstStatus].fetch_add(1, std::memory_order_relaxed);

  const auto ns =
      latency.count() < 0 ? std::uint64_t{0} : static_cast<std::uint64_t>(latency.count());
  const double seconds = static_cast<double>(ns) / 1e9;
  std::size_t bucket = 0;
  while (bucket < kLatencyBuckets.size() && seconds > kLatencyBuckets[bucket]) ++bucket;
  s.buckets[bucket].fetch_add(1, std::memory_order_relaxed);
  s.sum_ns.fetch_add(ns, std::memory_order_relaxed);
  s.count.fetch_add(1, std::memory_order_relaxed);
  requests_total_.fetch_add(1, std::memory_order_relaxed);
}

void metrics::connection_opened() noexcept {
  open_connections_.fetch_add(1, std::memory_order_relaxed);
  connections_total_.fetch_add(1, std::memory_order_relaxed);
}

void metrics::connection_closed() noexcept {
  open_connections_.fetch_sub(1, std::memory_order_relaxed);
}

void metrics::connection_refused() noexcept {
  connections_refused_total_.fetch_add(1, std::memory_order_relaxed);
}

std::uint64_t metrics::requests_total() const noexcept {
  return requests_total_.load(std::memory_order_relaxed);
}

std::int64_t metrics::open_connections() const noexcept {
  return open_connections_.load(std::memory_order_relaxed);
}

std::string metrics::render(const app& a) const {
  std::string out;
  out.reserve(8192);
  prometheus_writer w(out);

  w.family("hookd_build_info", metric_type::gauge, "Version of the running hookd.");
  w.sample("hookd_build_info", {{"version", kVersion}}, std::uint64_t{1});
  w.single("hookd_ready", metric_type::gauge,
           "1 when storage is open and the catalog loaded, else 0.",
           std::uint64_t{a.ready.load() && !a.draining.load() ? 1u : 0u});
  w.single("hookd_draining", metric_type::gauge,
           "1 after SIGTERM/SIGINT while requests drain, else 0.",
           std::uint64_t{a.draining.load() ? 1u : 0u});

  {
    std::shared_lock lock(mutex_);
    w.family("hookd_http_requests_total", metric_type::counter,
             "HTTP requests answered, by route pattern and status code.");
    for (const auto& [route, s] : routes_) {
      for (std::size_t i = 0; i < s->by_status.size(); ++i) {
        const auto n = s->by_status[i].load(std::memory_order_relaxed);
        if (n == 0) continue;
        const auto code = std::to_string(route_stats::kFirstStatus + i);
        w.sample("hookd_http_requests_total", {{"route", route}, {"code", code}}, n);
      }
    }

    w.family("hookd_http_request_duration_seconds", metric_type::histogram,
             "Time from a complete request head to the response written, by route pattern.");
    for (const auto& [route, s] : routes_) {
      std::array<std::uint64_t, kLatencyBuckets.size() + 1> counts;
      for (std::size_t i = 0; i < counts.size(); ++i) {
        counts[i] = s->buckets[i].load(std::memory_order_relaxed);
      }
      // _count is the bucket total, not s->count: the +Inf bucket and _count must agree.
      w.histogram("hookd_http_request_duration_seconds", {{"route", route}}, kLatencyBuckets,
                  counts, static_cast<double>(s->sum_ns.load(std::memory_order_relaxed)) / 1e9);
    }
  }

  w.single("hookd_http_open_connections", metric_type::gauge, "HTTP connections currently open.",
           open_connections());
  w.single("hookd_http_connections_total", metric_type::counter, "HTTP connections accepted.",
           connections_total_.load(std::memory_order_relaxed));
  w.single("hookd_http_connections_refused_total", metric_type::counter,
           "HTTP connections answered 503 and closed at the connection limit (--max-connections).",
           connections_refused_total_.load(std::memory_order_relaxed));

  {
    constexpr std::string_view name = "hookd_ingest_commit_seconds";
    w.family(name, metric_type::histogram,
             "Time from an ingest request taken by its handler to its event's write durable "
             "(group commit, fsync).");
    const auto h = ingest_commit_.read();
    w.histogram(name, {}, duration_histogram::kBounds, h.counts, h.sum_seconds);
  }

  const auto counts = a.cat.counts();
  w.family("hookd_catalog_objects", metric_type::gauge, "Objects in the catalog, by kind.");
  const std::pair<std::string_view, std::size_t> kinds[] = {{"organizations", counts.organizations},
                                                            {"projects", counts.projects},
                                                            {"tokens", counts.tokens},
                                                            {"webhooks", counts.webhooks}};
  for (const auto& [kind, n] : kinds) {
    w.sample("hookd_catalog_objects", {{"kind", kind}}, std::uint64_t{n});
  }

  const auto commits = a.cat.stats();
  w.single("hookd_catalog_commit_groups_total", metric_type::counter,
           "Batches the catalog writer committed (one fsync each).", commits.groups);
  w.single("hookd_catalog_commit_mutations_total", metric_type::counter,
           "Logical changes committed inside those batches.", commits.mutations);
  w.single("hookd_catalog_commit_rejected_total", metric_type::counter,
           "Changes refused before writing (conflict, limit, not found).", commits.rejected);
  w.single("hookd_catalog_commit_failed_total", metric_type::counter,
           "Changes whose batch failed to become durable.", commits.failed);

  if (a.store != nullptr) {
    const auto st = a.store->stats();
    w.single("hookd_storage_write_batches_total", metric_type::counter,
             "Write batches storage made durable.", st.batches);
    w.single("hookd_storage_records_written_total", metric_type::counter,
             "Puts and deletes inside those batches.", st.records);
    w.single("hookd_storage_fsyncs_total", metric_type::counter, "fsyncs storage performed.",
             st.syncs);
    w.single("hookd_storage_write_failures_total", metric_type::counter,
             "Write batches that failed.", st.failures);
    w.single("hookd_storage_degraded", metric_type::gauge,
             "1 while writes fail (disk full, I/O error) and reads still work; 0 otherwise.",
             std::uint64_t{st.degraded ? 1u : 0u});
    w.single("hookd_storage_degraded_episodes_total", metric_type::counter,
             "Times storage went from healthy to degraded.", st.degraded_episodes);
    // docs/operations.md, "RocksDB's background work".
    w.single("hookd_storage_background_idle_jobs_total", metric_type::counter,
             "RocksDB flushes and compactions begun under the idle scheduling policy.",
             st.background_idle_jobs);
    w.family("hookd_storage_background_raised_total", metric_type::counter,
             "Times RocksDB's lowered threads were put back to the normal policy: a job ran "
             "longer than its bound (waited), a memtable filled halfway while the one before "
             "it waited for its flush (filling), or writes stalled (stalled).");
    w.sample("hookd_storage_background_raised_total", {{"reason", "waited"}},
             st.background_raised_waited);
    w.sample("hookd_storage_background_raised_total", {{"reason", "filling"}},
             st.background_raised_filling);
    w.sample("hookd_storage_background_raised_total", {{"reason", "stalled"}},
             st.background_raised_stalled);
  }
  render_delivery_metrics(w, a.deliveries, a.delivery_stats);
  if (a.metrics_per_webhook && a.health != nullptr) render_webhook_metrics(w, *a.health);
  return out;
}

}  // namespace hookd::http
