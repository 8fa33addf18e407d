#pragma once
// When a failed delivery is tried again (docs/openapi.yaml): the retry schedule with jitter, the
// receiver's Retry-After, and what an HTTP status means for the delivery.

#include "core/common/clock.hpp"

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string_view>
#include <vector>

namespace hookd {

// What an attempt's response status means for the delivery.
enum class attempt_outcome {
  success,               // 2xx: the delivery is done
  gone,                  // 410: the receiver says the endpoint is gone; stop retrying at once
  retry_after_honoured,  // 429, 503: retry, and honour a Retry-After header (clamped)
  retry,                 // everything else, 3xx included (redirects are not followed)
};

[[nodiscard]] attempt_outcome classify(int status) noexcept;

// A source of uniform doubles in [0, 1). Injected so that tests pin the jitter; values outside
// the range are clamped into it; an empty one means no jitter.
using random_source = std::function<double()>;

// A uniform double in [0, 1) from a per-thread generator seeded from std::random_device.
// Jitter spreads load; it needs no cryptographic strength.
[[nodiscard]] double uniform_random() noexcept;

// The schedule of waits between attempts. Attempt 1 is the first delivery; when attempt n fails
// the next try waits schedule[n-1] ± 20%; when the attempt after the last step fails, the
// delivery is failed. The default schedule therefore makes 8 attempts over about 28 hours.
// Immutable: safe to share between threads.
class retry_policy {
 public:
  // ±20% spreads the retries of a burst that failed together (an endpoint outage) so that
  // they do not all return in the same second.
  static constexpr double kJitter = 0.2;

  // 5s, 5m, 30m, 2h, 5h, 10h, 10h (docs/openapi.yaml).
  [[nodiscard]] static std::vector<std::chrono::milliseconds> default_schedule();

  // Steps should be positive (parse_duration_list guarantees it); a negative step counts as 0.
  explicit retry_policy(std::vector<std::chrono::milliseconds> schedule = default_schedule());

  // The wait after attempt `attempt_number` (1-based) failed, jittered by `random` to
  // step × [0.8, 1.2] (rounded to the millisecond); nullopt when that was the last attempt.
  // Attempt 0 counts as 1.
  [[nodiscard]] std::optional<std::chrono::milliseconds> delay_after(
      std::uint32_t attempt_number, const random_source& random = uniform_random) const;

  // The un-jittered step after attempt `attempt_number`; nullopt past the end of the schedule.
  // This is the `step` to pass to clamp_retry_after.
  [[nodiscard]] std::optional<std::chrono::milliseconds> step_after(
      std::uint32_t attempt_number) const noexcept;

  // First attempt plus one per step.
  [[nodiscard]] std::uint32_t max_attempts() const noexcept;

  [[nodiscard]] const std::vector<std::chrono::milliseconds>& schedule() const noexcept {
    return schedule_;
  }

 private:
  std::vector<std::chrono::milliseconds> schedule_;
};

// Clamps a receiver's Retry-After to [step, 2 × step]: a receiver may slow hookd down (up to
// twice the scheduled wait) but neither make it hammer sooner than the schedule nor park a
// delivery indefinitely. A negative step counts as 0.
[[nodiscard]] std::chrono::milliseconds clamp_retry_after(std::chrono::milliseconds retry_after,
                                                          std::chrono::milliseconds step) noexcept;

// Retry-After (RFC 9110 §10.2.3): delta-seconds ("120") or an HTTP-date in any of the three forms
// a recipient must accept (IMF-fixdate "Sun, 06 Nov 1994 08:49:37 GMT", RFC 850
// "Sunday, 06-Nov-94 08:49:37 GMT", asctime "Sun Nov  6 08:49:37 1994"). Returns the wait from
// `now`: zero for a date in the past; delta-seconds beyond 10^9 saturate there. nullopt when
// malformed. Surrounding spaces and tabs are ignored.
[[nodiscard]] std::optional<std::chrono::milliseconds> parse_retry_after(std::string_view header,
                                                                         timestamp now) noexcept;

}  // namespace hookd
