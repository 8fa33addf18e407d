#pragma once
// ObjectId-shaped identifiers: 4-byte big-endian unix seconds, 5 random bytes fixed per process,
// 3-byte big-endian counter. Emitted as 24 lowercase hex digits; parsed case-insensitively.

#include <array>
#include <atomic>
#include <compare>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

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

  friend auto operator<=>(const object_id&, const object_id&) = default;

 private:
  bytes_type bytes_{};
};

struct object_id_hash {
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
