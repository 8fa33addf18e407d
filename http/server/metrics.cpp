#include "http/server/metrics.hpp"

#include "core/catalog/catalog.hpp"
#include "core/durable/storage.hpp"
#include "hookd/version.hpp"
#include "http/api/app.hpp"
#include "http/outbound/delivery_metrics.hpp"

#include <charconv>
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

// Fixed notation ("0.0005", not "5e-04"): what Prometheus' own clients print for bucket bounds.
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

void append_number(std::string& out, std::int64_t v) {
  char buf[24];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, r.ptr);
}

// Label values escape backslash, double quote and newline (exposition format 0.0.4).
void append_label_value(std::string& out, std::string_view v) {
  for (const char c : v) {
    switch (c) {
      case '\\':
        out += "\\\\";
        break;
      case '"':
        out += "\\\"";
        break;
      case '\n':
        out += "\\n";
        break;
      default:
        out += c;
    }
  }
}

void header(std::string& out, std::string_view name, std::string_view type, std::string_view help) {
  out.append("# HELP ").append(name).append(" ").append(help).append("\n");
  out.append("# TYPE ").append(name).append(" ").append(type).append("\n");
}

template <class T>
void single(std::string& out, std::string_view name, std::string_view type, std::string_view help,
            T value) {
  header(out, name, type, help);
  out.append(name).append(" ");
  append_number(out, value);
  out += '\n';
}

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

  header(out, "hookd_build_info", "gauge", "Version of the running hookd.");
  out.append("hookd_build_info{version=\"");
  append_label_value(out, kVersion);
  out.append("\"} 1\n");
  single(out, "hookd_ready", "gauge", "1 when storage is open and the catalog loaded, else 0.",
         std::uint64_t{a.ready.load() && !a.draining.load() ? 1u : 0u});
  single(out, "hookd_draining", "gauge", "1 after SIGTERM/SIGINT while requests drain, else 0.",
         std::uint64_t{a.draining.load() ? 1u : 0u});

  {
    std::shared_lock lock(mutex_);
    header(out, "hookd_http_requests_total", "counter",
           "HTTP requests answered, by route pattern and status code.");
    for (const auto& [route, s] : routes_) {
      for (std::size_t i = 0; i < s->by_status.size(); ++i) {
        const auto n = s->by_status[i].load(std::memory_order_relaxed);
        if (n == 0) continue;
        out.append("hookd_http_requests_total{route=\"");
        append_label_value(out, route);
        out.append("\",code=\"");
        append_number(out, std::uint64_t{route_stats::kFirstStatus + i});
        out.append("\"} ");
        append_number(out, n);
        out += '\n';
      }
    }

    header(out, "hookd_http_request_duration_seconds", "histogram",
           "Time from a complete request head to the response written, by route pattern.");
    for (const auto& [route, s] : routes_) {
      std::uint64_t cumulative = 0;
      for (std::size_t i = 0; i <= kLatencyBuckets.size(); ++i) {
        cumulative += s->buckets[i].load(std::memory_order_relaxed);
        out.append("hookd_http_request_duration_seconds_bucket{route=\"");
        append_label_value(out, route);
        out.append("\",le=\"");
        if (i < kLatencyBuckets.size()) {
          append_number(out, kLatencyBuckets[i]);
        } else {
          out.append("+Inf");
        }
        out.append("\"} ");
        append_number(out, cumulative);
        out += '\n';
      }
      out.append("hookd_http_request_duration_seconds_sum{route=\"");
      append_label_value(out, route);
      out.append("\"} ");
      append_number(out, static_cast<double>(s->sum_ns.load(std::memory_order_relaxed)) / 1e9);
      out.append("\nhookd_http_request_duration_seconds_count{route=\"");
      append_label_value(out, route);
      out.append("\"} ");
      // The +Inf bucket and _count must agree; both come from the bucket sum read above.
      append_number(out, cumulative);
      out += '\n';
    }
  }

  single(out, "hookd_http_open_connections", "gauge", "HTTP connections currently open.",
         open_connections());
  single(out, "hookd_http_connections_total", "counter", "HTTP connections accepted.",
         connections_total_.load(std::memory_order_relaxed));
  single(out, "hookd_http_connections_refused_total", "counter",
         "HTTP connections answered 503 and closed at the connection limit (--max-connections).",
         connections_refused_total_.load(std::memory_order_relaxed));

  const auto counts = a.cat.counts();
  header(out, "hookd_catalog_objects", "gauge", "Objects in the catalog, by kind.");
  const std::pair<std::string_view, std::size_t> kinds[] = {{"organizations", counts.organizations},
                                                            {"projects", counts.projects},
                                                            {"tokens", counts.tokens},
                                                            {"webhooks", counts.webhooks}};
  for (const auto& [kind, n] : kinds) {
    out.append("hookd_catalog_objects{kind=\"").append(kind).append("\"} ");
    append_number(out, std::uint64_t{n});
    out += '\n';
  }

  const auto commits = a.cat.stats();
  single(out, "hookd_catalog_commit_groups_total", "counter",
         "Batches the catalog writer committed (one fsync each).", commits.groups);
  single(out, "hookd_catalog_commit_mutations_total", "counter",
         "Logical changes committed inside those batches.", commits.mutations);
  single(out, "hookd_catalog_commit_rejected_total", "counter",
         "Changes refused before writing (conflict, limit, not found).", commits.rejected);
  single(out, "hookd_catalog_commit_failed_total", "counter",
         "Changes whose batch failed to become durable.", commits.failed);

  if (a.store != nullptr) {
    const auto st = a.store->stats();
    single(out, "hookd_storage_write_batches_total", "counter",
           "Write batches storage made durable.", st.batches);
    single(out, "hookd_storage_records_written_total", "counter",
           "Puts and deletes inside those batches.", st.records);
    single(out, "hookd_storage_fsyncs_total", "counter", "fsyncs storage performed.", st.syncs);
    single(out, "hookd_storage_write_failures_total", "counter", "Write batches that failed.",
           st.failures);
  }
  render_delivery_metrics(out, a.deliveries, a.delivery_stats);
  return out;
}

}  // namespace hookd::http
