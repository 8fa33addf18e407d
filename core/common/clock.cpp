#include "core/common/clock.hpp"

#include <array>
#include <cstdint>
#include <limits>

namespace hookd {

namespace {

using std::chrono::days;
using std::chrono::hours;
using std::chrono::milliseconds;
using std::chrono::minutes;
using std::chrono::seconds;

void put_digits(char* p, unsigned value, int width) noexcept {
  for (int i = width - 1; i >= 0; --i) {
    p[i] = static_cast<char>('0' + value % 10);
    value /= 10;
  }
}

bool is_digit(char c) noexcept {
  return c >= '0' && c <= '9';
}

// Reads exactly `width` digits at `pos`; false when any is missing.
bool read_fixed(std::string_view s, std::size_t pos, int width, int& out) noexcept {
  if (pos + static_cast<std::size_t>(width) > s.size()) return false;
  int v = 0;
  for (int i = 0; i < width; ++i) {
    const char c = s[pos + static_cast<std::size_t>(i)];
    if (!is_digit(c)) return false;
    v = v * 10 + (c - '0');
  }
  out = v;
  return true;
}

struct unit {
  std::string_view suffix;
  std::int64_t ms;
};
// Longest suffix first where one is a prefix of another ("ms" before "m").
constexpr std::array<unit, 5> kUnits{{
    {"ms", 1},
    {"s", 1000},
    {"m", 60 * 1000},
    {"h", 60 * 60 * 1000},
    {"d", 24 * 60 * 60 * 1000},
}};

}  // namespace

timestamp now_ms() noexcept {
  return std::chrono::time_point_cast<milliseconds>(std::chrono::system_clock::now());
}

void append_rfc3339(std::string& out, timestamp t) {
  const auto day = std::chrono::floor<days>(t);
  const std::chrono::year_month_day ymd{day};
  const std::chrono::hh_mm_ss<milliseconds> tod{t - day};

  // Years outside 0..9999 have no RFC 3339 form; clamp rather than emit something unparseable.
  int year = static_cast<int>(ymd.year());
  if (year < 0) year = 0;
  if (year > 9999) year = 9999;

  char buf[24];  // "YYYY-MM-DDTHH:MM:SS.mmmZ"
  put_digits(buf, static_cast<unsigned>(year), 4);
  buf[4] = '-';
  put_digits(buf + 5, static_cast<unsigned>(ymd.month()), 2);
  buf[7] = '-';
  put_digits(buf + 8, static_cast<unsigned>(ymd.day()), 2);
  buf[10] = 'T';
  put_digits(buf + 11, static_cast<unsigned>(tod.hours().count()), 2);
  buf[13] = ':';
  put_digits(buf + 14, static_cast<unsigned>(tod.minutes().count()), 2);
  buf[16] = ':';
  put_digits(buf + 17, static_cast<unsigned>(tod.seconds().count()), 2);
  buf[19] = '.';
  put_digits(buf + 20, static_cast<unsigned>(tod.subseconds().count()), 3);
  buf[23] = 'Z';
  out.append(buf, sizeof buf);
}

std::string format_rfc3339(timestamp t) {
  std::string out;
  out.reserve(24);
  append_rfc3339(out, t);
  return out;
}

std::optional<timestamp> parse_rfc3339(std::string_view s) noexcept {
  // date-time = full-date "T" full-time; RFC 3339 §5.6 allows lower-case "t" and "z".
  int year = 0, month = 0, day = 0, hour = 0, minute = 0, second = 0;
  if (!read_fixed(s, 0, 4, year) || s.size() < 19 || s[4] != '-' || !read_fixed(s, 5, 2, month) ||
      s[7] != '-' || !read_fixed(s, 8, 2, day) || (s[10] != 'T' && s[10] != 't') ||
      !read_fixed(s, 11, 2, hour) || s[13] != ':' || !read_fixed(s, 14, 2, minute) ||
      s[16] != ':' || !read_fixed(s, 17, 2, second)) {
    return std::nullopt;
  }
  // Leap seconds (:60) are refused: the system clock never shows them and accepting one would
  // silently move the instant into the next minute.
  if (hour > 23 || minute > 59 || second > 59) return std::nullopt;
  const std::chrono::year_month_day ymd{std::chrono::year{year},
                                        std::chrono::month{static_cast<unsigned>(month)},
                                        std::chrono::day{static_cast<unsigned>(day)}};
  if (!ymd.ok()) return std::nullopt;

  std::size_t pos = 19;
  std::int64_t millis = 0;
  if (pos < s.size() && s[pos] == '.') {
    ++pos;
    const std::size_t first = pos;
    int scale = 100;
    while (pos < s.size() && is_digit(s[pos])) {
      // Digits past milliseconds are truncated: timestamps are kept at millisecond precision.
      if (scale > 0) {
        millis += (s[pos] - '0') * scale;
        scale /= 10;
      }
      ++pos;
    }
    const std::size_t count = pos - first;
    if (count == 0 || count > 9) return std::nullopt;
  }

  if (pos >= s.size()) return std::nullopt;
  int offset_minutes = 0;
  if (s[pos] == 'Z' || s[pos] == 'z') {
    ++pos;
  } else if (s[pos] == '+' || s[pos] == '-') {
    const int sign = s[pos] == '-' ? -1 : 1;
    int oh = 0, om = 0;
    if (!read_fixed(s, pos + 1, 2, oh) || pos + 3 >= s.size() || s[pos + 3] != ':' ||
        !read_fixed(s, pos + 4, 2, om)) {
      return std::nullopt;
    }
    if (oh > 23 || om > 59) return std::nullopt;
    offset_minutes = sign * (oh * 60 + om);
    pos += 6;
  } else {
    return std::nullopt;
  }
  if (pos != s.size()) return std::nullopt;

  const auto local = std::chrono::sys_days{ymd} + hours{hour} + minutes{minute} + seconds{second} +
                     milliseconds{millis};
  // A local time at offset +01:00 is one hour ahead of UTC.
  return std::chrono::time_point_cast<milliseconds>(local - minutes{offset_minutes});
}

std::optional<std::chrono::milliseconds> parse_duration(std::string_view text) noexcept {
  if (text.empty()) return std::nullopt;
  constexpr std::int64_t kMax = std::numeric_limits<std::int64_t>::max();
  std::int64_t total = 0;
  std::size_t pos = 0;
  while (pos < text.size()) {
    if (!is_digit(text[pos])) return std::nullopt;  // also refuses a sign
    std::int64_t n = 0;
    while (pos < text.size() && is_digit(text[pos])) {
      const int digit = text[pos] - '0';
      if (n > (kMax - digit) / 10) return std::nullopt;
      n = n * 10 + digit;
      ++pos;
    }
    const unit* found = nullptr;
    for (const unit& u : kUnits) {
      if (text.substr(pos, u.suffix.size()) == u.suffix) {
        found = &u;
        break;
      }
    }
    if (found == nullptr) return std::nullopt;
    pos += found->suffix.size();
    if (n > kMax / found->ms) return std::nullopt;
    const std::int64_t part = n * found->ms;
    if (total > kMax - part) return std::nullopt;
    total += part;
  }
  return milliseconds{total};
}

std::string format_duration(std::chrono::milliseconds d) {
  std::int64_t ms = d.count();
  if (ms == 0) return "0s";
  std::string out;
  // Negative durations never come from parse_duration, but printing them exactly is harmless.
  std::uint64_t rest = 0;
  if (ms < 0) {
    out.push_back('-');
    rest = static_cast<std::uint64_t>(-(ms + 1)) + 1;
  } else {
    rest = static_cast<std::uint64_t>(ms);
  }
  for (auto it = kUnits.rbegin(); it != kUnits.rend(); ++it) {
    const auto size = static_cast<std::uint64_t>(it->ms);
    if (rest >= size) {
      out += std::to_string(rest / size);
      out += it->suffix;
      rest %= size;
    }
  }
  return out;
}

std::optional<std::vector<std::chrono::milliseconds>> parse_duration_list(
    std::string_view text) noexcept {
  try {
    std::vector<milliseconds> steps;
    std::size_t pos = 0;
    while (true) {
      const std::size_t comma = text.find(',', pos);
      std::string_view item =
          text.substr(pos, comma == std::string_view::npos ? std::string_view::npos : comma - pos);
      while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
      while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
      const auto step = parse_duration(item);
      if (!step || step->count() <= 0) return std::nullopt;
      steps.push_back(*step);
      if (comma == std::string_view::npos) break;
      pos = comma + 1;
    }
    return steps;
  } catch (...) {  // only allocation can throw
    return std::nullopt;
  }
}

}  // namespace hookd
