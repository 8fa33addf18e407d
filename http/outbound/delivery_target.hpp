#pragma once
// A webhook URL as the delivery client reads it (delivery_client.hpp): scheme, host (an IP
// literal in any accepted spelling, or a lowercased name for the resolver and the SSRF guard),
// port, the Host header, the request target and the connection pool's key. Pure; any thread.

#include "core/delivery/address_guard.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

namespace hookd::http {

struct delivery_target {
  bool tls = false;
  std::string host;                   // decoded; IPv6 without brackets; names lowercased
  std::optional<ip_address> literal;  // when the host is an IP literal, in any accepted spelling
  std::uint16_t port = 0;
  std::string host_header;  // as the URL spells host and port, IPv6 in brackets
  std::string path;         // origin-form request target: path and query
  std::string origin;       // the pool key: scheme, normalized host, port
};

// The target of an absolute http:// or https:// URL (user-info and fragment ignored), or why
// it is none: "invalid URL: ..." naming what is wrong.
std::variant<delivery_target, std::string> parse_delivery_target(std::string_view url);

}  // namespace hookd::http
