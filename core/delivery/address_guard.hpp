#pragma once
// The outbound SSRF guard (docs/operations.md, "Security model"): which addresses a delivery may
// connect to. Pure: no sockets, no resolver. The delivery client resolves the host itself, passes
// the result to check_target, and connects to exactly the addresses it returns, so that a second
// lookup (DNS rebinding) cannot swap in an address that was never checked.
//
// Everything here is a pure function or an immutable value: safe from any thread.

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace hookd {

// An IPv4 or IPv6 address as bytes in network order; the core's stand-in for asio::ip::address
// (core does not include Asio). Adapters convert with from_bytes(addr.to_bytes()).
class ip_address {
 public:
  enum class family : std::uint8_t { v4, v6 };
  using v4_bytes = std::array<std::uint8_t, 4>;
  using v6_bytes = std::array<std::uint8_t, 16>;

  ip_address() noexcept = default;  // 0.0.0.0

  [[nodiscard]] static ip_address v4(const v4_bytes& bytes) noexcept;
  [[nodiscard]] static ip_address v4_from_value(std::uint32_t host_order) noexcept;
  [[nodiscard]] static ip_address v6(const v6_bytes& bytes) noexcept;
  // 4 bytes -> IPv4, 16 bytes -> IPv6, any other length -> nullopt.
  [[nodiscard]] static std::optional<ip_address> from_bytes(
      std::span<const std::uint8_t> bytes) noexcept;

  [[nodiscard]] family kind() const noexcept { return family_; }
  [[nodiscard]] bool is_v4() const noexcept { return family_ == family::v4; }
  [[nodiscard]] bool is_v6() const noexcept { return family_ == family::v6; }
  // 4 or 16 bytes, network order.
  [[nodiscard]] std::span<const std::uint8_t> bytes() const noexcept {
    return {bytes_.data(), is_v4() ? std::size_t{4} : std::size_t{16}};
  }
  // The IPv4 address as a host-order integer; 0 for IPv6.
  [[nodiscard]] std::uint32_t v4_value() const noexcept;

  // Dotted quad, or RFC 5952 IPv6 (lowercase, longest zero run as "::", IPv4-mapped as
  // "::ffff:a.b.c.d"). No brackets.
  [[nodiscard]] std::string to_string() const;

  friend bool operator==(const ip_address&, const ip_address&) noexcept = default;

 private:
  v6_bytes bytes_{};  // IPv4 uses the first 4
  family family_ = family::v4;
};

// The special-purpose registries of IANA (RFC 6890 and successors), coarsened to what the guard
// must tell apart. Only public_unicast is allowed by default.
enum class address_class {
  public_unicast,  // global unicast: the only class a delivery may reach by default
  loopback,        // 127/8, ::1
  private_use,     // 10/8, 172.16/12, 192.168/16, 64:ff9b:1::/48 (local-use NAT64)
  shared_cgnat,    // 100.64/10 (RFC 6598, carrier-grade NAT)
  link_local,      // 169.254/16, fe80::/10
  unique_local,    // fc00::/7
  multicast,       // 224/4, ff00::/8
  broadcast,       // 255.255.255.255
  unspecified,     // 0/8 ("this network"; Linux routes 0.0.0.0 to the local host), ::
  documentation,   // 192.0.2/24, 198.51.100/24, 203.0.113/24, 2001:db8::/32, 3fff::/20
  benchmarking,    // 198.18/15, 2001:2::/48
  discard,         // 100::/64 (discard-only)
  teredo,          // 2001::/32, refused wholesale (see classify)
  reserved,        // everything else that is not global unicast
};

// "public-unicast", "private-use", "link-local", ...
[[nodiscard]] std::string_view to_string(address_class c) noexcept;

// IPv4-mapped (::ffff:0:0/96), NAT64 (64:ff9b::/96) and 6to4 (2002::/16) addresses are unwrapped
// and classified by the IPv4 address they carry, since that is where the packets end up.
// Teredo (2001::/32) is classified `teredo` whatever it embeds: its packets go through the relay
// and server the address names, either embedded IPv4 can be anything, and no real receiver
// lives behind Teredo (a dead transition mechanism); refusing it whole is simpler than judging it.
// IPv6 outside 2000::/3 that is not listed above is unallocated: `reserved`.
[[nodiscard]] address_class classify(const ip_address& address) noexcept;
[[nodiscard]] bool is_public(const ip_address& address) noexcept;

// Parses a URL host (already percent-decoded) as an IP literal, the way a browser or an HTTP
// client would: "[v6]" or bare v6 (RFC 4291, with a trailing dotted quad), and IPv4 by the WHATWG
// URL host parser, which accepts inet_aton's legacy forms: 1..4 parts, each decimal, octal
// ("0177") or hex ("0x7f"), the last filling the remaining bytes — "127.1", "2130706433",
// "0x7f.1", "0177.0.0.1" are all 127.0.0.1. (Boost.URL treats "127.1" as a reg-name, which is
// why this parser exists.) nullopt for names, for malformed literals, and for IPv6 zone ids
// ("fe80::1%eth0"): a delivery target has no business naming an interface.
[[nodiscard]] std::optional<ip_address> parse_ip_literal(std::string_view host) noexcept;

// WHATWG's "ends in a number" test: a host whose last label is numeric must be an IPv4 literal;
// when parse_ip_literal refuses such a host it is invalid, not a name to resolve.
[[nodiscard]] bool host_ends_in_a_number(std::string_view host) noexcept;

struct guard_decision {
  bool allowed = false;
  std::vector<ip_address> addresses;  // when allowed: the addresses to connect to, in order
  std::string reason;                 // when refused: "refused: <host> resolves to <ip> (<class>)"
};

// The decision for one delivery target. A literal host is classified directly and `resolved` is
// ignored; a name is judged by `resolved` (the caller's lookup of `host`) and is refused if ANY
// address is not allowed: a name that resolves to one public and one private address must not
// get a coin toss. An empty `resolved` is refused. Duplicate addresses are returned once.
// allow_private (--allow-private-targets) admits every class except multicast, broadcast and
// unspecified, which can never be a unicast peer.
[[nodiscard]] guard_decision check_target(std::string_view host,
                                          const std::vector<ip_address>& resolved,
                                          bool allow_private);

}  // namespace hookd
