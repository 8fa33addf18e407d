#pragma once
// IP networks in CIDR notation, for --trusted-proxies (docs/operations.md, "Access log"): which
// peers may tell hookd, in X-Forwarded-For, whom they forward for. Immutable values and pure
// functions: safe from any thread.

#include "core/delivery/address_guard.hpp"  // ip_address, the core's address type

#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace hookd {

struct ip_network {
  ip_address base;             // its host bits are zero
  unsigned prefix_length = 0;  // 0..32 for IPv4, 0..128 for IPv6

  // An IPv4 network also contains the IPv4-mapped IPv6 form of its addresses (::ffff:a.b.c.d),
  // which is how a peer of a dual-stack listener appears.
  [[nodiscard]] bool contains(const ip_address& address) const noexcept;
  [[nodiscard]] std::string to_string() const;  // "10.0.0.0/8", "2001:db8::/32"

  friend bool operator==(const ip_network&, const ip_network&) noexcept = default;
};

// "10.0.0.0/8", "2001:db8::/32", or a single address ("192.0.2.7" is 192.0.2.7/32, "::1" is
// ::1/128). Addresses are parsed by inet_pton: dotted-quad IPv4 only (no "127.1" or octal
// forms), RFC 4291 IPv6 without a zone id. The prefix length is decimal and in range, and the
// host bits must be zero ("10.0.0.1/8" is refused, naming 10.0.0.0/8), so that a typo cannot
// widen or shift the network silently. On error, a phrase saying what is wrong.
[[nodiscard]] std::variant<ip_network, std::string> parse_ip_network(std::string_view text);

// Comma-separated networks, blanks around each allowed; "" is the empty list.
[[nodiscard]] std::variant<std::vector<ip_network>, std::string> parse_ip_network_list(
    std::string_view text);

[[nodiscard]] bool contains_any(std::span<const ip_network> networks,
                                const ip_address& address) noexcept;

}  // namespace hookd
