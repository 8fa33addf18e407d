#include "core/delivery/address_guard.hpp"

#include <algorithm>
#include <initializer_list>

namespace hookd {

namespace {

using v4_bytes = ip_address::v4_bytes;
using v6_bytes = ip_address::v6_bytes;

// ---- IPv4 -------------------------------------------------------------------------------------

struct v4_range {
  std::uint32_t network;
  unsigned prefix_len;
  address_class cls;
};

constexpr std::uint32_t v4(unsigned a, unsigned b, unsigned c, unsigned d) {
  return (a << 24) | (b << 16) | (c << 8) | d;
}

// First match wins, so the narrow 255.255.255.255/32 precedes 240/4.
constexpr v4_range kV4Ranges[] = {
    {v4(0, 0, 0, 0), 8, address_class::unspecified},
    {v4(10, 0, 0, 0), 8, address_class::private_use},
    {v4(100, 64, 0, 0), 10, address_class::shared_cgnat},
    {v4(127, 0, 0, 0), 8, address_class::loopback},
    {v4(169, 254, 0, 0), 16, address_class::link_local},
    {v4(172, 16, 0, 0), 12, address_class::private_use},
    {v4(192, 0, 0, 0), 24, address_class::reserved},  // IETF protocol assignments
    {v4(192, 0, 2, 0), 24, address_class::documentation},
    {v4(192, 88, 99, 0), 24, address_class::reserved},  // deprecated 6to4 relay anycast
    {v4(192, 168, 0, 0), 16, address_class::private_use},
    {v4(198, 18, 0, 0), 15, address_class::benchmarking},
    {v4(198, 51, 100, 0), 24, address_class::documentation},
    {v4(203, 0, 113, 0), 24, address_class::documentation},
    {v4(224, 0, 0, 0), 4, address_class::multicast},
    {v4(255, 255, 255, 255), 32, address_class::broadcast},
    {v4(240, 0, 0, 0), 4, address_class::reserved},
};

address_class classify_v4(std::uint32_t a) noexcept {
  for (const v4_range& r : kV4Ranges) {
    const std::uint32_t mask = r.prefix_len == 0 ? 0 : ~std::uint32_t{0} << (32 - r.prefix_len);
    if ((a & mask) == r.network) return r.cls;
  }
  return address_class::public_unicast;
}

std::uint32_t v4_at(const v6_bytes& b, std::size_t offset) noexcept {
  return (std::uint32_t{b[offset]} << 24) | (std::uint32_t{b[offset + 1]} << 16) |
         (std::uint32_t{b[offset + 2]} << 8) | std::uint32_t{b[offset + 3]};
}

// ---- IPv6 -------------------------------------------------------------------------------------

struct v6_prefix {
  v6_bytes network;
  unsigned prefix_len;
};

// A prefix from its leading 16-bit groups: p6({0x2001, 0x0db8}, 32) is 2001:db8::/32.
constexpr v6_prefix p6(std::initializer_list<std::uint16_t> groups, unsigned prefix_len) {
  v6_prefix p{{}, prefix_len};
  std::size_t i = 0;
  for (std::uint16_t g : groups) {
    p.network[i++] = static_cast<std::uint8_t>(g >> 8);
    p.network[i++] = static_cast<std::uint8_t>(g & 0xff);
  }
  return p;
}

bool in(const v6_bytes& a, const v6_prefix& p) noexcept {
  unsigned bits = p.prefix_len;
  for (std::size_t i = 0; i < 16 && bits > 0; ++i) {
    const unsigned take = std::min(bits, 8u);
    const auto mask = static_cast<std::uint8_t>(0xff << (8 - take));
    if ((a[i] & mask) != (p.network[i] & mask)) return false;
    bits -= take;
  }
  return true;
}

address_class classify_v6(const v6_bytes& a) noexcept {
  static constexpr v6_prefix kUnspecified = p6({}, 128);
  static constexpr v6_prefix kLoopback = p6({0, 0, 0, 0, 0, 0, 0, 1}, 128);
  static constexpr v6_prefix kMapped = p6({0, 0, 0, 0, 0, 0xffff}, 96);
  static constexpr v6_prefix kCompatible = p6({}, 96);
  static constexpr v6_prefix kNat64 = p6({0x64, 0xff9b}, 96);
  static constexpr v6_prefix kNat64Local = p6({0x64, 0xff9b, 1}, 48);
  static constexpr v6_prefix kDiscard = p6({0x100}, 64);
  static constexpr v6_prefix kTeredo = p6({0x2001, 0}, 32);
  static constexpr v6_prefix kBenchmarking = p6({0x2001, 2, 0}, 48);
  static constexpr v6_prefix kOrchid = p6({0x2001, 0x10}, 28);
  static constexpr v6_prefix kOrchidV2 = p6({0x2001, 0x20}, 28);
  static constexpr v6_prefix kIetfProtocol = p6({0x2001}, 23);
  static constexpr v6_prefix kDocumentation = p6({0x2001, 0xdb8}, 32);
  static constexpr v6_prefix k6to4 = p6({0x2002}, 16);
  static constexpr v6_prefix kDocumentation2 = p6({0x3fff}, 20);
  static constexpr v6_prefix kSrv6 = p6({0x5f00}, 16);
  static constexpr v6_prefix kUniqueLocal = p6({0xfc00}, 7);
  static constexpr v6_prefix kLinkLocal = p6({0xfe80}, 10);
  static constexpr v6_prefix kSiteLocal = p6({0xfec0}, 10);
  static constexpr v6_prefix kMulticast = p6({0xff00}, 8);
  static constexpr v6_prefix kGlobalUnicast = p6({0x2000}, 3);

  if (in(a, kUnspecified)) return address_class::unspecified;
  if (in(a, kLoopback)) return address_class::loopback;
  if (in(a, kMapped)) return classify_v4(v4_at(a, 12));
  if (in(a, kCompatible)) return address_class::reserved;  // IPv4-compatible, deprecated
  if (in(a, kNat64)) return classify_v4(v4_at(a, 12));
  if (in(a, kNat64Local)) return address_class::private_use;
  if (in(a, kDiscard)) return address_class::discard;
  if (in(a, kTeredo)) return address_class::teredo;
  if (in(a, kBenchmarking)) return address_class::benchmarking;
  if (in(a, kOrchid) || in(a, kOrchidV2)) return address_class::reserved;
  // The rest of 2001::/23 (AMT, AS112, anycast services...) is infrastructure, not a receiver.
  if (in(a, kIetfProtocol)) return address_class::reserved;
  if (in(a, kDocumentation) || in(a, kDocumentation2)) return address_class::documentation;
  if (in(a, k6to4)) return classify_v4(v4_at(a, 2));
  if (in(a, kSrv6)) return address_class::reserved;
  if (in(a, kUniqueLocal)) return address_class::unique_local;
  if (in(a, kLinkLocal)) return address_class::link_local;
  if (in(a, kSiteLocal)) return address_class::reserved;  // site-local, deprecated
  if (in(a, kMulticast)) return address_class::multicast;
  if (in(a, kGlobalUnicast)) return address_class::public_unicast;
  return address_class::reserved;
}

// ---- Parsing ----------------------------------------------------------------------------------

bool is_digit(char c) noexcept {
  return c >= '0' && c <= '9';
}

int hex_value(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// WHATWG "IPv4 number parser": decimal, "0x"/"0X" hex, or leading-zero octal; "0x" alone is 0.
// Values above 2^32 - 1 cannot be valid anywhere in an address and fail early.
std::optional<std::uint32_t> parse_ipv4_number(std::string_view s) noexcept {
  if (s.empty()) return std::nullopt;
  unsigned radix = 10;
  if (s.size() >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
    radix = 16;
    s.remove_prefix(2);
  } else if (s.size() >= 2 && s[0] == '0') {
    radix = 8;
    s.remove_prefix(1);
  }
  std::uint64_t value = 0;
  for (char c : s) {
    const int digit = hex_value(c);
    if (digit < 0 || static_cast<unsigned>(digit) >= radix) return std::nullopt;
    value = value * radix + static_cast<unsigned>(digit);
    if (value > 0xffffffffu) return std::nullopt;
  }
  return static_cast<std::uint32_t>(value);
}

// WHATWG "IPv4 parser". Works on at most 4 parts, so it needs no allocation.
std::optional<ip_address> parse_ipv4(std::string_view host) noexcept {
  if (host.size() > 1 && host.back() == '.') host.remove_suffix(1);  // "127.0.0.1."
  std::array<std::uint32_t, 4> numbers{};
  std::size_t count = 0;
  while (true) {
    if (count == numbers.size()) return std::nullopt;  // a fifth part
    const std::size_t dot = host.find('.');
    const auto n = parse_ipv4_number(host.substr(0, dot));
    if (!n) return std::nullopt;
    numbers[count++] = *n;
    if (dot == std::string_view::npos) break;
    host.remove_prefix(dot + 1);
  }
  for (std::size_t i = 0; i + 1 < count; ++i) {
    if (numbers[i] > 255) return std::nullopt;
  }
  // The last number fills the 5 - count remaining bytes.
  const std::uint32_t last = numbers[count - 1];
  const std::size_t free_bytes = 5 - count;
  if (free_bytes < 4 && last >= (std::uint32_t{1} << (8 * free_bytes))) return std::nullopt;
  std::uint32_t value = last;
  for (std::size_t i = 0; i + 1 < count; ++i) value |= numbers[i] << (8 * (3 - i));
  return ip_address::v4_from_value(value);
}

// WHATWG "IPv6 parser" (RFC 4291 text form; the embedded IPv4 must be a plain dotted quad).
std::optional<ip_address> parse_ipv6(std::string_view in) noexcept {
  std::array<std::uint16_t, 8> address{};
  std::size_t piece = 0;
  std::optional<std::size_t> compress;
  std::size_t p = 0;
  const auto at = [&](std::size_t i) -> char {
    return i < in.size() ? in[i] : '\0';
  };

  if (at(p) == ':') {
    if (at(p + 1) != ':') return std::nullopt;
    p += 2;
    ++piece;
    compress = piece;
  }
  while (p < in.size()) {
    if (piece == 8) return std::nullopt;
    if (at(p) == ':') {
      if (compress) return std::nullopt;
      ++p;
      ++piece;
      compress = piece;
      continue;
    }
    unsigned value = 0;
    std::size_t length = 0;
    while (length < 4 && hex_value(at(p)) >= 0) {
      value = value * 16 + static_cast<unsigned>(hex_value(at(p)));
      ++p;
      ++length;
    }
    if (at(p) == '.') {
      if (length == 0) return std::nullopt;
      p -= length;
      if (piece > 6) return std::nullopt;
      int numbers_seen = 0;
      while (p < in.size()) {
        if (numbers_seen > 0) {
          if (at(p) == '.' && numbers_seen < 4) {
            ++p;
          } else {
            return std::nullopt;
          }
        }
        if (!is_digit(at(p))) return std::nullopt;
        std::optional<unsigned> v4_piece;
        while (is_digit(at(p))) {
          const auto number = static_cast<unsigned>(at(p) - '0');
          if (!v4_piece) {
            v4_piece = number;
          } else if (*v4_piece == 0) {
            return std::nullopt;  // no leading zeros
          } else {
            *v4_piece = *v4_piece * 10 + number;
          }
          if (*v4_piece > 255) return std::nullopt;
          ++p;
        }
        address[piece] = static_cast<std::uint16_t>(address[piece] * 0x100 + *v4_piece);
        ++numbers_seen;
        if (numbers_seen == 2 || numbers_seen == 4) ++piece;
      }
      if (numbers_seen != 4) return std::nullopt;
      break;
    }
    if (at(p) == ':') {
      ++p;
      if (p >= in.size()) return std::nullopt;
    } else if (p < in.size()) {
      return std::nullopt;
    }
    address[piece] = static_cast<std::uint16_t>(value);
    ++piece;
  }
  if (compress) {
    std::size_t swaps = piece - *compress;
    piece = 7;
    while (piece != 0 && swaps > 0) {
      std::swap(address[piece], address[*compress + swaps - 1]);
      --piece;
      --swaps;
    }
  } else if (piece != 8) {
    return std::nullopt;
  }
  v6_bytes bytes{};
  for (std::size_t i = 0; i < 8; ++i) {
    bytes[2 * i] = static_cast<std::uint8_t>(address[i] >> 8);
    bytes[2 * i + 1] = static_cast<std::uint8_t>(address[i] & 0xff);
  }
  return ip_address::v6(bytes);
}

bool permitted(address_class c, bool allow_private) noexcept {
  if (c == address_class::public_unicast) return true;
  if (!allow_private) return false;
  return c != address_class::multicast && c != address_class::broadcast &&
         c != address_class::unspecified;
}

std::string describe(const ip_address& a) {
  std::string out = a.to_string();
  out += " (";
  out += to_string(classify(a));
  out += ')';
  return out;
}

}  // namespace

// ---- ip_address -------------------------------------------------------------------------------

ip_address ip_address::v4(const v4_bytes& bytes) noexcept {
  ip_address a;
  std::copy(bytes.begin(), bytes.end(), a.bytes_.begin());
  a.family_ = family::v4;
  return a;
}

ip_address ip_address::v4_from_value(std::uint32_t host_order) noexcept {
  return v4({static_cast<std::uint8_t>(host_order >> 24),
             static_cast<std::uint8_t>(host_order >> 16),
             static_cast<std::uint8_t>(host_order >> 8), static_cast<std::uint8_t>(host_order)});
}

ip_address ip_address::v6(const v6_bytes& bytes) noexcept {
  ip_address a;
  a.bytes_ = bytes;
  a.family_ = family::v6;
  return a;
}

std::optional<ip_address> ip_address::from_bytes(std::span<const std::uint8_t> bytes) noexcept {
  if (bytes.size() == 4) return v4({bytes[0], bytes[1], bytes[2], bytes[3]});
  if (bytes.size() == 16) {
    v6_bytes b{};
    std::copy(bytes.begin(), bytes.end(), b.begin());
    return v6(b);
  }
  return std::nullopt;
}

std::uint32_t ip_address::v4_value() const noexcept {
  return is_v4() ? v4_at(bytes_, 0) : 0;
}

std::string ip_address::to_string() const {
  const auto dotted = [](std::uint32_t v) {
    return std::to_string(v >> 24) + '.' + std::to_string((v >> 16) & 0xff) + '.' +
           std::to_string((v >> 8) & 0xff) + '.' + std::to_string(v & 0xff);
  };
  if (is_v4()) return dotted(v4_value());
  if (in(bytes_, p6({0, 0, 0, 0, 0, 0xffff}, 96))) return "::ffff:" + dotted(v4_at(bytes_, 12));

  std::array<unsigned, 8> groups{};
  for (std::size_t i = 0; i < 8; ++i)
    groups[i] = (unsigned{bytes_[2 * i]} << 8) | bytes_[2 * i + 1];
  // RFC 5952 §4.2: compress the longest run of two or more zero groups, the first on a tie.
  std::size_t best_start = 8, best_len = 0;
  for (std::size_t i = 0; i < 8;) {
    if (groups[i] != 0) {
      ++i;
      continue;
    }
    std::size_t j = i;
    while (j < 8 && groups[j] == 0) ++j;
    if (j - i > best_len) {
      best_start = i;
      best_len = j - i;
    }
    i = j;
  }
  if (best_len < 2) best_start = 8;

  constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (std::size_t i = 0; i < 8; ++i) {
    if (i == best_start) {
      out += "::";
      i += best_len - 1;
      continue;
    }
    if (!out.empty() && out.back() != ':') out.push_back(':');
    bool started = false;
    for (int shift = 12; shift >= 0; shift -= 4) {
      const unsigned nibble = (groups[i] >> shift) & 0xf;
      if (nibble != 0 || started || shift == 0) {
        out.push_back(kHex[nibble]);
        started = true;
      }
    }
  }
  return out;
}

// ---- Classification and decisions -------------------------------------------------------------

std::string_view to_string(address_class c) noexcept {
  switch (c) {
    case address_class::public_unicast:
      return "public-unicast";
    case address_class::loopback:
      return "loopback";
    case address_class::private_use:
      return "private-use";
    case address_class::shared_cgnat:
      return "shared-cgnat";
    case address_class::link_local:
      return "link-local";
    case address_class::unique_local:
      return "unique-local";
    case address_class::multicast:
      return "multicast";
    case address_class::broadcast:
      return "broadcast";
    case address_class::unspecified:
      return "unspecified";
    case address_class::documentation:
      return "documentation";
    case address_class::benchmarking:
      return "benchmarking";
    case address_class::discard:
      return "discard-only";
    case address_class::teredo:
      return "teredo";
    case address_class::reserved:
      return "reserved";
  }
  return "reserved";
}

address_class classify(const ip_address& address) noexcept {
  if (address.is_v4()) return classify_v4(address.v4_value());
  v6_bytes b{};
  std::copy(address.bytes().begin(), address.bytes().end(), b.begin());
  return classify_v6(b);
}

bool is_public(const ip_address& address) noexcept {
  return classify(address) == address_class::public_unicast;
}

bool host_ends_in_a_number(std::string_view host) noexcept {
  std::string_view last = host;
  if (!last.empty() && last.back() == '.') {
    if (last.size() == 1) return false;
    last.remove_suffix(1);
  }
  const std::size_t dot = last.rfind('.');
  if (dot != std::string_view::npos) last.remove_prefix(dot + 1);
  if (!last.empty() && std::all_of(last.begin(), last.end(), is_digit)) return true;
  return parse_ipv4_number(last).has_value();
}

std::optional<ip_address> parse_ip_literal(std::string_view host) noexcept {
  if (host.starts_with('[')) {
    if (host.size() < 2 || !host.ends_with(']')) return std::nullopt;
    return parse_ipv6(host.substr(1, host.size() - 2));  // a '%' zone id fails the parse
  }
  if (host.find(':') != std::string_view::npos) return parse_ipv6(host);
  if (!host_ends_in_a_number(host)) return std::nullopt;
  return parse_ipv4(host);
}

guard_decision check_target(std::string_view host, const std::vector<ip_address>& resolved,
                            bool allow_private) {
  const std::string name(host);
  if (host.empty()) return {false, {}, "refused: the URL has an empty host"};

  if (const auto literal = parse_ip_literal(host)) {
    if (!permitted(classify(*literal), allow_private)) {
      return {false, {}, "refused: " + name + " is " + describe(*literal)};
    }
    return {true, {*literal}, {}};
  }
  if (host.starts_with('[') || host.find(':') != std::string_view::npos) {
    return {
        false, {}, "refused: " + name + " is not a valid IPv6 address (zone ids are not accepted)"};
  }
  if (host_ends_in_a_number(host)) {
    return {false, {}, "refused: " + name + " is not a valid IPv4 address"};
  }

  if (resolved.empty()) return {false, {}, "refused: " + name + " did not resolve to any address"};
  std::vector<ip_address> addresses;
  for (const ip_address& a : resolved) {
    if (!permitted(classify(a), allow_private)) {
      return {false, {}, "refused: " + name + " resolves to " + describe(a)};
    }
    if (std::find(addresses.begin(), addresses.end(), a) == addresses.end()) addresses.push_back(a);
  }
  return {true, std::move(addresses), {}};
}

}  // namespace hookd
