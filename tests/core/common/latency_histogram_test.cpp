#include "core/common/latency_histogram.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

namespace hookd {
namespace {

constexpr double kBound = latency_histogram::kMaxRelativeError;

// The sample of rank ceil(q * n) (1-based) of `sorted`: the definition percentile() documents.
std::uint64_t exact_percentile(const std::vector<std::uint64_t>& sorted, double q) {
  auto rank = static_cast<std::size_t>(std::ceil(q * double(sorted.size())));
  rank = std::clamp<std::size_t>(rank, 1, sorted.size());
  return sorted[rank - 1];
}

// Records `samples` and checks every usual percentile against the exact one within the bound.
void expect_within_bound(std::vector<std::uint64_t> samples) {
  latency_histogram h;
  for (auto v : samples) h.record(v);
  std::sort(samples.begin(), samples.end());
  for (double q : {0.001, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 0.999, 0.9999}) {
    const std::uint64_t exact = exact_percentile(samples, q);
    const std::uint64_t got = h.percentile(q);
    EXPECT_GE(got, exact) << "q=" << q;
    EXPECT_LE(double(got), double(exact) * (1.0 + kBound)) << "q=" << q << " exact=" << exact;
  }
  EXPECT_EQ(h.count(), samples.size());
  EXPECT_EQ(h.min(), samples.front());
  EXPECT_EQ(h.max(), samples.back());
}

TEST(LatencyHistogram, EmptyReportsZeros) {
  latency_histogram h;
  EXPECT_EQ(h.count(), 0u);
  EXPECT_EQ(h.min(), 0u);
  EXPECT_EQ(h.max(), 0u);
  EXPECT_EQ(h.mean(), 0.0);
  EXPECT_EQ(h.percentile(0.0), 0u);
  EXPECT_EQ(h.percentile(0.5), 0u);
  EXPECT_EQ(h.percentile(1.0), 0u);
}

TEST(LatencyHistogram, SmallValuesAreExact) {
  latency_histogram h;
  for (std::uint64_t v = 1; v <= 200; ++v) h.record(v);
  EXPECT_EQ(h.percentile(0.5), 100u);
  EXPECT_EQ(h.percentile(0.9), 180u);
  EXPECT_EQ(h.percentile(0.99), 198u);
  EXPECT_EQ(h.percentile(0.0), 1u);
  EXPECT_EQ(h.percentile(1.0), 200u);
  EXPECT_DOUBLE_EQ(h.mean(), 100.5);
}

TEST(LatencyHistogram, SingleValueIsReportedExactlyAtEveryPercentile) {
  latency_histogram h;
  h.record(123'457);  // a bucket of width 1024: the clamp to max keeps it exact
  for (double q : {0.0, 0.5, 0.99, 1.0}) EXPECT_EQ(h.percentile(q), 123'457u) << q;
}

TEST(LatencyHistogram, UniformDistributionWithinBound) {
  std::vector<std::uint64_t> samples;
  for (std::uint64_t v = 1; v <= 1'000'000; ++v) samples.push_back(v);
  expect_within_bound(std::move(samples));
}

TEST(LatencyHistogram, ExponentialDistributionWithinBound) {
  std::mt19937_64 rng(42);
  std::exponential_distribution<double> dist(1.0 / 800.0);  // mean 800 µs, a long tail
  std::vector<std::uint64_t> samples;
  for (int i = 0; i < 200'000; ++i) samples.push_back(std::uint64_t(dist(rng)) + 1);
  expect_within_bound(std::move(samples));
}

TEST(LatencyHistogram, LogNormalAcrossManyDecadesWithinBound) {
  std::mt19937_64 rng(7);
  std::lognormal_distribution<double> dist(8.0, 3.0);  // from single µs to many seconds
  std::vector<std::uint64_t> samples;
  for (int i = 0; i < 200'000; ++i) {
    samples.push_back(
        std::min<std::uint64_t>(std::uint64_t(dist(rng)), latency_histogram::kMaxTrackable));
  }
  expect_within_bound(std::move(samples));
}

TEST(LatencyHistogram, MeanIsExact) {
  latency_histogram h;
  h.record(1'000);
  h.record(2'001);
  h.record(1'000'000);
  EXPECT_DOUBLE_EQ(h.mean(), (1'000.0 + 2'001.0 + 1'000'000.0) / 3.0);
}

TEST(LatencyHistogram, MergeEqualsRecordingEverythingInOne) {
  std::mt19937_64 rng(1);
  std::exponential_distribution<double> dist(1.0 / 5'000.0);
  latency_histogram a, b, all;
  for (int i = 0; i < 50'000; ++i) {
    const auto v = std::uint64_t(dist(rng));
    (i % 3 == 0 ? a : b).record(v);
    all.record(v);
  }
  latency_histogram merged;
  merged.merge(a);
  merged.merge(b);
  EXPECT_EQ(merged.count(), all.count());
  EXPECT_EQ(merged.min(), all.min());
  EXPECT_EQ(merged.max(), all.max());
  EXPECT_DOUBLE_EQ(merged.mean(), all.mean());
  for (double q : {0.0, 0.5, 0.9, 0.99, 0.999, 1.0}) {
    EXPECT_EQ(merged.percentile(q), all.percentile(q)) << q;
  }
}

TEST(LatencyHistogram, MergingAnEmptyHistogramChangesNothing) {
  latency_histogram h, empty;
  h.record(10);
  h.record(20);
  h.merge(empty);
  EXPECT_EQ(h.count(), 2u);
  EXPECT_EQ(h.min(), 10u);
  EXPECT_EQ(h.max(), 20u);
  empty.merge(h);
  EXPECT_EQ(empty.count(), 2u);
  EXPECT_EQ(empty.min(), 10u);
}

TEST(LatencyHistogram, ExtremeValues) {
  latency_histogram h;
  h.record(0);
  h.record(1);
  EXPECT_EQ(h.percentile(0.5), 0u);
  EXPECT_EQ(h.min(), 0u);

  const std::uint64_t one_hour = 3'600ull * 1'000'000ull;
  h.record(one_hour);
  EXPECT_EQ(h.percentile(1.0), one_hour);
  EXPECT_GE(h.percentile(0.99), one_hour);
  EXPECT_LE(double(h.percentile(0.99)), double(one_hour) * (1.0 + kBound));

  // Beyond the trackable range: clamped, never an out-of-range bucket.
  h.record(std::numeric_limits<std::uint64_t>::max());
  EXPECT_EQ(h.max(), latency_histogram::kMaxTrackable);
  EXPECT_EQ(h.percentile(1.0), latency_histogram::kMaxTrackable);
  EXPECT_EQ(h.count(), 4u);
}

TEST(LatencyHistogram, OutOfRangeQuantilesAreClamped) {
  latency_histogram h;
  for (std::uint64_t v : {5u, 50u, 500u}) h.record(v);
  EXPECT_EQ(h.percentile(-1.0), 5u);
  EXPECT_EQ(h.percentile(2.0), 500u);
  EXPECT_EQ(h.percentile(std::nan("")), 5u);
}

TEST(LatencyHistogram, ResetForgetsSamples) {
  latency_histogram h;
  h.record(1'000);
  h.reset();
  EXPECT_EQ(h.count(), 0u);
  EXPECT_EQ(h.percentile(0.5), 0u);
  h.record(7);
  EXPECT_EQ(h.min(), 7u);
  EXPECT_EQ(h.max(), 7u);
}

TEST(LatencyHistogram, BucketsAreContiguousMonotoneAndWithinBound) {
  EXPECT_EQ(latency_histogram::bucket_of(latency_histogram::kMaxTrackable),
            latency_histogram::bucket_count() - 1);
  EXPECT_EQ(latency_histogram::highest_in_bucket(latency_histogram::bucket_count() - 1),
            latency_histogram::kMaxTrackable);
  // Around every power of two: indexes never go down and never skip, and a value's bucket
  // reaches at most kBound above it.
  for (unsigned bit = 1; bit < 32; ++bit) {
    const std::uint64_t p = std::uint64_t{1} << bit;
    for (std::uint64_t v = p - std::min<std::uint64_t>(p / 2, 300); v < p + 300; ++v) {
      const auto i = latency_histogram::bucket_of(v);
      const auto next = latency_histogram::bucket_of(v + 1);
      EXPECT_TRUE(next == i || next == i + 1) << v;
      const auto hi = latency_histogram::highest_in_bucket(i);
      ASSERT_GE(hi, v);
      ASSERT_LE(double(hi - v), double(v) * kBound) << v;
      EXPECT_EQ(latency_histogram::bucket_of(hi), i) << v;
    }
  }
}

}  // namespace
}  // namespace hookd
