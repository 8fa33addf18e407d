#include "core/common/ip_network.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <charconv>

namespace hookd {
namespace {

std::string_view trim(std::string_view s) noexcept {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

std::optional<ip_address> parse_address(std::string_view text) {
  if (text.empty() || text.size() > 45) return std::nullopt;  // INET6_ADDRSTRLEN - 1
  const std::string z(text);                                  // inet_pton wants a C string
  if (z.find(':') == std::string::npos) {
    ip_address::v4_bytes b{};
    if (::inet_pton(AF_INET, z.c_str(), b.data()) != 1) return std::nullopt;
    return ip_address::v4(b);
  }
  ip_address::v6_bytes b{};
  if (::inet_pton(AF_INET6, z.c_str(), b.data()) != 1) return std::nullopt;
  return ip_address::v6(b);
}

// `bytes` with every bit past the first `prefix` cleared.
ip_address masked(const ip_address& a, unsigned prefix) {
  const auto in = a.bytes();
  ip_address::v6_bytes out{};
  for (std::size_t i = 0; i < in.size(); ++i) {
    const unsigned first_bit = static_cast<unsigned>(i) * 8;
    if (prefix >= first_bit + 8) {
      out[i] = in[i];
    } else if (prefix > first_bit) {
      const auto keep = static_cast<std::uint8_t>(0xFF << (8 - (prefix - first_bit)));
      out[i] = static_cast<std::uint8_t>(in[i] & keep);
    }
  }
  return *ip_address::from_bytes(std::span<const std::uint8_t>(out.data(), in.size()));
}

// The IPv4 address inside ::ffff:a.b.c.d; nullopt for anything else.
std::optional<ip_address> unmapped_v4(const ip_address& a) {
  if (!a.is_v6()) return std::nullopt;
  const auto b = a.bytes();
  for (std::size_t i = 0; i < 10; ++i) {
    if (b[i] != 0) return std::nullopt;
  }
  if (b[10] != 0xFF || b[11] != 0xFF) return std::nullopt;
  return ip_address::v4({b[12], b[13], b[14], b[15]});
}

}  // namespace

bool ip_network::contains(const ip_address& address) const noexcept {
  if (address.kind() != base.kind()) {
    const auto v4 = unmapped_v4(address);
    return v4 && base.is_v4() && contains(*v4);
  }
  return masked(address, prefix_length) == base;
}

std::string ip_network::to_string() const {
  return base.to_string() + "/" + std::to_string(prefix_length);
}

std::variant<ip_network, std::string> parse_ip_network(std::string_view text) {
  const auto slash = text.find('/');
  const auto address_text = text.substr(0, slash);
  const auto address = parse_address(address_text);
  if (!address) {
    return "'" + std::string(address_text) +
           "' is not an IPv4 address (a.b.c.d) or an IPv6 address";
  }
  const unsigned width = address->is_v4() ? 32 : 128;
  unsigned prefix = width;
  if (slash != std::string_view::npos) {
    const auto digits = text.substr(slash + 1);
    const auto* end = digits.data() + digits.size();
    const auto r = std::from_chars(digits.data(), end, prefix);
    if (digits.empty() || digits.front() == '+' || r.ec != std::errc{} || r.ptr != end ||
        prefix > width) {
      return "'" + std::string(text) + "': the prefix length must be 0.." + std::to_string(width);
    }
  }
  ip_network out{masked(*address, prefix), prefix};
  if (out.base != *address) {
    return "'" + std::string(text) + "' has host bits set; did you mean " + out.to_string() + "?";
  }
  return out;
}

std::variant<std::vector<ip_network>, std::string> parse_ip_network_list(std::string_view text) {
  std::vector<ip_network> out;
  if (trim(text).empty()) return out;
  for (;;) {
    const auto comma = text.find(',');
    const auto item = trim(text.substr(0, comma));
    if (item.empty()) return std::string("an empty item in the list");
    auto parsed = parse_ip_network(item);
    if (auto* problem = std::get_if<std::string>(&parsed)) return std::move(*problem);
    out.push_back(std::get<ip_network>(parsed));
    if (comma == std::string_view::npos) break;
    text.remove_prefix(comma + 1);
  }
  return out;
}

bool contains_any(std::span<const ip_network> networks, const ip_address& address) noexcept {
  return std::any_of(networks.begin(), networks.end(),
                     [&](const ip_network& n) { return n.contains(address); });
}

}  // namespace hookd
