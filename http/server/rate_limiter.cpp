#include "http/server/rate_limiter.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace hookd::http {

std::size_t rate_limiter::digest_hash::operator()(const sha256_digest& d) const noexcept {
  // The digest is uniformly distributed already: any eight of its bytes are a good hash.
  std::size_t h = 0;
  std::memcpy(&h, d.data() + 8, sizeof h);
  return h;
}

rate_limiter::rate_limiter(std::uint32_t rate, std::size_t max_buckets)
    : rate_(std::max<std::uint32_t>(rate, 1)),
      burst_(2 * rate_),
      max_per_shard_(std::max<std::size_t>(max_buckets / kShards, 1)),
      full_after_(std::chrono::duration_cast<clock::duration>(
          std::chrono::duration<double>(static_cast<double>(burst_) / rate_))),
      shards_(std::make_unique<std::array<shard, kShards>>()) {}

rate_limiter::decision rate_limiter::take(const sha256_digest& token_digest,
                                          clock::time_point now) {
  shard& s = (*shards_)[token_digest[0] % kShards];
  std::lock_guard lock(s.mutex);
  auto it = s.buckets.find(token_digest);
  if (it == s.buckets.end()) {
    if (s.buckets.size() >= max_per_shard_) make_room(s, now);
    it = s.buckets.emplace(token_digest, bucket{static_cast<double>(burst_), now}).first;
  }
  bucket& b = it->second;
  if (now > b.refilled) {
    const double seconds = std::chrono::duration<double>(now - b.refilled).count();
    b.tokens = std::min<double>(burst_, b.tokens + seconds * rate_);
    b.refilled = now;
  }
  decision d;
  if (b.tokens >= 1.0) {
    b.tokens -= 1.0;
    d.remaining = static_cast<std::uint32_t>(b.tokens);
    return d;
  }
  d.allowed = false;
  // The next whole request is (1 - tokens) / rate seconds away; Retry-After counts whole seconds
  // and never says 0, which a client could take as "at once".
  const double wait = (1.0 - b.tokens) / rate_;
  d.retry_after =
      std::chrono::seconds(std::max<std::int64_t>(1, static_cast<std::int64_t>(std::ceil(wait))));
  return d;
}

void rate_limiter::make_room(shard& s, clock::time_point now) {
  if (now >= s.next_sweep) {
    std::erase_if(s.buckets,
                  [&](const auto& entry) { return now - entry.second.refilled >= full_after_; });
    s.next_sweep = now + full_after_;
  }
  if (s.buckets.size() >= max_per_shard_) s.buckets.erase(s.buckets.begin());
}

std::size_t rate_limiter::size() const {
  std::size_t n = 0;
  for (const auto& s : *shards_) {
    std::lock_guard lock(s.mutex);
    n += s.buckets.size();
  }
  return n;
}

}  // namespace hookd::http
