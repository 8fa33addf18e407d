#pragma once
// Token scopes as a bit set. `admin` implies every other scope and every organization.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace hookd {

enum class scope : std::uint8_t {
  admin = 1u << 0,
  webhooks_read = 1u << 1,
  webhooks_write = 1u << 2,
  events_write = 1u << 3,
  deliveries_read = 1u << 4,
  deliveries_write = 1u << 5,
};

class scope_set {
 public:
  constexpr scope_set() = default;
  constexpr explicit scope_set(std::uint8_t bits) : bits_(bits) {}
  constexpr void add(scope s) noexcept { bits_ |= static_cast<std::uint8_t>(s); }
  // True when the set holds `s` or `admin`.
  constexpr bool allows(scope s) const noexcept {
    return (bits_ & (static_cast<std::uint8_t>(s) | static_cast<std::uint8_t>(scope::admin))) != 0;
  }
  constexpr bool has(scope s) const noexcept { return (bits_ & static_cast<std::uint8_t>(s)) != 0; }
  constexpr bool empty() const noexcept { return bits_ == 0; }
  constexpr std::uint8_t bits() const noexcept { return bits_; }
  std::vector<std::string_view> names() const;  // in the order of the enum
  friend constexpr bool operator==(scope_set, scope_set) = default;

 private:
  std::uint8_t bits_ = 0;
};

std::string_view scope_name(scope s) noexcept;                // "webhooks:read"
std::optional<scope> parse_scope(std::string_view) noexcept;  // exact, lowercase

}  // namespace hookd
