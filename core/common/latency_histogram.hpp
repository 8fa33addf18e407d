#pragma once
// A log-linear latency histogram of microseconds in the manner of HdrHistogram: every power of
// two [2^m, 2^(m+1)) is split into 128 equal sub-buckets, and values below 256 have a bucket of
// their own. That is 3328 counters (26 KiB, allocated once), O(1) record, O(buckets) percentile.
//
// Error bound: percentile(q) returns the highest value of the bucket that holds the sample of
// rank ceil(q * count), clamped to max(). For that exact sample v the result r satisfies
//   v <= r <= v * (1 + kMaxRelativeError),   kMaxRelativeError = 1/128 (0.79 %),
// and values below 256 µs are exact. min(), max() and mean() are exact (for recorded values up to
// kMaxTrackable; larger ones are clamped to it, as are their contributions to the mean).
//
// Not thread-safe: one writer, or a lock around it. Merge per-thread histograms instead of sharing.

#include <cstddef>
#include <cstdint>
#include <vector>

namespace hookd {

class latency_histogram {
 public:
  // 2^32 - 1 µs is about 71.6 minutes, beyond any request or delivery latency worth measuring.
  static constexpr std::uint64_t kMaxTrackable = (std::uint64_t{1} << 32) - 1;
  static constexpr unsigned kSubBucketBits = 7;  // 128 sub-buckets per power of two
  static constexpr double kMaxRelativeError = 1.0 / double(std::uint64_t{1} << kSubBucketBits);

  latency_histogram();

  // Adds one sample; values above kMaxTrackable count as kMaxTrackable.
  void record(std::uint64_t micros) noexcept;
  // Adds every sample of `other` (same bucket layout by construction).
  void merge(const latency_histogram& other) noexcept;
  // Forgets every sample; keeps the memory.
  void reset() noexcept;

  [[nodiscard]] std::uint64_t count() const noexcept { return count_; }
  // 0 when empty.
  [[nodiscard]] std::uint64_t min() const noexcept { return count_ == 0 ? 0 : min_; }
  [[nodiscard]] std::uint64_t max() const noexcept { return max_; }
  [[nodiscard]] double mean() const noexcept;
  // q in [0, 1] (clamped); 0 when empty. percentile(0) is min(), percentile(1) is max().
  [[nodiscard]] std::uint64_t percentile(double q) const noexcept;

  [[nodiscard]] static std::size_t bucket_count() noexcept;
  // The bucket a value falls in and the highest value that bucket holds (for tests and tools).
  [[nodiscard]] static std::size_t bucket_of(std::uint64_t micros) noexcept;
  [[nodiscard]] static std::uint64_t highest_in_bucket(std::size_t index) noexcept;

 private:
  std::vector<std::uint64_t> counts_;
  std::uint64_t count_ = 0;
  std::uint64_t sum_ = 0;  // of clamped values: cannot overflow before 2^32 samples at the maximum
  std::uint64_t min_ = kMaxTrackable;
  std::uint64_t max_ = 0;
};

}  // namespace hookd
