// Segment matching over a short list of routes. A linear scan over the routes of the path's depth
// is deliberate: hookd registers a few dozen routes, a handful share any one depth, and comparing
// a few string_views per route beats building a trie both in code size and, at this scale, in
// time.

#include "http/server/router.hpp"

#include <algorithm>
#include <stdexcept>

namespace hookd::http {
namespace {

// Deeper paths than this cannot match any route (add() refuses longer patterns).
constexpr std::size_t kMaxSegments = router::kMaxSegments;

struct split_path {
  std::array<std::string_view, kMaxSegments> segments{};
  std::size_t size = 0;
  bool too_deep = false;
};

// "/a/b/c" -> {"a","b","c"}; "/" -> {""}; "/a/" -> {"a",""}. Empty segments are kept so that
// "/a//b" and "/a/" do not match "/a/b" and "/a".
split_path split(std::string_view path) {
  split_path out;
  if (path.empty() || path.front() != '/') {
    out.too_deep = true;  // not origin-form: matches nothing
    return out;
  }
  path.remove_prefix(1);
  for (;;) {
    const auto slash = path.find('/');
    if (out.size == kMaxSegments) {
      out.too_deep = true;
      return out;
    }
    out.segments[out.size++] = path.substr(0, slash);
    if (slash == std::string_view::npos) break;
    path.remove_prefix(slash + 1);
  }
  return out;
}

bool is_param(std::string_view segment) noexcept {
  return segment.size() > 2 && segment.front() == '{' && segment.back() == '}';
}

// A literal segment beats a parameter at the first position where two patterns differ, so
// "/tokens/current" wins over "/tokens/{tokenId}" whatever the registration order. Patterns of
// one path have the same length, so comparing their parameter bit masks is enough.
bool more_specific(std::uint32_t a_params, std::uint32_t b_params) noexcept {
  const std::uint32_t differ = a_params ^ b_params;
  if (differ == 0) return false;
  return (a_params & (differ & (~differ + 1))) == 0;  // a is literal at the lowest difference
}

}  // namespace

std::string_view path_params::get(std::string_view name) const noexcept {
  for (std::size_t i = 0; i < size_; ++i) {
    if (items_[i].first == name) return items_[i].second;
  }
  return {};
}

void path_params::push(std::string_view name, std::string_view value) noexcept {
  if (size_ < kMax) items_[size_++] = {name, value};
}

void router::add(bhttp::verb method, std::string_view pattern, handler h, std::string route) {
  const auto parts = split(pattern);
  if (parts.too_deep) {
    throw std::invalid_argument(
        "router: pattern must start with '/' and have at most 16 segments: " +
        std::string(pattern));
  }
  entry e{method, {}, std::move(h), route.empty() ? std::string(pattern) : std::move(route)};
  std::size_t params = 0;
  for (std::size_t i = 0; i < parts.size; ++i) {
    if (is_param(parts.segments[i])) {
      ++params;
      e.param_mask |= std::uint32_t{1} << i;
    }
    e.segments.emplace_back(parts.segments[i]);
  }
  if (params > path_params::kMax) {
    throw std::invalid_argument("router: too many parameters in " + std::string(pattern));
  }
  for (const auto& other : entries_) {
    if (other.method == e.method && other.segments == e.segments) {
      throw std::invalid_argument("router: duplicate route " + std::string(pattern));
    }
  }
  by_depth_[parts.size].push_back(static_cast<std::uint32_t>(entries_.size()));
  entries_.push_back(std::move(e));
}

router::match router::find(bhttp::verb method, std::string_view path) const {
  match m;
  const auto parts = split(path);
  if (parts.too_deep) return m;

  const entry* best = nullptr;   // most specific pattern with this method
  const entry* known = nullptr;  // most specific pattern of this path, any method
  const auto& candidates = by_depth_[parts.size];
  const auto matches = [&parts](const entry& e) {
    for (std::size_t i = 0; i < parts.size; ++i) {
      const bool param = (e.param_mask >> i) & 1U;
      if (param ? parts.segments[i].empty() : e.segments[i] != parts.segments[i]) return false;
    }
    return true;
  };
  // HEAD is served by the path's GET handler unless a HEAD route is registered; the server sends
  // the head of the answer without its body (RFC 9110 §9.3.2).
  const entry* get_of_head = nullptr;
  for (const auto index : candidates) {
    const entry& e = entries_[index];
    if (!matches(e)) continue;
    if (known == nullptr || more_specific(e.param_mask, known->param_mask)) known = &e;
    if (e.method == method && (best == nullptr || more_specific(e.param_mask, best->param_mask))) {
      best = &e;
    }
    if (method == bhttp::verb::head && e.method == bhttp::verb::get &&
        (get_of_head == nullptr || more_specific(e.param_mask, get_of_head->param_mask))) {
      get_of_head = &e;
    }
  }
  if (best == nullptr) best = get_of_head;
  if (best == nullptr && known != nullptr) {
    // Allow lists the path's methods in registration order, each once.
    for (const auto index : candidates) {
      const entry& e = entries_[index];
      if (!matches(e)) continue;
      const auto name = bhttp::to_string(e.method);
      bool listed = false;
      std::string_view rest = m.allow;
      while (!rest.empty() && !listed) {
        const auto comma = rest.find(", ");
        listed = rest.substr(0, comma) == name;
        rest = comma == std::string_view::npos ? std::string_view{} : rest.substr(comma + 2);
      }
      if (!listed) {
        if (!m.allow.empty()) m.allow += ", ";
        m.allow.append(name.data(), name.size());
        if (e.method == bhttp::verb::get) m.allow += ", HEAD";
      }
    }
  }

  if (best != nullptr) {
    m.outcome = match::kind::found;
    m.target = &best->h;
    m.route = best->route;
    for (std::size_t i = 0; i < parts.size; ++i) {
      const auto& seg = best->segments[i];
      if ((best->param_mask >> i) & 1U) {
        m.params.push(std::string_view(seg).substr(1, seg.size() - 2), parts.segments[i]);
      }
    }
  } else if (known != nullptr) {
    m.outcome = match::kind::method_not_allowed;
    m.route = known->route;
  }
  return m;
}

}  // namespace hookd::http
