#pragma once
// Wall-clock time at millisecond precision, RFC 3339 formatting, and human durations.

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace hookd {

using timestamp = std::chrono::sys_time<std::chrono::milliseconds>;

timestamp now_ms() noexcept;

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
