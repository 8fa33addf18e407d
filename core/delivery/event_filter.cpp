#include "core/delivery/event_filter.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <cmath>
#include <cstdint>
#include <utility>

namespace hookd {

namespace {

namespace json = boost::json;

std::vector<std::string> split(std::string_view path) {
  std::vector<std::string> out;
  std::size_t start = 0;
  for (;;) {
    const std::size_t dot = path.find('.', start);
    out.emplace_back(path.substr(start, dot == std::string_view::npos ? dot : dot - start));
    if (dot == std::string_view::npos) return out;
    start = dot + 1;
  }
}

// Why `path` is not a filter path (nullopt: it is).
std::optional<std::string> check_path(std::string_view path,
                                      const std::vector<std::string>& segments) {
  if (path.empty()) return "a path must not be empty";
  if (path.size() > event_filter::kMaxPathChars) {
    return "a path must be at most " + std::to_string(event_filter::kMaxPathChars) + " characters";
  }
  for (const std::string& s : segments) {
    if (s.empty()) return "a path is dotted segments, none of them empty";
  }
  for (const char c : path) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7F) return "a path must not contain control characters";
  }
  if (segments.front() == "type") {
    if (segments.size() > 1) return "\"type\" is a string: nothing is below it";
    return std::nullopt;
  }
  if (segments.front() != "data") {
    return "a path starts at the event: its first segment is \"type\" or \"data\"";
  }
  return std::nullopt;
}

// A canonical non-negative decimal index ("0", "12"; not "01", "-1", "+1").
std::optional<std::size_t> array_index(std::string_view s) noexcept {
  if (s.empty() || s.size() > 9 || (s.size() > 1 && s[0] == '0')) return std::nullopt;
  std::size_t n = 0;
  for (const char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    n = n * 10 + static_cast<std::size_t>(c - '0');
  }
  return n;
}

bool is_number(const json::value& v) noexcept {
  return v.is_int64() || v.is_uint64() || v.is_double();
}

bool integer_equals_double(const json::value& i, double d) noexcept {
  if (!std::isfinite(d) || std::trunc(d) != d) return false;
  if (i.is_int64()) {
    // [-2^63, 2^63): the doubles that convert to an int64 without overflow.
    if (d < -9223372036854775808.0 || d >= 9223372036854775808.0) return false;
    return static_cast<std::int64_t>(d) == i.get_int64();
  }
  if (d < 0.0 || d >= 18446744073709551616.0) return false;
  return static_cast<std::uint64_t>(d) == i.get_uint64();
}

bool numbers_equal(const json::value& a, const json::value& b) noexcept {
  if (a.is_double() && b.is_double()) return a.get_double() == b.get_double();
  if (a.is_double()) return integer_equals_double(b, a.get_double());
  if (b.is_double()) return integer_equals_double(a, b.get_double());
  if (a.is_int64() && b.is_int64()) return a.get_int64() == b.get_int64();
  if (a.is_uint64() && b.is_uint64()) return a.get_uint64() == b.get_uint64();
  const std::int64_t s = a.is_int64() ? a.get_int64() : b.get_int64();
  const std::uint64_t u = a.is_uint64() ? a.get_uint64() : b.get_uint64();
  return s >= 0 && static_cast<std::uint64_t>(s) == u;
}

}  // namespace

bool json_equal(const json::value& a, const json::value& b) noexcept {
  if (is_number(a) && is_number(b)) return numbers_equal(a, b);
  if (a.kind() != b.kind()) return false;
  switch (a.kind()) {
    case json::kind::null:
      return true;
    case json::kind::bool_:
      return a.get_bool() == b.get_bool();
    case json::kind::string:
      return a.get_string() == b.get_string();
    case json::kind::array: {
      const json::array& x = a.get_array();
      const json::array& y = b.get_array();
      if (x.size() != y.size()) return false;
      for (std::size_t i = 0; i < x.size(); ++i) {
        if (!json_equal(x[i], y[i])) return false;
      }
      return true;
    }
    case json::kind::object: {
      const json::object& x = a.get_object();
      const json::object& y = b.get_object();
      if (x.size() != y.size()) return false;
      for (const auto& member : x) {
        const json::value* other = y.if_contains(member.key());
        if (other == nullptr || !json_equal(member.value(), *other)) return false;
      }
      return true;
    }
    default:
      return false;  // numbers were handled above
  }
}

