#include "core/common/object_id.hpp"

#include "core/common/crypto.hpp"

#include <array>
#include <chrono>
#include <cstring>

namespace hookd {

namespace {

constexpr char kHexDigits[] = "0123456789abcdef";

// -1 for anything that is not a hex digit, so that one table lookup both validates and decodes.
// Ids are parsed three times per API request: a table, not a chain of range tests.
constexpr std::array<std::int8_t, 256> kHexValue = [] {
  std::array<std::int8_t, 256> t{};
  t.fill(-1);
  for (int c = '0'; c <= '9'; ++c)
    t[static_cast<std::size_t>(c)] = static_cast<std::int8_t>(c - '0');
  for (int c = 'a'; c <= 'f'; ++c) {
    t[static_cast<std::size_t>(c)] = static_cast<std::int8_t>(c - 'a' + 10);
    t[static_cast<std::size_t>(c - 'a' + 'A')] = static_cast<std::int8_t>(c - 'a' + 10);
  }
  return t;
}();

constexpr int hex_value(char c) noexcept {
  return kHexValue[static_cast<unsigned char>(c)];
}

constexpr std::uint32_t kCounterMask = 0x00FF'FFFFu;

}  // namespace

std::optional<object_id> object_id::parse(std::string_view hex) noexcept {
  if (hex.size() != 2 * kSize) return std::nullopt;
  bytes_type b{};
  int invalid = 0;  // one test at the end instead of one per digit
  for (std::size_t i = 0; i < kSize; ++i) {
    const int hi = hex_value(hex[2 * i]);
    const int lo = hex_value(hex[2 * i + 1]);
    invalid |= hi | lo;
    b[i] = static_cast<std::uint8_t>(((hi & 0x0F) << 4) | (lo & 0x0F));
  }
  if (invalid < 0) return std::nullopt;
  return object_id(b);
}

std::optional<object_id> object_id::from_binary(std::string_view raw) noexcept {
  if (raw.size() != kSize) return std::nullopt;
  bytes_type b{};
  std::memcpy(b.data(), raw.data(), kSize);
  return object_id(b);
}

std::string object_id::to_string() const {
  std::string out;
  append_to(out);
  return out;
}

void object_id::append_to(std::string& out) const {
  const std::size_t at = out.size();
  out.resize(at + 2 * kSize);
  char* p = out.data() + at;
  for (std::uint8_t byte : bytes_) {
    *p++ = kHexDigits[byte >> 4];
    *p++ = kHexDigits[byte & 0x0F];
  }
}

std::uint32_t object_id::seconds() const noexcept {
  return (std::uint32_t{bytes_[0]} << 24) | (std::uint32_t{bytes_[1]} << 16) |
         (std::uint32_t{bytes_[2]} << 8) | std::uint32_t{bytes_[3]};
}

std::size_t object_id_hash::operator()(const object_id& id) const noexcept {
  // The bytes are 4 of seconds, 5 random per process and 3 of counter. Two loads (the last
  // eight bytes, the seconds) folded into one word, then SplitMix64's finalizer (two multiplies,
  // three xor-shifts): each output bit depends on every input bit, so ids that differ only in the
  // counter's lowest bits spread over all the bits a table may use (a power-of-two mask takes the
  // low ones, sharded_map's mix the middle ones, libstdc++'s prime modulo all). A single
  // 64x64->128-bit multiply folded once, used before, left the counter's bytes (the top of the
  // loaded word) in a few bit windows as a near-linear map whose spread depended on the random
  // bytes: bits 16-27 of 4 096 consecutive ids filled 2 367-2 400 of 4 096 buckets in one
  // process out of seven, against ~2 590 for a random function. About a dozen instructions.
  const std::uint8_t* b = id.bytes().data();
  std::uint64_t tail = 0;
  std::uint32_t seconds = 0;
  std::memcpy(&tail, b + 4, sizeof tail);
  std::memcpy(&seconds, b, sizeof seconds);
  std::uint64_t z = tail ^ (std::uint64_t{seconds} * 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return static_cast<std::size_t>(z ^ (z >> 31));
}

object_id_generator::object_id_generator() {
  random_bytes(std::span<std::uint8_t>(random_.data(), random_.size()));
  // A random starting counter makes a collision after a restart within the same second need
  // both the same 5 random bytes and an overlapping counter window.
  std::array<std::uint8_t, 3> start{};
  random_bytes(std::span<std::uint8_t>(start.data(), start.size()));
  counter_.store(
      (std::uint32_t{start[0]} << 16) | (std::uint32_t{start[1]} << 8) | std::uint32_t{start[2]},
      std::memory_order_relaxed);
}

object_id object_id_generator::next() {
  const auto now = std::chrono::system_clock::now().time_since_epoch();
  const auto secs = std::chrono::duration_cast<std::chrono::seconds>(now).count();
  return next(static_cast<std::uint32_t>(secs));
}

object_id object_id_generator::next(std::uint32_t unix_seconds) {
  // 2^32 is a multiple of 2^24, so wrapping the 32-bit atomic keeps the 24-bit sequence intact.
  const std::uint32_t count = counter_.fetch_add(1, std::memory_order_relaxed) & kCounterMask;
  object_id::bytes_type b{};
  b[0] = static_cast<std::uint8_t>(unix_seconds >> 24);
  b[1] = static_cast<std::uint8_t>(unix_seconds >> 16);
  b[2] = static_cast<std::uint8_t>(unix_seconds >> 8);
  b[3] = static_cast<std::uint8_t>(unix_seconds);
  std::memcpy(b.data() + 4, random_.data(), random_.size());
  b[9] = static_cast<std::uint8_t>(count >> 16);
  b[10] = static_cast<std::uint8_t>(count >> 8);
  b[11] = static_cast<std::uint8_t>(count);
  return object_id(b);
}

}  // namespace hookd
