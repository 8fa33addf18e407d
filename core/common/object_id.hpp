#pragma once
// ObjectId-shaped identifiers: 4-byte big-endian unix seconds, 5 random bytes fixed per process,
// 3-byte big-endian counter. Emitted as 24 lowercase hex digits; parsed case-insensitively.

#include <array>
#include <atomic>
#include <bit>
#include <compare>
#include <cstdint>
#include <cstring>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

namespace hookd {

class object_id {
 public:
  static constexpr std::size_t kSize = 12;
  using bytes_type = std::array<std::uint8_t, kSize>;

  constexpr object_id() = default;  // all zeros: the nil id, never generated
  explicit constexpr object_id(const bytes_type& b) : bytes_(b) {}

  // Exactly 24 hex digits, either case; anything else is nullopt.
  static std::optional<object_id> parse(std::string_view hex) noexcept;
  // The 12 raw bytes, e.g. a RocksDB key; nullopt unless exactly 12 bytes.
  static std::optional<object_id> from_binary(std::string_view raw) noexcept;

  std::string to_string() const;              // 24 lowercase hex digits
  void append_to(std::string& out) const;     // same, appended without a temporary
  std::string_view binary() const noexcept {  // the 12 raw bytes (sorts like the hex form)
    return {reinterpret_cast<const char*>(bytes_.data()), kSize};
  }
  const bytes_type& bytes() const noexcept { return bytes_; }
  std::uint32_t seconds() const noexcept;  // the embedded creation time
  bool is_nil() const noexcept { return bytes_ == bytes_type{}; }

  // Byte order, which is creation order (seconds first, big-endian). Written out as two word
  // compares because the defaulted ones call memcmp for the 12 bytes: every lookup in the
  // delivery log's and the scheduler's maps and sets of ids goes through these, several per
  // delivery (bench/README.md, "What a native profile shows that callgrind did not").
  friend constexpr bool operator==(const object_id& a, const object_id& b) noexcept {
    if (std::is_constant_evaluated()) return a.bytes_ == b.bytes_;
    const auto [a_high, a_low] = a.words();
    const auto [b_high, b_low] = b.words();
    return ((a_high ^ b_high) | (a_low ^ b_low)) == 0;
  }
  friend constexpr std::strong_ordering operator<=>(const object_id& a,
                                                    const object_id& b) noexcept {
    if (std::is_constant_evaluated()) return a.bytes_ <=> b.bytes_;
    const auto [a_high, a_low] = a.words();
    const auto [b_high, b_low] = b.words();
    return a_high != b_high ? a_high <=> b_high : a_low <=> b_low;
  }

 private:
  // The first eight bytes and the last four as big-endian numbers: their order is the bytes'.
  std::pair<std::uint64_t, std::uint32_t> words() const noexcept {
    std::uint64_t high = 0;
    std::uint32_t low = 0;
    std::memcpy(&high, bytes_.data(), sizeof high);
    std::memcpy(&low, bytes_.data() + sizeof high, sizeof low);
    if constexpr (std::endian::native == std::endian::little) {
      high = __builtin_bswap64(high);
      low = __builtin_bswap32(low);
    }
    return {high, low};
  }

  bytes_type bytes_{};
};

struct object_id_hash {
  // Every output bit depends on every input bit (object_id.cpp), so Boost's open-addressing
  // tables (id_map.hpp) use it as it is instead of mixing it once more.
  using is_avalanching = void;
  std::size_t operator()(const object_id& id) const noexcept;
};

// Thread-safe; ids from one generator are unique and, within a second, increasing. The random
// part comes from OpenSSL RAND_bytes per generator, so ids stay unique across restarts and
// processes even when the counter starts over.
class object_id_generator {
 public:
  object_id_generator();
  object_id next();
  object_id next(std::uint32_t unix_seconds);

 private:
  std::array<std::uint8_t, 5> random_{};
  std::atomic<std::uint32_t> counter_;
};

}  // namespace hookd

template <>
struct std::hash<hookd::object_id> : hookd::object_id_hash {};
