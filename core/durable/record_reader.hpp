#pragma once
// Internal to core/: what the two storage codecs (core/catalog/codec.cpp for the catalog,
// core/delivery/delivery.cpp for events and deliveries) share to write and read their records. Not
// an interface for other folders; the public record formats are described in codec.hpp and
// delivery.hpp.
//
// A record is a compact JSON object with a version field "v" (kCodecVersion), timestamps as
// integer unix milliseconds and ids as 24 hex digits. An optional field that has no value is left
// out, never written as null, and a reader refuses null wherever it appears: no encoder of any
// version has written one, so a null can only come from damage.

#include "core/common/clock.hpp"
#include "core/common/error.hpp"
#include "core/common/object_id.hpp"

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/storage_ptr.hpp>
#include <boost/json/value.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace hookd::detail {

inline std::int64_t to_millis(timestamp t) noexcept {
  return t.time_since_epoch().count();
}
inline timestamp from_millis(std::int64_t ms) noexcept {
  return timestamp{std::chrono::milliseconds{ms}};
}

// A new record holding only its version field.
boost::json::object begin_record();

// An error_kind::internal problem saying what is wrong with a stored value.
problem decode_error(std::string what);

// Parses a stored value with a small depth bound (records are flat) and checks that it is an
// object of the version this code reads. The result is an object, allocated from `sp` (default:
// the heap; a decoder passes a monotonic_resource on its stack to save an allocation per field).
result<boost::json::value> open_record(std::string_view value, boost::json::storage_ptr sp = {});

// The id of a record whose key is the 12 raw id bytes.
result<object_id> id_from_key(std::string_view key);

// A record stored under its id: the key checked first, then the value as above.
struct keyed_record {
  boost::json::value value;  // an object
  object_id id;              // from the key
};
result<keyed_record> open_record(std::string_view key, std::string_view value,
                                 boost::json::storage_ptr sp = {});

// Reads the fields of one record object and keeps the first thing found wrong; every accessor
// returns an empty value after a failure, so a decoder reads on and reports once at the end.
// Unknown fields are ignored so that a later version may add optional ones without a new "v".
// A field that is present as null is refused ("field \"x\" is null"), optional or not. Holds a
// reference to the object: it must outlive the reader.
class record_reader {
 public:
  explicit record_reader(const boost::json::object& obj) : obj_(obj) {}

  bool ok() const noexcept { return error_.empty(); }
  const std::string& error() const noexcept { return error_; }
  void fail(std::string message);

  // The field's value; nullptr when it is absent (a failure when `required`) or null (always a
  // failure).
  const boost::json::value* field(std::string_view name, bool required);

  std::string string(std::string_view name);
  std::optional<std::string> opt_string(std::string_view name, bool required = false);

  bool boolean(std::string_view name);

  std::optional<std::int64_t> opt_integer(std::string_view name, bool required = false);
  // A required integer in [0, 2^32).
  std::uint32_t count(std::string_view name);

  timestamp time(std::string_view name);
  std::optional<timestamp> opt_time(std::string_view name, bool required = false);

  object_id id(std::string_view name);

  const boost::json::array* array(std::string_view name);
  // A required array of strings.
  std::vector<std::string> strings(std::string_view name);

 private:
  // An integer field; on a wrong type the failure says the field "is not <what>".
  std::optional<std::int64_t> integer(std::string_view name, bool required, std::string_view what);

  const boost::json::object& obj_;
  std::string error_;
};

// `value` when the reader found nothing wrong, else the reader's first error.
template <class T>
result<T> finish(const record_reader& r, T&& value) {
  if (!r.ok()) return decode_error(r.error());
  return std::forward<T>(value);
}

}  // namespace hookd::detail
