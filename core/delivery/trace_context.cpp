#include "core/delivery/trace_context.hpp"

#include "core/common/crypto.hpp"

#include <algorithm>

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

// `n` random bytes as 2n lowercase hex digits, never all zeros.
std::string random_hex(std::size_t n) {
  for (;;) {
    std::string hex = hex_encode(random_bytes(n));
    if (!all_zeros(hex)) return hex;
  }
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
  return "00-" + random_hex(16) + "-" + random_hex(8) + "-01";
}

std::string child_traceparent(std::string_view parent) {
  std::string span = random_hex(8);
  while (span == span_id_of(parent)) span = random_hex(8);
  std::string out;
  out.reserve(kTraceparentSize);
  out.append("00-").append(trace_id_of(parent)).append("-").append(span).append("-");
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
