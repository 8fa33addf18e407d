#include "core/delivery/event_match.hpp"

#include <algorithm>

namespace hookd {

bool event_matches(std::string_view pattern, std::string_view type) noexcept {
  if (pattern == "*") return true;
  if (pattern.size() >= 2 && pattern.ends_with(".*")) {
    // Keep the dot in the prefix so that "a.b.*" cannot match "a.bc", and require at least one
    // character after it so that it does not match "a.b." or "a.b".
    const std::string_view prefix = pattern.substr(0, pattern.size() - 1);
    return type.size() > prefix.size() && type.starts_with(prefix);
  }
  return pattern == type;
}

bool any_matches(const std::vector<std::string>& patterns, std::string_view type) noexcept {
  return std::any_of(patterns.begin(), patterns.end(),
                     [type](const std::string& p) { return event_matches(p, type); });
}

}  // namespace hookd
