#pragma once
// ASCII case folding, the one home for it in hookd: HTTP header names, option values and the like
// compare case-insensitively in ASCII only (RFC 9110 §5.1), never by locale.

#include <algorithm>
#include <string>
#include <string_view>

namespace hookd {

constexpr char ascii_lower(char c) noexcept {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

constexpr bool ascii_iequals(std::string_view a, std::string_view b) noexcept {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return ascii_lower(x) == ascii_lower(y);
         });
}

inline std::string ascii_lowercase(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = ascii_lower(c);
  return out;
}

}  // namespace hookd
