#include "core/catalog/scopes.hpp"

#include <array>
#include <utility>

namespace hookd {

namespace {

// In the order of the enum, which is also the order `names()` and the JSON use.
constexpr std::array<std::pair<scope, std::string_view>, 6> kScopes{{
    {scope::admin, "admin"},
    {scope::webhooks_read, "webhooks:read"},
    {scope::webhooks_write, "webhooks:write"},
    {scope::events_write, "events:write"},
    {scope::deliveries_read, "deliveries:read"},
    {scope::deliveries_write, "deliveries:write"},
}};

}  // namespace

std::vector<std::string_view> scope_set::names() const {
  std::vector<std::string_view> out;
  for (const auto& [s, name] : kScopes) {
    if (has(s)) out.push_back(name);
  }
  return out;
}

std::string_view scope_name(scope s) noexcept {
  for (const auto& [candidate, name] : kScopes) {
    if (candidate == s) return name;
  }
  return {};
}

std::optional<scope> parse_scope(std::string_view text) noexcept {
  for (const auto& [s, name] : kScopes) {
    if (name == text) return s;
  }
  return std::nullopt;
}

}  // namespace hookd
