#pragma once
// Helpers shared by the core tests: record fixtures (times, ids, damaged records) for the codec
// tests. Header only.

#include "core/clock.hpp"
#include "core/object_id.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include <cstdint>
#include <string>
#include <string_view>

namespace hookd::testing {

// The instant `ms` milliseconds after the unix epoch.
inline timestamp at(std::int64_t ms) {
  return timestamp{std::chrono::milliseconds{ms}};
}

// The id written as 24 hex digits; throws on a typo in the test.
inline object_id id_of(std::string_view hex) {
  return object_id::parse(hex).value();
}

// A stored record (a JSON object) with the field `name` set to null, added if it was absent.
inline std::string with_null_field(std::string_view record, std::string_view name) {
  boost::json::value v = boost::json::parse(record);
  v.as_object()[name] = nullptr;
  return boost::json::serialize(v);
}

}  // namespace hookd::testing
