#include "core/delivery/retry_policy.hpp"

#include "core/common/crypto.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <random>

namespace hookd {

namespace {

using std::chrono::hours;
using std::chrono::milliseconds;
using std::chrono::minutes;
using std::chrono::seconds;

// Retry-After delta-seconds beyond this (about 31 years) mean "a very long time" and saturate;
// clamp_retry_after cuts them down to twice the step anyway.
constexpr std::int64_t kMaxDeltaSeconds = 1'000'000'000;

milliseconds saturating_ms(double ms) noexcept {
  // 2^63 is exactly representable; anything at or above it does not fit in int64.
  constexpr double kLimit = 9223372036854775808.0;
  if (!(ms < kLimit)) return milliseconds::max();
  if (ms <= 0) return milliseconds::zero();
  return milliseconds(static_cast<std::int64_t>(std::llround(ms)));
}

// A small cursor over the header text for the HTTP-date grammars.
class cursor {
 public:
  explicit cursor(std::string_view s) noexcept : s_(s) {}

  bool done() const noexcept { return s_.empty(); }
  bool literal(std::string_view lit) noexcept {
    if (!s_.starts_with(lit)) return false;
    s_.remove_prefix(lit.size());
    return true;
  }
  // Exactly `width` digits.
  bool digits(int width, int& out) noexcept {
    if (s_.size() < static_cast<std::size_t>(width)) return false;
    int v = 0;
    for (int i = 0; i < width; ++i) {
      const char c = s_[static_cast<std::size_t>(i)];
      if (c < '0' || c > '9') return false;
      v = v * 10 + (c - '0');
    }
    s_.remove_prefix(static_cast<std::size_t>(width));
    out = v;
    return true;
  }
  // One of `names`; `out` is its index.
  template <std::size_t N>
  bool one_of(const std::array<std::string_view, N>& names, int& out) noexcept {
    for (std::size_t i = 0; i < N; ++i) {
      if (literal(names[i])) {
        out = static_cast<int>(i);
        return true;
      }
    }
    return false;
  }

