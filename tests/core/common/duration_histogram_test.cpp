#include "core/common/duration_histogram.hpp"

#include <gtest/gtest.h>

namespace hookd {
namespace {

using namespace std::chrono_literals;

TEST(DurationHistogram, ABoundBelongsToItsOwnBucketAsPrometheusLeSays) {
  duration_histogram h;
  h.record(500us);        // le=0.0005 exactly
  h.record(500us + 1ns);  // just above: le=0.001
  h.record(30s);          // the last bound
  h.record(31s);          // above every bound: +Inf only
  const auto s = h.read();
  EXPECT_EQ(s.counts[0], 1u);
  EXPECT_EQ(s.counts[1], 1u);
  EXPECT_EQ(s.counts[duration_histogram::kBounds.size() - 1], 1u);
  EXPECT_EQ(s.counts[duration_histogram::kBounds.size()], 1u);
  EXPECT_EQ(s.count(), 4u);
  EXPECT_NEAR(s.sum_seconds, 0.0005 + 0.000500001 + 30 + 31, 1e-9);
}

TEST(DurationHistogram, ANegativeDurationCountsAsZero) {
  duration_histogram h;
  h.record(-5ms);
  const auto s = h.read();
  EXPECT_EQ(s.counts[0], 1u);
  EXPECT_EQ(s.sum_seconds, 0.0);
}

TEST(DurationHistogram, EachSampleLandsInTheFirstBucketWhoseBoundHoldsIt) {
  duration_histogram h;
  h.record(200ms);  // above 0.1, within 0.25
  h.record(3ms);    // above 0.0025, within 0.005
  const auto s = h.read();
  const auto index = [](double bound) {
    for (std::size_t i = 0; i < duration_histogram::kBounds.size(); ++i) {
      if (duration_histogram::kBounds[i] == bound) return i;
    }
    return duration_histogram::kBounds.size();
  };
  EXPECT_EQ(s.counts[index(0.25)], 1u);
  EXPECT_EQ(s.counts[index(0.1)], 0u);
  EXPECT_EQ(s.counts[index(0.005)], 1u);
  EXPECT_EQ(s.count(), 2u);
}

}  // namespace
}  // namespace hookd
