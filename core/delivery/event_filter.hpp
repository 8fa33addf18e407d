#pragma once
// A webhook's payload filter (docs/delivery.md, "Filtering by payload"): dotted paths into the
// event as receivers get it, {type, timestamp, data}, each with a JSON value. An event reaches the
// webhook only when every path exists in it with an equal value.
//
// - A path's first segment is `type` (alone) or `data`; the segments after `data` name object
//   members, or, where the value there is an array, an element by its decimal index
//   ("data.items.0.sku"). A member whose name contains a dot cannot be named.
// - Equality is JSON's, not the parser's: numbers are equal when their values are (10, 10.0 and
//   1e1 are one number), strings byte for byte, arrays element by element in order, objects member
//   by member in any order.
//
// Immutable once made: `matches` is safe to call from many threads at once.

#include "core/common/error.hpp"

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace hookd {

class event_filter {
 public:
  static constexpr std::size_t kMaxPaths = 10;
  static constexpr std::size_t kMaxPathChars = 256;
  static constexpr std::size_t kMaxValueBytes = 1024;  // a value's compact JSON text

  struct condition {
    std::string path;                   // as the client wrote it, e.g. "data.country"
    std::vector<std::string> segments;  // the path split at its dots, made once
    boost::json::value value;
  };

  // The filter `value` describes: an object of paths to values. Every rule broken is added to
  // `errors`, naming "filter" or "filter.<path>", and the result is then null. An empty object is
  // no filter: null without errors.
  static std::shared_ptr<const event_filter> parse(const boost::json::value& value,
                                                   std::vector<field_error>& errors);

  // True when every path exists in the event with an equal value.
  [[nodiscard]] bool matches(std::string_view type, const boost::json::value& data) const noexcept;

  [[nodiscard]] const std::vector<condition>& conditions() const noexcept { return conditions_; }
  [[nodiscard]] boost::json::object to_json() const;  // {path: value, ...} in the client's order

  // The same paths with the same values (compared as Boost.JSON does: 10 and 10.0 differ here, so
  // that a PATCH that only rewrites a number counts as a change).
  friend bool operator==(const event_filter& a, const event_filter& b) noexcept;

 private:
  std::vector<condition> conditions_;
};

// JSON equality as filters use it (see above).
[[nodiscard]] bool json_equal(const boost::json::value& a, const boost::json::value& b) noexcept;

// An event's data for filters: parsed on first use from its compact JSON text, unless the caller
// already holds it parsed (the ingest request's parsed body). Not thread-safe; one per event.
class filter_data {
 public:
  filter_data(std::string_view text, const boost::json::value* parsed) noexcept
      : text_(text), parsed_(parsed) {}
  const boost::json::value& get();

 private:
  std::string_view text_;
  const boost::json::value* parsed_;
  std::optional<boost::json::value> own_;
};

}  // namespace hookd
