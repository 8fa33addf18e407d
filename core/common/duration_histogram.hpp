#pragma once
// A Prometheus histogram of durations with fixed bounds, for the per-stage latencies /metrics
// shows (docs/operations.md, "Where a delivery's time goes"): 15 bounds from 0.5 ms to 30 s,
// each bucket counting the samples at or below its bound and above the previous one.
//
// Thread-safe and lock-free: record() is one relaxed atomic increment and one relaxed add, so
// any thread may record while another reads. A read is not a consistent cut: a sample recorded
// meanwhile may be in the counts and not yet in the sum, which a scrape tolerates.

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>

namespace hookd {

class duration_histogram {
 public:
  // Upper bounds in seconds (Prometheus' `le`): sub-millisecond for a group commit or a hand-off
  // on an idle node, up to 30 s for an attempt that runs into a long --delivery-timeout.
  static constexpr std::array<double, 15> kBounds = {
      0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};

  // Non-cumulative counts, one per bound and a last one above every bound; the sum in seconds.
  struct snapshot {
    std::array<std::uint64_t, kBounds.size() + 1> counts{};
    double sum_seconds = 0;
    [[nodiscard]] std::uint64_t count() const noexcept;
  };

  // Adds one sample; a negative duration (a clock read out of order) counts as 0.
  void record(std::chrono::nanoseconds d) noexcept;
  [[nodiscard]] snapshot read() const noexcept;

 private:
  std::array<std::atomic<std::uint64_t>, kBounds.size() + 1> counts_{};
  std::atomic<std::uint64_t> sum_ns_{0};
};

}  // namespace hookd
