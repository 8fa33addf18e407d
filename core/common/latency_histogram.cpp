#include "core/common/latency_histogram.hpp"

#include <algorithm>
#include <bit>
#include <cmath>

namespace hookd {
namespace {

constexpr std::size_t kSubBuckets = std::size_t{1} << latency_histogram::kSubBucketBits;
// Values below 2 * kSubBuckets are exact; above, the bucket width doubles with every power of two.
// shift(v) = max(0, bit_width(v) - (kSubBucketBits + 1)); index(v) = shift * 128 + (v >> shift).
// Consecutive powers of two then take consecutive index ranges of 128: [256, 384) for [256, 512).
constexpr unsigned kMaxShift =
    std::bit_width(latency_histogram::kMaxTrackable) - (latency_histogram::kSubBucketBits + 1);
constexpr std::size_t kBuckets = (kMaxShift + 2) * kSubBuckets;

}  // namespace

latency_histogram::latency_histogram() : counts_(kBuckets, 0) {}

std::size_t latency_histogram::bucket_count() noexcept {
  return kBuckets;
}

std::size_t latency_histogram::bucket_of(std::uint64_t micros) noexcept {
  const std::uint64_t v = std::min(micros, kMaxTrackable);
  const auto width = static_cast<unsigned>(std::bit_width(v));
  const unsigned shift = width > kSubBucketBits + 1 ? width - (kSubBucketBits + 1) : 0u;
  return std::size_t{shift} * kSubBuckets + std::size_t(v >> shift);
}

std::uint64_t latency_histogram::highest_in_bucket(std::size_t index) noexcept {
  if (index < 2 * kSubBuckets) return index;
  const std::size_t shift = index / kSubBuckets - 1;
  const std::uint64_t sub = index - shift * kSubBuckets;  // in [128, 256)
  return ((sub + 1) << shift) - 1;
}

void latency_histogram::record(std::uint64_t micros) noexcept {
  const std::uint64_t v = std::min(micros, kMaxTrackable);
  ++counts_[bucket_of(v)];
  ++count_;
  sum_ += v;
  min_ = std::min(min_, v);
  max_ = std::max(max_, v);
}

void latency_histogram::merge(const latency_histogram& other) noexcept {
  if (other.count_ == 0) return;
  for (std::size_t i = 0; i < kBuckets; ++i) counts_[i] += other.counts_[i];
  count_ += other.count_;
  sum_ += other.sum_;
  min_ = std::min(min_, other.min_);
  max_ = std::max(max_, other.max_);
}

void latency_histogram::reset() noexcept {
  std::fill(counts_.begin(), counts_.end(), 0);
  count_ = 0;
  sum_ = 0;
  min_ = kMaxTrackable;
  max_ = 0;
}

double latency_histogram::mean() const noexcept {
  return count_ == 0 ? 0.0 : double(sum_) / double(count_);
}

std::uint64_t latency_histogram::percentile(double q) const noexcept {
  if (count_ == 0) return 0;
  if (!(q > 0.0)) return min_;  // also NaN
  if (q >= 1.0) return max_;
  // The sample of rank ceil(q * count), 1-based, as HdrHistogram and most load tools define it.
  auto rank = static_cast<std::uint64_t>(std::ceil(q * double(count_)));
  rank = std::clamp<std::uint64_t>(rank, 1, count_);
  std::uint64_t seen = 0;
  for (std::size_t i = 0; i < kBuckets; ++i) {
    seen += counts_[i];
    if (seen >= rank) return std::clamp(highest_in_bucket(i), min_, max_);
  }
  return max_;
}

}  // namespace hookd
