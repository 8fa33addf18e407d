#pragma once
// Wall-clock time at millisecond precision, RFC 3339 formatting, and human durations.

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace hookd {

using timestamp = std::chrono::sys_time<std::chrono::milliseconds>;

timestamp now_ms() noexcept;

// Whole seconds of `t` since the Unix epoch, clamped to what 32 bits hold (0 before 1970): the
// creation second an object id starts with (object_id.hpp) and the delivery log's bucket clock.
constexpr std::uint32_t unix_seconds(timestamp t) noexcept {
  const auto s = std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
  return s < 0 ? 0u : static_cast<std::uint32_t>(s > 0xFFFFFFFFLL ? 0xFFFFFFFFLL : s);
}

// "2026-11-30T02:00:00.000Z": always UTC, always milliseconds.
std::string format_rfc3339(timestamp t);
void append_rfc3339(std::string& out, timestamp t);
// Accepts RFC 3339 with 'Z' or an offset and 0..9 fraction digits; nullopt when malformed.
std::optional<timestamp> parse_rfc3339(std::string_view text) noexcept;

// "250ms", "5s", "5m", "2h", "5d" (one number, one unit; also combined "1h30m"). nullopt when
// malformed, negative or overflowing.
std::optional<std::chrono::milliseconds> parse_duration(std::string_view text) noexcept;
std::string format_duration(std::chrono::milliseconds d);  // the shortest exact form: "5m"
// "5s,5m,30m" -> {5s, 5m, 30m}; nullopt when empty or any step is malformed or not positive.
std::optional<std::vector<std::chrono::milliseconds>> parse_duration_list(
    std::string_view text) noexcept;

}  // namespace hookd
