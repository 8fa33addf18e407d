#include "http/server/rate_limiter.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

namespace hookd::http {
namespace {

using namespace std::chrono_literals;
using clock = rate_limiter::clock;

const clock::time_point t0 = clock::time_point{} + 1000s;

sha256_digest token(std::string_view name) {
  return sha256(name);
}

TEST(RateLimiter, ABurstOfTwiceTheRateThenRefusalsWithRetryAfter) {
  rate_limiter limiter(5);
  EXPECT_EQ(limiter.burst(), 10u);
  for (std::uint32_t i = 0; i < 10; ++i) {
    const auto d = limiter.take(token("a"), t0);
    EXPECT_TRUE(d.allowed) << i;
    EXPECT_EQ(d.remaining, 9 - i);
  }
  const auto refused = limiter.take(token("a"), t0);
  EXPECT_FALSE(refused.allowed);
  EXPECT_EQ(refused.remaining, 0u);
  EXPECT_GE(refused.retry_after, 1s);  // whole seconds, never 0
}

TEST(RateLimiter, AnotherTokenHasItsOwnBucket) {
  rate_limiter limiter(1);
  EXPECT_TRUE(limiter.take(token("a"), t0).allowed);
  EXPECT_TRUE(limiter.take(token("a"), t0).allowed);
  EXPECT_FALSE(limiter.take(token("a"), t0).allowed);
  EXPECT_TRUE(limiter.take(token("b"), t0).allowed);
  EXPECT_TRUE(limiter.take(token("b"), t0).allowed);
  EXPECT_FALSE(limiter.take(token("b"), t0).allowed);
}

TEST(RateLimiter, RefillsAtTheRateUpToTheBurst) {
  rate_limiter limiter(10);
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(limiter.take(token("a"), t0).allowed);
  ASSERT_FALSE(limiter.take(token("a"), t0).allowed);
  // 100 ms later one request's worth has come back, and only one.
  EXPECT_TRUE(limiter.take(token("a"), t0 + 100ms).allowed);
  EXPECT_FALSE(limiter.take(token("a"), t0 + 100ms).allowed);
  // Long after, the bucket holds the burst and no more.
  int allowed = 0;
  while (limiter.take(token("a"), t0 + 1h).allowed) ++allowed;
  EXPECT_EQ(allowed, 20);
}

TEST(RateLimiter, SustainedRateIsTheLimit) {
  rate_limiter limiter(100);
  int allowed = 0;
  // 10 s of requests every millisecond: the burst plus 100 per second.
  for (int ms = 0; ms < 10'000; ++ms) {
    if (limiter.take(token("a"), t0 + std::chrono::milliseconds(ms)).allowed) ++allowed;
  }
  EXPECT_GE(allowed, 200 + 999);
  EXPECT_LE(allowed, 200 + 1'000);
}

TEST(RateLimiter, MemoryIsBoundedAndIdleBucketsGoFirst) {
  const std::size_t max = rate_limiter::kShards * 4;
  rate_limiter limiter(1, max);
  for (int i = 0; i < 10'000; ++i) {
    limiter.take(token("made-up-" + std::to_string(i)), t0);
  }
  EXPECT_LE(limiter.size(), max);

  // A token in active use keeps its bucket while idle ones make room for new tokens: fill the
  // busy token's shard with others, let them go idle, then bring new tokens to that shard.
  rate_limiter small(1, max);  // 4 buckets per shard
  const auto shard_of = [](const sha256_digest& d) {
    return d[0] % rate_limiter::kShards;
  };
  const auto busy = token("busy");
  const auto same_shard = [&](std::string_view prefix, int n) {
    std::vector<sha256_digest> out;
    for (int i = 0; static_cast<int>(out.size()) < n; ++i) {
      const auto d = token(std::string(prefix) + std::to_string(i));
      if (shard_of(d) == shard_of(busy)) out.push_back(d);
    }
    return out;
  };
  for (const auto& d : same_shard("old-", 3)) small.take(d, t0);
  const auto later = t0 + 10s;                   // every "old" bucket is full again: idle
  ASSERT_TRUE(small.take(busy, later).allowed);  // the shard's fourth bucket
  ASSERT_TRUE(small.take(busy, later).allowed);
  for (const auto& d : same_shard("new-", 3)) small.take(d, later);  // 3 new: the old ones go
  EXPECT_FALSE(small.take(busy, later).allowed) << "the busy bucket was evicted";
}

TEST(RateLimiter, ConcurrentTakesNeverExceedTheBurst) {
  rate_limiter limiter(50);
  std::atomic<int> allowed{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 1000; ++i) {
        if (limiter.take(token("shared"), t0).allowed) allowed.fetch_add(1);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(allowed.load(), 100);
}

}  // namespace
}  // namespace hookd::http
