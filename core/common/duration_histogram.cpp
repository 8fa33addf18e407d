#include "core/common/duration_histogram.hpp"

namespace hookd {
namespace {

constexpr auto relaxed = std::memory_order_relaxed;

// The bounds in nanoseconds, so that finding a bucket compares integers.
constexpr std::array<std::int64_t, duration_histogram::kBounds.size()> kBoundNanos = [] {
  std::array<std::int64_t, duration_histogram::kBounds.size()> out{};
  for (std::size_t i = 0; i < out.size(); ++i) {
    out[i] = static_cast<std::int64_t>(duration_histogram::kBounds[i] * 1e9 + 0.5);
  }
  return out;
}();

}  // namespace

void duration_histogram::record(std::chrono::nanoseconds d) noexcept {
  const std::int64_t ns = d.count() < 0 ? 0 : d.count();
  std::size_t bucket = 0;
  while (bucket < kBoundNanos.size() && ns > kBoundNanos[bucket]) ++bucket;
  counts_[bucket].fetch_add(1, relaxed);
  sum_ns_.fetch_add(static_cast<std::uint64_t>(ns), relaxed);
}

duration_histogram::snapshot duration_histogram::read() const noexcept {
  snapshot s;
  for (std::size_t i = 0; i < counts_.size(); ++i) s.counts[i] = counts_[i].load(relaxed);
  s.sum_seconds = static_cast<double>(sum_ns_.load(relaxed)) / 1e9;
  return s;
}

std::uint64_t duration_histogram::snapshot::count() const noexcept {
  std::uint64_t total = 0;
  for (const std::uint64_t c : counts) total += c;
  return total;
}

}  // namespace hookd
