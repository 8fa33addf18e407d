#pragma once
// What the fuzz targets share: an input split into HTTP-like header lines and a body, and a
// request built from a body the way a client sends one.

#include "http/server/types.hpp"

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace hookd::fuzz {

inline std::string_view as_text(const std::uint8_t* data, std::size_t size) noexcept {
  return {reinterpret_cast<const char*>(data), size};
}

// "Name: value\r\n...\r\n\r\nbody": the lines before the first blank line are headers, the rest
// is the body. Without a "\r\n\r\n" the whole input is the body.
struct headed_input {
  std::vector<std::pair<std::string_view, std::string_view>> headers;
  std::string_view body;

  std::optional<std::string_view> header(std::string_view name) const noexcept {
    for (const auto& [n, v] : headers) {
      if (n == name) return v;
    }
    return std::nullopt;
  }
};

inline headed_input split_headers(std::string_view text) {
  headed_input in;
  const auto end = text.find("\r\n\r\n");
  if (end == std::string_view::npos) {
    in.body = text;
    return in;
  }
  in.body = text.substr(end + 4);
  std::string_view head = text.substr(0, end);
  while (!head.empty()) {
    const auto eol = head.find("\r\n");
    const std::string_view line = head.substr(0, eol);
    head = eol == std::string_view::npos ? std::string_view() : head.substr(eol + 2);
    const auto colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    std::string_view value = line.substr(colon + 1);
    while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
    in.headers.emplace_back(line.substr(0, colon), value);
  }
  return in;
}

// A POST with `body` as application/json, as the API's handlers read it (read_json_body).
inline http::request json_request(std::string_view body) {
  http::request req{http::bhttp::verb::post, "/", 11};
  req.set(http::bhttp::field::content_type, "application/json");
  req.body() = std::string(body);
  req.prepare_payload();
  return req;
}

}  // namespace hookd::fuzz
