#include "core/delivery/trace_context.hpp"

#include "core/common/crypto.hpp"

#include <pthread.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdint>
#include <span>

namespace hookd {

namespace {

bool lower_hex(std::string_view s) noexcept {
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

bool all_zeros(std::string_view s) noexcept {
  return std::all_of(s.begin(), s.end(), [](char c) { return c == '0'; });
}

int hex_digit(char c) noexcept {
  return c <= '9' ? c - '0' : c - 'a' + 10;
}

// Random bytes for ids, drawn from a per-thread buffer that one RAND_bytes call refills every
// kIdBufferSize bytes (a few hundred span ids): still OpenSSL's CSPRNG, without its per-call
// cost (locking the DRBG, the provider's dispatch) on every attempt. A forked child must not
// hand out what its parent had buffered: fork bumps the generation and every buffer with an
// older one is refilled before its next draw.
constexpr std::size_t kIdBufferSize = 4096;

std::atomic<std::uint64_t> fork_generation{0};

std::uint64_t current_fork_generation() {
  static const bool registered = [] {
    return pthread_atfork(nullptr, nullptr,
                          [] { fork_generation.fetch_add(1, std::memory_order_relaxed); }) == 0;
  }();
  (void)registered;
  return fork_generation.load(std::memory_order_relaxed);
}

struct id_buffer {
  std::array<std::uint8_t, kIdBufferSize> bytes{};
  std::size_t used = kIdBufferSize;  // empty until the first draw
  std::uint64_t generation = 0;

  // The next `out.size()` (at most kIdBufferSize) random bytes.
  void draw(std::span<std::uint8_t> out) {
    const std::uint64_t now = current_fork_generation();
    if (kIdBufferSize - used < out.size() || generation != now) {
      random_bytes(std::span<std::uint8_t>(bytes));
      used = 0;
      generation = now;
    }
    std::copy_n(bytes.begin() + static_cast<std::ptrdiff_t>(used), out.size(), out.begin());
    // Never handed out twice, not even in part.
    std::fill_n(bytes.begin() + static_cast<std::ptrdiff_t>(used), out.size(), std::uint8_t{0});
    used += out.size();
  }
};

// Appends `n` (at most 16) random bytes as 2n lowercase hex digits, never all zeros.
void append_random_hex(std::string& out, std::size_t n) {
  thread_local id_buffer buffer;
  static constexpr char kDigits[] = "0123456789abcdef";
  std::array<std::uint8_t, 16> raw{};
  const std::span<std::uint8_t> id(raw.data(), n);
  do {
    buffer.draw(id);
  } while (std::all_of(id.begin(), id.end(), [](std::uint8_t b) { return b == 0; }));
  std::array<char, 32> hex{};
  for (std::size_t i = 0; i < n; ++i) {
    hex[2 * i] = kDigits[raw[i] >> 4];
    hex[2 * i + 1] = kDigits[raw[i] & 0xf];
  }
  out.append(hex.data(), 2 * n);
}

std::string_view trim(std::string_view s) noexcept {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

}  // namespace

std::optional<std::string> parse_traceparent(std::string_view header) {
  header = trim(header);
  if (header.size() < kTraceparentSize) return std::nullopt;
  const std::string_view version = header.substr(0, 2);
  if (!lower_hex(version) || version == "ff") return std::nullopt;
  if (version == "00" ? header.size() != kTraceparentSize
                      : header.size() > kTraceparentSize && header[kTraceparentSize] != '-') {
    return std::nullopt;
  }
  if (header[2] != '-' || header[35] != '-' || header[52] != '-') return std::nullopt;
  const std::string_view trace_id = header.substr(3, 32);
  const std::string_view parent_id = header.substr(36, 16);
  const std::string_view flags = header.substr(53, 2);
  if (!lower_hex(trace_id) || !lower_hex(parent_id) || !lower_hex(flags)) return std::nullopt;
  if (all_zeros(trace_id) || all_zeros(parent_id)) return std::nullopt;
  std::string out = "00-";
  out.append(trace_id).append("-").append(parent_id).append("-");
  if (version == "00") {
    out.append(flags);
  } else {
    // A later version's other flags may mean something else in version 00: only "sampled".
    out.append((hex_digit(flags[1]) & 1) != 0 ? "01" : "00");
  }
  return out;
}

std::string new_traceparent() {
  std::string out;
  out.reserve(kTraceparentSize);
  out.append("00-");
  append_random_hex(out, 16);
  out.append("-");
  append_random_hex(out, 8);
  out.append("-01");
  return out;
}

std::string child_traceparent(std::string_view parent) {
  std::string out;
  out.reserve(kTraceparentSize);
  out.append("00-").append(trace_id_of(parent)).append("-");
  const std::size_t span_at = out.size();
  do {
    out.resize(span_at);
    append_random_hex(out, 8);
  } while (std::string_view(out).substr(span_at) == span_id_of(parent));
  out.append("-");
  out.append(parent.size() >= kTraceparentSize ? parent.substr(53, 2) : std::string_view("01"));
  return out;
}

std::string_view trace_id_of(std::string_view traceparent) noexcept {
  return traceparent.size() >= kTraceparentSize ? traceparent.substr(3, 32) : std::string_view();
}

std::string_view span_id_of(std::string_view traceparent) noexcept {
  return traceparent.size() >= kTraceparentSize ? traceparent.substr(36, 16) : std::string_view();
}

}  // namespace hookd
