#pragma once
// Request and connection metrics for /metrics, in Prometheus text exposition format 0.0.4.
//
// Thread-safe and lock-light: each route's counters are atomics; finding a route's counters
// takes a shared lock, and only the first request on a new route label takes the exclusive one.
// Routes are few and fixed (the router's patterns), so the table stops growing after warm-up.

#include "core/common/duration_histogram.hpp"

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <shared_mutex>
#include <string>
#include <string_view>

namespace hookd::http {

struct app;

class metrics {
 public:
  // Upper bounds of the latency histogram, in seconds (Prometheus' `le`), from 0.5 ms to 10 s.
  static constexpr std::array<double, 14> kLatencyBuckets = {
      0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};

  metrics();
  ~metrics();
  metrics(const metrics&) = delete;
  metrics& operator=(const metrics&) = delete;

  // One answered request. `route` is the router's label ("" for requests that matched no
  // route or failed before routing); `status` is the HTTP status code sent.
  void record_request(std::string_view route, unsigned status, std::chrono::nanoseconds latency);
  void connection_opened() noexcept;
  void connection_closed() noexcept;
  // A connection answered 503 and closed because the server was at its connection limit.
  void connection_refused() noexcept;
  // An event ingested: from its request taken to its write durable (hookd_ingest_commit_seconds,
  // docs/operations.md "Where a delivery's time goes").
  void record_ingest_commit(std::chrono::nanoseconds d) noexcept { ingest_commit_.record(d); }

  std::uint64_t requests_total() const noexcept;
  std::int64_t open_connections() const noexcept;

  // The whole exposition: HTTP counters and histogram, connections, catalog sizes and commit
  // statistics, storage batches and fsyncs (when `a.store` is set).
  std::string render(const app& a) const;

 private:
  struct route_stats;
  route_stats& stats_for(std::string_view route);

  mutable std::shared_mutex mutex_;
  std::map<std::string, std::unique_ptr<route_stats>, std::less<>> routes_;
  std::atomic<std::int64_t> open_connections_{0};
  std::atomic<std::uint64_t> connections_total_{0};
  std::atomic<std::uint64_t> connections_refused_total_{0};
  std::atomic<std::uint64_t> requests_total_{0};
  duration_histogram ingest_commit_;
};

}  // namespace hookd::http