std::shared_ptr<const event_filter> event_filter::parse(const json::value& value,
                                                        std::vector<field_error>& errors) {
  const json::object* obj = value.if_object();
  if (obj == nullptr) {
    errors.push_back({"filter", "must be an object of dotted paths to JSON values, or null"});
    return nullptr;
  }
  const std::size_t before = errors.size();
  if (obj->size() > kMaxPaths) {
    errors.push_back({"filter", "must have at most " + std::to_string(kMaxPaths) + " paths"});
  }
  auto filter = std::make_shared<event_filter>();
  filter->conditions_.reserve(obj->size());
  for (const auto& member : *obj) {
    const std::string_view path(member.key().data(), member.key().size());
    const std::string field = "filter." + std::string(path);
    std::vector<std::string> segments = split(path);
    if (auto message = check_path(path, segments)) {
      errors.push_back({field, std::move(*message)});
      continue;
    }
    if (segments.front() == "type" && !member.value().is_string()) {
      errors.push_back({field, "an event type is a string: this could never match"});
      continue;
    }
    if (json::serialize(member.value()).size() > kMaxValueBytes) {
      errors.push_back({field, "the value must be at most " + std::to_string(kMaxValueBytes) +
                                   " bytes of JSON"});
      continue;
    }
    // On the default heap, not the storage of `value` (a decoder's arena on its stack).
    filter->conditions_.push_back(condition{std::string(path), std::move(segments),
                                            json::value(member.value(), json::storage_ptr())});
  }
  if (errors.size() != before || filter->conditions_.empty()) return nullptr;
  return filter;
}

bool event_filter::matches(std::string_view type, const json::value& data) const noexcept {
  for (const condition& c : conditions_) {
    if (c.segments.front() == "type") {
      const json::string* expected = c.value.if_string();
      if (expected == nullptr || std::string_view(expected->data(), expected->size()) != type) {
        return false;
      }
      continue;
    }
    const json::value* at = &data;
    for (std::size_t i = 1; i < c.segments.size() && at != nullptr; ++i) {
      const std::string& segment = c.segments[i];
      if (const json::object* o = at->if_object()) {
        at = o->if_contains(segment);
      } else if (const json::array* a = at->if_array()) {
        const auto index = array_index(segment);
        at = index && *index < a->size() ? &(*a)[*index] : nullptr;
      } else {
        at = nullptr;
      }
    }
    if (at == nullptr || !json_equal(*at, c.value)) return false;
  }
  return true;
}

json::object event_filter::to_json() const {
  json::object out;
  out.reserve(conditions_.size());
  for (const condition& c : conditions_) out.emplace(c.path, c.value);
  return out;
}

bool operator==(const event_filter& a, const event_filter& b) noexcept {
  if (a.conditions_.size() != b.conditions_.size()) return false;
  for (std::size_t i = 0; i < a.conditions_.size(); ++i) {
    if (a.conditions_[i].path != b.conditions_[i].path ||
        a.conditions_[i].value != b.conditions_[i].value) {
      return false;
    }
  }
  return true;
}

const json::value& filter_data::get() {
  if (parsed_ != nullptr) return *parsed_;
  // Data that does not parse (never written by ingest) reads as null: it matches no data path.
  boost::system::error_code ec;
  own_.emplace(json::parse(text_, ec));
  if (ec) *own_ = nullptr;
  parsed_ = &*own_;
  return *parsed_;
}

}  // namespace hookd
