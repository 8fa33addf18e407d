#pragma once
// The per-token API rate limit (--rate-limit; docs/operations.md, "Rate limit"): a token bucket
// per token, keyed by the SHA-256 digest of the token the request presents, refilled at `rate`
// per second and holding at most `burst` (2 x rate).
//
// Thread-safe and lock-light: the buckets live in kShards shards chosen by the digest's first
// byte, each under its own mutex held for one hash lookup and a few arithmetic operations, so
// that requests of different tokens rarely meet. Memory is bounded: a shard holds at most
// max_buckets / kShards buckets; a new token beyond that first drops the shard's idle buckets
// (those refilled to the full burst: forgetting them changes no decision; at most one sweep per
// refill period), and when none is idle, an arbitrary one, which then starts again from a full
// burst.

#include "core/common/crypto.hpp"

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <unordered_map>

namespace hookd::http {

class rate_limiter {
 public:
  using clock = std::chrono::steady_clock;
  static constexpr std::size_t kShards = 64;
  // Room for this many tokens' buckets (about 100 bytes each): far more than the tokens a
  // deployment issues, and a bound when clients present made-up ones.
  static constexpr std::size_t kDefaultMaxBuckets = 65'536;

  // rate: requests per second (>= 1); the burst is 2 x rate.
  explicit rate_limiter(std::uint32_t rate, std::size_t max_buckets = kDefaultMaxBuckets);

  struct decision {
    bool allowed = true;
    std::uint32_t remaining = 0;          // whole requests left in the bucket after this one
    std::chrono::seconds retry_after{0};  // when refused: >= 1 s until one request is allowed
  };
  // Takes one request from the token's bucket when it holds one.
  decision take(const sha256_digest& token_digest, clock::time_point now);

  [[nodiscard]] std::uint32_t rate() const noexcept { return rate_; }
  [[nodiscard]] std::uint32_t burst() const noexcept { return burst_; }
  [[nodiscard]] std::size_t size() const;  // buckets held, for tests

 private:
  struct bucket {
    double tokens = 0;
    clock::time_point refilled{};
  };
  struct digest_hash {
    std::size_t operator()(const sha256_digest& d) const noexcept;
  };
  struct shard {
    mutable std::mutex mutex;
    std::unordered_map<sha256_digest, bucket, digest_hash> buckets;
    // A full shard sweeps for idle buckets at most this often: under a flood of new tokens the
    // sweep (a walk of the shard) would otherwise run for every request.
    clock::time_point next_sweep{};
  };
  void make_room(shard& s, clock::time_point now);

  std::uint32_t rate_;
  std::uint32_t burst_;
  std::size_t max_per_shard_;
  clock::duration full_after_;  // time to refill an empty bucket: past it, a bucket is idle
  std::unique_ptr<std::array<shard, kShards>> shards_;
};

}  // namespace hookd::http