 private:
  std::string_view s_;
};

constexpr std::array<std::string_view, 7> kDays{"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"};
constexpr std::array<std::string_view, 7> kLongDays{"Monday", "Tuesday",  "Wednesday", "Thursday",
                                                    "Friday", "Saturday", "Sunday"};
constexpr std::array<std::string_view, 12> kMonths{"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

bool time_of_day(cursor& c, int& h, int& m, int& s) noexcept {
  return c.digits(2, h) && c.literal(":") && c.digits(2, m) && c.literal(":") && c.digits(2, s);
}

std::optional<timestamp> make_time(int year, int month_index, int day, int h, int m,
                                   int s) noexcept {
  const std::chrono::year_month_day ymd{std::chrono::year(year),
                                        std::chrono::month(static_cast<unsigned>(month_index + 1)),
                                        std::chrono::day(static_cast<unsigned>(day))};
  // 60 admits a leap second, which the grammar allows.
  if (!ymd.ok() || h > 23 || m > 59 || s > 60) return std::nullopt;
  return timestamp(std::chrono::sys_days(ymd)) + hours(h) + minutes(m) + seconds(s);
}

std::optional<timestamp> parse_http_date(std::string_view text, timestamp now) noexcept {
  int weekday = 0, day = 0, month = 0, year = 0, h = 0, m = 0, s = 0;
  {  // IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT"
    cursor c(text);
    if (c.one_of(kDays, weekday) && c.literal(", ") && c.digits(2, day) && c.literal(" ") &&
        c.one_of(kMonths, month) && c.literal(" ") && c.digits(4, year) && c.literal(" ") &&
        time_of_day(c, h, m, s) && c.literal(" GMT") && c.done()) {
      return make_time(year, month, day, h, m, s);
    }
  }
  {  // RFC 850: "Sunday, 06-Nov-94 08:49:37 GMT"
    cursor c(text);
    if (c.one_of(kLongDays, weekday) && c.literal(", ") && c.digits(2, day) && c.literal("-") &&
        c.one_of(kMonths, month) && c.literal("-") && c.digits(2, year) && c.literal(" ") &&
        time_of_day(c, h, m, s) && c.literal(" GMT") && c.done()) {
      // RFC 9110 §5.6.7: a two-digit year more than 50 years ahead is the previous century's.
      const int now_year = static_cast<int>(
          std::chrono::year_month_day{std::chrono::floor<std::chrono::days>(now)}.year());
      year += now_year / 100 * 100;
      if (year > now_year + 50) year -= 100;
      return make_time(year, month, day, h, m, s);
    }
  }
  {  // asctime: "Sun Nov  6 08:49:37 1994" (the day is space-padded)
    cursor c(text);
    if (c.one_of(kDays, weekday) && c.literal(" ") && c.one_of(kMonths, month) && c.literal(" ") &&
        (c.literal(" ") ? c.digits(1, day) : c.digits(2, day)) && c.literal(" ") &&
        time_of_day(c, h, m, s) && c.literal(" ") && c.digits(4, year) && c.done()) {
      return make_time(year, month, day, h, m, s);
    }
  }
  return std::nullopt;
}

std::string_view trim(std::string_view s) noexcept {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

}  // namespace

attempt_outcome classify(int status) noexcept {
  if (status >= 200 && status <= 299) return attempt_outcome::success;
  if (status == 410) return attempt_outcome::gone;
  if (status == 429 || status == 503) return attempt_outcome::retry_after_honoured;
  return attempt_outcome::retry;
}

double uniform_random() noexcept {
  thread_local std::mt19937_64 generator = [] {
    std::uint64_t seed = 0;
    random_bytes(std::span<std::uint8_t>(reinterpret_cast<std::uint8_t*>(&seed), sizeof seed));
    return std::mt19937_64(seed);
  }();
  // The top 53 bits scaled by 2^-53: uniform in [0, 1), never 1.0 (unlike some
  // generate_canonical implementations).
  return static_cast<double>(generator() >> 11) * 0x1.0p-53;
}

std::vector<milliseconds> retry_policy::default_schedule() {
  return {seconds(5), minutes(5), minutes(30), hours(2), hours(5), hours(10), hours(10)};
}

retry_policy::retry_policy(std::vector<milliseconds> schedule) : schedule_(std::move(schedule)) {
  for (milliseconds& step : schedule_) step = std::max(step, milliseconds::zero());
}

std::optional<milliseconds> retry_policy::step_after(std::uint32_t attempt_number) const noexcept {
  const std::size_t index = attempt_number == 0 ? 0 : attempt_number - 1;
  if (index >= schedule_.size()) return std::nullopt;
  return schedule_[index];
}

std::optional<milliseconds> retry_policy::delay_after(std::uint32_t attempt_number,
                                                      const random_source& random) const {
  const auto step = step_after(attempt_number);
  if (!step) return std::nullopt;
  double r = random ? random() : 0.5;
  if (!(r >= 0.0)) r = 0.0;  // also catches NaN
  if (r >= 1.0) r = std::nextafter(1.0, 0.0);
  const double factor = 1.0 - kJitter + 2.0 * kJitter * r;
  return saturating_ms(static_cast<double>(step->count()) * factor);
}

std::uint32_t retry_policy::max_attempts() const noexcept {
  const std::size_t n = schedule_.size() + 1;
  return n > std::numeric_limits<std::uint32_t>::max() ? std::numeric_limits<std::uint32_t>::max()
                                                       : static_cast<std::uint32_t>(n);
}

milliseconds clamp_retry_after(milliseconds retry_after, milliseconds step) noexcept {
  const milliseconds low = std::max(step, milliseconds::zero());
  const milliseconds high =
      low > milliseconds::max() / 2 ? milliseconds::max() : milliseconds(low.count() * 2);
  return std::clamp(retry_after, low, high);
}

std::optional<milliseconds> parse_retry_after(std::string_view header, timestamp now) noexcept {
  const std::string_view text = trim(header);
  if (text.empty()) return std::nullopt;
  if (std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    std::int64_t secs = 0;
    for (char c : text) {
      secs = secs * 10 + (c - '0');
      if (secs >= kMaxDeltaSeconds) {
        secs = kMaxDeltaSeconds;
        break;
      }
    }
    return std::chrono::duration_cast<milliseconds>(seconds(secs));
  }
  const auto date = parse_http_date(text, now);
  if (!date) return std::nullopt;
  return *date > now ? *date - now : milliseconds::zero();
}

}  // namespace hookd
